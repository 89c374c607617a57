// Supervised fine-tuning: the loss mask at the gradient level, and a short LoRA SFT on real instructions.
#include <unistd.h>

#include <filesystem>

#include <lumi/presets.hpp>

#include "../data/packing_test_util.hpp"
#include "../model/test_specs.hpp"
#include "lumi/data/packed.hpp"
#include "lumi/data/sft.hpp"
#include "lumi/lora/lora.hpp"
#include "lumi/train/trainer.hpp"
#include "test_data.hpp"

namespace fs = std::filesystem;

namespace {

using lumi::train::Batch;
using torch::indexing::Slice;

constexpr lumi::LoraSpec adapter{.rank = 4, .alpha = 8, .dropout = 0.0, .targets = lumi::lora::all_roles};

// Masked targets (prompts, and the first token of each packed example) must add nothing: the loss is the mean
// over the kept targets alone, and so are its gradients.
TEST(Sft, MaskedTargetsContributeNothingToTheLossOrTheGradients) {
    constexpr lumi::ModelSpec spec = lumi::test::gqa;
    using Model = lumi::Transformer<spec, lumi::Lora<adapter>>;
    Model model;
    {
        torch::NoGradGuard no_grad;
        auto gen = lumi::make_generator(11);
        for (auto& item : model->named_parameters())
            if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0.0, 0.05, gen);
    }
    auto gen = lumi::make_generator(3);
    const auto tokens = torch::randint(spec.vocab_size, {2, 13}, gen, torch::kInt64);
    auto mask = torch::ones({2, 13}, torch::kBool);
    mask.index_put_({0, Slice(0, 5)}, false);  // a prompt
    mask.index_put_({1, Slice(0, 3)}, false);
    mask.index_put_({1, Slice(7, 9)}, false);  // the second packed example's prompt
    const auto segments = torch::tensor(
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1}}, torch::kInt32);
    const Batch batch{tokens, mask, segments};
    const auto [inputs, targets] = lumi::train::inputs_and_targets(batch);
    const auto context = lumi::train::context_of(batch);

    auto adapter_grads = [&] {
        std::vector<torch::Tensor> grads;
        for (const auto& p : model->parameters())
            if (p.requires_grad()) grads.push_back(p.grad().clone());
        model->zero_grad();
        return grads;
    };
    const auto loss = model->forward(inputs, targets, context).loss;
    loss.backward();
    const auto grads = adapter_grads();

    // By hand: -log p(target) at the kept positions only (prompt targets and the boundary are left out).
    const auto keep = mask.index({Slice(), Slice(1, 13)}) &
                      (segments.index({Slice(), Slice(1, 13)}) == segments.index({Slice(), Slice(0, 12)}));
    ASSERT_EQ(keep.sum().item<int>(), 8 + 8);
    const auto logits = model->forward(inputs, context);
    const auto nll = -torch::log_softmax(logits.to(torch::kFloat32), -1)
                          .gather(-1, tokens.index({Slice(), Slice(1, 13)}).unsqueeze(-1))
                          .squeeze(-1);
    const auto expected = nll.masked_select(keep).mean();
    EXPECT_NEAR(loss.item<double>(), expected.item<double>(), 1e-6);
    expected.backward();
    const auto expected_grads = adapter_grads();
    ASSERT_EQ(grads.size(), expected_grads.size());
    ASSERT_FALSE(grads.empty());
    for (std::size_t i = 0; i < grads.size(); ++i)
        EXPECT_TRUE(torch::allclose(grads[i], expected_grads[i], 1e-5, 1e-7)) << "parameter " << i;

    // The tokens behind masked targets change nothing: the last position is only ever a target.
    auto changed = tokens.clone();
    mask.index_put_({0, 12}, false);
    changed.index_put_({0, 12}, (tokens.index({0, 12}) + 1).remainder(spec.vocab_size));
    const auto [inputs_a, targets_a] = lumi::train::inputs_and_targets({tokens, mask, segments});
    const auto [inputs_b, targets_b] = lumi::train::inputs_and_targets({changed, mask, segments});
    model->forward(inputs_a, targets_a, context).loss.backward();
    const auto grads_a = adapter_grads();
    model->forward(inputs_b, targets_b, context).loss.backward();
    const auto grads_b = adapter_grads();
    for (std::size_t i = 0; i < grads_a.size(); ++i) EXPECT_TRUE(torch::equal(grads_a[i], grads_b[i])) << i;
}

// A short LoRA SFT of the nano preset on Alpaca instructions (the fixture's 400) lowers the loss on
// held-out instructions (bytes as tokens, so no tokenizer has to be trained first).
TEST(Sft, ShortNanoLoraSftOnAlpacaLowersHeldOutLoss) {
    const fs::path alpaca = lumi::test::fixture("alpaca_400.json");
    constexpr lumi::ModelSpec spec = lumi::presets::nano;
    constexpr lumi::LoraSpec nano_adapter = lumi::presets::nano_lora;
    using Model = lumi::Transformer<spec, lumi::Lora<nano_adapter>>;
    using SftTrainer = lumi::Trainer<Model, lumi::AdamW, lumi::CosineWarmup, lumi::FullPrecision>;

    const fs::path dir = lumi::test::fresh_directory("sft_alpaca");
    lumi::data::SftSettings data;
    data.datasets = {{.path = alpaca, .max_tokens = 200'000}};
    data.output = dir / "sft";
    data.sequence_length = 129;
    data.validation_fraction = 0.05;
    lumi::data::prepare_sft(data, lumi::test::byte_encode, lumi::test::byte_tokenizer());
    const lumi::data::PackedDataset train(data.output, {.split = "train"});
    const lumi::data::PackedDataset val(data.output, {.split = "val"});
    ASSERT_TRUE(train.has_loss_mask() && val.size() >= 8);

    SftTrainer::Settings settings;
    settings.run.output = (dir / "run").string();
    settings.run.micro_batch = 8;
    settings.run.max_steps = 20;
    settings.run.log_every = 10;
    settings.run.eval_every = 0;
    settings.run.checkpoint_every = 0;
    settings.run.device = "cpu";
    settings.optimizer.lr = 3e-3;
    settings.schedule.warmup_steps = 3;
    torch::manual_seed(0);
    SftTrainer trainer(Model(), settings);
    const double before = trainer.evaluate(val, 4);
    trainer.fit(train);
    const double after = trainer.evaluate(val, 4);
    std::printf("held-out loss %.4f -> %.4f\n", before, after);
    EXPECT_LT(after, before - 0.5);
    fs::remove_all(dir);
}

}  // namespace
