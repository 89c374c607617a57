#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include <lumi/io/model_io.hpp>
#include <lumi/model/transformer.hpp>
#include <lumi/presets.hpp>

#include "test_specs.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using lumi::test::gqa;
using lumi::test::mha;
using lumi::test::tied;

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const lumi::Error& error) {
        return error.what();
    }
    ADD_FAILURE() << "expected a lumi::Error";
    return {};
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

torch::Tensor batch(std::int64_t vocab) {
    auto gen = lumi::make_generator(11);
    return torch::randint(vocab, {2, 9}, gen, torch::kLong);
}

template <class Model>
torch::Tensor logits(Model& model) {
    torch::NoGradGuard no_grad;
    return model->forward(batch(lumi::io::spec_of<Model>.vocab_size));
}

class ModelIo : public ::testing::Test {
  protected:
    void SetUp() override {
        dir = fs::temp_directory_path() /
              ("lumi_model_io_test_" +
               std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
        fs::remove_all(dir);
    }
    void TearDown() override { fs::remove_all(dir); }

    fs::path dir;
};

TEST_F(ModelIo, SaveThenLoadGivesEqualLogits) {
    lumi::Transformer<gqa> saved(lumi::InitSettings{.seed = 1});
    lumi::Transformer<gqa> loaded(lumi::InitSettings{.seed = 2});
    ASSERT_FALSE(torch::equal(logits(saved), logits(loaded)));
    lumi::save_model(saved, dir);
    lumi::load_model(loaded, dir);
    EXPECT_TRUE(torch::equal(logits(saved), logits(loaded)));
    // The file itself is accepted too.
    lumi::Transformer<gqa> again(lumi::InitSettings{.seed = 3});
    lumi::load_model(again, dir / "model.safetensors");
    EXPECT_TRUE(torch::equal(logits(saved), logits(again)));
}

TEST_F(ModelIo, WritesTheParametersUnderHuggingFaceNamesWithFormatMetadata) {
    lumi::Transformer<mha> model;
    lumi::save_model(model, dir);
    const auto header = lumi::io::read_safetensors_header(dir / "model.safetensors");
    std::set<std::string> written, expected;
    for (const auto& t : header.tensors) written.insert(t.name);
    for (const auto& p : model->named_parameters()) expected.insert(p.key());
    EXPECT_EQ(written, expected);
    EXPECT_TRUE(written.contains("model.layers.1.mlp.down_proj.weight"));
    EXPECT_TRUE(written.contains("lm_head.weight"));
    EXPECT_FALSE(written.contains("model.rotary_emb.cos"));
    EXPECT_EQ(header.metadata.at("format"), "pt");  // transformers refuses a safetensors file without it
    for (const auto& t : header.tensors) EXPECT_EQ(t.dtype, torch::kFloat32);
}

TEST_F(ModelIo, TiedModelWritesNoLmHeadAndLoadsBack) {
    lumi::Transformer<tied> saved(lumi::InitSettings{.seed = 1});
    lumi::save_model(saved, dir);
    const auto header = lumi::io::read_safetensors_header(dir / "model.safetensors");
    EXPECT_EQ(header.find("lm_head.weight"), nullptr);
    EXPECT_NE(header.find("model.embed_tokens.weight"), nullptr);
    EXPECT_TRUE(lumi::config::read_json_file(dir / "config.json").at("tie_word_embeddings").as_bool());
    lumi::Transformer<tied> loaded(lumi::InitSettings{.seed = 2});
    lumi::load_model(loaded, dir);
    EXPECT_TRUE(torch::equal(logits(saved), logits(loaded)));
}

TEST_F(ModelIo, LoadingIntoAnotherShapeListsTheDifferingFields) {
    lumi::Transformer<tied> small;
    lumi::save_model(small, dir);
    lumi::Transformer<mha> model;
    const auto message = error_of([&] { lumi::load_model(model, dir); });
    EXPECT_TRUE(contains(message, "checkpoint " + dir.string() + " was made for a different model: "))
        << message;
    EXPECT_TRUE(contains(message, "n_layer: expected 2, found 1")) << message;
    EXPECT_TRUE(contains(message, "d_model: expected 32, found 16")) << message;
    EXPECT_TRUE(contains(message, "n_head: expected 4, found 2")) << message;
    EXPECT_TRUE(contains(message, "tie_embeddings: expected false, found true")) << message;
    EXPECT_FALSE(contains(message, "vocab_size")) << message;
}

TEST_F(ModelIo, ShapeMismatchNamesBothShapesAndLeavesTheModelUnchanged) {
    lumi::Transformer<mha> saved;
    lumi::save_model(saved, dir);
    fs::remove(dir / "config.json");  // so the tensors themselves are compared
    lumi::Transformer<gqa> model;
    const auto before = logits(model);
    const auto message = error_of([&] { lumi::load_model(model, dir, {.check_config = false}); });
    EXPECT_TRUE(contains(message, "does not fit the model")) << message;
    EXPECT_TRUE(contains(
        message,
        "model.layers.0.self_attn.k_proj.weight: shape [32, 32] in the checkpoint, [16, 32] in the model"))
        << message;
    EXPECT_TRUE(torch::equal(before, logits(model)));
}

TEST_F(ModelIo, MissingAndUnexpectedTensorsAreNamed) {
    lumi::Transformer<mha> model;
    lumi::io::NamedTensors tensors;
    for (const auto& p : model->named_parameters())
        if (p.key() != "model.norm.weight") tensors.emplace_back(p.key(), p.value());
    tensors.emplace_back("model.extra.weight", torch::zeros({2}));
    lumi::io::save_safetensors(dir / "model.safetensors", tensors);
    const auto message = error_of([&] { lumi::load_model(model, dir, {.check_config = false}); });
    EXPECT_TRUE(contains(message, "missing tensors: model.norm.weight")) << message;
    EXPECT_TRUE(contains(message, "unexpected tensors: model.extra.weight")) << message;
}

TEST_F(ModelIo, UnexpectedTensorsCanBeIgnoredAndOldRotaryBuffersAlwaysAre) {
    lumi::Transformer<mha> saved(lumi::InitSettings{.seed = 1});
    lumi::io::NamedTensors tensors;
    for (const auto& p : saved->named_parameters()) tensors.emplace_back(p.key(), p.value());
    tensors.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::ones({4}));
    lumi::io::save_safetensors(dir / "model.safetensors", tensors);
    lumi::Transformer<mha> loaded(lumi::InitSettings{.seed = 2});
    lumi::load_model(loaded, dir, {.check_config = false});
    EXPECT_TRUE(torch::equal(logits(saved), logits(loaded)));

