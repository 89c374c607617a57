// Preference optimisation: the DPO and IPO losses and TRL's metrics against their formulas, the reference as
// the adapters switched off, exact resume, and a short run on HH-RLHF pairs.
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include <lumi/presets.hpp>

#include "../data/packing_test_util.hpp"
#include "../model/test_specs.hpp"
#include "lumi/data/preference.hpp"
#include "lumi/lora/lora.hpp"
#include "lumi/train/dpo.hpp"
#include "test_data.hpp"
#include "test_errors.hpp"

namespace fs = std::filesystem;

namespace {

using lumi::train::Batch;
using torch::indexing::None;
using torch::indexing::Slice;

constexpr lumi::ModelSpec spec = lumi::test::gqa;
constexpr lumi::LoraSpec adapter{.rank = 4, .alpha = 8, .dropout = 0.0, .targets = lumi::lora::all_roles};
using Model = lumi::Transformer<spec, lumi::Lora<adapter>>;

Model adapted_model(std::uint64_t seed) {
    Model model(lumi::InitSettings{.seed = seed, .std = 0.1});
    torch::NoGradGuard no_grad;
    auto gen = lumi::make_generator(seed + 1);
    for (auto& item : model->named_parameters())
        if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0.0, 0.1, gen);
    return model;
}

// Two pairs as the preference dataset lays them out: [chosen 0, chosen 1, rejected 0, rejected 1], prompts of
// 3 and 2 tokens, responses of varied lengths, right-padded.
Batch two_pairs() {
    auto gen = lumi::make_generator(3);
    const auto tokens = torch::randint(spec.vocab_size, {4, 10}, gen, torch::kInt64);
    auto mask = torch::zeros({4, 10}, torch::kBool);
    mask.index_put_({0, Slice(3, 8)}, true);
    mask.index_put_({1, Slice(2, 5)}, true);
    mask.index_put_({2, Slice(3, 6)}, true);
    mask.index_put_({3, Slice(2, 9)}, true);
    return {tokens, mask, {}};
}

// The summed log-probabilities of the masked tokens, by the textbook formula on the full logits.
torch::Tensor logps_by_hand(Model& model, const Batch& batch, bool mean = false) {
    const auto logits = model->forward(batch.tokens.index({Slice(), Slice(0, -1)}));
    const auto per_token = torch::log_softmax(logits.to(torch::kFloat32), -1)
                               .gather(-1, batch.tokens.index({Slice(), Slice(1, None)}).unsqueeze(-1))
                               .squeeze(-1);
    const auto mask = batch.loss_mask.index({Slice(), Slice(1, None)}).to(torch::kFloat32);
    const auto sums = (per_token * mask).sum(1);
    return mean ? sums / mask.sum(1) : sums;
}

// The reference by another route than AdaptersOff: lora_B set to zero, so every adapter adds nothing.
torch::Tensor reference_by_hand(Model& model, const Batch& batch, bool mean = false) {
    torch::NoGradGuard no_grad;
    std::vector<std::pair<torch::Tensor, torch::Tensor>> saved;
    for (auto& item : model->named_parameters())
        if (item.key().find("lora_B") != std::string::npos) {
            saved.emplace_back(item.value(), item.value().clone());
            item.value().zero_();
        }
    auto logps = logps_by_hand(model, batch, mean);
    for (auto& [parameter, value] : saved) parameter.copy_(value);
    return logps;
}

std::vector<torch::Tensor> adapter_grads(Model& model) {
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters())
        if (p.requires_grad()) grads.push_back(p.grad().clone());
    model->zero_grad();
    return grads;
}

