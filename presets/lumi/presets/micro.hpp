#pragma once

#include <lumi/model/spec.hpp>

namespace lumi::presets {

// Lumi-Lab's micro: the smallest of the original's presets, for quick experiments.
inline constexpr ModelSpec micro{.vocab_size = 32768,
                                 .n_layer = 4,
                                 .d_model = 128,
                                 .n_head = 2,
                                 .n_kv_head = 2,
                                 .ffn_hidden = 512,
                                 .context = 1024};
static_assert(parameter_count(micro) == 9'438'336);

}  // namespace lumi::presets
