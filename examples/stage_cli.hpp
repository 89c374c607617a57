#pragma once
// The command line every stage binary shares: --config, --set, --print-config and --describe.
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/config/reference.hpp>
#include <lumi/core/error.hpp>
#include <lumi/presets.hpp>

// The preset a stage binary is compiled for: lumi_add_trainer defines LUMI_PRESET and LUMI_PRESETS_DIR (where
// lumi's shipped settings and data are).
#ifndef LUMI_PRESET
#define LUMI_PRESET nano
#endif
#ifndef LUMI_PRESETS_DIR
#define LUMI_PRESETS_DIR "presets"
#endif
#define LUMI_STRINGIFY_(x) #x
#define LUMI_STRINGIFY(x) LUMI_STRINGIFY_(x)
#define LUMI_CONCAT_(a, b) a##b
#define LUMI_CONCAT(a, b) LUMI_CONCAT_(a, b)

namespace lumi::stage {

inline constexpr ModelSpec spec = presets::LUMI_PRESET;
inline constexpr const char* preset_name = LUMI_STRINGIFY(LUMI_PRESET);

struct Cli {
    std::optional<std::string> config;
    std::vector<std::string> sets;
    bool print_config = false;
    bool describe = false;

    Cli(CLI::App& app, const std::string& settings_type) {
        app.add_option("--config", config, "JSON settings file (" + settings_type + ")");
        app.add_option("--set", sets, "override a setting: key=value (repeatable)");
        app.add_flag("--print-config", print_config, "print the effective settings and exit");
        app.add_flag("--describe", describe,
                     "print every setting with its type and default as a Markdown table and exit");
    }

    // The settings: defaults, then the --config file, then each --set in order; strictly checked.
    template <class Settings>
    Settings load() const {
        return config::load<Settings>(config, sets);
    }

    // Settings written for another preset are refused, naming the binary that reads them.
    void check_preset(const std::string& preset, const std::string& compiled,
                      const std::string& stage) const {
        if (!preset.empty() && preset != compiled)
            throw Error((config ? *config : std::string("--set")) + ": preset is '" + preset +
                        "' but this binary was compiled for '" + compiled + "' (build lumi_" + stage + "_" +
                        preset + ")");
    }

    // True when --describe asked for the reference of Settings (printed here): the binary exits.
    template <class Settings>
    bool described(const Settings& defaults = Settings{}) const {
        if (describe) std::cout << config::markdown_reference(defaults);
        return describe;
    }

    // True when --print-config asked for the effective settings (printed here): the binary exits.
    template <class Settings>
    bool printed(const Settings& settings) const {
        if (print_config) std::cout << config::format_json(config::to_json(settings));
        return print_config;
    }
};

}  // namespace lumi::stage
