#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "../model/test_specs.hpp"
#include "lumi/lora/lora.hpp"
#include "lumi/train/trainer.hpp"

namespace fs = std::filesystem;

namespace {

using lumi::train::Batch;

// Sequences of a repeating pattern with noise: learnable, and a fixed size so every test is fast.
class PatternDataset {
  public:
    PatternDataset(std::int64_t count, std::int64_t length, std::int64_t vocab, std::uint64_t seed = 5)
        : length_(length) {
        auto gen = lumi::make_generator(seed);
        auto starts = torch::randint(0, vocab, {count, 1}, gen, torch::kInt64);
        tokens_ = (starts + torch::arange(length, torch::kInt64).unsqueeze(0) * 3).remainder(vocab);
    }
    std::int64_t size() const { return tokens_.size(0); }
    std::int64_t sequence_length() const { return length_; }
    std::vector<std::int64_t> order(std::int64_t epoch) const {
        auto perm = torch::randperm(size(), lumi::make_generator(1000 + std::uint64_t(epoch)), torch::kInt64);
        return {perm.data_ptr<std::int64_t>(), perm.data_ptr<std::int64_t>() + size()};
    }
    Batch samples(std::span<const std::int64_t> indices) const {
        auto index = torch::tensor(std::vector<std::int64_t>(indices.begin(), indices.end()), torch::kInt64);
        return {tokens_.index_select(0, index), {}, {}};
    }

