#pragma once

#include <lumi/lora/spec.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::presets {

// lumi's own demo and CI model: trains usefully on 2 CPU cores in minutes (4,096-piece vocabulary).
inline constexpr ModelSpec nano{.vocab_size = 4096,
                                .n_layer = 4,
                                .d_model = 192,
                                .n_head = 3,
                                .n_kv_head = 3,
                                .ffn_hidden = 768,
                                .context = 256};
static_assert(parameter_count(nano) == 3'933'888);

// LoRA for nano on 2 CPU cores: rank 16, alpha 32, every projection.
inline constexpr LoraSpec nano_lora{.rank = 16, .alpha = 32, .dropout = 0.05, .targets = lora::all_roles};
static_assert(lora::parameter_count(nano, nano_lora) == 282'624);

}  // namespace lumi::presets