TEST(Dpo, SigmoidLossRewardsAndGradientsEqualTheFormula) {
    auto model = adapted_model(7);
    const Batch batch = two_pairs();
    const lumi::train::DpoSettings settings{.beta = 0.5, .label_smoothing = 0.1};
    const lumi::Dpo<lumi::SigmoidLoss> dpo(settings);
    const auto out = dpo(model, batch);
    out.loss.backward();
    const auto grads = adapter_grads(model);

    const auto ref = reference_by_hand(model, batch);  // first: it edits lora_B, which logps' graph saves
    const auto logps = logps_by_hand(model, batch);
    const auto h = (logps[0] - logps[2] - ref[0] + ref[2]).unsqueeze(0);
    const auto h1 = (logps[1] - logps[3] - ref[1] + ref[3]).unsqueeze(0);
    const auto hs = torch::cat({h, h1});
    const auto expected =
        (-(1 - 0.1) * torch::log_sigmoid(0.5 * hs) - 0.1 * torch::log_sigmoid(-0.5 * hs)).mean();
    EXPECT_NEAR(out.loss.item<double>(), expected.item<double>(), 1e-5);
    expected.backward();
    const auto by_hand = adapter_grads(model);
    ASSERT_EQ(grads.size(), by_hand.size());
    double largest = 0;
    for (std::size_t i = 0; i < grads.size(); ++i) {
        EXPECT_TRUE(torch::allclose(grads[i], by_hand[i], 1e-4, 1e-6)) << "adapter gradient " << i;
        largest = std::max(largest, grads[i].abs().max().item<double>());
    }
    EXPECT_GT(largest, 1e-4) << "the adapters must get a gradient, or the comparison proves nothing";

    // TRL's metrics, in metric_names() order.
    const auto names = dpo.metric_names();
    ASSERT_EQ(names.size(), out.metrics.size());
    auto metric = [&](const std::string& name) {
        const auto at = std::find(names.begin(), names.end(), name) - names.begin();
        return out.metrics.at(std::size_t(at)).item<double>();
    };
    const auto chosen_rewards = 0.5 * (logps.index({Slice(0, 2)}) - ref.index({Slice(0, 2)}));
    const auto rejected_rewards = 0.5 * (logps.index({Slice(2, 4)}) - ref.index({Slice(2, 4)}));
    EXPECT_NEAR(metric("rewards/chosen"), chosen_rewards.mean().item<double>(), 1e-5);
    EXPECT_NEAR(metric("rewards/rejected"), rejected_rewards.mean().item<double>(), 1e-5);
    EXPECT_NEAR(metric("rewards/margins"), (chosen_rewards - rejected_rewards).mean().item<double>(), 1e-5);
    EXPECT_DOUBLE_EQ(metric("rewards/accuracies"),
                     (chosen_rewards > rejected_rewards).to(torch::kFloat32).mean().item<double>());
    EXPECT_NEAR(metric("logps/chosen"), logps.index({Slice(0, 2)}).mean().item<double>(), 1e-4);
    EXPECT_NEAR(metric("logps/rejected"), logps.index({Slice(2, 4)}).mean().item<double>(), 1e-4);
    EXPECT_DOUBLE_EQ(out.weight.item<double>(), 2.0);
}

TEST(Dpo, IpoAveragesLogProbabilitiesOverTheResponse) {
    auto model = adapted_model(8);
    const Batch batch = two_pairs();
    const lumi::Dpo<lumi::IpoLoss> ipo({.beta = 0.2});
    const auto out = ipo(model, batch);
    torch::NoGradGuard no_grad;
    const auto logps = logps_by_hand(model, batch, true);
    const auto ref = reference_by_hand(model, batch, true);
    const auto h =
        torch::stack({logps[0] - logps[2] - ref[0] + ref[2], logps[1] - logps[3] - ref[1] + ref[3]});
    EXPECT_NEAR(out.loss.item<double>(), (h - 1 / (2 * 0.2)).pow(2).mean().item<double>(), 1e-5);
}

TEST(Dpo, AtTheStartThePolicyIsTheReference) {
    Model model(lumi::InitSettings{.seed = 4, .std = 0.1});  // lora_B zero: the adapters add nothing yet
    const lumi::Dpo<> dpo;
    const auto out = dpo(model, two_pairs());
    EXPECT_NEAR(out.loss.item<double>(), std::log(2.0), 1e-6);
    for (const auto& m : std::vector<torch::Tensor>(out.metrics.begin(), out.metrics.begin() + 4))
        EXPECT_NEAR(m.item<double>(), 0.0, 1e-7);  // rewards, accuracy and margin all 0
}

TEST(Dpo, AdaptersOffIsScopedAndRefusesMergedAdapters) {
    auto model = adapted_model(9);
    const auto ids = two_pairs().tokens;
    torch::NoGradGuard no_grad;
    const auto adapted = model->forward(ids);
    {
        lumi::lora::AdaptersOff<adapter> off(*model);
        EXPECT_FALSE(torch::allclose(model->forward(ids), adapted));
    }
    EXPECT_TRUE(torch::equal(model->forward(ids), adapted));
    lumi::lora::merge(model);
    const auto error = lumi::test::error_of([&] { lumi::lora::AdaptersOff<adapter> off(*model); });
    EXPECT_CONTAINS(error, "the adapter is merged into the weight, so it cannot be switched off");
}

