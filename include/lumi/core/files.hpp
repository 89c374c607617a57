#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

#include "lumi/core/error.hpp"

namespace lumi {

namespace detail {
inline std::filesystem::path sibling_temporary(const std::filesystem::path& target) {
    std::string name = ".";  // built with += : GCC 12 misreports "." + std::string&& as an overflow
    name += target.filename().string();
    name += ".";
    name += std::to_string(std::random_device{}());
    name += ".tmp";
    std::filesystem::path temporary = target;
    temporary.replace_filename(name);
    return temporary;
}
}  // namespace detail

// An input stream on `file`, or an error naming it: missing, unreadable or a directory (which a stream
// would otherwise read as an empty file).
inline std::ifstream open_file(const std::filesystem::path& file) {
    std::error_code error;
    if (std::filesystem::is_directory(file, error))
        throw lumi::Error(file.string() + ": is a directory, expected a file");
    std::ifstream in(file, std::ios::binary);
    if (!in) throw lumi::Error(file.string() + ": cannot open the file: " + std::strerror(errno));
    return in;
}

// Whole-file reads stop at this size unless told otherwise: a wrong path (a disk image, a device) must not
// exhaust the memory.
inline constexpr std::uint64_t default_max_file_bytes = std::uint64_t{4} << 30;

// The whole file as bytes, or an error naming it: missing, unreadable, a directory, larger than `max_bytes`,
// or more than the memory holds.
inline std::string read_file(const std::filesystem::path& file,
                             std::uint64_t max_bytes = default_max_file_bytes) {
    namespace fs = std::filesystem;
    std::ifstream in = open_file(file);
    std::error_code error;
    const fs::file_status status = fs::status(file, error);
    const std::uint64_t size = fs::is_regular_file(status) ? fs::file_size(file, error) : 0;
    auto too_large = [&](std::uint64_t bytes) {
        return lumi::Error(file.string() + ": " + std::to_string(bytes) +
                           " bytes or more, larger than the limit of " + std::to_string(max_bytes) +
                           " bytes for a file read whole");
    };
    if (!error && size > max_bytes) throw too_large(size);
    std::string bytes;
    try {
        bytes.reserve(error ? 0 : size);
        // In blocks, so a file that grows (or a pipe) still stops at the limit.
        std::string block(std::size_t{1} << 20, '\0');
        while (in) {
            in.read(block.data(), static_cast<std::streamsize>(block.size()));
            const auto got = static_cast<std::size_t>(in.gcount());
            if (bytes.size() + got > max_bytes) throw too_large(bytes.size() + got);
            bytes.append(block.data(), got);
        }
    } catch (const std::bad_alloc&) {
        throw lumi::Error(file.string() + ": out of memory reading " + std::to_string(size) + " bytes");
    }
    if (in.bad()) throw lumi::Error(file.string() + ": read error: " + std::strerror(errno));
    return bytes;
}

// Writes to a temporary file in the same directory, then renames: a reader never sees half a file.
inline void write_file_atomic(const std::filesystem::path& file, std::string_view bytes) {
    namespace fs = std::filesystem;
    std::error_code ignored;
    if (file.has_parent_path()) fs::create_directories(file.parent_path(), ignored);
    const fs::path temporary = detail::sibling_temporary(file);
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        out.close();
        if (!out) {
            const std::string reason = std::strerror(errno);
            fs::remove(temporary, ignored);
            throw lumi::Error(file.string() + ": cannot write the file: " + reason);
        }
    }
    std::error_code error;
    fs::rename(temporary, file, error);
    if (error) {
        fs::remove(temporary, ignored);
        throw lumi::Error(file.string() + ": cannot write the file: " + error.message());
    }
}

// A directory built under a temporary sibling name and renamed into place by commit(); destroyed
// uncommitted (an exception, a crash) it is removed, so `target` is either the old one or the whole new one.
class StagedDirectory {
  public:
    explicit StagedDirectory(std::filesystem::path target)
        : target_(std::move(target)), staging_(detail::sibling_temporary(target_)) {
        namespace fs = std::filesystem;
        std::error_code error;
        if (target_.has_parent_path()) fs::create_directories(target_.parent_path(), error);
        fs::create_directories(staging_, error);
        if (error) throw lumi::Error(staging_.string() + ": cannot create the directory: " + error.message());
    }
    StagedDirectory(const StagedDirectory&) = delete;
    StagedDirectory& operator=(const StagedDirectory&) = delete;
    ~StagedDirectory() {
        std::error_code ignored;
        if (!committed_) std::filesystem::remove_all(staging_, ignored);
    }

    // Where to write the files until commit().
    const std::filesystem::path& path() const { return staging_; }
    const std::filesystem::path& target() const { return target_; }

    // Replaces `target` (an old directory of that name is removed only after the new one is complete).
    void commit() {
        namespace fs = std::filesystem;
        std::error_code error;
        fs::path old;
        if (fs::exists(target_)) {
            old = detail::sibling_temporary(target_);
            fs::rename(target_, old, error);
            if (error)
                throw lumi::Error(target_.string() + ": cannot replace the directory: " + error.message());
        }
        fs::rename(staging_, target_, error);
        if (error) {
            if (!old.empty()) fs::rename(old, target_, error);
            throw lumi::Error(target_.string() +
                              ": cannot move the finished directory into place: " + error.message());
        }
        committed_ = true;
        if (!old.empty()) fs::remove_all(old, error);
    }

  private:
    std::filesystem::path target_;
    std::filesystem::path staging_;
    bool committed_ = false;
};

}  // namespace lumi
