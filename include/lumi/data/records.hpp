#pragma once

// Dataset records, as the instruction and preference stages read them: a JSON array or JSON lines (either
// optionally gzip- or zstd-compressed) or Parquet (each row an object of its columns, read by row group),
// from one file or every such file of a folder.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "lumi/core/error.hpp"
#include "lumi/data/parquet.hpp"
#include "lumi/data/sources.hpp"

namespace lumi::data {

namespace json = boost::json;

// A record that cannot be used (a missing field, ...): the reader adds the file and line.
class RecordError : public lumi::Error {
  public:
    using lumi::Error::Error;
};

namespace detail {

// One JSON Lines line, parsed and handed to f(value); false when it is skipped (malformed, or f threw a
// RecordError) with `skip_malformed`, else either is an error naming `where` (file:line).
template <class F>
bool jsonl_line(std::string_view line, const std::string& where, bool skip_malformed,
                json::stream_parser& parser, F&& f) {
    parser.reset();
    json::error_code error;
    const std::size_t consumed = parser.write(line.data(), line.size(), error);
    if (!error) parser.finish(error);
    if (error) {
        if (skip_malformed) return false;
        throw lumi::Error(where + ":" + std::to_string(consumed + 1) + ": invalid JSON: " + error.message());
    }
    try {
        f(parser.release());
    } catch (const RecordError& e) {
        if (!skip_malformed) throw lumi::Error(where + ": " + e.what());
        return false;
    }
    return true;
}

}  // namespace detail

// Calls f(value, line) for every non-blank line of a JSONL file, read a line at a time. A malformed line, or
// a RecordError thrown by f, is an error naming file:line, or is skipped and counted when `skip_malformed`.
// Returns the count.
template <class F>
std::uint64_t for_each_jsonl(const std::filesystem::path& file, bool skip_malformed, F&& f) {
    std::ifstream in = lumi::open_file(file);
    std::string line;
    std::uint64_t number = 0, skipped = 0;
    json::stream_parser parser;
    while (std::getline(in, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        if (!detail::jsonl_line(line, file.string() + ":" + std::to_string(number), skip_malformed, parser,
                                [&](const json::value& record) { f(record, number); }))
            ++skipped;
    }
    if (in.bad()) throw lumi::Error(file.string() + ": read error");
    return skipped;
}

// The files a folder contributes to a dataset, by name.
inline const std::vector<std::string> dataset_file_globs = {"*.parquet",  "*.pq",        "*.json",
                                                            "*.jsonl",    "*.ndjson",    "*.json.gz",
                                                            "*.jsonl.gz", "*.jsonl.zst", "*.json.zst"};

// The dataset's files: `path` itself, or the files of the folder `path` matching dataset_file_globs (sorted,
// subfolders included, as Hugging Face's data/ and refs/convert/parquet folders hold their shards).
inline std::vector<std::filesystem::path> dataset_files(const std::filesystem::path& path) {
    std::vector<std::filesystem::path> files = list_files(path, dataset_file_globs);
    if (files.empty())
        throw lumi::Error(path.string() +
                          ": the folder has no dataset files (*.parquet, *.json, *.jsonl, "
                          "optionally .gz or .zst)");
    return files;
}

// The bytes of every dataset's files (what a stage's progress counts against); unreadable paths count 0, as
// reading them reports.
template <class Datasets>
std::uint64_t dataset_bytes(const Datasets& datasets) {
    std::uint64_t total = 0;
    for (const auto& dataset : datasets) {
        try {
            for (const std::filesystem::path& file : dataset_files(dataset.path)) {
                std::error_code error;
                const std::uint64_t size = std::filesystem::file_size(file, error);
                total += error ? 0 : size;
            }
        } catch (const lumi::Error&) {
        }
    }
    return total;
}

namespace detail {

// Up to `size` first bytes of a file (an error naming it when it cannot be opened).
inline std::string file_head(const std::filesystem::path& file, std::size_t size) {
    std::ifstream in = lumi::open_file(file);
    std::string head(size, '\0');
    in.read(head.data(), std::streamsize(size));
    head.resize(static_cast<std::size_t>(in.gcount()));
    return head;
}

// Calls f(record, origin) for each record of a JSON array or JSON lines text (a compressed file's, or an
// array's, read whole); returns the records skipped.
template <class F>
std::uint64_t for_each_json_record(const std::string& text, const std::string& file, bool skip_malformed,
                                   F&& f) {
    auto parse = [](std::string_view json_text, json::error_code& error, std::size_t& consumed) {
        json::stream_parser parser;
        consumed = parser.write(json_text.data(), json_text.size(), error);
        if (!error) parser.finish(error);
        return error ? json::value() : parser.release();
    };
    auto call = [&](const json::value& record, const std::string& origin) -> bool {
        try {
            f(record, origin);
        } catch (const RecordError& e) {
            if (!skip_malformed) throw lumi::Error(origin + ": " + e.what());
            return false;
        }
        return true;
    };
    const std::size_t first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) throw lumi::Error(file + ": empty file: no records");
    std::uint64_t skipped = 0;
    if (text[first] == '[') {
        json::error_code error;
        std::size_t consumed = 0;
        const json::value document = parse(text, error, consumed);
        if (error) {
            const std::size_t line =
                1 + std::count(text.begin(), text.begin() + std::ptrdiff_t(consumed), '\n');
            throw lumi::Error(file + ":" + std::to_string(line) + ": invalid JSON: " + error.message());
        }
        const json::array& array = document.as_array();
        for (std::size_t i = 0; i < array.size(); ++i)
            if (!call(array[i], file + "[" + std::to_string(i) + "]")) ++skipped;
        return skipped;
    }
    json::stream_parser parser;
    for_each_line(text, [&](std::string_view line, std::uint64_t number) {
        if (blank(line)) return;
        const std::string origin = file + ":" + std::to_string(number);
        if (!jsonl_line(line, origin, skip_malformed, parser,
                        [&](const json::value& record) { f(record, origin); }))
            ++skipped;
    });
    return skipped;
}

}  // namespace detail

// Calls f(record, origin) for each record of the dataset at `path` (a file or a folder; see dataset_files),
// origin naming the file and line, element or Parquet row. A RecordError thrown by f, or a malformed JSON
// line, is an error naming the origin, or is skipped and counted when `skip_malformed`. Returns the count
// skipped.
template <class F>
std::uint64_t for_each_dataset_record(const std::filesystem::path& path, bool skip_malformed, F&& f) {
    std::uint64_t skipped = 0;
    for (const std::filesystem::path& file : dataset_files(path)) {
        if (!is_parquet(file)) {
            // Plain JSON Lines stream a line at a time; an array or a compressed file is read whole.
            const std::string head = detail::file_head(file, 4096);
            const std::size_t first = head.find_first_not_of(" \t\r\n");
            if (first != std::string::npos && head[first] != '[' &&
                detect_compression(file, head) == Compression::none) {
                skipped +=
                    for_each_jsonl(file, skip_malformed, [&](const json::value& record, std::uint64_t line) {
                        f(record, file.string() + ":" + std::to_string(line));
                    });
            } else {
                skipped +=
                    detail::for_each_json_record(read_decompressed(file), file.string(), skip_malformed, f);
            }
            continue;
        }
        for_each_parquet_row(file, {}, [&](const json::value& record, std::uint64_t row, int row_group) {
            const std::string origin = parquet_origin(file, row, row_group);
            try {
                f(record, origin);
            } catch (const RecordError& e) {
                if (!skip_malformed) throw lumi::Error(origin + ": " + e.what());
                ++skipped;
            }
        });
    }
    return skipped;
}

}  // namespace lumi::data