TEST(Dpo, FullFineTuningNeedsAFrozenReference) {
    lumi::Transformer<spec> dense(lumi::InitSettings{.seed = 1});
    const lumi::Dpo<> dpo;
    EXPECT_CONTAINS(lumi::test::error_of([&] { dpo(dense, two_pairs()); }),
                    "a model without LoRA adapters needs a frozen reference");
    lumi::Transformer<spec> reference(lumi::InitSettings{.seed = 1});
    lumi::Dpo<> with_reference;
    with_reference.set_reference(
        [reference](const torch::Tensor& inputs) mutable { return reference->forward(inputs); });
    EXPECT_NEAR(with_reference(dense, two_pairs()).loss.item<double>(), std::log(2.0), 1e-6);
    EXPECT_CONTAINS(lumi::test::error_of([] { lumi::Dpo<> bad({.beta = 0}); }), "beta: must be > 0");
    EXPECT_CONTAINS(lumi::test::error_of([] { lumi::Dpo<> bad({.label_smoothing = 0.5}); }),
                    "label_smoothing: must be in [0, 0.5)");
}

// Preference pairs prepared from the HH-RLHF fixture with bytes as tokens.
fs::path prepare_hh(const std::string& name, std::uint32_t length) {
    const fs::path dir = lumi::test::fresh_directory(name);
    lumi::data::PreferenceSettings settings;
    settings.datasets = {{.path = lumi::test::fixture("hh_rlhf_600.jsonl.gz")}};
    settings.output = dir / "dpo";
    settings.chat_template = lumi::data::ChatTemplate::chat;
    settings.sequence_length = length;
    settings.max_prompt_tokens = length / 2;
    settings.validation_fraction = 0.1;
    settings.threads = 2;
    lumi::data::prepare_preferences(settings, lumi::test::byte_encode, lumi::test::byte_tokenizer());
    return dir;
}

template <class Trainer>
typename Trainer::Settings dpo_settings(const fs::path& output, std::int64_t steps) {
    typename Trainer::Settings settings;
    settings.run.output = output.string();
    settings.run.micro_batch = 4;
    settings.run.max_steps = steps;
    settings.run.log_every = 1;
    settings.run.eval_every = 0;
    settings.run.eval_batches = 8;
    settings.run.checkpoint_every = 0;
    settings.run.device = "cpu";
    settings.optimizer.lr = 2e-3;
    settings.schedule.warmup_steps = 2;
    return settings;
}

TEST(Dpo, ResumedRunReproducesTheUninterruptedMetricsBitForBit) {
    constexpr lumi::ModelSpec small{.vocab_size = 259,
                                    .n_layer = 2,
                                    .d_model = 32,
                                    .n_head = 2,
                                    .n_kv_head = 2,
                                    .ffn_hidden = 64,
                                    .context = 64};
    constexpr lumi::LoraSpec dropout{.rank = 4, .alpha = 8, .dropout = 0.1};
    using SmallModel = lumi::Transformer<small, lumi::Lora<dropout>>;
    using DpoTrainer =
        lumi::Trainer<SmallModel, lumi::AdamW, lumi::CosineWarmup, lumi::FullPrecision, lumi::Dpo<>>;
    const fs::path dir = prepare_hh("dpo_resume", 64);
    const lumi::data::PreferenceDataset train(dir / "dpo", {.split = "train", .seed = 3});
    using Record = std::vector<double>;
    auto record = [](const lumi::train::StepReport& r) {
        Record values{r.loss};
        for (const auto& [name, value] : r.metrics) values.push_back(value);
        return values;
    };
    std::vector<Record> whole, split;
    {
        torch::manual_seed(0);  // the LoRA dropout draws from the global generator
        DpoTrainer trainer(SmallModel(lumi::InitSettings{.seed = 2}),
                           dpo_settings<DpoTrainer>(dir / "whole", 6));
        trainer.add_callback([&](const auto& r) { whole.push_back(record(r)); });
        trainer.fit(train);
    }
    auto settings = dpo_settings<DpoTrainer>(dir / "split", 6);
    settings.run.checkpoint_every = 3;
    {
        torch::manual_seed(0);
        DpoTrainer trainer(SmallModel(lumi::InitSettings{.seed = 2}), settings);
        trainer.add_callback([&](const auto& r) {
            split.push_back(record(r));
            if (r.step == 3) lumi::train::StopSignals::request();
        });
        EXPECT_TRUE(trainer.fit(train).interrupted);
    }
    settings.run.resume = "latest";
    {
        DpoTrainer trainer(SmallModel(lumi::InitSettings{.seed = 2}), settings);
        trainer.add_callback([&](const auto& r) { split.push_back(record(r)); });
        EXPECT_EQ(trainer.fit(train).steps, 6);
    }
    ASSERT_EQ(whole.size(), 6u);
    ASSERT_EQ(whole[0].size(), 10u);  // the loss and TRL's metrics
    EXPECT_EQ(split, whole);

    // Another beta is another run: resuming with it is refused.
    settings.run.output = (dir / "split").string();
    lumi::Dpo<> other({.beta = 0.3});
    DpoTrainer trainer(SmallModel(), settings, other);
    EXPECT_CONTAINS(lumi::test::error_of([&] { trainer.fit(train); }),
                    "objective: checkpoint \"dpo sigmoid beta=0.1");
    fs::remove_all(dir);
}

