#pragma once

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

}  // namespace lumi::presets