    tensors.emplace_back("score.weight", torch::ones({2, 32}));
    lumi::io::save_safetensors(dir / "model.safetensors", tensors);
    EXPECT_TRUE(contains(error_of([&] { lumi::load_model(loaded, dir, {.check_config = false}); }),
                         "unexpected tensors: score.weight"));
    lumi::load_model(loaded, dir, {.ignore_unexpected = true, .check_config = false});
}

TEST_F(ModelIo, Bfloat16CheckpointLoadsCloseIntoAFloat32Model) {
    lumi::Transformer<gqa> saved(lumi::InitSettings{.seed = 1});
    lumi::save_model(saved, dir, {.dtype = torch::kBFloat16});
    for (const auto& t : lumi::io::read_safetensors_header(dir / "model.safetensors").tensors)
        EXPECT_EQ(t.dtype, torch::kBFloat16) << t.name;
    EXPECT_EQ(lumi::config::read_json_file(dir / "config.json").at("torch_dtype"), "bfloat16");
    lumi::Transformer<gqa> loaded(lumi::InitSettings{.seed = 2});
    lumi::load_model(loaded, dir);
    const auto expected = saved->named_parameters();
    for (const auto& p : loaded->named_parameters()) {
        EXPECT_EQ(p.value().scalar_type(), torch::kFloat32);
        // bfloat16 keeps 8 significant bits: a relative error below 2^-8.
        EXPECT_TRUE(torch::allclose(p.value(), expected[p.key()], 4e-3, 1e-30)) << p.key();
    }
    EXPECT_TRUE(torch::allclose(logits(saved), logits(loaded), 5e-2, 5e-3));
}

