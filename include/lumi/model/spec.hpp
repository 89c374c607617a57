#pragma once

#include <cstdint>
#include <string_view>

namespace lumi {

// The shape of a model. Structural (public literal members only), so a preset can be a template argument
// and every layer type is generated from it at compile time.
struct ModelSpec {
    // size
    std::int64_t vocab_size = 32768;
    std::int64_t n_layer = 6;
    std::int64_t d_model = 256;
    // attention: n_kv_head == n_head is multi-head, 1 < n_kv_head < n_head grouped-query, 1 multi-query
    //   MHA  q: |0|1|2|3|  kv: |0|1|2|3|      GQA  q: |0|1|2|3|  kv: | 0 | 1 |      MQA  kv: |   0   |
    std::int64_t n_head = 4;
    std::int64_t n_kv_head = 4;
    // MLP (SwiGLU hidden width)
    std::int64_t ffn_hidden = 1024;
    // positions and normalisation
    std::int64_t context = 1024;
    double rope_theta = 10000.0;
    double norm_eps = 1e-5;
    // the LM head shares the token embedding's matrix when true
    bool tie_embeddings = false;

    constexpr std::int64_t head_dim() const { return d_model / n_head; }
    constexpr std::int64_t kv_dim() const { return n_kv_head * head_dim(); }
    constexpr std::int64_t query_groups() const { return n_head / n_kv_head; }
};

constexpr std::int64_t embedding_parameters(const ModelSpec& s) {
    return s.vocab_size * s.d_model;
}

constexpr std::int64_t block_parameters(const ModelSpec& s) {
    const std::int64_t attention = 2 * s.d_model * s.d_model + 2 * s.d_model * s.kv_dim();  // q, o and k, v
    const std::int64_t mlp = 3 * s.d_model * s.ffn_hidden;                                  // gate, up, down
    const std::int64_t norms = 2 * s.d_model;
    return attention + mlp + norms;
}

// Exactly the number of parameters Transformer<S> registers (a test compares the two for every preset).
constexpr std::int64_t parameter_count_of(const ModelSpec& s) {
    const std::int64_t head = s.tie_embeddings ? 0 : s.vocab_size * s.d_model;
    return embedding_parameters(s) + s.n_layer * block_parameters(s) + s.d_model + head;
}

// Compile-time form, for presets: `static_assert(parameter_count(tiny) == 23'072'000)`.
consteval std::int64_t parameter_count(ModelSpec s) {
    return parameter_count_of(s);
}

namespace model {

// The invariants of a spec, checked where a layer type is generated from it: each layer's first line is
// `static_assert(check_spec<S>())`, so an invalid preset stops the build with one of these sentences.
template <ModelSpec S>
consteval bool check_spec() {
    static_assert(S.vocab_size > 0, "lumi: ModelSpec.vocab_size must be positive");
    static_assert(S.n_layer > 0, "lumi: ModelSpec.n_layer must be positive");
    static_assert(S.n_head > 0 && S.n_kv_head > 0, "lumi: ModelSpec.n_head and n_kv_head must be positive");
    static_assert(S.d_model % S.n_head == 0, "lumi: ModelSpec.d_model must be divisible by n_head");
    static_assert(S.head_dim() % 2 == 0, "lumi: head dimension (d_model / n_head) must be even for RoPE");
    static_assert(S.n_head % S.n_kv_head == 0, "lumi: ModelSpec.n_head must be a multiple of n_kv_head");
    static_assert(S.ffn_hidden > 0, "lumi: ModelSpec.ffn_hidden must be positive");
    static_assert(S.context > 0, "lumi: ModelSpec.context must be positive");
    static_assert(S.rope_theta > 0.0, "lumi: ModelSpec.rope_theta must be positive");
    static_assert(S.norm_eps > 0.0, "lumi: ModelSpec.norm_eps must be positive");
    return true;
}

}  // namespace model
}  // namespace lumi
