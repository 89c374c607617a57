#pragma once

// A lumi checkpoint and its tokenizer as one GGUF file that llama.cpp (and ollama, LM Studio, ...) runs as a
// `llama` model, with the logits lumi computes. The mapping, as llama.cpp's own convert_hf_to_gguf.py makes
// it: Hugging Face tensor names to llama.cpp's (`blk.N.attn_q.weight`, ...), the rows of q and k permuted
// from the rotate-half RoPE convention to llama.cpp's adjacent pairs, norms kept in float32, tied embeddings
// as a missing `output.weight`. The tokenizer is written as llama.cpp's `t5` (unigram) vocabulary, which
// segments as SentencePiece's unigram model does and normalises with the model's own precompiled NFKC map, or
// as its `llama` vocabulary (docs/gguf.md says where each differs from SentencePiece).
//
//   lumi::io::export_gguf({.checkpoint = "runs/x/sft/merged", .tokenizer = "runs/x/tokenizer",
//                          .output = "runs/x/model-q8_0.gguf", .type = lumi::io::GgufOutType::q8_0});

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/io/gguf.hpp"
#include "lumi/io/hf_config.hpp"
#include "lumi/io/model_io.hpp"
#include "lumi/io/safetensors.hpp"
#include "lumi/model/spec.hpp"
#include "lumi/tokenizer/spm_model.hpp"
#include "lumi/tokenizer/tokenizer.hpp"

namespace lumi::io {

// The type of the weight matrices: f32 (exact), f16 and bf16 (half the size), q8_0 (8-bit blocks with a
// float16 scale: a little over a quarter of f32). Norm weights stay float32 in every case.
enum class GgufOutType { f32, f16, bf16, q8_0 };
// llama.cpp's vocabulary type: t5 (its unigram tokenizer: SentencePiece's segmentation and normalisation; a
// character outside the vocabulary becomes <unk>, not bytes) or llama (byte fallback, but its segmentation is
// BPE-style merging by score, which can differ from a unigram model's).
enum class GgufVocab { t5, llama };

struct GgufExportSettings {
    std::string checkpoint;               // a checkpoint directory: config.json + model.safetensors
    std::string tokenizer;                // the tokenizer directory it was trained with
    std::string output;                   // the .gguf file, written atomically
    GgufOutType type = GgufOutType::f32;  // of the weight matrices
    GgufVocab vocab = GgufVocab::t5;      // ignored for a BPE tokenizer, which is always `llama`
    std::string name;                     // general.name; empty: the checkpoint directory's name

