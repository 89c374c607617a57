#pragma once

#include <lumi/lora/spec.hpp>
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

// The original's LoRA for tiny (lora_tiny_23m): rank 32, alpha 64 on q, k, v, o, gate, up, down.
inline constexpr LoraSpec tiny_lora{.rank = 32, .alpha = 64, .dropout = 0.05, .targets = lora::all_roles};
static_assert(lora::parameter_count(tiny, tiny_lora) == 1'130'496);

}  // namespace lumi::presets
