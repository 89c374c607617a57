#pragma once

// The checkpoints of a run, `<output>/checkpoints/step_N`, each written as a staged directory: model,
// optimizer and RNG state, config.json, trainer_state.json. They are ordered by the step their state
// records (a name is only a name), and a directory that is not a whole checkpoint (torn by a copy, a
// crash of an older writer, a full disk) is reported as such instead of being resumed from.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/io/safetensors.hpp"

namespace lumi::train {

struct Checkpoint {
    std::filesystem::path directory;
    std::int64_t step = 0;
};

struct CheckpointScan {
    std::vector<Checkpoint> good;                                     // whole checkpoints, oldest first
    std::vector<std::pair<std::filesystem::path, std::string>> torn;  // and why each is not
};

inline constexpr const char* checkpoint_files[] = {"model.safetensors", "optimizer.safetensors",
                                                   "rng.safetensors", "config.json", "trainer_state.json"};

// The step of a whole checkpoint, or an error naming the file that makes it incomplete. Reads the
// state and every safetensors header (which checks the file's size against it), not the tensors.
inline std::int64_t checkpoint_step(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    for (const char* name : checkpoint_files)
        if (fs::is_directory(dir / name))
            throw Error((dir / name).string() + ": is a directory, expected a file");
        else if (!fs::is_regular_file(dir / name))
            throw Error((dir / name).string() + ": missing");
    const fs::path state_file = dir / "trainer_state.json";
    // The same checks and messages as the strict read at resume (state.hpp).
    const boost::json::value state = config::read_json_file(state_file);
    const std::string origin = state_file.string();  // Where holds a view of it
    const config::detail::Where where{origin, ""};
    if (!state.is_object()) where.fail("expected a JSON object (a checkpoint's trainer state)");
    const boost::json::value* value = state.get_object().if_contains("step");
    if (!value) where.at("step").fail("missing: a checkpoint's trainer state gives it");
    const auto step = config::detail::read_integer<std::int64_t>(*value, where.at("step"));
    if (step < 0) where.at("step").fail("must be >= 0, found " + std::to_string(step));
    for (const char* name : {"model.safetensors", "optimizer.safetensors", "rng.safetensors"})
        io::read_safetensors_header(dir / name);
    config::read_json_file(dir / "config.json");
    return step;
}

// Every `step_*` directory of `<output>/checkpoints`, split into whole ones (by step) and torn ones.
inline CheckpointScan scan_checkpoints(const std::filesystem::path& output) {
    namespace fs = std::filesystem;
    CheckpointScan scan;
    const fs::path dir = output / "checkpoints";
    std::error_code error;
    if (!fs::is_directory(dir, error)) return scan;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (!entry.is_directory() || !name.starts_with("step_") || name.size() == 5 ||
            name.find_first_not_of("0123456789", 5) != std::string::npos)
            continue;
        try {
            scan.good.push_back({entry.path(), checkpoint_step(entry.path())});
        } catch (const Error& e) {
            scan.torn.emplace_back(entry.path(), e.what());
        }
    }
    std::sort(scan.good.begin(), scan.good.end(), [](const Checkpoint& a, const Checkpoint& b) {
        return std::pair(a.step, a.directory) < std::pair(b.step, b.directory);
    });
    std::sort(scan.torn.begin(), scan.torn.end());
    return scan;
}

// The whole checkpoints of a run, oldest first: the last is the one `run.resume = latest` takes.
inline std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& output) {
    std::vector<std::filesystem::path> found;
    for (const auto& c : scan_checkpoints(output).good) found.push_back(c.directory);
    return found;
}

}  // namespace lumi::train