// The stage function end to end, both ways: LoRA (reference = adapters off; adapter/ and merged/ written)
// and full fine-tuning (a frozen copy as reference; final/), each lowering the training DPO loss from ln 2.
TEST(Dpo, TrainDpoRunsWithLoraAndWithFullFineTuning) {
    constexpr lumi::ModelSpec small{.vocab_size = 259,
                                    .n_layer = 2,
                                    .d_model = 32,
                                    .n_head = 2,
                                    .n_kv_head = 2,
                                    .ffn_hidden = 64,
                                    .context = 64};
    const fs::path dir = prepare_hh("dpo_stage", 64);
    lumi::io::SaveSettings save;
    save.tokenizer = lumi::io::TokenizerIdentity{lumi::test::byte_tokenizer_sha(), 259};
    lumi::io::save_model(lumi::Transformer<small>(lumi::InitSettings{.seed = 6}), dir / "base", save);

    lumi::train::DpoStageSettings<> settings;
    settings.data = {.dataset = (dir / "dpo").string(), .base = (dir / "base").string()};
    settings.run = dpo_settings<lumi::PretrainTrainer<small>>(dir / "lora", 8).run;
    settings.run.eval_every = 4;
    settings.optimizer.lr = 3e-3;
    torch::manual_seed(0);
    const auto lora = lumi::train::train_dpo<small, lumi::Lora<adapter>>(settings, nullptr);
    EXPECT_EQ(lora.fit.steps, 8);
    EXPECT_LT(lora.fit.train_loss, std::log(2.0));
    EXPECT_FALSE(lora.fit.val_metrics.empty());
    EXPECT_TRUE(fs::exists(lora.adapter / "adapter_model.safetensors"));
    EXPECT_TRUE(fs::exists(lora.merged / "model.safetensors"));

    settings.method = lumi::train::FinetuneMethod::full;
    settings.run.output = (dir / "full").string();
    settings.optimizer.lr = 1e-3;
    const auto full = lumi::train::train_dpo<small, lumi::Dense, lumi::IpoLoss>(settings, nullptr);
    EXPECT_EQ(full.fit.steps, 8);
    EXPECT_EQ(full.merged, dir / "full" / "final");
    EXPECT_TRUE(fs::exists(full.merged / "model.safetensors"));
    EXPECT_TRUE(full.adapter.empty());

    // The data must be preference pairs prepared with the base's tokenizer.
    settings.data.tokenizer = "";
    lumi::io::SaveSettings other = save;
    other.tokenizer->sha256 = std::string(64, 'a');
    lumi::io::save_model(lumi::Transformer<small>(), dir / "other_base", other);
    settings.data.base = (dir / "other_base").string();
    EXPECT_CONTAINS(
        lumi::test::error_of([&] { lumi::train::train_dpo<small, lumi::Dense>(settings, nullptr); }),
        "is not the one checkpoint");
    fs::remove_all(dir);
}

}  // namespace
