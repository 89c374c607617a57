#pragma once

#include <lumi/lora/spec.hpp>
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

// LoRA for fine-tuning (the stage binaries look for `<preset>_lora`): the original's template, rank 32, alpha
// 64 on q, k, v, o, gate, up, down.
inline constexpr LoraSpec micro_lora{.rank = 32, .alpha = 64, .dropout = 0.05, .targets = lora::all_roles};
static_assert(lora::parameter_count(micro, micro_lora) == 376'832);

}  // namespace lumi::presets
