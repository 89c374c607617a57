// Resuming from a damaged or foreign trainer state: each is an error naming the file and the field, and the
// checkpoint is left as it was, byte for byte.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>

#include "../model/test_specs.hpp"
#include "lumi/core/sha256.hpp"
#include "lumi/data/packed.hpp"
#include "lumi/train/trainer.hpp"

namespace fs = std::filesystem;

namespace {

namespace json = boost::json;
constexpr lumi::ModelSpec spec = lumi::test::gqa;
using Model = lumi::Transformer<spec>;
using SmallTrainer = lumi::Trainer<Model, lumi::AdamW, lumi::CosineWarmup, lumi::FullPrecision>;

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

// 16 sequences of 9 tokens of a 61-token vocabulary, with a tokenizer hash of `tokenizer`.
fs::path write_data(const fs::path& dir, char tokenizer = 'a', int first = 0) {
    fs::create_directories(dir);
    lumi::data::ShardWriter writer(
        dir, "train",
        {.sequence_length = 9, .vocab_size = 61, .tokenizer_sha256 = std::string(64, tokenizer)}, 100);
    std::vector<int> tokens(9);
    for (int s = 0; s < 16; ++s) {
        for (int t = 0; t < 9; ++t) tokens[t] = (first + s + 3 * t) % 61;
        writer.add(tokens);
    }
    writer.finish();
    return dir;
}

class BadInputResume : public ::testing::Test {
  protected:
    fs::path root, data, checkpoint;
    SmallTrainer::Settings settings;

