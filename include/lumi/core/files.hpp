#pragma once

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
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

// The whole file as bytes, or an error naming it.
inline std::string read_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw lumi::Error(file.string() + ": cannot open the file: " + std::strerror(errno));
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw lumi::Error(file.string() + ": read error");
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
