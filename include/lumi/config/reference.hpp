#pragma once
// The generated configuration reference: every stage binary's `--describe` prints its settings with this, and
// docs/config-reference.md is their output (a test regenerates it), so the reference cannot drift.
#include <string>

#include <lumi/config/config.hpp>

namespace lumi::config {

// describe() as a Markdown table: dotted key, type, default (JSON).
template <Reflectable T>
std::string markdown_reference(const T& defaults = T{}) {
    auto cell = [](const std::string& text) {
        std::string out;
        for (char c : text) {
            if (c == '|') out += '\\';  // GitHub tables split cells on '|', even inside code spans
            out += c == '\n' ? ' ' : c;
        }
        return out;
    };
    std::string out = "| key | type | default |\n|---|---|---|\n";
    for (const auto& f : describe(defaults))
        out += "| `" + f.path + "` | " + cell(f.type) + " | `" + cell(f.default_value) + "` |\n";
    return out;
}

}  // namespace lumi::config
