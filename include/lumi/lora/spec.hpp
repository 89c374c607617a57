#pragma once

#include <cstdint>
#include <initializer_list>

#include "lumi/model/role.hpp"
#include "lumi/model/spec.hpp"

namespace lumi::lora {

using model::Role;

constexpr std::uint32_t role_bit(Role r) {
    return 1u << static_cast<unsigned>(r);
}
constexpr std::uint32_t roles(std::initializer_list<Role> list) {
    std::uint32_t bits = 0;
    for (Role r : list) bits |= role_bit(r);
    return bits;
}
inline constexpr std::uint32_t all_roles =
    roles({Role::q, Role::k, Role::v, Role::o, Role::gate, Role::up, Role::down});

// A structural LoRA configuration, usable as a template argument: Transformer<S, Lora<spec>>.
struct LoraSpec {
    std::int64_t rank = 32;
    double alpha = 64;
    double dropout = 0.05;              // on the adapter's input, in training only
    std::uint32_t targets = all_roles;  // bit set of Role

    constexpr bool targets_role(Role r) const { return (targets & role_bit(r)) != 0; }
    constexpr double scale() const { return alpha / double(rank); }
};

// Trainable parameters LoRA adds to a model of shape S: rank * (in + out) per targeted projection.
constexpr std::int64_t parameter_count(const ModelSpec& s, const LoraSpec& l) {
    const std::int64_t d = s.d_model, kv = s.kv_dim(), f = s.ffn_hidden;
    std::int64_t per_layer = 0;
    if (l.targets_role(Role::q)) per_layer += d + d;
    if (l.targets_role(Role::k)) per_layer += d + kv;
    if (l.targets_role(Role::v)) per_layer += d + kv;
    if (l.targets_role(Role::o)) per_layer += d + d;
    if (l.targets_role(Role::gate)) per_layer += d + f;
    if (l.targets_role(Role::up)) per_layer += d + f;
    if (l.targets_role(Role::down)) per_layer += f + d;
    return s.n_layer * l.rank * per_layer;
}

template <LoraSpec L>
consteval bool check_lora() {
    static_assert(L.rank > 0, "lumi: LoraSpec.rank must be positive");
    static_assert(L.alpha > 0, "lumi: LoraSpec.alpha must be positive");
    static_assert(L.dropout >= 0 && L.dropout < 1, "lumi: LoraSpec.dropout must be in [0, 1)");
    static_assert(L.targets != 0 && (L.targets & ~all_roles) == 0,
                  "lumi: LoraSpec.targets must name at least one of q, k, v, o, gate, up, down");
    return true;
}

}  // namespace lumi::lora

namespace lumi {
using lora::LoraSpec;
}  // namespace lumi
