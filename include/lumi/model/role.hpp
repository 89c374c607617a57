#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace lumi::model {

// The projections of a block an adaptation policy can change.
enum class Role { q, k, v, o, gate, up, down };

inline constexpr std::array<std::string_view, 7> role_names{"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                            "gate_proj", "up_proj", "down_proj"};
constexpr std::string_view module_name(Role r) {
    return role_names[static_cast<std::size_t>(r)];
}

}  // namespace lumi::model
