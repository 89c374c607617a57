#pragma once
// Training recipes: an optimizer policy and a schedule policy under one name, so a stage binary can pick the
// mix at run time (`recipe` in stage 05's settings). A new recipe is its policy headers plus one line in
// `recipes`; each entry instantiates the stage once, so the table stays short.
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "lumi/train/muon.hpp"
#include "lumi/train/optimizer.hpp"
#include "lumi/train/schedule.hpp"

namespace lumi::train {

template <OptimizerPolicy O, SchedulePolicy S>
struct Recipe {
    using Optimizer = O;
    using Schedule = S;
    std::string_view name;
    std::string_view summary;
};

inline constexpr std::tuple recipes{
    Recipe<AdamW, CosineWarmup>{"adamw_cosine", "AdamW on every tensor; linear warm-up, cosine decay"},
    Recipe<MuonAdamW, WarmupStableDecay>{
        "muon_wsd", "Muon on the hidden matrices, AdamW on the rest; warm-up, stable, then decay"},
};

// The name of the recipe made of Optimizer and Schedule; empty for a mix only code composes.
template <class Optimizer, class Schedule>
constexpr std::string_view recipe_name() {
    std::string_view name;
    std::apply(
        [&](const auto&... recipe) {
            (
                [&] {
                    using R = std::remove_cvref_t<decltype(recipe)>;
                    if (std::is_same_v<typename R::Optimizer, Optimizer> &&
                        std::is_same_v<typename R::Schedule, Schedule>)
                        name = recipe.name;
                }(),
                ...);
        },
        recipes);
    return name;
}

// "adamw_cosine, muon_wsd": for error messages and --help.
inline std::string recipe_names() {
    std::string names;
    std::apply(
        [&](const auto&... recipe) {
            ((names += (names.empty() ? "" : ", ") + std::string(recipe.name)), ...);
        },
        recipes);
    return names;
}

// What refuses an unknown recipe name.
inline std::string unknown_recipe(std::string_view name) {
    return "must be one of " + recipe_names() + ", found '" + std::string(name) + "'";
}

// Calls f.template operator()<Optimizer, Schedule>() for the recipe called `name`; false when there is none.
template <class F>
bool visit_recipe(std::string_view name, F&& f) {
    bool found = false;
    std::apply(
        [&](const auto&... recipe) {
            (
                [&] {
                    using R = std::remove_cvref_t<decltype(recipe)>;
                    if (found || recipe.name != name) return;
                    found = true;
                    f.template operator()<typename R::Optimizer, typename R::Schedule>();
                }(),
                ...);
        },
        recipes);
    return found;
}

}  // namespace lumi::train
