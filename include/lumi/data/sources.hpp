#pragma once

// Readers for corpus sources: plain text files (a file, its paragraphs or its lines per document) and JSON
// Lines (one object per line, the text under a configurable key), each optionally gzip- or zstd-compressed,
// and Parquet (one document per row, the text column under the same key; data/parquet.hpp). A text or JSON
// file is read whole, a Parquet file a row group at a time; every record comes out as valid UTF-8 with its
// ill-formed bytes counted.

#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <zlib.h>
#include <zstd.h>
#include <boost/json.hpp>

#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/data/parquet.hpp"
#include "lumi/data/text.hpp"

namespace lumi::data {

// `detect`: `.parquet` or Parquet's magic number is Parquet, `.jsonl` or `.ndjson` (before a compression
// suffix) JSON Lines, anything else text.
enum class SourceFormat { detect, text, jsonl, parquet };
// `detect`: by suffix (`.gz`, `.zst`, `.zstd`), else by the first bytes (gzip and zstd magic numbers).
enum class Compression { detect, none, gzip, zstd };
// How a plain text file splits into documents: whole, at blank lines, or at every line.
enum class TextUnit { file, paragraph, line };

struct ReadOptions {
    SourceFormat format = SourceFormat::detect;
    Compression compression = Compression::detect;
    TextUnit unit = TextUnit::file;
    std::string text_field = "text";
    bool skip_malformed = false;                       // count bad JSON lines instead of failing on the first
    std::uint64_t max_bytes = default_max_file_bytes;  // of a file, before and after decompression
};

struct Record {
    std::string text;                // valid UTF-8: ill-formed sequences replaced by U+FFFD
    std::uint64_t line = 1;          // where it starts in the (decompressed) file, from 1; a Parquet row
    std::uint32_t invalid_utf8 = 0;  // sequences replaced
};

struct FileRecords {
    std::vector<Record> records;
    std::uint64_t malformed = 0;        // lines that are not a JSON object
    std::uint64_t missing_field = 0;    // objects without the text field as a string
    std::vector<std::string> problems;  // the first few of those, `file:line: what`
};

inline constexpr std::size_t max_problems_kept = 10;

namespace detail {

inline std::string lower_extension(const std::filesystem::path& file) {
    std::string extension = file.extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return extension;
}

[[noreturn]] inline void fail_at(const std::filesystem::path& file, std::string_view format,
                                 std::size_t offset, std::string_view what) {
    throw lumi::Error(file.string() + ": corrupt " + std::string(format) + " data at compressed byte " +
                      std::to_string(offset) + ": " + std::string(what));
}

[[noreturn]] inline void fail_truncated(const std::filesystem::path& file, std::string_view format,
                                        std::size_t size) {
    throw lumi::Error(file.string() + ": truncated " + std::string(format) +
                      " data: the stream ends at byte " + std::to_string(size) + " before its end marker");
}

// zlib counts in `uInt`: hand it at most 1 GiB at a time.
inline constexpr std::size_t zlib_chunk = std::size_t{1} << 30;

// Grows a decompression buffer, within `limit` bytes and the memory, or fails naming the file.
inline void grow(std::string& out, std::uint64_t limit, const std::filesystem::path& file,
                 std::string_view format) {
    if (out.size() >= limit)
        throw lumi::Error(file.string() + ": the " + std::string(format) +
                          " data decompresses to more than " + std::to_string(limit) +
                          " bytes, the limit for one file (max_file_bytes)");
    try {
        out.resize(std::min<std::uint64_t>(limit, std::max<std::uint64_t>(out.size() * 2, 1 << 16)));
    } catch (const std::bad_alloc&) {
        throw lumi::Error(file.string() + ": out of memory decompressing " + std::string(format) +
                          " data beyond " + std::to_string(out.size()) + " bytes");
    }
}

inline std::string gunzip(std::string_view in, const std::filesystem::path& file,
                          std::uint64_t limit = default_max_file_bytes) {
    z_stream z{};
    if (inflateInit2(&z, 15 + 32) != Z_OK) throw lumi::Error(file.string() + ": cannot start zlib");
    const std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, inflateEnd);
    std::string out;
    grow(out, limit, file, "gzip");
    std::size_t handed = 0, produced = 0;
    for (;;) {
        if (z.avail_in == 0 && handed < in.size()) {
            const std::size_t n = std::min(in.size() - handed, zlib_chunk);
            z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + handed));
            z.avail_in = static_cast<uInt>(n);
            handed += n;
        }
        if (produced == out.size()) grow(out, limit, file, "gzip");
        z.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
        z.avail_out = static_cast<uInt>(std::min(out.size() - produced, zlib_chunk));
        const uInt room = z.avail_out;
        const int status = inflate(&z, Z_NO_FLUSH);
        produced += room - z.avail_out;
        const std::size_t consumed = handed - z.avail_in;
        if (status == Z_STREAM_END) {
            if (consumed == in.size()) break;
            inflateReset(&z);  // concatenated gzip members, as `cat a.gz b.gz` makes
        } else if (status == Z_BUF_ERROR && z.avail_in == 0 && handed == in.size()) {
            fail_truncated(file, "gzip", in.size());
        } else if (status != Z_OK && status != Z_BUF_ERROR) {
            fail_at(file, "gzip", consumed, z.msg ? z.msg : "inflate error " + std::to_string(status));
        }
    }
    out.resize(produced);
    return out;
}

