#pragma once

#include <array>
#include <string_view>

#include <lumi/model/linear.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::model {

// The projections of a block an adaptation policy can change.
enum class Role { q, k, v, o, gate, up, down };

inline constexpr std::array<std::string_view, 7> role_names{"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                            "gate_proj", "up_proj", "down_proj"};
constexpr std::string_view module_name(Role r) {
    return role_names[static_cast<std::size_t>(r)];
}

// The adaptation policy of a plain model: every role is a plain Linear.
struct Dense {
    template <ModelSpec S, Role R>
    using linear = Linear;
};

}  // namespace lumi::model
