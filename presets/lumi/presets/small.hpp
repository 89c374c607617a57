#pragma once

#include <lumi/lora/spec.hpp>
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

// The original's LoRA for small (lora_small_42m): rank 48, alpha 96 on q, k, v, o, gate, up, down.
inline constexpr LoraSpec small_lora{.rank = 48, .alpha = 96, .dropout = 0.05, .targets = lora::all_roles};
static_assert(lora::parameter_count(small, small_lora) == 2'967'552);

}  // namespace lumi::presets