inline std::string unzstd(std::string_view in, const std::filesystem::path& file,
                          std::uint64_t limit = default_max_file_bytes) {
    const std::unique_ptr<ZSTD_DCtx, std::size_t (*)(ZSTD_DCtx*)> context(ZSTD_createDCtx(), ZSTD_freeDCtx);
    if (!context) throw lumi::Error(file.string() + ": cannot start zstd");
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    std::string out;
    grow(out, limit, file, "zstd");
    std::size_t produced = 0;
    for (;;) {
        if (produced == out.size()) grow(out, limit, file, "zstd");
        ZSTD_outBuffer output{out.data() + produced, out.size() - produced, 0};
        const std::size_t status = ZSTD_decompressStream(context.get(), &output, &input);
        if (ZSTD_isError(status)) fail_at(file, "zstd", input.pos, ZSTD_getErrorName(status));
        produced += output.pos;
        if (status == 0 && input.pos == input.size) break;  // a frame ended with the input
        // All input used and room left, yet the frame is not finished: the file stops early.
        if (input.pos == input.size && output.pos < output.size) fail_truncated(file, "zstd", in.size());
    }
    out.resize(produced);
    return out;
}

inline bool blank(std::string_view line) {
    return std::all_of(line.begin(), line.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; });
}

// Calls f(line, number) for each line, without its \n or \r\n.
template <class F>
void for_each_line(std::string_view text, F&& f) {
    std::uint64_t number = 1;
    for (std::size_t begin = 0; begin < text.size(); ++number) {
        std::size_t end = text.find('\n', begin);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(begin, end - begin);
        if (line.ends_with('\r')) line.remove_suffix(1);
        f(line, number);
        begin = end + 1;
    }
}

inline Record make_record(std::string_view raw, std::uint64_t line) {
    std::size_t replaced = 0;
    std::string text = repair_utf8(raw, &replaced);
    return Record{std::move(text), line, static_cast<std::uint32_t>(replaced)};
}

}  // namespace detail

inline Compression detect_compression(const std::filesystem::path& file, std::string_view head) {
    const std::string extension = detail::lower_extension(file);
    if (extension == ".gz") return Compression::gzip;
    if (extension == ".zst" || extension == ".zstd") return Compression::zstd;
    if (head.starts_with("\x1f\x8b")) return Compression::gzip;
    if (head.starts_with("\x28\xb5\x2f\xfd")) return Compression::zstd;
    return Compression::none;
}

