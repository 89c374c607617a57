// GGUF: the writer and reader against each other and ggml's definitions, the Q8_0 blocks, the RoPE row
// permutation, and the exporter of checkpoints (test_interop.py's Gguf runs the files in llama.cpp itself).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <lumi/io/gguf.hpp>
#include <lumi/io/gguf_export.hpp>
#include <lumi/io/model_io.hpp>
#include <lumi/model/transformer.hpp>
#include <lumi/tokenizer/spm_model.hpp>
#include <lumi/tokenizer/trainer.hpp>

#include "test_data.hpp"
#include "test_errors.hpp"

namespace {

namespace fs = std::filesystem;
using lumi::io::GgufExportSettings;
using lumi::io::GgufOutType;
using lumi::io::GgufTensorType;
using lumi::io::GgufValueType;
using lumi::io::GgufVocab;

// Head dimension 32, grouped key/value heads, a feed-forward width (80) that is not whole Q8_0 blocks, and
// more rows than the tokenizer has pieces.
inline constexpr lumi::ModelSpec spec{.vocab_size = 416,
                                      .n_layer = 2,
                                      .d_model = 64,
                                      .n_head = 2,
                                      .n_kv_head = 1,
                                      .ffn_hidden = 80,
                                      .context = 32};
inline constexpr lumi::ModelSpec tied_spec{.vocab_size = 400,
                                           .n_layer = 1,
                                           .d_model = 32,
                                           .n_head = 1,
                                           .n_kv_head = 1,
                                           .ffn_hidden = 64,
                                           .context = 16,
                                           .tie_embeddings = true};
inline constexpr std::int32_t tokenizer_vocab = 400;

using lumi::test::contains;
using lumi::test::error_of;

// One tokenizer and one checkpoint per test binary run: training SentencePiece takes a second.
class Gguf : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        root = fs::temp_directory_path() / ("lumi_gguf_test_" + std::to_string(::getpid()));
        fs::remove_all(root);
        fs::create_directories(root);
        const std::string text = lumi::read_file(lumi::test::fixture("shakespeare.txt")).substr(0, 200'000);
        {
            std::ofstream out(root / "train.txt", std::ios::binary);
            out << text;
        }
        lumi::tokenizer::TrainerSettings settings;
        settings.input = root / "train.txt";
        settings.output = root / "tokenizer";
        settings.vocab_size = tokenizer_vocab;
        settings.threads = 1;
        lumi::tokenizer::train_tokenizer(settings);
        const auto tokenizer = lumi::Tokenizer::load(root / "tokenizer");
        lumi::io::SaveSettings save;
        save.tokenizer = lumi::io::TokenizerIdentity{tokenizer.sha256(), tokenizer.vocab_size()};
        lumi::Transformer<spec> model(lumi::InitSettings{.seed = 3, .std = 0.1});
        lumi::io::save_model(model, root / "model", save);
        lumi::Transformer<tied_spec> tied(lumi::InitSettings{.seed = 4, .std = 0.1});
        lumi::io::save_model(tied, root / "tied", save);
    }
    static void TearDownTestSuite() { fs::remove_all(root); }

    static GgufExportSettings settings(const std::string& model, const std::string& output) {
        GgufExportSettings s;
        s.checkpoint = (root / model).string();
        s.tokenizer = (root / "tokenizer").string();
        s.output = (root / output).string();
        return s;
    }
    static torch::Tensor weight(const std::string& model, const std::string& name) {
        const auto file = lumi::io::load_safetensors(root / model / "model.safetensors");
        return file.find(name)->clone();
    }

    static inline fs::path root;
};

