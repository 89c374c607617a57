#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

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
#include <vector>

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

namespace detail {

inline std::string errno_text() {
    return std::strerror(errno);
}

// fsync of a file or a directory (a directory's entries, i.e. a rename into it, are durable only then).
inline void sync_path(const std::filesystem::path& path, bool directory) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
    if (fd < 0) throw lumi::Error(path.string() + ": cannot open it to sync it to disk: " + errno_text());
    const int rc = ::fsync(fd);
    const std::string reason = rc == 0 ? std::string() : errno_text();
    ::close(fd);
    if (rc != 0) throw lumi::Error(path.string() + ": cannot sync it to disk: " + reason);
}

inline std::filesystem::path parent_of(const std::filesystem::path& path) {
    return path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
}

// Every file and directory under `root`, then `root`: what a later rename of `root` publishes is on disk.
inline void sync_tree(const std::filesystem::path& root) {
    namespace fs = std::filesystem;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        if (entry.is_symlink()) continue;
        if (entry.is_directory())
            sync_path(entry.path(), true);
        else if (entry.is_regular_file())
            sync_path(entry.path(), false);
    }
    sync_path(root, true);
}

// What a commit into `target` may leave behind when it is killed: `.<name>.<n>.tmp` (a staging file or
// directory, or the old directory a commit swapped out) and `.<name>.old.tmp` (the old directory, moved
// aside by the two-rename commit of a filesystem without an atomic exchange).
inline bool is_staging_name(std::string_view name, std::string_view target) {
    if (!name.starts_with('.') || !name.ends_with(".tmp")) return false;
    name.remove_prefix(1);
    name.remove_suffix(4);
    const std::size_t dot = name.rfind('.');
    if (dot == std::string_view::npos || dot + 1 == name.size()) return false;
    if (!target.empty() && name.substr(0, dot) != target) return false;
    const std::string_view digits = name.substr(dot + 1);
    return digits.find_first_not_of("0123456789") == std::string_view::npos;
}
inline std::filesystem::path backup_of(const std::filesystem::path& target) {
    std::filesystem::path backup = target;
    std::string name = ".";
    name += target.filename().string();
    name += ".old.tmp";
    backup.replace_filename(name);
    return backup;
}

// Finishes or undoes a commit of `target` that was interrupted, and removes its staging leftovers.
inline void recover_target(const std::filesystem::path& target) {
    namespace fs = std::filesystem;
    std::error_code error;
    const fs::path backup = backup_of(target);
    if (fs::exists(fs::symlink_status(backup))) {
        // Killed between the two renames: the new directory never arrived, so the old one goes back.
        if (!fs::exists(fs::symlink_status(target)))
            fs::rename(backup, target, error);
        else
            fs::remove_all(backup, error);
        if (error) throw lumi::Error(backup.string() + ": cannot recover it: " + error.message());
    }
}

}  // namespace detail

// Removes what interrupted writes left in `dir` (staging files and directories, swapped-out old
// directories) and undoes an interrupted two-rename commit. A stage calls it on its output directory when
// it starts, before anything else writes there.
inline void remove_leftovers(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::error_code error;
    if (!fs::is_directory(dir, error)) return;
    std::vector<fs::path> backups, staging;
    for (const auto& entry : fs::directory_iterator(dir, error)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with('.') && name.ends_with(".old.tmp") && name.size() > 9)
            backups.push_back(entry.path());
        else if (detail::is_staging_name(name, {}))
            staging.push_back(entry.path());
    }
    for (const auto& backup : backups) {
        const std::string name = backup.filename().string();
        detail::recover_target(dir / name.substr(1, name.size() - 9));
    }
    for (const auto& path : staging) {
        fs::remove_all(path, error);
        if (error)
            throw lumi::Error(path.string() +
                              ": cannot remove this leftover of an interrupted write: " + error.message());
    }
}