TEST_F(ModelIo, LoadsAShardedCheckpoint) {
    lumi::Transformer<mha> saved(lumi::InitSettings{.seed = 1});
    lumi::io::NamedTensors first, second;
    json::object weight_map;
    for (const auto& p : saved->named_parameters()) {
        const bool in_first = p.key().starts_with("model.layers.0") || p.key().starts_with("model.embed");
        (in_first ? first : second).emplace_back(p.key(), p.value());
        weight_map[p.key()] =
            in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
    lumi::io::save_safetensors(dir / "model-00001-of-00002.safetensors", first);
    lumi::io::save_safetensors(dir / "model-00002-of-00002.safetensors", second);
    lumi::config::write_json_file(json::object{{"metadata", json::object{}}, {"weight_map", weight_map}},
                                  dir / "model.safetensors.index.json");
    lumi::config::write_json_file(lumi::io::llama_config(mha), dir / "config.json");
    lumi::Transformer<mha> loaded(lumi::InitSettings{.seed = 2});
    lumi::load_model(loaded, dir);
    EXPECT_TRUE(torch::equal(logits(saved), logits(loaded)));
}

TEST_F(ModelIo, ADirectoryWithoutWeightsIsNamed) {
    fs::create_directories(dir);
    lumi::Transformer<mha> model;
    const auto message = error_of([&] { lumi::load_model(model, dir, {.check_config = false}); });
    EXPECT_TRUE(contains(message, dir.string() + ": no model.safetensors")) << message;
}

TEST(LlamaConfig, OfTheTinyPresetHasTheHuggingFaceKeysAndValues) {
    const auto config = lumi::io::llama_config(lumi::presets::tiny);
    EXPECT_EQ(config.at("architectures"), json::array{"LlamaForCausalLM"});
    EXPECT_EQ(config.at("model_type"), "llama");
    EXPECT_EQ(config.at("vocab_size"), 32768);
    EXPECT_EQ(config.at("hidden_size"), 256);
    EXPECT_EQ(config.at("intermediate_size"), 1024);
    EXPECT_EQ(config.at("num_hidden_layers"), 6);
    EXPECT_EQ(config.at("num_attention_heads"), 4);
    EXPECT_EQ(config.at("num_key_value_heads"), 4);
    EXPECT_EQ(config.at("head_dim"), 64);
    EXPECT_EQ(config.at("max_position_embeddings"), 1024);
    EXPECT_EQ(config.at("rms_norm_eps").as_double(), 1e-5);
    EXPECT_EQ(config.at("rope_theta").as_double(), 10000.0);
    EXPECT_EQ(config.at("rope_parameters").at("rope_theta").as_double(), 10000.0);
    EXPECT_EQ(config.at("tie_word_embeddings"), false);
    EXPECT_EQ(config.at("hidden_act"), "silu");
    EXPECT_EQ(config.at("attention_bias"), false);
    EXPECT_EQ(config.at("mlp_bias"), false);
    EXPECT_EQ(config.at("torch_dtype"), "float32");
    EXPECT_EQ(config.at("bos_token_id"), 1);
    EXPECT_EQ(config.at("eos_token_id"), 2);
    EXPECT_FALSE(config.contains("pad_token_id"));
    EXPECT_EQ(config.at("initializer_range").as_double(), 0.02);
    EXPECT_EQ(config.at("use_cache"), true);
    EXPECT_EQ(config.at("lumi").at("d_model"), 256);
    EXPECT_EQ(lumi::io::llama_config(lumi::presets::tiny, {.pad_token_id = 0}).at("pad_token_id"), 0);
}

TEST_F(ModelIo, EveryPresetRoundTripsThroughConfigJson) {
    for (const auto& preset : lumi::presets::all) {
        const fs::path file = dir / (std::string(preset.name) + ".json");
        lumi::config::write_json_file(lumi::io::llama_config(preset.spec), file);
        const auto spec = lumi::io::spec_from_llama_config(lumi::config::read_json_file(file), file.string());
        EXPECT_TRUE(lumi::io::spec_differences(preset.spec, spec).empty()) << preset.name;
    }
}

TEST(LlamaConfig, ReadingNamesAMissingFieldAndTheFile) {
    auto config = lumi::io::llama_config(mha);
    config.erase("hidden_size");
    const auto message = error_of([&] { lumi::io::spec_from_llama_config(config, "ckpt/config.json"); });
    EXPECT_TRUE(contains(message, "ckpt/config.json: hidden_size: missing")) << message;
}

TEST(LlamaConfig, ReadingAppliesLlamaConfigDefaultsAndRefusesWhatLumiCannotRepresent) {
    const json::object minimal{{"vocab_size", 61},         {"hidden_size", 32},
                               {"intermediate_size", 64},  {"num_hidden_layers", 2},
                               {"num_attention_heads", 4}, {"max_position_embeddings", 48}};
    const auto spec = lumi::io::spec_from_llama_config(minimal, "config.json");
    EXPECT_EQ(spec.n_kv_head, 4);
    EXPECT_EQ(spec.norm_eps, 1e-6);
    EXPECT_EQ(spec.rope_theta, 10000.0);
    EXPECT_FALSE(spec.tie_embeddings);

    auto biased = minimal;
    biased["attention_bias"] = true;
    EXPECT_TRUE(contains(error_of([&] { lumi::io::spec_from_llama_config(biased, "config.json"); }),
                         "config.json: attention_bias: lumi supports only false"));
    auto scaled = minimal;
    scaled["rope_scaling"] = json::object{{"type", "linear"}, {"factor", 2.0}};
    EXPECT_TRUE(
        contains(error_of([&] { lumi::io::spec_from_llama_config(scaled, "config.json"); }), "rope_scaling"));
    auto mistral = minimal;
    mistral["model_type"] = "mistral";
    EXPECT_TRUE(
        contains(error_of([&] { lumi::io::spec_from_llama_config(mistral, "config.json"); }), "model_type"));
    auto negative = minimal;
    negative["num_hidden_layers"] = -2;
    EXPECT_TRUE(contains(error_of([&] { lumi::io::spec_from_llama_config(negative, "config.json"); }),
                         "num_hidden_layers: expected a positive integer"));
}

TEST(LlamaConfig, ReadsTheConfigJsonTransformersFiveWrites) {
    // `LlamaForCausalLM(LlamaConfig(...)).save_pretrained(dir)` with transformers 5.24, for the `tied` spec.
    const auto config = json::parse(R"({
      "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
      "bos_token_id": 1, "dtype": "float32", "eos_token_id": 2, "head_dim": 8, "hidden_act": "silu",
      "hidden_size": 16, "initializer_range": 0.02, "intermediate_size": 24, "max_position_embeddings": 16,
      "mlp_bias": false, "model_type": "llama", "num_attention_heads": 2, "num_hidden_layers": 1,
      "num_key_value_heads": 1, "pad_token_id": null, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
      "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": true,
      "transformers_version": "5.24.0", "use_cache": true, "vocab_size": 61})");
    EXPECT_TRUE(
        lumi::io::spec_differences(tied, lumi::io::spec_from_llama_config(config, "config.json")).empty());
}

