#pragma once

#include <cstdio>
#include <string>

#include "lumi/data/packed.hpp"
#include "lumi/tokenizer/tokenizer.hpp"
#include "lumi/train/recipe.hpp"
#include "lumi/train/trainer.hpp"

namespace lumi::train {

struct PretrainData {
    std::string dataset = "runs/packed";  // the pack_dataset output: train_NNNNN.bin, val_NNNNN.bin
    std::string tokenizer;                // when set, the packed data must have been made with it
    bool verify = false;                  // checksum every shard before training
};

// Stage 05's settings file: the preset it was written for, the recipe (which types the optimizer and schedule
// sections have), the data, then one section per trainer policy.
template <class Optimizer = AdamW, class Schedule = CosineWarmup, class Precision = MixedPrecision>
struct PretrainSettings {
    std::string preset;  // when set, must name the preset this binary was compiled for
    std::string recipe = std::string(recipe_name<Optimizer, Schedule>());  // see lumi::train::recipes
    PretrainData data;
    RunSettings run;
    typename Optimizer::Settings optimizer;
    typename Schedule::Settings schedule;
    typename Precision::Settings precision;
    model::InitSettings init;

    TrainerSettings<Optimizer, Schedule, Precision> trainer() const {
        return {run, optimizer, schedule, precision, init};
    }
};

// Stage 05's settings with the recipe read at run time: the optimizer and schedule sections stay JSON until
// `recipe` names their types, then read strictly as that recipe's (keys left out take lumi's defaults). The
// pipeline holds these, so one binary trains every recipe; a stage binary reads the typed PretrainSettings.
struct RecipePretrainSettings {
    std::string preset;
    std::string recipe = "adamw_cosine";  // see lumi::train::recipes
    PretrainData data;
    RunSettings run;
    boost::json::value optimizer = boost::json::object();  // the recipe's Optimizer::Settings
    boost::json::value schedule = boost::json::object();   // the recipe's Schedule::Settings
    MixedPrecision::Settings precision;
    model::InitSettings init;

    // The settings typed for Optimizer and Schedule; an error names the key inside its section.
    template <class Optimizer, class Schedule>
    PretrainSettings<Optimizer, Schedule> typed() const {
        PretrainSettings<Optimizer, Schedule> out;
        out.preset = preset;
        out.recipe = recipe;
        out.data = data;
        out.run = run;
        out.precision = precision;
        out.init = init;
        read_section(optimizer, "optimizer", out.optimizer);
        read_section(schedule, "schedule", out.schedule);
        return out;
    }

    // Calls f(typed settings) for the recipe named.
    template <class F>
    void visit(F&& f) const {
        if (!visit_recipe(recipe,
                          [&]<class Optimizer, class Schedule>() { f(typed<Optimizer, Schedule>()); }))
            throw config::FieldError("recipe", unknown_recipe(recipe));
    }

    void validate() const {
        visit([](const auto&) {});
    }

    // The sections hold the defaults of `recipe`: a document naming another recipe starts them empty, so its
    // sections read over that recipe's own defaults.
    void prepare(const boost::json::object& document) {
        const boost::json::value* named = document.if_contains("recipe");
        if (named && named->is_string() && named->as_string() != recipe)
            optimizer = boost::json::object(), schedule = boost::json::object();
    }

