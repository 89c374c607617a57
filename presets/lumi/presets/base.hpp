#pragma once

#include <lumi/lora/spec.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::presets {

// The 124M class: GPT-2 small's depth (12 layers); with SwiGLU 4x and untied 32K embeddings a width of 640
// (10 heads of 64) lands at 120.6M, where GPT-2's 768 would give 164M.
inline constexpr ModelSpec base{.vocab_size = 32768,
                                .n_layer = 12,
                                .d_model = 640,
                                .n_head = 10,
                                .n_kv_head = 10,
                                .ffn_hidden = 2560,
                                .context = 1024};
static_assert(parameter_count(base) == 120'602'240);

// LoRA for fine-tuning (the stage binaries look for `<preset>_lora`): the original's template, rank 32, alpha
// 64 on q, k, v, o, gate, up, down.
inline constexpr LoraSpec base_lora{.rank = 32, .alpha = 64, .dropout = 0.05, .targets = lora::all_roles};
static_assert(lora::parameter_count(base, base_lora) == 5'652'480);

}  // namespace lumi::presets
