// Checkpoints that must not load: no config.json, NaN or Inf weights, shard names that leave the directory,
// a tokenizer other than the one recorded. Each error names the file and the tensor or field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <lumi/io/model_io.hpp>
#include <lumi/model/transformer.hpp>

#include "test_specs.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using lumi::test::mha;

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const lumi::Error& e) {
        return e.what();
    }
    return "";
}

struct FakeTokenizer {
    std::string hash;
    int vocab;
    const std::string& sha256() const { return hash; }
    int vocab_size() const { return vocab; }
};

class BadInputCheckpoint : public ::testing::Test {
  protected:
    fs::path dir;
    lumi::Transformer<mha> saved{lumi::InitSettings{.seed = 1}};
    void SetUp() override {
        dir = fs::temp_directory_path() / ("lumi_checkpoint_bad_input_" + std::to_string(::getpid()) + "_" +
                                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir);
        lumi::io::save_model(saved, dir,
                             {.tokenizer = lumi::io::TokenizerIdentity{std::string(64, 'c'), 50}});
    }
    void TearDown() override { fs::remove_all(dir); }

    std::string load_error(const fs::path& from) {
        lumi::Transformer<mha> model;
        return error_of([&] { lumi::io::load_model(model, from); });
    }
    void save_with(const std::string& name, const torch::Tensor& value) {
        lumi::io::NamedTensors tensors;
        for (const auto& p : saved->named_parameters())
            tensors.emplace_back(p.key(), p.key() == name ? value : p.value());
        lumi::io::save_safetensors(dir / "model.safetensors", tensors);
    }
};

TEST_F(BadInputCheckpoint, ACheckpointWithoutConfigJsonIsAnError) {
    fs::remove(dir / "config.json");
    EXPECT_CONTAINS(load_error(dir), "config.json: missing: a checkpoint needs its config.json");
    EXPECT_CONTAINS(load_error(dir / "model.safetensors"), "config.json: missing");
    lumi::Transformer<mha> model;
    lumi::io::load_model(model, dir, {.check_config = false});  // the explicit opt-out
}

TEST_F(BadInputCheckpoint, AMissingCheckpointIsNamed) {
    EXPECT_CONTAINS(load_error(dir / "nowhere"), "nowhere: no such checkpoint");
}

TEST_F(BadInputCheckpoint, ANanWeightIsAnErrorNamingTheTensor) {
    auto weight = saved->named_parameters()["model.norm.weight"].detach().clone();
    weight[3] = std::numeric_limits<float>::quiet_NaN();
    save_with("model.norm.weight", weight);
    EXPECT_CONTAINS(load_error(dir),
                    "model.safetensors: tensor 'model.norm.weight' holds 1 NaN and 0 infinite values");
}

TEST_F(BadInputCheckpoint, AnInfiniteWeightIsAnErrorNamingTheTensor) {
    auto weight = saved->named_parameters()["model.embed_tokens.weight"].detach().clone();
    weight[0][0] = std::numeric_limits<float>::infinity();
    weight[1][0] = -std::numeric_limits<float>::infinity();
    save_with("model.embed_tokens.weight", weight);
    EXPECT_CONTAINS(load_error(dir), "tensor 'model.embed_tokens.weight' holds 0 NaN and 2 infinite values");
}

TEST_F(BadInputCheckpoint, AShardNameCannotLeaveTheDirectory) {
    fs::rename(dir / "model.safetensors", dir / "weights.safetensors");
    for (const std::string shard :
         {"../weights.safetensors", "/etc/passwd", "sub/../../x.safetensors", ".."}) {
        json::object map;
        for (const auto& p : saved->named_parameters()) map[p.key()] = "weights.safetensors";
        map["lm_head.weight"] = shard;
        lumi::config::write_json_file(json::object{{"weight_map", map}},
                                      dir / "model.safetensors.index.json");
        EXPECT_CONTAINS(
            load_error(dir),
            "model.safetensors.index.json: weight_map.lm_head.weight: expected the name of a file in");
    }
    json::object map{{"lm_head.weight", 7}};
    lumi::config::write_json_file(json::object{{"weight_map", map}}, dir / "model.safetensors.index.json");
    EXPECT_CONTAINS(load_error(dir), "weight_map.lm_head.weight: expected the name of a file in " +
                                         dir.string() + ", found an integer 7");
}

TEST_F(BadInputCheckpoint, ATruncatedWeightsFileIsAnError) {
    fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 5);
    EXPECT_CONTAINS(load_error(dir), "model.safetensors: truncated");
    fs::resize_file(dir / "model.safetensors", 3);
    EXPECT_CONTAINS(load_error(dir), "model.safetensors: not a safetensors file");
}

TEST_F(BadInputCheckpoint, WeightsThatAreADirectoryAreAnError) {
    fs::remove(dir / "model.safetensors");
    fs::create_directories(dir / "model.safetensors");
    EXPECT_CONTAINS(load_error(dir), "model.safetensors: cannot read the file");
}

TEST_F(BadInputCheckpoint, AConfigJsonOfTheWrongTypeIsNamed) {
    std::ofstream(dir / "config.json") << "[]";
    EXPECT_CONTAINS(load_error(dir), "config.json: expected a JSON object");
    std::ofstream(dir / "config.json") << "{\"hidden_size\": 32, \"hidden_size\": 16}";
    EXPECT_CONTAINS(load_error(dir), "config.json:1: duplicate key \"hidden_size\"");
}

TEST_F(BadInputCheckpoint, AnotherTokenizerIsRefusedNamingBoth) {
    lumi::Transformer<mha> model;
    const std::string message = error_of([&] {
        lumi::io::load_model_for(model, dir, FakeTokenizer{std::string(64, 'd'), 50}, "tok");
    });
    EXPECT_CONTAINS(message, "tok: tokenizer dddd");
    EXPECT_CONTAINS(message, "is not the one checkpoint " + dir.string() + " was trained with: cccc");
    EXPECT_CONTAINS(error_of([&] {
                        lumi::io::load_model_for(model, dir, FakeTokenizer{std::string(64, 'c'), 51}, "tok");
                    }),
                    "(vocabulary 51) is not the one");
    EXPECT_EQ(error_of([&] {
                  lumi::io::load_model_for(model, dir, FakeTokenizer{std::string(64, 'c'), 50}, "tok");
              }),
              "");
}

TEST_F(BadInputCheckpoint, ATokenizerLargerThanTheModelIsRefused) {
    lumi::Transformer<mha> model;
    EXPECT_CONTAINS(error_of([&] {
                        lumi::io::load_model_for(model, dir, FakeTokenizer{std::string(64, 'c'), 62}, "tok");
                    }),
                    "tok: its vocabulary of 62 tokens is larger than the model's 61");
}

TEST_F(BadInputCheckpoint, ARecordedTokenizerOfTheWrongTypeIsNamed) {
    auto config = lumi::config::read_json_file(dir / "config.json").as_object();
    config["lumi_tokenizer"] = json::object{{"sha256", 5}, {"vocab_size", 50}};
    lumi::config::write_json_file(config, dir / "config.json");
    EXPECT_CONTAINS(error_of([&] { lumi::io::checkpoint_tokenizer(dir); }),
                    "config.json: lumi_tokenizer: sha256: expected a string");
}

}  // namespace