  private:
    template <class T>
    void read_section(const boost::json::value& json, const std::string& name, T& out) const {
        try {
            out =
                config::from_json<T>(json.is_null() ? boost::json::value(boost::json::object()) : json, name);
        } catch (const config::ConfigError& error) {
            throw config::FieldError(error.path.empty() ? name : name + "." + error.path,
                                     error.detail + " (in the " + name + " section of recipe '" + recipe +
                                         "'; null reads as its defaults)");
        }
    }
};

// The val split beside `train`, when the dataset has one: it must open cleanly and agree with train (a
// corrupt validation split is an error, not a reason to train without one).
inline std::optional<data::PackedDataset> open_validation(const std::string& dataset,
                                                          data::PackedOptions options,
                                                          const data::PackedDataset& train, std::FILE* out) {
    options.split = "val";
    std::optional<data::PackedDataset> validation;
    if (!data::PackedDataset::has_split(dataset, options.split)) {
        if (out) std::fprintf(out, "no validation split (no val_NNNNN.bin in %s)\n", dataset.c_str());
        return validation;
    }
    validation.emplace(dataset, options);
    train.check_matches(*validation);
    return validation;
}

// Opens the packed splits, checks they fit the model, prints what a user cares about, trains.
template <ModelSpec S, class Optimizer = AdamW, class Schedule = CosineWarmup,
          class Precision = MixedPrecision>
FitResult pretrain(const PretrainSettings<Optimizer, Schedule, Precision>& settings,
                   std::FILE* out = stdout) {
    if (distributed::environment().rank != 0) out = nullptr;  // rank 0 alone reports
    if (settings.recipe != recipe_name<Optimizer, Schedule>())
        throw lumi::Error("recipe: '" + settings.recipe + "' but these settings were read for '" +
                          std::string(recipe_name<Optimizer, Schedule>()) + "'");
    data::PackedOptions options{.split = "train", .verify = settings.data.verify, .seed = settings.run.seed};
    if (!settings.data.tokenizer.empty())
        options.tokenizer_sha256 = tokenizer::Tokenizer::load(settings.data.tokenizer).sha256();
    const data::PackedDataset train(settings.data.dataset, options);
    const auto validation = open_validation(settings.data.dataset, options, train, out);
    if (std::int64_t(train.vocab_size()) > S.vocab_size)
        throw lumi::Error(settings.data.dataset + ": packed with a vocabulary of " +
                          std::to_string(train.vocab_size()) + " tokens, more than the model's " +
                          std::to_string(S.vocab_size));
    if (train.sequence_length() - 1 > S.context)
        throw lumi::Error(settings.data.dataset + ": sequences of " +
                          std::to_string(train.sequence_length()) + " tokens exceed the model's context of " +
                          std::to_string(S.context) + " (+1 for targets)");

    using Model = Transformer<S>;
    Trainer<Model, Optimizer, Schedule, Precision> trainer(Model(settings.init), settings.trainer());
    const auto& run = settings.run;
    const std::int64_t steps = trainer.total_steps(train.sequence_length());
    const std::int64_t world = trainer.group().size();
    const std::int64_t tokens_per_step = run.micro_batch * run.grad_accum * world * train.sequence_length();
    if (out) {
        std::fprintf(out, "%s\n", model::describe<S>().c_str());
        if (!settings.recipe.empty()) std::fprintf(out, "recipe %s\n", settings.recipe.c_str());
        std::fprintf(
            out,
            "data %s: %lld training sequences of %lld tokens (%lld validation)\n"
            "steps %lld x %lld tokens (micro-batch %lld, accumulation %lld) = %.1fM tokens, %.2f epochs\n"
            "device %s, %d threads, %s\n",
            settings.data.dataset.c_str(), (long long)train.size(), (long long)train.sequence_length(),
            (long long)(validation ? validation->size() : 0), (long long)steps, (long long)tokens_per_step,
            (long long)run.micro_batch, (long long)run.grad_accum, double(steps * tokens_per_step) / 1e6,
            double(steps * run.micro_batch * run.grad_accum * world) / double(train.size()),
            trainer.device().str().c_str(), torch::get_num_threads(),
            Precision::describe(settings.precision, trainer.device()));
        if (world > 1)
            std::fprintf(
                out, "data-parallel over %lld processes (%s): global batch %lld x %lld x %lld sequences\n",
                (long long)world, trainer.group().backend().c_str(), (long long)world,
                (long long)run.micro_batch, (long long)run.grad_accum);
        std::fflush(out);
    }
    return trainer.fit(train, validation ? &*validation : nullptr);
}

// Pretrains with the recipe the settings name.
template <ModelSpec S>
FitResult pretrain(const RecipePretrainSettings& settings, std::FILE* out = stdout) {
    FitResult result;
    settings.visit([&](const auto& typed) { result = pretrain<S>(typed, out); });
    return result;
}

}  // namespace lumi::train
