#pragma once

#include <lumi/model/spec.hpp>

namespace lumi::test {

// Shapes small enough to check numerics by hand and to train in milliseconds.
inline constexpr ModelSpec mha{.vocab_size = 61,
                               .n_layer = 2,
                               .d_model = 32,
                               .n_head = 4,
                               .n_kv_head = 4,
                               .ffn_hidden = 64,
                               .context = 48};
inline constexpr ModelSpec gqa{.vocab_size = 61,
                               .n_layer = 2,
                               .d_model = 32,
                               .n_head = 4,
                               .n_kv_head = 2,
                               .ffn_hidden = 64,
                               .context = 48};
inline constexpr ModelSpec tied{.vocab_size = 61,
                                .n_layer = 1,
                                .d_model = 16,
                                .n_head = 2,
                                .n_kv_head = 1,
                                .ffn_hidden = 24,
                                .context = 16,
                                .tie_embeddings = true};

}  // namespace lumi::test