inline SourceFormat detect_format(const std::filesystem::path& file) {
    std::filesystem::path name = file.filename();
    const std::string extension = detail::lower_extension(name);
    if (extension == ".gz" || extension == ".zst" || extension == ".zstd") name = name.stem();
    const std::string inner = detail::lower_extension(name);
    return inner == ".jsonl" || inner == ".ndjson" ? SourceFormat::jsonl : SourceFormat::text;
}

// Whether a source file of this format is read as Parquet: set so, or detected (data/parquet.hpp's
// is_parquet).
inline bool reads_as_parquet(const std::filesystem::path& file, SourceFormat format) {
    return format == SourceFormat::parquet || (format == SourceFormat::detect && is_parquet(file));
}

// The file's bytes, decompressed; a corrupt or truncated stream is an error naming the file and offset.
// Both the file and its decompressed bytes are bounded by `max_bytes`.
inline std::string read_decompressed(const std::filesystem::path& file,
                                     Compression compression = Compression::detect,
                                     std::uint64_t max_bytes = default_max_file_bytes) {
    std::string bytes = lumi::read_file(file, max_bytes);
    if (compression == Compression::detect) compression = detect_compression(file, bytes);
    if (compression == Compression::gzip) return detail::gunzip(bytes, file, max_bytes);
    if (compression == Compression::zstd) return detail::unzstd(bytes, file, max_bytes);
    return bytes;
}

// The regular files at `path`: the file itself, or those under the folder whose names match one of the
// globs (`*.txt`, `copyright`; all when none), sorted by path so every run reads them in one order.
inline std::vector<std::filesystem::path> list_files(const std::filesystem::path& path,
                                                     const std::vector<std::string>& match = {},
                                                     bool recursive = true) {
    namespace fs = std::filesystem;
    std::error_code error;
    const fs::file_status status = fs::status(path, error);
    if (error || !fs::exists(status))
        throw lumi::Error(path.string() + ": cannot read the source: " +
                          (error ? error.message() : std::string("no such file or directory")));
    if (!fs::is_directory(status)) return {path};
    auto matches = [&](const fs::path& file) {
        if (match.empty()) return true;
        const std::string name = file.filename().string();
        return std::any_of(match.begin(), match.end(), [&](const std::string& glob) {
            return fnmatch(glob.c_str(), name.c_str(), 0) == 0;
        });
    };
    std::vector<fs::path> files;
    auto visit = [&](const fs::directory_entry& entry) {
        std::error_code ignored;
        if (entry.is_regular_file(ignored) && matches(entry.path())) files.push_back(entry.path());
    };
    const auto options = fs::directory_options::skip_permission_denied;
    if (recursive) {
        for (const auto& entry : fs::recursive_directory_iterator(path, options, error)) visit(entry);
    } else {
        for (const auto& entry : fs::directory_iterator(path, options, error)) visit(entry);
    }
    if (error) throw lumi::Error(path.string() + ": cannot list the folder: " + error.message());
    std::sort(files.begin(), files.end());
    return files;
}

namespace detail {

// A Parquet file's records: f(batch) each time about batch_bytes of text are read (0: once, at the end). Its
// text beyond max_bytes is an error.
template <class F>
void read_parquet_records(const std::filesystem::path& file, const ReadOptions& options,
                          std::uint64_t max_bytes, std::uint64_t batch_bytes, F&& f) {
    FileRecords out;
    std::uint64_t bytes = 0, batch = 0;
    for_each_parquet_text(
        file, options.text_field,
        [&](std::string_view text, std::uint64_t row, int) {
            bytes += text.size();
            if (bytes > max_bytes)
                throw lumi::Error(file.string() + ": the text column holds more than " +
                                  std::to_string(max_bytes) +
                                  " bytes, the limit for one file (max_file_bytes)");
            if (!blank(text)) out.records.push_back(make_record(text, row));
            batch += text.size();
            if (batch_bytes > 0 && batch >= batch_bytes) {
                f(out);
                out = FileRecords{};
                batch = 0;
            }
        },
        [&](std::uint64_t row, int row_group) {
            const std::string message =
                parquet_origin(file, row, row_group) + ": the \"" + options.text_field + "\" cell is null";
            if (!options.skip_malformed) throw lumi::Error(message);
            ++out.missing_field;
            if (out.problems.size() < max_problems_kept) out.problems.push_back(message);
        });
    f(out);
}

}  // namespace detail