    void SetUp() override {
        root = fs::temp_directory_path() / ("lumi_resume_bad_input_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(root);
        data = write_data(root / "data");
        settings.run.output = (root / "run").string();
        settings.run.micro_batch = 4;
        settings.run.max_steps = 3;
        settings.run.log_every = 1;
        settings.run.eval_every = 0;
        settings.run.checkpoint_every = 2;
        settings.run.device = "cpu";
        settings.optimizer.lr = 3e-3;
        {
            SmallTrainer trainer(Model(), settings);
            trainer.add_callback([](const auto& r) {
                if (r.step == 2) lumi::train::StopSignals::request();
            });
            const auto result = trainer.fit(lumi::data::PackedDataset(data));
            ASSERT_TRUE(result.interrupted);
        }
        checkpoint = root / "run" / "checkpoints" / "step_00000002";
        ASSERT_TRUE(fs::exists(checkpoint / "trainer_state.json"));
        settings.run.resume = "latest";
    }
    void TearDown() override { fs::remove_all(root); }

    json::object state() {
        return lumi::config::read_json_file(checkpoint / "trainer_state.json").as_object();
    }
    void write_state(const json::value& value) {
        std::ofstream(checkpoint / "trainer_state.json") << lumi::config::format_json(value);
    }
    std::map<std::string, std::string> snapshot() const {
        std::map<std::string, std::string> files;
        for (const auto& entry : fs::recursive_directory_iterator(root / "run" / "checkpoints"))
            if (entry.is_regular_file()) files[entry.path().string()] = lumi::sha256_file(entry.path());
        return files;
    }
    // The error of resuming with `s` (on `dataset`), checking the checkpoints are untouched.
    std::string resume_error(const SmallTrainer::Settings& s, const fs::path& dataset = {}) {
        const auto before = snapshot();
        std::string message;
        try {
            SmallTrainer trainer(Model(), s);
            trainer.fit(lumi::data::PackedDataset(dataset.empty() ? data : dataset));
        } catch (const lumi::Error& e) {
            message = e.what();
        }
        EXPECT_EQ(snapshot(), before) << "a failed resume changed the checkpoints";
        return message;
    }
    std::string resume_error() { return resume_error(settings); }
};

TEST_F(BadInputResume, AStepOfTheWrongTypeNamesTheField) {
    auto s = state();
    s["step"] = "2";
    write_state(s);
    EXPECT_CONTAINS(resume_error(),
                    "trainer_state.json: step: expected an integer (int64), found a string \"2\"");
}

TEST_F(BadInputResume, AFractionalStepIsAnError) {
    auto s = state();
    s["step"] = 2.5;
    write_state(s);
    EXPECT_CONTAINS(resume_error(),
                    "trainer_state.json: step: expected an integer (int64), found a number 2.5");
}

TEST_F(BadInputResume, ANegativeDataOffsetIsAnError) {
    auto s = state();
    s["data"].as_object()["offset"] = -4;
    write_state(s);
    EXPECT_CONTAINS(resume_error(), "trainer_state.json: data.offset: must be >= 0, found -4");
}

TEST_F(BadInputResume, ADataOffsetBeyondTheDatasetIsAnError) {
    auto s = state();
    s["data"].as_object()["offset"] = 1000;
    write_state(s);
    EXPECT_CONTAINS(resume_error(),
                    "trainer_state.json: data.offset: 1000 is not a position in this dataset (16 sequences, "
                    "batches of 4)");
    s["data"].as_object()["offset"] = 6;  // not at a batch boundary
    write_state(s);
    EXPECT_CONTAINS(resume_error(), "data.offset: 6 is not a position");
}

TEST_F(BadInputResume, AMissingFieldIsAnErrorNotADefault) {
    auto s = state();
    s.erase("tokens");
    write_state(s);
    EXPECT_CONTAINS(resume_error(), "trainer_state.json: tokens: missing");
    s = state();
    s["data"].as_object().erase("epoch");
    s["tokens"] = 0;
    write_state(s);
    EXPECT_CONTAINS(resume_error(), "trainer_state.json: data.epoch: missing");
}

TEST_F(BadInputResume, AMissingStepIsNamedWhetherLatestOrNamed) {
    // Found by fuzz/trainer_state_fuzz.cpp: the check of a checkpoint's step read a freed file name.
    auto s = state();
    s.erase("step");
    write_state(s);
    EXPECT_CONTAINS(resume_error(), "trainer_state.json: step: missing");
    auto named = settings;
    named.run.resume = checkpoint.string();
    EXPECT_CONTAINS(resume_error(named), "trainer_state.json: step: missing");
}

TEST_F(BadInputResume, AnUnknownFieldIsAnError) {
    auto s = state();
    s["stpe"] = 2;
    write_state(s);
    EXPECT_CONTAINS(resume_error(), "trainer_state.json: stpe: unknown key, did you mean 'step'?");
}

TEST_F(BadInputResume, AStateThatIsNotAnObjectOrNotJsonIsAnError) {
    write_state(json::array{1, 2});
    EXPECT_CONTAINS(resume_error(), "trainer_state.json: expected a JSON object");
    std::ofstream(checkpoint / "trainer_state.json") << "{\"step\": 2, \"tok";
    EXPECT_CONTAINS(resume_error(), "trainer_state.json:1:");
}

TEST_F(BadInputResume, AMissingRngFileIsAnError) {
    fs::remove(checkpoint / "rng.safetensors");
    EXPECT_CONTAINS(resume_error(), "rng.safetensors: missing");
}

TEST_F(BadInputResume, AnotherLearningRateIsRefusedUnlessAllowed) {
    auto s = settings;
    s.optimizer.lr = 1e-3;
    const std::string message = resume_error(s);
    EXPECT_CONTAINS(message,
                    "trainer_state.json: the settings that decide the run differ from the checkpoint's: "
                    "optimizer.lr: checkpoint 0.003, now 0.001");
    EXPECT_CONTAINS(message, "run.allow_changed_settings=true");
    s.run.allow_changed_settings = true;
    SmallTrainer trainer(Model(), s);
    EXPECT_EQ(trainer.fit(lumi::data::PackedDataset(data)).steps, 3);
}

TEST_F(BadInputResume, MoreStepsOrAnotherScheduleAreRefused) {
    auto s = settings;
    s.run.max_steps = 30;
    s.schedule.warmup_steps = 5;
    const std::string message = resume_error(s);
    EXPECT_CONTAINS(message, "max_steps: checkpoint 3, now 30");
    EXPECT_CONTAINS(message, "schedule.warmup_steps: checkpoint 0, now 5");
}

TEST_F(BadInputResume, OtherDataOrAnotherTokenizerIsRefused) {
    const fs::path other = write_data(root / "other_data", 'a', 1);
    EXPECT_CONTAINS(resume_error(settings, other), "dataset: checkpoint \"");
    const fs::path retokenized = write_data(root / "retokenized", 'b');
    EXPECT_CONTAINS(resume_error(settings, retokenized), "tokenizer_sha256: checkpoint \"aaaa");
}

TEST_F(BadInputResume, ACheckpointOfAnOlderLumiNeedsTheOverride) {
    auto s = state();
    s.erase("trajectory");
    write_state(s);
    EXPECT_CONTAINS(resume_error(), "trajectory: missing (a checkpoint of an older lumi)");
    auto allowed = settings;
    allowed.run.allow_changed_settings = true;
    SmallTrainer trainer(Model(), allowed);
    EXPECT_EQ(trainer.fit(lumi::data::PackedDataset(data)).steps, 3);
}

TEST_F(BadInputResume, AResumeDirectoryWithoutAStateIsAnError) {
    auto s = settings;
    s.run.resume = (root / "run" / "checkpoints").string();
    EXPECT_CONTAINS(resume_error(s), "is not a checkpoint (no trainer_state.json)");
}

TEST_F(BadInputResume, CheckpointsRecordTheTokenizerOfTheData) {
    const auto recorded = lumi::io::checkpoint_tokenizer(checkpoint);
    ASSERT_TRUE(recorded);
    EXPECT_EQ(recorded->sha256, std::string(64, 'a'));
    EXPECT_EQ(recorded->vocab_size, 61);
    EXPECT_CONTAINS(lumi::read_file(checkpoint / "config.json"), "\"lumi_tokenizer\"");
}

}  // namespace
