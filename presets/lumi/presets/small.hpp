#pragma once

#include <lumi/model/spec.hpp>

namespace lumi::presets {

// Lumi-Lab's small (~42M).
inline constexpr ModelSpec small{.vocab_size = 32768,
                                 .n_layer = 7,
                                 .d_model = 384,
                                 .n_head = 6,
                                 .n_kv_head = 6,
                                 .ffn_hidden = 1536,
                                 .context = 1024};
static_assert(parameter_count(small) == 41'686'656);

}  // namespace lumi::presets