// A file written under a temporary name in its directory and renamed over `target` by commit(), after
// fsync; the directory is synced after the rename. Destroyed uncommitted, the temporary goes away: a
// reader (and a crash at any moment) sees the old file or the whole new one.
class AtomicFile {
  public:
    explicit AtomicFile(std::filesystem::path target)
        : target_(std::move(target)), temporary_(detail::sibling_temporary(target_)) {
        std::error_code error;
        if (target_.has_parent_path()) std::filesystem::create_directories(target_.parent_path(), error);
        if (error)
            throw lumi::Error(target_.string() + ": cannot write the file: cannot create its directory (" +
                              error.message() + ")");
        fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd_ < 0) throw lumi::Error(target_.string() + ": cannot write the file: " + detail::errno_text());
    }
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    ~AtomicFile() {
        if (fd_ >= 0) ::close(fd_);
        if (!committed_) ::unlink(temporary_.c_str());
    }

    const std::filesystem::path& target() const { return target_; }

    void write(std::string_view bytes) {
        while (!bytes.empty()) {
            const ::ssize_t n = ::write(fd_, bytes.data(), bytes.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0)
                throw lumi::Error(target_.string() + ": cannot write the file: " + detail::errno_text());
            bytes.remove_prefix(std::size_t(n));
        }
    }

    void commit() {
        if (::fsync(fd_) != 0)
            throw lumi::Error(target_.string() + ": cannot sync the file to disk: " + detail::errno_text());
        const int rc = ::close(fd_);
        fd_ = -1;
        if (rc != 0) throw lumi::Error(target_.string() + ": cannot write the file: " + detail::errno_text());
        if (::rename(temporary_.c_str(), target_.c_str()) != 0)
            throw lumi::Error(target_.string() + ": cannot write the file: " + detail::errno_text());
        committed_ = true;
        detail::sync_path(detail::parent_of(target_), true);
    }

  private:
    std::filesystem::path target_, temporary_;
    int fd_ = -1;
    bool committed_ = false;
};

// The whole of `bytes` as `file`, atomically and durably (AtomicFile).
inline void write_file_atomic(const std::filesystem::path& file, std::string_view bytes) {
    AtomicFile out(file);
    out.write(bytes);
    out.commit();
}

// Puts the complete directory `source` in the place of `target` (an old directory there is removed
// afterwards). Everything under `source` is synced first; the switch is one rename (an atomic exchange when
// `target` exists), so a crash leaves the old directory or the whole new one, and at worst a leftover that
// remove_leftovers() clears. A filesystem without the exchange gets two renames, whose window
// remove_leftovers() (or the next commit) closes by putting the old directory back.
inline void replace_directory(const std::filesystem::path& source, const std::filesystem::path& target) {
    namespace fs = std::filesystem;
    detail::sync_tree(source);
    const fs::path parent = detail::parent_of(target);
    auto fail = [&](const std::string& what) {
        return lumi::Error(target.string() + ": cannot move the finished directory into place: " + what);
    };
    if (::renameat2(AT_FDCWD, source.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
        detail::sync_path(parent, true);
        std::error_code ignored;
        fs::remove_all(source, ignored);  // the old directory, now under the staging name
        return;
    }
    if (errno == ENOENT && fs::exists(source) && !fs::exists(fs::symlink_status(target))) {
        if (::rename(source.c_str(), target.c_str()) != 0) throw fail(detail::errno_text());
        detail::sync_path(parent, true);
        return;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) throw fail(detail::errno_text());
    const fs::path backup = detail::backup_of(target);
    std::error_code error;
    fs::remove_all(backup, error);
    if (::rename(target.c_str(), backup.c_str()) != 0) throw fail(detail::errno_text());
    if (::rename(source.c_str(), target.c_str()) != 0) {
        const std::string reason = detail::errno_text();
        fs::rename(backup, target, error);
        throw fail(reason);
    }
    detail::sync_path(parent, true);
    fs::remove_all(backup, error);
}

// Removes a directory so that a crash never leaves half of it under its name: it is renamed to a staging
// name first (one rename), then deleted; remove_leftovers() finishes a deletion that was interrupted.
inline void remove_directory(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::error_code error;
    if (!fs::exists(fs::symlink_status(dir))) return;
    const fs::path doomed = detail::sibling_temporary(dir);
    if (::rename(dir.c_str(), doomed.c_str()) != 0)
        throw lumi::Error(dir.string() + ": cannot remove the directory: " + detail::errno_text());
    detail::sync_path(detail::parent_of(dir), true);
    fs::remove_all(doomed, error);
    if (error) throw lumi::Error(doomed.string() + ": cannot remove the directory: " + error.message());
}

// A directory built under a temporary sibling name and moved into place by commit() (replace_directory);
// destroyed uncommitted (an exception) it is removed, so `target` is either the old one or the whole new
// one. Opening one first clears what an interrupted earlier commit of the same target left behind.
class StagedDirectory {
  public:
    explicit StagedDirectory(std::filesystem::path target)
        : target_(std::move(target)), staging_(detail::sibling_temporary(target_)) {
        namespace fs = std::filesystem;
        std::error_code error;
        if (target_.has_parent_path()) fs::create_directories(target_.parent_path(), error);
        detail::recover_target(target_);
        const std::string name = target_.filename().string();
        for (const auto& entry : fs::directory_iterator(detail::parent_of(target_), error))
            if (detail::is_staging_name(entry.path().filename().string(), name))
                fs::remove_all(entry.path(), error);
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

    void commit() {
        replace_directory(staging_, target_);
        committed_ = true;
    }

  private:
    std::filesystem::path target_;
    std::filesystem::path staging_;
    bool committed_ = false;
};

}  // namespace lumi