  private:
    std::int64_t length_;
    torch::Tensor tokens_;
};

constexpr lumi::ModelSpec spec = lumi::test::gqa;
using Model = lumi::Transformer<spec>;
using SmallTrainer = lumi::Trainer<Model, lumi::AdamW, lumi::CosineWarmup, lumi::FullPrecision>;

fs::path fresh(const std::string& name) {
    const auto dir =
        fs::temp_directory_path() / ("lumi_trainer_test_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(dir);
    return dir;
}

SmallTrainer::Settings settings_for(const fs::path& output, std::int64_t steps) {
    SmallTrainer::Settings s;
    s.run.output = output.string();
    s.run.micro_batch = 4;
    s.run.max_steps = steps;
    s.run.log_every = 1;
    s.run.eval_every = 0;
    s.run.eval_batches = 2;
    s.run.checkpoint_every = 0;
    s.run.device = "cpu";
    s.optimizer.lr = 3e-3;
    s.schedule.warmup_steps = 2;
    return s;
}

TEST(Trainer, LowersTheLossAndWritesCheckpointsAndFinalModel) {
    const auto out = fresh("learns");
    PatternDataset train(64, 17, spec.vocab_size), val(16, 17, spec.vocab_size, 9);
    SmallTrainer trainer(Model(), settings_for(out, 30));
    const double before = trainer.evaluate(val, 2);
    const auto result = trainer.fit(train, &val);
    EXPECT_EQ(result.steps, 30);
    EXPECT_EQ(result.tokens, 30 * 4 * 17);
    EXPECT_LT(result.val_loss, before - 1.0);
    EXPECT_TRUE(fs::exists(out / "final" / "model.safetensors"));
    EXPECT_TRUE(fs::exists(out / "checkpoints" / "step_00000030" / "optimizer.safetensors"));
    EXPECT_TRUE(fs::exists(out / "metrics.jsonl"));
    EXPECT_TRUE(fs::exists(out / "config.json"));
    // Every logged step reports its efficiency: model FLOP/s = tokens/s x FLOPs per token, and MFU.
    const auto line = lumi::read_file(out / "metrics.jsonl");
    const auto first = boost::json::parse(line.substr(0, line.find('\n'))).as_object();
    const double flops = first.at("flops_per_s").to_number<double>();
    lumi::train::NamedTensors named;
    for (const auto& item : trainer.model()->named_parameters()) named.emplace_back(item.key(), item.value());
    const double per_token = lumi::train::training_flops_per_token(spec, named, 16).total();
    EXPECT_NEAR(flops, first.at("tokens_per_s").to_number<double>() * per_token, 1e-6 * flops);
    EXPECT_GT(first.at("mfu").to_number<double>(), 0.0);
}

// Trains 16 steps at once, and 7 then 9 resumed from the checkpoint: the losses must be the same bits.
template <class AnyTrainer>
void expect_resume_bit_for_bit(typename AnyTrainer::Settings whole_settings, const std::string& name) {
    PatternDataset train(40, 9, spec.vocab_size);  // 10 micro-batches per epoch: resume crosses an epoch
    const auto whole_dir = fresh(name + "_whole");
    whole_settings.run.output = whole_dir.string();
    whole_settings.run.max_steps = 16;
    whole_settings.run.grad_accum = 2;
    std::vector<double> whole;
    {
        AnyTrainer trainer(Model(), whole_settings);
        trainer.add_callback([&](const auto& r) { whole.push_back(r.loss); });
        trainer.fit(train);
    }
    const auto split_dir = fresh(name + "_split");
    auto split_settings = whole_settings;
    split_settings.run.output = split_dir.string();
    split_settings.run.checkpoint_every = 7;
    std::vector<double> split;
    {
        AnyTrainer trainer(Model(), split_settings);
        trainer.add_callback([&](const auto& r) {
            split.push_back(r.loss);
            if (r.step == 7) lumi::train::StopSignals::request();
        });
        const auto result = trainer.fit(train);
        EXPECT_TRUE(result.interrupted);
        EXPECT_EQ(result.steps, 7);
    }
    split_settings.run.resume = "latest";
    {
        lumi::InitSettings other_init{.seed = 99};  // the checkpoint, not the initialisation, must decide
        AnyTrainer trainer(Model(other_init), split_settings);
        trainer.add_callback([&](const auto& r) { split.push_back(r.loss); });
        const auto result = trainer.fit(train);
        EXPECT_FALSE(result.interrupted);
        EXPECT_EQ(result.steps, 16);
    }
    ASSERT_EQ(split.size(), whole.size());
    for (std::size_t i = 0; i < whole.size(); ++i) EXPECT_EQ(split[i], whole[i]) << "step " << i + 1;
}

TEST(Trainer, ResumedRunReproducesTheUninterruptedLossesBitForBit) {
    expect_resume_bit_for_bit<SmallTrainer>(settings_for(fresh("resume"), 16), "resume");
}

using MuonSmallTrainer = lumi::Trainer<Model, lumi::MuonAdamW, lumi::WarmupStableDecay, lumi::FullPrecision>;

MuonSmallTrainer::Settings muon_settings_for(const fs::path& output, std::int64_t steps) {
    const auto adamw = settings_for(output, steps);
    MuonSmallTrainer::Settings s;
    s.run = adamw.run;
    s.optimizer.muon.lr = 0.02;
    s.optimizer.muon.momentum_warmup_steps = 5;
    s.optimizer.adamw.lr = 3e-3;
    s.schedule.warmup_steps = 2;
    s.schedule.decay_ratio = 0.3;
    return s;
}

TEST(Trainer, MuonWithWarmupStableDecayLearnsAndResumesBitForBit) {
    const auto out = fresh("muon");
    PatternDataset train(64, 17, spec.vocab_size), val(16, 17, spec.vocab_size, 9);
    std::vector<double> lrs;
    {
        MuonSmallTrainer trainer(Model(), muon_settings_for(out, 30));
        trainer.add_callback([&](const auto& r) { lrs.push_back(r.lr); });
        const double before = trainer.evaluate(val, 2);
        const auto result = trainer.fit(train, &val);
        EXPECT_LT(result.val_loss, before - 1.0);
    }
    // The reported learning rate is Muon's, on the trapezoid: up over 2 steps, flat, down over the last 9.
    ASSERT_EQ(lrs.size(), 30u);
    EXPECT_DOUBLE_EQ(lrs[0], 0.01);
    EXPECT_DOUBLE_EQ(lrs[20], 0.02);
    EXPECT_NEAR(lrs[29], 0.02 / 9, 1e-12);
    // Muon's momentum buffers are in the checkpoint beside AdamW's moments.
    const auto state =
        lumi::io::load_safetensors(out / "checkpoints" / "step_00000030" / "optimizer.safetensors");
    EXPECT_TRUE(state.find("muon.momentum_buffer.model.layers.0.self_attn.q_proj.weight"));
    EXPECT_TRUE(state.find("exp_avg.model.embed_tokens.weight"));
    EXPECT_FALSE(state.find("exp_avg.model.layers.0.self_attn.q_proj.weight"));
    expect_resume_bit_for_bit<MuonSmallTrainer>(muon_settings_for(fresh("muon_resume"), 16), "muon_resume");
}

TEST(Trainer, LoraWithDropoutResumesBitForBitAndLeavesTheBaseUntouched) {
    constexpr lumi::LoraSpec adapter{.rank = 4, .alpha = 8, .dropout = 0.2};
    using LoraModel = lumi::Transformer<spec, lumi::Lora<adapter>>;
    using LoraTrainer = lumi::Trainer<LoraModel, lumi::AdamW, lumi::CosineWarmup, lumi::FullPrecision>;
    PatternDataset train(24, 9, spec.vocab_size);
    auto settings = [&](const fs::path& out) {
        LoraTrainer::Settings s;
        s.run = settings_for(out, 8).run;
        s.optimizer.lr = 1e-2;
        return s;
    };
    std::vector<double> whole, split;
    torch::Tensor base_before, base_after;
    {
        torch::manual_seed(0);
        LoraTrainer trainer(LoraModel(), settings(fresh("lora_whole")));
        base_before = trainer.model()->model->blocks[0]->self_attn->q_proj->weight.detach().clone();
        trainer.add_callback([&](const auto& r) { whole.push_back(r.loss); });
        trainer.fit(train);
        base_after = trainer.model()->model->blocks[0]->self_attn->q_proj->weight.detach().clone();
    }
    EXPECT_TRUE(torch::equal(base_before, base_after));
    auto s = settings(fresh("lora_split"));
    {
        torch::manual_seed(0);
        LoraTrainer trainer(LoraModel(), s);
        trainer.add_callback([&](const auto& r) {
            split.push_back(r.loss);
            if (r.step == 3) lumi::train::StopSignals::request();
        });
        trainer.fit(train);
    }
    torch::manual_seed(123);  // the checkpoint restores the generator dropout draws from
    s.run.resume = "latest";
    LoraTrainer trainer(LoraModel(), s);
    trainer.add_callback([&](const auto& r) { split.push_back(r.loss); });
    trainer.fit(train);
    ASSERT_EQ(split.size(), whole.size());
    for (std::size_t i = 0; i < whole.size(); ++i) EXPECT_EQ(split[i], whole[i]) << "step " << i + 1;
}

TEST(Trainer, AccumulatingMicroBatchesEqualsOneLargerBatch) {
    PatternDataset train(32, 9, spec.vocab_size);
    auto run = [&](std::int64_t micro, std::int64_t accum, const std::string& name) {
        auto s = settings_for(fresh(name), 3);
        s.run.micro_batch = micro;
        s.run.grad_accum = accum;
        SmallTrainer trainer(Model(), s);
        trainer.fit(train);
        return trainer.model()->model->embed_tokens->weight.detach().clone();
    };
    const auto accumulated = run(2, 4, "accum");
    const auto large = run(8, 1, "large");
    EXPECT_TRUE(torch::allclose(accumulated, large, 1e-4, 1e-5));
}

TEST(Trainer, ResumeRefusesDifferentRunSettingsAndMissingCheckpoints) {
    PatternDataset train(16, 9, spec.vocab_size);
    const auto out = fresh("refuse");
    auto s = settings_for(out, 2);
    {
        SmallTrainer trainer(Model(), s);
        trainer.fit(train);
    }
    s.run.resume = "latest";
    s.run.micro_batch = 2;
    SmallTrainer trainer(Model(), s);
    try {
        trainer.fit(train);
        FAIL();
    } catch (const lumi::Error& error) {
        EXPECT_NE(std::string(error.what()).find("micro_batch: checkpoint 4, now 2"), std::string::npos)
            << error.what();
    }
    auto none = settings_for(fresh("none"), 2);
    none.run.resume = "latest";
    SmallTrainer empty(Model(), none);
    EXPECT_THROW(empty.fit(train), lumi::Error);
}

TEST(Trainer, AFractionalNumberInTheResumedStateIsAnErrorNamingIt) {
    PatternDataset train(16, 9, spec.vocab_size);
    const auto out = fresh("fractional");
    auto s = settings_for(out, 2);
    SmallTrainer(Model(), s).fit(train);
    const auto state_file = out / "checkpoints" / "step_00000002" / "trainer_state.json";
    auto state = lumi::config::read_json_file(state_file).as_object();
    state["seed"] = 4.2;  // found by fuzz/trainer_state_fuzz.cpp: once an uncaught boost::system_error
    lumi::config::write_json_file(state, state_file);
    s.run.resume = "latest";
    try {
        SmallTrainer(Model(), s).fit(train);
        FAIL() << "expected an error";
    } catch (const lumi::Error& error) {
        EXPECT_NE(std::string(error.what()).find("trainer_state.json: seed: expected an integer"),
                  std::string::npos)
            << error.what();
    }
}

TEST(Trainer, KeepsOnlyTheLastCheckpoints) {
    PatternDataset train(16, 9, spec.vocab_size);
    const auto out = fresh("keep");
    auto s = settings_for(out, 6);
    s.run.checkpoint_every = 1;
    s.run.keep_checkpoints = 2;
    SmallTrainer trainer(Model(), s);
    trainer.fit(train);
    const auto kept = lumi::train::list_checkpoints(out);
    ASSERT_EQ(kept.size(), 2u);
    EXPECT_EQ(kept[0].filename(), "step_00000005");
    EXPECT_EQ(kept[1].filename(), "step_00000006");
}

TEST(Trainer, NonFiniteLossStopsWithTheLastGoodCheckpoint) {
    PatternDataset train(16, 9, spec.vocab_size);
    const auto out = fresh("nan");
    auto s = settings_for(out, 5);
    s.run.checkpoint_every = 1;
    SmallTrainer trainer(Model(), s);
    trainer.add_callback([&](const auto& r) {
        if (r.step == 2) {
            torch::NoGradGuard no_grad;
            trainer.model()->model->norm->weight.fill_(NAN);
        }
    });
    try {
        trainer.fit(train);
        FAIL();
    } catch (const lumi::Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("step 3: the training loss is nan"), std::string::npos) << message;
        EXPECT_NE(message.find("step_00000002"), std::string::npos) << message;
    }
}

std::string read_text(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The "step" of every line of metrics.jsonl, in order.
std::vector<std::int64_t> logged_steps(const fs::path& output) {
    std::vector<std::int64_t> steps;
    std::ifstream in(output / "metrics.jsonl");
    for (std::string line; std::getline(in, line);)
        steps.push_back(boost::json::parse(line).at("step").to_number<std::int64_t>());
    return steps;
}

std::vector<std::string> names_of(const std::vector<fs::path>& paths) {
    std::vector<std::string> names;
    for (const auto& p : paths) names.push_back(p.filename().string());
    return names;
}

TEST(Trainer, ANewRunRefusesAnotherRunsCheckpointsUnlessTold) {
    PatternDataset train(16, 9, spec.vocab_size);
    const auto out = fresh("other_run");
    auto s = settings_for(out, 4);
    s.run.checkpoint_every = 1;
    s.run.keep_checkpoints = 3;
    SmallTrainer(Model(), s).fit(train);
    const std::string metrics = read_text(out / "metrics.jsonl");
    try {
        SmallTrainer(Model(), s).fit(train);
        FAIL() << "expected an error";
    } catch (const lumi::Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find(out.string() + "/checkpoints already holds another run's checkpoints "
                                              "(step_00000002, step_00000003, step_00000004)"),
                  std::string::npos)
            << message;
        EXPECT_NE(message.find("--resume"), std::string::npos) << message;
        EXPECT_NE(message.find("run.overwrite=true"), std::string::npos) << message;
    }
    EXPECT_EQ(read_text(out / "metrics.jsonl"), metrics);  // the refused start touched nothing
    EXPECT_EQ(lumi::train::list_checkpoints(out).size(), 3u);

    s.run.overwrite = true;
    s.run.max_steps = 2;
    SmallTrainer(Model(), s).fit(train);
    EXPECT_EQ(names_of(lumi::train::list_checkpoints(out)),
              (std::vector<std::string>{"step_00000001", "step_00000002"}));
    EXPECT_EQ(logged_steps(out), (std::vector<std::int64_t>{1, 2}));
}

TEST(Trainer, AResumedRunDropsTheMetricsAfterItsCheckpointAndAFailedStartKeepsThem) {
    PatternDataset train(16, 9, spec.vocab_size);
    const auto out = fresh("metrics");
    auto s = settings_for(out, 10);
    s.run.checkpoint_every = 4;
    s.run.keep_checkpoints = 10;
    SmallTrainer(Model(), s).fit(train);
    // As if killed after step 10 was logged but before any checkpoint after step 4 was written, in the
    // middle of a line.
    fs::remove_all(out / "checkpoints" / "step_00000008");
    fs::remove_all(out / "checkpoints" / "step_00000010");
    fs::remove_all(out / "final");
    { std::ofstream(out / "metrics.jsonl", std::ios::app) << "{\"step\": 11, \"lo"; }

    auto mismatched = s;
    mismatched.run.resume = "latest";
    mismatched.run.micro_batch = 2;
    const std::string before = read_text(out / "metrics.jsonl");
    EXPECT_THROW(SmallTrainer(Model(), mismatched).fit(train), lumi::Error);
    EXPECT_EQ(read_text(out / "metrics.jsonl"), before);

    s.run.resume = "latest";
    const auto result = SmallTrainer(Model(), s).fit(train);
    EXPECT_EQ(result.steps, 10);
    EXPECT_EQ(logged_steps(out), (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
}

TEST(Trainer, CheckpointsGoByTheStepInTheirStateAndATornNewestIsSkipped) {
    PatternDataset train(16, 9, spec.vocab_size);
    const auto out = fresh("torn");
    auto s = settings_for(out, 6);
    s.run.checkpoint_every = 1;
    s.run.keep_checkpoints = 3;
    SmallTrainer(Model(), s).fit(train);
    const auto dir = out / "checkpoints";
    // A nine-digit name (a run past 10^8 steps) sorts first by name, last by step.
    fs::rename(dir / "step_00000006", dir / "step_000000006");
    EXPECT_EQ(names_of(lumi::train::list_checkpoints(out)),
              (std::vector<std::string>{"step_00000004", "step_00000005", "step_000000006"}));

    // The newest torn (a truncated copy), the next one's state unreadable: step 4 is the newest whole one.
    const std::string weights = read_text(dir / "step_000000006" / "model.safetensors");
    lumi::write_file_atomic(dir / "step_000000006" / "model.safetensors",
                            weights.substr(0, weights.size() / 2));
    lumi::write_file_atomic(dir / "step_00000005" / "trainer_state.json", "{\"step\": 5, \"tok");
    const auto scan = lumi::train::scan_checkpoints(out);
    ASSERT_EQ(scan.good.size(), 1u);
    EXPECT_EQ(scan.good[0].step, 4);
    ASSERT_EQ(scan.torn.size(), 2u);
    EXPECT_NE(scan.torn[0].second.find("step_000000006/model.safetensors"), std::string::npos)
        << scan.torn[0].second;
    EXPECT_NE(scan.torn[1].second.find("step_00000005/trainer_state.json:1:"), std::string::npos)
        << scan.torn[1].second;

    // A checkpoint killed while staged is cleared when the run starts again.
    fs::create_directories(dir / ".step_00000007.4242.tmp");
    s.run.resume = "latest";
    SmallTrainer trainer(Model(), s);
    std::vector<std::int64_t> steps;
    trainer.add_callback([&](const auto& r) { steps.push_back(r.step); });
    testing::internal::CaptureStderr();
    const auto result = trainer.fit(train);
    const std::string printed = testing::internal::GetCapturedStderr();
    EXPECT_EQ(result.steps, 6);
    EXPECT_EQ(steps, (std::vector<std::int64_t>{5, 6}));
    EXPECT_NE(printed.find("warning: skipping " + (dir / "step_000000006").string()), std::string::npos)
        << printed;
    EXPECT_NE(printed.find("resuming from " + (dir / "step_00000004").string() + " at step 4"),
              std::string::npos)
        << printed;
    EXPECT_FALSE(fs::exists(dir / ".step_00000007.4242.tmp"));
}

TEST(Loader, BackgroundPrefetchGivesTheSameBatchesAndPositions) {
    PatternDataset data(10, 5, spec.vocab_size);
    lumi::train::Loader<PatternDataset> direct(data, 3, {}, torch::kCPU, 0, 1, 0);
    lumi::train::Loader<PatternDataset> threaded(data, 3, {}, torch::kCPU, 0, 1, 2);
    for (int i = 0; i < 7; ++i) {  // 3 batches per epoch: crosses two epoch boundaries
        EXPECT_TRUE(torch::equal(direct.next().tokens, threaded.next().tokens)) << i;
        EXPECT_EQ(direct.position().epoch, threaded.position().epoch);
        EXPECT_EQ(direct.position().offset, threaded.position().offset);
    }
    EXPECT_EQ(direct.position().epoch, 2);
    EXPECT_EQ(direct.position().offset, 3);
}

TEST(Trainer, MaskedAndSegmentedTargetsAreIgnored) {
    Batch batch{torch::tensor({{5, 6, 7, 8, 9}}, torch::kInt64),
                torch::tensor({{false, false, true, true, true}}),
                torch::tensor({{0, 0, 0, 1, 1}}, torch::kInt32)};
    auto [inputs, targets] = lumi::train::inputs_and_targets(batch);
    EXPECT_TRUE(torch::equal(inputs, torch::tensor({{5, 6, 7, 8}}, torch::kInt64)));
    // target 6 masked (prompt), 7 kept, 8 starts another example, 9 kept
    EXPECT_TRUE(torch::equal(targets, torch::tensor({{-100, 7, -100, 9}}, torch::kInt64)));
}

}  // namespace