TEST_F(Gguf, WriterAndReaderRoundTripEveryValueAndTensorType) {
    lumi::io::GgufWriter out;
    out.add_u32("a.u32", 4'000'000'000u);
    out.add_i32("a.i32", -7);
    out.add_f32("a.f32", 0.25f);
    out.add_bool("a.bool", true);
    out.add_string("a.string", "héllo");
    out.add_strings("a.strings", {"x", "", "▁y"});
    out.add_f32s("a.f32s", {1.5f, -2.0f});
    out.add_i32s("a.i32s", {1, 6});
    out.add_u8s("a.u8s", std::string("\x00\xff\x10", 3));
    const auto values = torch::randn({3, 64}, lumi::make_generator(1));
    out.add_tensor("t.f32", values, GgufTensorType::f32);
    out.add_tensor("t.f16", values, GgufTensorType::f16);
    out.add_tensor("t.bf16", values, GgufTensorType::bf16);
    out.add_tensor("t.q8_0", values, GgufTensorType::q8_0);
    out.add_tensor("t.vector", values[0].narrow(0, 0, 5), GgufTensorType::f32);  // 20 bytes: padding follows
    out.write(root / "round_trip.gguf");

    const auto file = lumi::io::read_gguf(root / "round_trip.gguf");
    EXPECT_EQ(file.version, 3u);
    ASSERT_EQ(file.metadata.size(), 9u);
    EXPECT_EQ(file.metadata[0].first, "a.u32");  // in the order written
    EXPECT_EQ(file.at("a.u32").type, GgufValueType::u32);
    EXPECT_EQ(file.at("a.u32").as_unsigned(), 4'000'000'000u);
    EXPECT_EQ(file.at("a.i32").as_signed(), -7);
    EXPECT_EQ(file.at("a.f32").as_float(), 0.25);
    EXPECT_TRUE(file.at("a.bool").as_bool());
    EXPECT_EQ(file.at("a.string").as_string(), "héllo");
    const auto& strings = file.at("a.strings");
    ASSERT_EQ(strings.type, GgufValueType::array);
    EXPECT_EQ(strings.element, GgufValueType::string);
    ASSERT_EQ(strings.items.size(), 3u);
    EXPECT_EQ(strings.items[2].as_string(), "▁y");
    EXPECT_EQ(file.at("a.f32s").items[1].as_float(), -2.0);
    EXPECT_EQ(file.at("a.i32s").items[1].as_signed(), 6);
    EXPECT_EQ(file.at("a.u8s").items[1].as_unsigned(), 255u);
    EXPECT_EQ(file.find("a.missing"), nullptr);

    ASSERT_EQ(file.tensors.size(), 5u);
    for (const auto& t : file.tensors) EXPECT_EQ(t.offset % lumi::io::gguf_alignment, 0u) << t.name;
    EXPECT_EQ(file.find_tensor("t.f32")->dims, (std::vector<std::uint64_t>{64, 3}));  // ggml's order
    EXPECT_TRUE(torch::equal(file.tensor("t.f32"), values));
    EXPECT_TRUE(torch::equal(file.tensor("t.f16"), values.to(torch::kHalf).to(torch::kFloat)));
    EXPECT_TRUE(torch::equal(file.tensor("t.bf16"), values.to(torch::kBFloat16).to(torch::kFloat)));
    EXPECT_EQ(file.data(*file.find_tensor("t.q8_0")).size(), 3u * 2 * 34);
    EXPECT_TRUE(torch::allclose(file.tensor("t.q8_0"), values, 0, values.abs().max().item<double>() / 127));
    EXPECT_TRUE(torch::equal(file.tensor("t.vector"), values[0].narrow(0, 0, 5)));
}

// fuzz/make_seeds.py writes this file byte by byte from the GGUF specification, not with lumi's writer.
TEST_F(Gguf, ReadsAFileWrittenByHandFromTheSpecification) {
    const fs::path seeds = fs::path(LUMI_SOURCE_DIR) / "fuzz" / "corpus";
    const auto file = lumi::io::read_gguf(seeds / "gguf" / "every_type");
    EXPECT_EQ(file.at("general.architecture").as_string(), "llama");
    EXPECT_EQ(file.at("a.i64").as_signed(), -3);
    EXPECT_FLOAT_EQ(float(file.at("a.f32").as_float()), 1e-5f);
    EXPECT_EQ(file.at("tokenizer.ggml.tokens").items[1].as_string(), "\u2581a");
    EXPECT_EQ(file.at("tokenizer.ggml.scores").items[1].as_float(), -1.5);
    EXPECT_TRUE(
        torch::equal(file.tensor("token_embd.weight"), torch::arange(8, torch::kFloat).reshape({2, 4})));
    EXPECT_TRUE(torch::equal(file.tensor("blk.0.attn_q.weight"),
                             torch::arange(32, torch::kFloat).reshape({1, 32}) * 0.5));
    EXPECT_TRUE(torch::equal(file.tensor("output_norm.weight"), torch::tensor({1.0f, 2.0f, 3.0f, 4.0f})));
    EXPECT_TRUE(
        torch::equal(file.tensor("output.weight"), torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({2, 2})));
    EXPECT_EQ(lumi::io::read_gguf(seeds / "gguf" / "aligned_64").at("general.alignment").as_unsigned(), 64u);

    const auto model =
        lumi::tokenizer::parse_spm_model(lumi::read_file(seeds / "spm_model" / "unigram"), "unigram");
    ASSERT_EQ(model.pieces.size(), 4u);
    EXPECT_EQ(model.pieces[3].piece, "\u2581the");
    EXPECT_EQ(model.pieces[3].score, -3.25f);
    EXPECT_EQ(model.pieces[2].type, lumi::tokenizer::PieceType::byte);
    EXPECT_TRUE(model.byte_fallback);
    EXPECT_EQ(model.precompiled_charsmap, std::string("\x04\0\0\0abcdxyz", 11));
    EXPECT_FALSE(model.remove_extra_whitespaces);
}

TEST_F(Gguf, Q8_0BlocksFollowGgmlsReference) {
    // One block with max |x| = 127 * 0.5: the scale is exactly 0.5, so x / d is x * 2 and the halves show how
    // it rounds (away from zero, as C's roundf).
    std::vector<float> block(32, 0.0f);
    block[0] = -63.5f;  // the largest magnitude: q = -127
    block[1] = 0.25f;   // 0.5: rounds to 1
    block[2] = -0.25f;  // -0.5: rounds to -1
    block[3] = 0.75f;   // 1.5: 2
    block[4] = 10.0f;   // 20
    std::vector<float> zeros(32, 0.0f);
    block.insert(block.end(), zeros.begin(), zeros.end());
    const std::string bytes = lumi::io::quantize_q8_0(block.data(), std::int64_t(block.size()));
    ASSERT_EQ(bytes.size(), 68u);
    std::uint16_t scale;
    std::memcpy(&scale, bytes.data(), 2);
    EXPECT_EQ(scale, 0x3800);  // 0.5 in float16
    const auto q = [&](std::size_t i) { return int(static_cast<std::int8_t>(bytes[2 + i])); };
    EXPECT_EQ(q(0), -127);
    EXPECT_EQ(q(1), 1);
    EXPECT_EQ(q(2), -1);
    EXPECT_EQ(q(3), 2);
    EXPECT_EQ(q(4), 20);
    EXPECT_EQ(q(5), 0);
    // An all-zero block has scale 0 and zero values, not NaN.
    std::memcpy(&scale, bytes.data() + 34, 2);
    EXPECT_EQ(scale, 0);
    const auto back = lumi::io::dequantize_q8_0(bytes);
    ASSERT_EQ(back.size(), 64u);
    EXPECT_EQ(back[0], -63.5f);
    EXPECT_EQ(back[4], 10.0f);
    EXPECT_EQ(back[40], 0.0f);
    EXPECT_TRUE(
        contains(error_of([&] { lumi::io::quantize_q8_0(block.data(), 33); }), "not whole blocks of 32"));
}

// llama.cpp rotates adjacent pairs (x_2i, x_2i+1); lumi, as Hugging Face, x_i with x_{i+D/2}. The permuted q
// weights under pair rotation give lumi's rotated q, up to the same permutation of each head's dimensions.
TEST_F(Gguf, RopePermutationTurnsHalvesIntoAdjacentPairs) {
    const std::int64_t heads = 3, D = 8, d_model = 12, T = 5;
    auto gen = lumi::make_generator(2);
    const auto w = torch::randn({heads * D, d_model}, gen, torch::kFloat64);
    const auto x = torch::randn({T, d_model}, gen, torch::kFloat64);
    const auto pos = torch::arange(T, torch::kFloat64).unsqueeze(1);
    const auto inv_freq = torch::pow(10000.0, -torch::arange(0, D, 2, torch::kFloat64) / double(D));
    const auto angle = pos * inv_freq;  // [T, D/2]
    const auto cos = angle.cos(), sin = angle.sin();

    const auto q = torch::matmul(x, w.t()).reshape({T, heads, 2, D / 2});  // halves
    const auto a = q.select(2, 0), b = q.select(2, 1);
    const auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
    const auto lumi_rotated = torch::stack({a * c - b * s, b * c + a * s}, 2);  // [T, heads, 2, D/2]

    const auto p = torch::matmul(x, lumi::io::detail::rope_pairs_from_halves(w, heads).t())
                       .reshape({T, heads, D / 2, 2});
    const auto e = p.select(3, 0), o = p.select(3, 1);
    const auto pair_rotated = torch::stack({e * c - o * s, o * c + e * s}, 3);  // [T, heads, D/2, 2]

    EXPECT_TRUE(torch::allclose(pair_rotated.transpose(2, 3), lumi_rotated, 1e-12, 1e-12));
}

TEST_F(Gguf, ExportWritesLlamaMetadataTokenizerAndTensors) {
    const auto report = lumi::io::export_gguf(settings("model", "model-f32.gguf"));
    EXPECT_EQ(report.tokenizer_model, "t5");
    const auto file = lumi::io::read_gguf(root / "model-f32.gguf");
    EXPECT_EQ(file.at("general.architecture").as_string(), "llama");
    EXPECT_EQ(file.at("general.name").as_string(), "model");
    EXPECT_EQ(file.at("general.file_type").as_unsigned(), 0u);
    EXPECT_EQ(file.at("llama.block_count").as_unsigned(), 2u);
    EXPECT_EQ(file.at("llama.embedding_length").as_unsigned(), 64u);
    EXPECT_EQ(file.at("llama.feed_forward_length").as_unsigned(), 80u);
    EXPECT_EQ(file.at("llama.attention.head_count").as_unsigned(), 2u);
    EXPECT_EQ(file.at("llama.attention.head_count_kv").as_unsigned(), 1u);
    EXPECT_EQ(file.at("llama.rope.dimension_count").as_unsigned(), 32u);
    EXPECT_EQ(file.at("llama.context_length").as_unsigned(), 32u);
    EXPECT_EQ(file.at("llama.vocab_size").as_unsigned(), 416u);
    EXPECT_FLOAT_EQ(float(file.at("llama.rope.freq_base").as_float()), 10000.0f);
    EXPECT_FLOAT_EQ(float(file.at("llama.attention.layer_norm_rms_epsilon").as_float()), 1e-5f);

    // Every piece with SentencePiece's own score and type; the model's extra rows as control tokens.
    const auto tokenizer = lumi::Tokenizer::load(root / "tokenizer");
    const auto& sp = tokenizer.processor();
    const auto& tokens = file.at("tokenizer.ggml.tokens").items;
    const auto& scores = file.at("tokenizer.ggml.scores").items;
    const auto& types = file.at("tokenizer.ggml.token_type").items;
    ASSERT_EQ(tokens.size(), 416u);
    ASSERT_EQ(scores.size(), 416u);
    ASSERT_EQ(types.size(), 416u);
    int bytes = 0;
    for (int id = 0; id < tokenizer_vocab; ++id) {
        EXPECT_EQ(tokens[id].as_string(), sp.IdToPiece(id));
        EXPECT_EQ(float(scores[id].as_float()), sp.GetScore(id));
        const auto type = types[id].as_signed();
        EXPECT_EQ(type == 6, sp.IsByte(id)) << id;
        EXPECT_EQ(type == 3, sp.IsControl(id)) << id;
        EXPECT_EQ(type == 2, sp.IsUnknown(id)) << id;
        bytes += type == 6;
    }
    EXPECT_EQ(bytes, 256);
    EXPECT_EQ(tokens[400].as_string(), "<lumi_unused_400>");
    EXPECT_EQ(types[415].as_signed(), 3);
    EXPECT_EQ(file.at("tokenizer.ggml.model").as_string(), "t5");
    EXPECT_EQ(file.at("tokenizer.ggml.bos_token_id").as_unsigned(), 1u);
    EXPECT_EQ(file.at("tokenizer.ggml.eos_token_id").as_unsigned(), 2u);
    EXPECT_EQ(file.at("tokenizer.ggml.unknown_token_id").as_unsigned(), 0u);
    EXPECT_EQ(file.at("tokenizer.ggml.padding_token_id").as_unsigned(), 3u);
    EXPECT_TRUE(file.at("tokenizer.ggml.add_bos_token").as_bool());
    EXPECT_FALSE(file.at("tokenizer.ggml.add_eos_token").as_bool());
    EXPECT_TRUE(file.at("tokenizer.ggml.add_space_prefix").as_bool());
    EXPECT_FALSE(file.at("tokenizer.ggml.remove_extra_whitespaces").as_bool());
    EXPECT_GT(file.at("tokenizer.ggml.precompiled_charsmap").items.size(), 1000u);  // NFKC's map
    EXPECT_EQ(file.at("lumi.tokenizer_sha256").as_string(), tokenizer.sha256());
    EXPECT_TRUE(contains(file.at("lumi.spec").as_string(), "\"ffn_hidden\": 80"));

    // Tensors under llama.cpp's names: 1 + 9 per block + norm + head, q and k rows permuted, exact in F32.
    EXPECT_EQ(file.tensors.size(), 1u + 9 * 2 + 2);
    EXPECT_EQ(report.tensors, file.tensors.size());
    EXPECT_TRUE(torch::equal(file.tensor("token_embd.weight"), weight("model", "model.embed_tokens.weight")));
    EXPECT_TRUE(torch::equal(file.tensor("output.weight"), weight("model", "lm_head.weight")));
    EXPECT_TRUE(torch::equal(file.tensor("blk.1.ffn_down.weight"),
                             weight("model", "model.layers.1.mlp.down_proj.weight")));
    EXPECT_TRUE(torch::equal(file.tensor("blk.0.attn_norm.weight"),
                             weight("model", "model.layers.0.input_layernorm.weight")));
    const auto q = weight("model", "model.layers.0.self_attn.q_proj.weight");
    const auto k = weight("model", "model.layers.0.self_attn.k_proj.weight");
    EXPECT_TRUE(
        torch::equal(file.tensor("blk.0.attn_q.weight"), lumi::io::detail::rope_pairs_from_halves(q, 2)));
    EXPECT_TRUE(
        torch::equal(file.tensor("blk.0.attn_k.weight"), lumi::io::detail::rope_pairs_from_halves(k, 1)));
    // Row 1 of the permuted head is row D/2 = 16 of lumi's.
    EXPECT_TRUE(torch::equal(file.tensor("blk.0.attn_q.weight")[1], q[16]));
    EXPECT_EQ(file.find_tensor("blk.0.attn_k.weight")->dims, (std::vector<std::uint64_t>{64, 32}));
}

TEST_F(Gguf, Q8_0ExportKeepsNormsInF32AndRowsThatAreNotWholeBlocksInF16) {
    auto s = settings("model", "model-q8_0.gguf");
    s.type = GgufOutType::q8_0;
    const auto report = lumi::io::export_gguf(s);
    EXPECT_EQ(report.kept_f16, (std::vector<std::string>{"blk.0.ffn_down.weight", "blk.1.ffn_down.weight"}));
    const auto file = lumi::io::read_gguf(root / "model-q8_0.gguf");
    EXPECT_EQ(file.at("general.file_type").as_unsigned(), 7u);
    EXPECT_EQ(file.find_tensor("blk.0.ffn_down.weight")->type, GgufTensorType::f16);
    EXPECT_EQ(file.find_tensor("blk.0.ffn_norm.weight")->type, GgufTensorType::f32);
    EXPECT_EQ(file.find_tensor("output_norm.weight")->type, GgufTensorType::f32);
    for (const auto* name :
         {"token_embd.weight", "blk.0.attn_q.weight", "blk.1.ffn_up.weight", "output.weight"})
        EXPECT_EQ(file.find_tensor(name)->type, GgufTensorType::q8_0) << name;
    const auto up = weight("model", "model.layers.1.mlp.up_proj.weight");
    EXPECT_TRUE(
        torch::allclose(file.tensor("blk.1.ffn_up.weight"), up, 0, up.abs().max().item<double>() / 127));
    EXPECT_EQ(file.data(*file.find_tensor("blk.1.ffn_up.weight")).size(), 80u * 64 / 32 * 34);

    s.type = GgufOutType::bf16;
    s.output = (root / "model-bf16.gguf").string();
    lumi::io::export_gguf(s);
    const auto bf16 = lumi::io::read_gguf(root / "model-bf16.gguf");
    EXPECT_EQ(bf16.at("general.file_type").as_unsigned(), 32u);
    EXPECT_EQ(bf16.find_tensor("blk.0.ffn_down.weight")->type, GgufTensorType::bf16);
}

TEST_F(Gguf, TiedEmbeddingsHaveNoOutputTensorAndLlamaVocabHasNoCharsmap) {
    auto s = settings("tied", "tied.gguf");
    s.vocab = GgufVocab::llama;
    s.name = "lumi-tied";
    EXPECT_EQ(lumi::io::export_gguf(s).tokenizer_model, "llama");
    const auto file = lumi::io::read_gguf(root / "tied.gguf");
    EXPECT_EQ(file.find_tensor("output.weight"), nullptr);
    EXPECT_NE(file.find_tensor("token_embd.weight"), nullptr);
    EXPECT_EQ(file.tensors.size(), 1u + 9 + 1);
    EXPECT_EQ(file.at("general.name").as_string(), "lumi-tied");
    EXPECT_EQ(file.at("tokenizer.ggml.model").as_string(), "llama");
    EXPECT_EQ(file.find("tokenizer.ggml.precompiled_charsmap"), nullptr);
}

TEST_F(Gguf, SentencePieceModelIsReadWhole) {
    const auto tokenizer = lumi::Tokenizer::load(root / "tokenizer");
    const auto model =
        lumi::tokenizer::parse_spm_model(tokenizer.processor().serialized_model_proto(), "spm.model");
    ASSERT_EQ(model.pieces.size(), std::size_t(tokenizer_vocab));
    EXPECT_TRUE(model.unigram);
    EXPECT_TRUE(model.byte_fallback);
    EXPECT_EQ(model.normalizer_name, "nmt_nfkc");
    EXPECT_TRUE(model.add_dummy_prefix);
    EXPECT_FALSE(model.remove_extra_whitespaces);
    EXPECT_EQ(model.pieces[1].piece, "<s>");
    EXPECT_EQ(model.pieces[1].type, lumi::tokenizer::PieceType::control);
    EXPECT_EQ(model.pieces[0].type, lumi::tokenizer::PieceType::unknown);
}

TEST_F(Gguf, BadInputIsAnErrorNamingWhat) {
    // A truncated file, a file that is not GGUF.
    const std::string whole = lumi::read_file(root / "model-f32.gguf");
    lumi::write_file_atomic(root / "truncated.gguf", std::string_view(whole).substr(0, whole.size() / 3));
    EXPECT_TRUE(
        contains(error_of([&] { lumi::io::read_gguf(root / "truncated.gguf"); }), "truncated.gguf: "));
    lumi::write_file_atomic(root / "not.gguf", "GGML and more");
    EXPECT_TRUE(
        contains(error_of([&] { lumi::io::read_gguf(root / "not.gguf"); }), "not.gguf: not a GGUF file"));
    // Fuzz finding: an alignment of 0 divided by zero.
    const fs::path seeds = fs::path(LUMI_SOURCE_DIR) / "fuzz" / "corpus";
    EXPECT_TRUE(contains(error_of([&] { lumi::io::read_gguf(seeds / "gguf" / "alignment_zero"); }),
                         "alignment_zero: general.alignment 0 is not a multiple of 8"));
    EXPECT_TRUE(contains(error_of([] { lumi::tokenizer::parse_spm_model("\x0a\xff", "spm.model"); }),
                         "spm.model: not a SentencePiece model"));

    auto s = settings("missing", "x.gguf");
    EXPECT_TRUE(
        contains(error_of([&] { lumi::io::export_gguf(s); }), "missing: no such checkpoint directory"));
    s = settings("model", "x.gguf");
    s.output.clear();
    EXPECT_TRUE(contains(error_of([&] { lumi::io::export_gguf(s); }), "output: must name the .gguf file"));

    // An extra tensor, one of the wrong shape, one with NaN: each named.
    fs::copy(root / "model", root / "edited");
    auto weights = lumi::io::load_safetensors(root / "model" / "model.safetensors");
    for (auto& [name, t] : weights.tensors) {
        if (name == "model.layers.1.mlp.up_proj.weight") t = t.narrow(0, 0, 40).clone();
        if (name == "model.norm.weight") t[3] = std::nan("");
    }
    weights.tensors.emplace_back("model.layers.0.mlp.extra.weight", torch::ones({2}));
    lumi::io::save_safetensors(root / "edited" / "model.safetensors", weights.tensors);
    const auto error = error_of([&] { lumi::io::export_gguf(settings("edited", "edited.gguf")); });
    EXPECT_TRUE(
        contains(error, "model.layers.1.mlp.up_proj.weight: shape [40, 64], the config says [80, 64]"))
        << error;
    EXPECT_TRUE(contains(error, "model.norm.weight: holds NaN")) << error;
    EXPECT_TRUE(contains(error, "unexpected tensor model.layers.0.mlp.extra.weight")) << error;
    EXPECT_FALSE(fs::exists(root / "edited.gguf"));
    // A failed export leaves a file already there as it was.
    lumi::write_file_atomic(root / "kept.gguf", "the old file");
    EXPECT_FALSE(error_of([&] { lumi::io::export_gguf(settings("edited", "kept.gguf")); }).empty());
    EXPECT_EQ(lumi::read_file(root / "kept.gguf"), "the old file");
    for (const auto& entry : fs::directory_iterator(root))
        EXPECT_FALSE(entry.path().filename().string().starts_with(".kept.gguf")) << entry.path();

    // A checkpoint trained with another tokenizer.
    lumi::io::SaveSettings other;
    other.tokenizer = lumi::io::TokenizerIdentity{std::string(64, 'c'), tokenizer_vocab};
    lumi::Transformer<tied_spec> other_model;
    lumi::io::save_model(other_model, root / "other", other);
    EXPECT_TRUE(contains(error_of([&] { lumi::io::export_gguf(settings("other", "other.gguf")); }),
                         "(vocabulary 400) is not the one checkpoint"));

    // A tokenizer with more pieces than the model has rows.
    lumi::Transformer<tied_spec> small_vocab_model;
    lumi::io::save_model(small_vocab_model, root / "small");
    auto config = lumi::config::read_json_file(root / "small" / "config.json");
    config.as_object()["vocab_size"] = 300;
    lumi::config::write_json_file(config, root / "small" / "config.json");
    EXPECT_TRUE(contains(error_of([&] { lumi::io::export_gguf(settings("small", "small.gguf")); }),
                         "its vocabulary of 400 pieces is larger than the model's 300"));
}

}  // namespace
