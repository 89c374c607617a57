#pragma once

#include <unistd.h>

// A byte-level "tokenizer" and scratch directories for the packing tests.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "lumi/core/files.hpp"
#include "lumi/core/sha256.hpp"
#include "lumi/data/pack.hpp"
#include "test_errors.hpp"

namespace lumi::test {

namespace fs = std::filesystem;

inline constexpr int byte_offset = 3;  // ids 0..2: pad, unk, EOS
inline constexpr int eos_id = 2;

inline std::vector<int> byte_encode(std::string_view text) {
    std::vector<int> ids;
    ids.reserve(text.size());
    for (unsigned char c : text) ids.push_back(c + byte_offset);
    return ids;
}

inline std::string byte_decode(std::span<const int> ids) {
    std::string text;
    for (int id : ids) text += id == eos_id ? '|' : static_cast<char>(id - byte_offset);
    return text;
}

inline const std::string& byte_tokenizer_sha() {
    static const std::string sha = lumi::sha256_hex("byte tokenizer");
    return sha;
}

inline lumi::data::TokenizerInfo byte_tokenizer() {
    return {byte_tokenizer_sha(), 256 + byte_offset, eos_id, 0};
}

inline fs::path fresh_directory(const std::string& name) {
    const fs::path dir =
        fs::temp_directory_path() / ("lumi_packing_test_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// Documents of varied lengths, each unique ("document 17: ...").
inline std::vector<std::string> make_documents(std::size_t count) {
    std::vector<std::string> docs;
    for (std::size_t i = 0; i < count; ++i) {
        std::string text = "document " + std::to_string(i) + ":";
        for (std::size_t w = 0; w < (i * 7) % 23 + 1; ++w) text += " w" + std::to_string((i * 31 + w) % 97);
        docs.push_back(text);
    }
    return docs;
}

inline void write_jsonl(const fs::path& file, const std::vector<std::string>& texts) {
    std::string out;
    for (const std::string& text : texts)
        out += boost::json::serialize(boost::json::object{{"text", text}}) + "\n";
    lumi::write_file_atomic(file, out);
}

}  // namespace lumi::test
