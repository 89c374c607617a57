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

// LoRA for fine-tuning (the stage binaries look for `<preset>_lora`): the original's template, rank 32, alpha
// 64 on q, k, v, o, gate, up, down.
inline constexpr LoraSpec small_lora{.rank = 32, .alpha = 64, .dropout = 0.05, .targets = lora::all_roles};
static_assert(lora::parameter_count(small, small_lora) == 1'978'368);

}  // namespace lumi::presets
