#pragma once
// The command line every stage binary shares: --config, --set, --print-config and --describe, and the one way
// a stage ends: lumi::stage::main turns every exception into one `error: ...` line and a non-zero status.
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>
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

    // A top-level string that picks the settings' type (a recipe), before they are loaded.
    config::Peeked peek(const std::string& key, std::string fallback) const {
        return config::peek_string(config ? std::optional<std::filesystem::path>(*config) : std::nullopt,
                                   sets, key, std::move(fallback));
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

namespace detail {

// c10::Error's what() carries a C++ backtrace after the message: the message is what a user needs.
inline std::string message_of(const std::exception& error) {
    std::string text = error.what();
    if (const auto at = text.find("\nException raised from"); at != std::string::npos) text.resize(at);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    return text.empty() ? "unknown error" : text;
}

// Prints `error: ...` for the exception being handled and returns the stage's exit status.
inline int report_current_exception() {
    try {
        throw;
    } catch (const Interrupted& e) {
        std::cerr << "stopped: " << e.what() << "\n";
        return 128 + e.signal;
    } catch (const std::bad_alloc&) {
        std::cerr << "error: out of memory\n";
    } catch (const std::exception& e) {
        std::cerr << "error: " << message_of(e) << "\n";
    } catch (...) {
        std::cerr << "error: an unknown exception\n";
    }
    return 2;
}

// An exception that escapes where it cannot be caught (a thread, a destructor) ends the stage with the same
// one line and status, not an abort.
[[noreturn]] inline void on_terminate() {
    int status = 2;
    if (std::current_exception())
        status = report_current_exception();
    else
        std::cerr << "error: terminated\n";
    std::cerr.flush();
    std::fflush(nullptr);
    ::_exit(status);
}

}  // namespace detail

// A stage binary's main: parses the command line into `app`, then runs `body` (which returns the exit
// status). Any exception (lumi::Error, c10::Error, std::bad_alloc, a command-line error) becomes one `error:
// ...` line on stderr and status 2; a run a signal stopped (lumi::Interrupted) exits 128 + signal: 130 for
// SIGINT, 143 for SIGTERM.
template <class Body>
int main(CLI::App& app, int argc, char** argv, Body&& body) {
    std::set_terminate(detail::on_terminate);
    try {
        try {
            app.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            if (e.get_exit_code() == 0) return app.exit(e);  // --help
            std::cerr << "error: " << e.what() << " (run with --help for the options)\n";
            return 2;
        }
        return body();
    } catch (...) {
        return detail::report_current_exception();
    }
}

}  // namespace lumi::stage