    void validate() const {
        if (checkpoint.empty()) throw config::FieldError("checkpoint", "must name a checkpoint directory");
        if (tokenizer.empty()) throw config::FieldError("tokenizer", "must name the tokenizer directory");
        if (output.empty()) throw config::FieldError("output", "must name the .gguf file to write");
        if (std::filesystem::is_directory(output))
            throw config::FieldError("output", "'" + output + "' is a directory; expected a file name");
    }
};

struct GgufExportReport {
    ModelSpec spec{};
    std::size_t tensors = 0;
    std::uint64_t bytes = 0;            // of the file
    std::string tokenizer_model;        // llama.cpp's name: t5 or llama
    std::vector<std::string> kept_f16;  // matrices Q8_0 cannot hold (rows not a multiple of 32)
};

namespace detail {

inline std::uint32_t llama_file_type(GgufOutType type) {
    switch (type) {
        case GgufOutType::f32:
            return 0;  // LLAMA_FTYPE_ALL_F32
        case GgufOutType::f16:
            return 1;  // LLAMA_FTYPE_MOSTLY_F16
        case GgufOutType::q8_0:
            return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
        case GgufOutType::bf16:
            return 32;  // LLAMA_FTYPE_MOSTLY_BF16
    }
    return 0;
}

inline GgufTensorType matrix_type(GgufOutType type) {
    switch (type) {
        case GgufOutType::f32:
            return GgufTensorType::f32;
        case GgufOutType::f16:
            return GgufTensorType::f16;
        case GgufOutType::bf16:
            return GgufTensorType::bf16;
        case GgufOutType::q8_0:
            return GgufTensorType::q8_0;
    }
    return GgufTensorType::f32;
}

// Rows of each head from rotate-half order (x_i paired with x_{i + D/2}) to adjacent pairs (x_{2i},
// x_{2i+1}), as convert_hf_to_gguf.py's LlamaModel.permute.
inline torch::Tensor rope_pairs_from_halves(const torch::Tensor& w, std::int64_t heads) {
    const std::int64_t rows = w.size(0), head_dim = rows / heads;
    return w.reshape({heads, 2, head_dim / 2, w.size(1)}).transpose(1, 2).reshape({rows, w.size(1)});
}

// The tensors of a checkpoint of `spec`, under llama.cpp's names, with their Hugging Face names.
struct TensorMapping {
    std::string hf, gguf;
    std::vector<std::int64_t> shape;
    std::int64_t rope_heads = 0;  // q and k: permute the rows of this many heads
};

inline std::vector<TensorMapping> llama_tensor_mapping(const ModelSpec& s) {
    std::vector<TensorMapping> m{
        {"model.embed_tokens.weight", "token_embd.weight", {s.vocab_size, s.d_model}}};
    for (std::int64_t i = 0; i < s.n_layer; ++i) {
        const std::string hf = "model.layers." + std::to_string(i) + ".",
                          g = "blk." + std::to_string(i) + ".";
        m.push_back({hf + "input_layernorm.weight", g + "attn_norm.weight", {s.d_model}});
        m.push_back({hf + "self_attn.q_proj.weight", g + "attn_q.weight", {s.d_model, s.d_model}, s.n_head});
        m.push_back(
            {hf + "self_attn.k_proj.weight", g + "attn_k.weight", {s.kv_dim(), s.d_model}, s.n_kv_head});
        m.push_back({hf + "self_attn.v_proj.weight", g + "attn_v.weight", {s.kv_dim(), s.d_model}});
        m.push_back({hf + "self_attn.o_proj.weight", g + "attn_output.weight", {s.d_model, s.d_model}});
        m.push_back({hf + "post_attention_layernorm.weight", g + "ffn_norm.weight", {s.d_model}});
        m.push_back({hf + "mlp.gate_proj.weight", g + "ffn_gate.weight", {s.ffn_hidden, s.d_model}});
        m.push_back({hf + "mlp.up_proj.weight", g + "ffn_up.weight", {s.ffn_hidden, s.d_model}});
        m.push_back({hf + "mlp.down_proj.weight", g + "ffn_down.weight", {s.d_model, s.ffn_hidden}});
    }
    m.push_back({"model.norm.weight", "output_norm.weight", {s.d_model}});
    // Tied: llama.cpp uses token_embd for the head when output.weight is absent.
    if (!s.tie_embeddings) m.push_back({"lm_head.weight", "output.weight", {s.vocab_size, s.d_model}});
    return m;
}

}  // namespace detail

inline GgufExportReport export_gguf(const GgufExportSettings& settings) {
    namespace fs = std::filesystem;
    settings.validate();
    const fs::path dir(settings.checkpoint);
    const fs::path config_path = dir / config_file, weights_path = dir / weights_file;
    if (!fs::is_directory(dir)) throw Error(settings.checkpoint + ": no such checkpoint directory");
    if (!fs::is_regular_file(config_path))
        throw Error(config_path.string() + ": missing: the exporter reads the model's shape from it");
    if (!fs::is_regular_file(weights_path))
        throw Error(weights_path.string() + ": missing" +
                    (fs::exists(dir / weights_index_file)
                         ? std::string(" (sharded checkpoints are not exported)")
                         : std::string()));
    GgufExportReport report;
    const ModelSpec spec = spec_from_llama_config(config::read_json_file(config_path), config_path.string());
    report.spec = spec;
    if (spec.head_dim() % 2 != 0)
        throw Error(config_path.string() + ": head_dim " + std::to_string(spec.head_dim()) +
                    " is odd: RoPE rotates pairs");

    // The tokenizer: the one the checkpoint records, with no more pieces than the model has rows.
    const Tokenizer tokenizer = Tokenizer::load(settings.tokenizer);
    check_tokenizer(dir, {tokenizer.sha256(), tokenizer.vocab_size()}, settings.tokenizer);
    if (tokenizer.vocab_size() > spec.vocab_size)
        throw Error(settings.tokenizer + ": its vocabulary of " + std::to_string(tokenizer.vocab_size()) +
                    " pieces is larger than the model's " + std::to_string(spec.vocab_size));
    const tokenizer::SpmModel spm = tokenizer::parse_spm_model(
        tokenizer.processor().serialized_model_proto(), settings.tokenizer + " (its SentencePiece model)");
    if (std::int64_t(spm.pieces.size()) != tokenizer.vocab_size())
        throw Error(settings.tokenizer + ": the model file lists " + std::to_string(spm.pieces.size()) +
                    " pieces, SentencePiece " + std::to_string(tokenizer.vocab_size()));
    const bool t5 = spm.unigram && settings.vocab == GgufVocab::t5;
    report.tokenizer_model = t5 ? "t5" : "llama";

    // The weights: exactly the tensors a LLaMA of this shape has, finite.
    const SafetensorsFile weights = load_safetensors(weights_path);
    const auto mapping = detail::llama_tensor_mapping(spec);
    std::vector<std::string> problems;
    std::set<std::string> expected;
    for (const auto& t : mapping) {
        expected.insert(t.hf);
        const torch::Tensor* w = weights.find(t.hf);
        if (!w)
            problems.push_back("missing tensor " + t.hf);
        else if (w->sizes().vec() != t.shape)
            problems.push_back(t.hf + ": shape " + detail::shape_text(w->sizes().vec()) +
                               ", the config says " + detail::shape_text(t.shape));
        else if (!w->is_floating_point())
            problems.push_back(t.hf + ": dtype " + std::string(c10::toString(w->scalar_type())) +
                               ", expected floating point");
        else if (!torch::isfinite(*w).all().item<bool>())
            problems.push_back(t.hf + ": holds NaN or infinite values");
    }
    for (const auto& [name, w] : weights.tensors)
        if (!expected.contains(name) && !detail::is_recomputed_buffer(name))
            problems.push_back("unexpected tensor " + name + " (not part of a LLaMA model lumi exports)");
    if (!problems.empty()) {
        std::string text;
        for (const auto& p : problems) text += (text.empty() ? "" : "; ") + p;
        throw Error(weights_path.string() + ": cannot export: " + text);
    }

    GgufWriter out;
    out.add_string("general.architecture", "llama");
    out.add_string("general.type", "model");
    out.add_string("general.name", settings.name.empty()
                                       ? fs::absolute(dir).lexically_normal().filename().string()
                                       : settings.name);
    out.add_u32("general.file_type", detail::llama_file_type(settings.type));
    out.add_u32("general.quantization_version", 2);  // GGML_QNT_VERSION
    out.add_u32("llama.vocab_size", std::uint32_t(spec.vocab_size));
    out.add_u32("llama.context_length", std::uint32_t(spec.context));
    out.add_u32("llama.embedding_length", std::uint32_t(spec.d_model));
    out.add_u32("llama.block_count", std::uint32_t(spec.n_layer));
    out.add_u32("llama.feed_forward_length", std::uint32_t(spec.ffn_hidden));
    out.add_u32("llama.attention.head_count", std::uint32_t(spec.n_head));
    out.add_u32("llama.attention.head_count_kv", std::uint32_t(spec.n_kv_head));
    out.add_u32("llama.rope.dimension_count", std::uint32_t(spec.head_dim()));
    out.add_f32("llama.rope.freq_base", float(spec.rope_theta));
    out.add_f32("llama.attention.layer_norm_rms_epsilon", float(spec.norm_eps));

    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<std::int32_t> types;
    for (const auto& p : spm.pieces) {
        tokens.push_back(p.piece);
        scores.push_back(p.score);
        types.push_back(static_cast<std::int32_t>(p.type));
    }
    // Rows beyond the tokenizer's pieces: control tokens, which no text ever encodes to.
    for (std::int64_t id = tokenizer.vocab_size(); id < spec.vocab_size; ++id) {
        tokens.push_back("<lumi_unused_" + std::to_string(id) + ">");
        scores.push_back(0.0f);
        types.push_back(static_cast<std::int32_t>(tokenizer::PieceType::control));
    }
    out.add_string("tokenizer.ggml.model", report.tokenizer_model);
    out.add_strings("tokenizer.ggml.tokens", tokens);
    out.add_f32s("tokenizer.ggml.scores", scores);
    out.add_i32s("tokenizer.ggml.token_type", types);
    if (tokenizer.bos_id() >= 0)
        out.add_u32("tokenizer.ggml.bos_token_id", std::uint32_t(tokenizer.bos_id()));
    if (tokenizer.eos_id() >= 0)
        out.add_u32("tokenizer.ggml.eos_token_id", std::uint32_t(tokenizer.eos_id()));
    out.add_u32("tokenizer.ggml.unknown_token_id", std::uint32_t(tokenizer.unk_id()));
    if (tokenizer.pad_id() >= 0)
        out.add_u32("tokenizer.ggml.padding_token_id", std::uint32_t(tokenizer.pad_id()));
    // lumi's generation starts a prompt with BOS and never appends EOS (t5's default would).
    out.add_bool("tokenizer.ggml.add_bos_token", tokenizer.bos_id() >= 0);
    out.add_bool("tokenizer.ggml.add_eos_token", false);
    out.add_bool("tokenizer.ggml.add_space_prefix", spm.add_dummy_prefix);
    out.add_bool("tokenizer.ggml.remove_extra_whitespaces", spm.remove_extra_whitespaces);
    if (t5 && !spm.precompiled_charsmap.empty())
        out.add_u8s("tokenizer.ggml.precompiled_charsmap", spm.precompiled_charsmap);
    out.add_string("lumi.spec", config::format_json_line(config::to_json(spec)));
    out.add_string("lumi.tokenizer_sha256", tokenizer.sha256());

    for (const auto& t : mapping) {
        torch::Tensor w = weights.find(t.hf)->to(torch::kFloat32);
        if (t.rope_heads) w = detail::rope_pairs_from_halves(w, t.rope_heads);
        GgufTensorType type = w.dim() == 1 ? GgufTensorType::f32 : detail::matrix_type(settings.type);
        if (type == GgufTensorType::q8_0 && w.size(-1) % q8_0_block != 0) {
            type = GgufTensorType::f16;  // as convert_hf_to_gguf.py does
            report.kept_f16.push_back(t.gguf);
        }
        out.add_tensor(t.gguf, w, type);
    }
    out.write(settings.output);
    report.tensors = out.tensor_count();
    report.bytes = fs::file_size(settings.output);
    return report;
}

}  // namespace lumi::io
