#pragma once

#include <lumi/lora/spec.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::presets {

// Lumi-Lab's medium (~84M).
inline constexpr ModelSpec medium{.vocab_size = 32768,
                                  .n_layer = 12,
                                  .d_model = 512,
                                  .n_head = 8,
                                  .n_kv_head = 8,
                                  .ffn_hidden = 2048,
                                  .context = 1024};
static_assert(parameter_count(medium) == 83'898'880);

// The original's LoRA for medium (lora_medium_84m): rank 56, alpha 112 on q, k, v, o, gate, up, down.
inline constexpr LoraSpec medium_lora{.rank = 56, .alpha = 112, .dropout = 0.05, .targets = lora::all_roles};
static_assert(lora::parameter_count(medium, medium_lora) == 7'913'472);

}  // namespace lumi::presets
