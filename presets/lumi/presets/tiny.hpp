#pragma once

#include <lumi/model/spec.hpp>

namespace lumi::presets {

// Lumi-Lab's tiny: the 23M model the original pretrained on one GPU (chinchilla_tiny_500m) and tuned with
// LoRA.
inline constexpr ModelSpec tiny{.vocab_size = 32768,
                                .n_layer = 6,
                                .d_model = 256,
                                .n_head = 4,
                                .n_kv_head = 4,
                                .ffn_hidden = 1024,
                                .context = 1024};
static_assert(parameter_count(tiny) == 23'072'000);

}  // namespace lumi::presets