// The documents of one file. Without `skip_malformed`, the first bad JSON line is an error naming
// `file:line`; blank lines and empty files yield no records.
inline FileRecords read_records(const std::filesystem::path& file, const ReadOptions& options = {}) {
    namespace json = boost::json;
    FileRecords out;
    if (reads_as_parquet(file, options.format)) {
        detail::read_parquet_records(file, options, options.max_bytes, 0,
                                     [&](FileRecords& all) { out = std::move(all); });
        return out;
    }
    std::string bytes = read_decompressed(file, options.compression, options.max_bytes);
    std::string_view text = bytes;
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a byte order mark is not text
    const SourceFormat format = options.format == SourceFormat::detect ? detect_format(file) : options.format;

    if (format == SourceFormat::text) {
        if (options.unit == TextUnit::file) {
            if (!detail::blank(text)) out.records.push_back(detail::make_record(text, 1));
            return out;
        }
        std::size_t begin = 0, end = 0;  // the paragraph being gathered, as byte offsets
        std::uint64_t first_line = 0;
        auto flush = [&] {
            if (first_line != 0)
                out.records.push_back(detail::make_record(text.substr(begin, end - begin), first_line));
            first_line = 0;
        };
        detail::for_each_line(text, [&](std::string_view line, std::uint64_t number) {
            if (detail::blank(line)) return flush();
            const std::size_t offset = static_cast<std::size_t>(line.data() - text.data());
            if (options.unit == TextUnit::line) {
                out.records.push_back(detail::make_record(line, number));
                return;
            }
            if (first_line == 0) begin = offset, first_line = number;
            end = offset + line.size();
        });
        flush();
        return out;
    }

    json::parser parser;
    detail::for_each_line(text, [&](std::string_view raw, std::uint64_t number) {
        if (detail::blank(raw)) return;
        auto problem = [&](std::uint64_t& counter, const std::string& what) {
            const std::string message = file.string() + ":" + std::to_string(number) + ": " + what;
            if (!options.skip_malformed) throw lumi::Error(message);
            ++counter;
            if (out.problems.size() < max_problems_kept) out.problems.push_back(message);
        };
        Record record = detail::make_record(raw, number);
        json::error_code error;
        parser.reset();
        parser.write(record.text, error);
        if (error) return problem(out.malformed, "invalid JSON: " + error.message());
        const json::value value = parser.release();
        const json::object* object = value.if_object();
        if (!object)
            return problem(out.malformed,
                           "expected a JSON object with a \"" + options.text_field + "\" field");
        const json::value* field = object->if_contains(options.text_field);
        if (!field)
            return problem(out.missing_field,
                           "no \"" + options.text_field +
                               "\" field; set the source's text_field to the key holding the text");
        const json::string* string = field->if_string();
        if (!string)
            return problem(out.missing_field, "the \"" + options.text_field + "\" field is not a string");
        record.text.assign(string->data(), string->size());
        out.records.push_back(std::move(record));
    });
    return out;
}

// The documents of one file, handed to f(batch): a Parquet file about batch_bytes of its text at a time (its
// size unbounded), any other file at once, as read_records reads it.
template <class F>
void read_record_batches(const std::filesystem::path& file, const ReadOptions& options,
                         std::uint64_t batch_bytes, F&& f) {
    if (reads_as_parquet(file, options.format)) {
        detail::read_parquet_records(file, options, std::numeric_limits<std::uint64_t>::max(), batch_bytes,
                                     f);
        return;
    }
    FileRecords all = read_records(file, options);
    f(all);
}

}  // namespace lumi::data
