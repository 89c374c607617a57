#pragma once

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

}  // namespace lumi::presets