TEST(LlamaConfig, RopeThetaIsReadFromRopeParametersToo) {
    auto config = lumi::io::llama_config(mha);
    config.erase("rope_theta");
    config["rope_parameters"] = json::object{{"rope_type", "default"}, {"rope_theta", 500000.0}};
    EXPECT_EQ(lumi::io::spec_from_llama_config(config, "config.json").rope_theta, 500000.0);
    config["rope_parameters"] = json::object{{"rope_type", "yarn"}, {"rope_theta", 500000.0}};
    EXPECT_TRUE(contains(error_of([&] { lumi::io::spec_from_llama_config(config, "config.json"); }),
                         "config.json: rope_parameters: rope_type: lumi supports only \"default\""));
}

TEST(LlamaConfig, SpecDifferencesNameFieldExpectedAndFound) {
    EXPECT_TRUE(lumi::io::spec_differences(lumi::presets::tiny, lumi::presets::tiny).empty());
    EXPECT_EQ(
        lumi::io::spec_differences(lumi::presets::tiny, lumi::presets::nano),
        (std::vector<std::string>{"vocab_size: expected 32768, found 4096", "n_layer: expected 6, found 4",
                                  "d_model: expected 256, found 192", "n_head: expected 4, found 3",
                                  "n_kv_head: expected 4, found 3", "ffn_hidden: expected 1024, found 768",
                                  "context: expected 1024, found 256"}));
    auto other = lumi::presets::tiny;
    other.norm_eps = 1e-6;
    EXPECT_EQ(lumi::io::spec_differences(lumi::presets::tiny, other),
              (std::vector<std::string>{"norm_eps: expected 1e-5, found 1e-6"}));
}

}  // namespace
