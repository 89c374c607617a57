#pragma once
// What every fuzz target shares: a private scratch directory for inputs that parsers read from files, and
// the rule that bad input may only end in a lumi::Error (anything else escapes and is reported as a crash).
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace lumi::fuzz {

// A directory of this process's own under $TMPDIR (scripts/fuzz.sh points it at tmpfs and removes it
// afterwards: libFuzzer ends the process without running exit handlers). A target writes each input there.
inline const std::filesystem::path& scratch() {
    static const std::filesystem::path dir = [] {
        const char* base = std::getenv("TMPDIR");
        std::string pattern = std::string(base && *base ? base : "/tmp") + "/lumi_fuzz_XXXXXX";
        if (!::mkdtemp(pattern.data())) std::abort();
        return std::filesystem::path(pattern);
    }();
    return dir;
}

inline std::filesystem::path write_input(const std::filesystem::path& file, std::string_view bytes) {
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), std::streamsize(bytes.size()));
    return file;
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

}  // namespace lumi::fuzz
