#pragma once

#include <array>
#include <optional>
#include <string_view>
#include <utility>

#include <lumi/presets/base.hpp>
#include <lumi/presets/medium.hpp>
#include <lumi/presets/micro.hpp>
#include <lumi/presets/nano.hpp>
#include <lumi/presets/small.hpp>
#include <lumi/presets/tiny.hpp>

namespace lumi::presets {

struct Named {
    std::string_view name;
    ModelSpec spec;
};

// Name -> preset, so one binary can still pick a preset by name; smallest first.
inline constexpr std::array all{Named{"nano", nano},   Named{"micro", micro},   Named{"tiny", tiny},
                                Named{"small", small}, Named{"medium", medium}, Named{"base", base}};

constexpr std::optional<ModelSpec> find(std::string_view name) {
    for (const auto& p : all)
        if (p.name == name) return p.spec;
    return std::nullopt;
}

// Calls f.template operator()<spec>() for the preset called `name`; returns false when there is none.
// Instantiates f for every preset: use it in binaries that really choose at run time.
template <class F>
bool visit(std::string_view name, F&& f) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return ((all[I].name == name ? (f.template operator()<all[I].spec>(), true) : false) || ...);
    }
    (std::make_index_sequence<all.size()>{});
}

}  // namespace lumi::presets
