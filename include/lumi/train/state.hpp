#pragma once

// A checkpoint's trainer_state.json: where its run stands (step, tokens, data position) and the settings that
// decide the run's trajectory, read back through the same strict reflection as the settings, so a wrong type,
// a fractional step or a negative position is an error naming the file and the field.

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "lumi/config/config.hpp"

namespace lumi::train {

// The next micro-batch's place in the shuffled data order.
struct DataState {
    std::int64_t epoch = 0;
    std::int64_t offset = 0;  // into that epoch's order, in sequences

    void validate() const {
        if (epoch < 0) throw config::FieldError("epoch", "must be >= 0, found " + std::to_string(epoch));
        if (offset < 0) throw config::FieldError("offset", "must be >= 0, found " + std::to_string(offset));
    }
};

// What decides where a run goes: resuming with other values would not continue the same run, so they are
// compared on resume (run.allow_changed_settings accepts a difference).
template <class OptimizerSettings, class ScheduleSettings>
struct Trajectory {
    std::int64_t max_steps = 0;
    std::int64_t token_budget = 0;
    OptimizerSettings optimizer{};
    ScheduleSettings schedule{};
    std::string dataset;           // identity of the training data (XXH64 of its shard headers)
    std::string tokenizer_sha256;  // of the tokenizer the data was packed with
    std::string objective;         // what is minimised and its settings; empty for next-token prediction
};

template <class OptimizerSettings, class ScheduleSettings>
struct TrainerState {
    std::int64_t step = 0;  // optimizer steps done
    std::int64_t tokens = 0;
    double loss = 0;
    DataState data;
    std::uint64_t seed = 0;
    std::int64_t micro_batch = 1;
    std::int64_t grad_accum = 1;
    std::int64_t world_size = 1;
    std::string torch;  // LibTorch version that wrote it, e.g. "2.11"
    std::optional<Trajectory<OptimizerSettings, ScheduleSettings>> trajectory;

    void validate() const {
        if (step < 0) throw config::FieldError("step", "must be >= 0, found " + std::to_string(step));
        if (tokens < 0) throw config::FieldError("tokens", "must be >= 0, found " + std::to_string(tokens));
        if (micro_batch < 1) throw config::FieldError("micro_batch", "must be >= 1");
        if (grad_accum < 1) throw config::FieldError("grad_accum", "must be >= 1");
        if (world_size < 1) throw config::FieldError("world_size", "must be >= 1");
    }
};

// Fields every trainer_state.json must give: a missing one would silently read as its default.
inline constexpr std::array<std::string_view, 7> required_state_fields{
    "step", "tokens", "data", "seed", "micro_batch", "grad_accum", "world_size"};

template <class State>
State read_trainer_state(const std::filesystem::path& file) {
    const boost::json::value json = config::read_json_file(file);
    const boost::json::object* object = json.if_object();
    if (!object)
        throw config::ConfigError(file.string(), "", "expected a JSON object (a checkpoint's trainer state)");
    for (const std::string_view key : required_state_fields)
        if (!object->contains(key))
            throw config::ConfigError(file.string(), std::string(key),
                                      "missing: a checkpoint's trainer state gives it");
    if (const auto* data = object->at("data").if_object())
        for (const char* key : {"epoch", "offset"})
            if (!data->contains(key))
                throw config::ConfigError(file.string(), std::string("data.") + key,
                                          "missing: a checkpoint's trainer state gives it");
    return config::from_json<State>(json, file.string());
}

// One "path: checkpoint A, now B" per differing leaf of two JSON documents.
inline void json_differences(const std::string& path, const boost::json::value& then,
                             const boost::json::value& now, std::vector<std::string>& out) {
    if (then.is_object() && now.is_object()) {
        for (const auto& [key, value] : then.get_object()) {
            const auto* other = now.get_object().if_contains(key);
            json_differences(config::detail::join(path, key), value, other ? *other : boost::json::value(),
                             out);
        }
        for (const auto& [key, value] : now.get_object())
            if (!then.get_object().contains(key))
                json_differences(config::detail::join(path, key), boost::json::value(), value, out);
        return;
    }
    if (then == now) return;
    auto text = [](const boost::json::value& v) {
        std::string s;
        config::detail::print(s, v, -1, 0);
        return s;
    };
    out.push_back(path + ": checkpoint " + text(then) + ", now " + text(now));
}

}  // namespace lumi::train
