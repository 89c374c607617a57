#pragma once

// A stage's scratch file: what a data stage has processed but not yet written, on disk instead of in memory.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "lumi/core/error.hpp"

namespace lumi::data {

// A failure of the stage itself (its scratch file), as opposed to a bad source file that errors.bad_files
// may skip.
class StageError : public lumi::Error {
  public:
    using lumi::Error::Error;
};

// The cleaned texts that passed exact deduplication, appended to a file in the staging directory and read
// back when the shards are written: memory holds the documents being processed, not the corpus.
class SpillFile {
  public:
    explicit SpillFile(std::filesystem::path path) : path_(std::move(path)) {
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd_ < 0) throw StageError(path_.string() + ": cannot create: " + std::strerror(errno));
    }
    SpillFile(const SpillFile&) = delete;
    SpillFile& operator=(const SpillFile&) = delete;
    ~SpillFile() {
        ::close(fd_);
        std::error_code ignored;
        std::filesystem::remove(path_, ignored);
    }

    std::uint64_t bytes() const { return written_ + pending_.size(); }

    std::uint64_t append(std::string_view text) {
        const std::uint64_t offset = bytes();
        pending_ += text;
        if (pending_.size() >= flush_bytes) flush();
        return offset;
    }

    std::string read(std::uint64_t offset, std::uint64_t length) {
        if (offset + length > written_) flush();
        std::string out(length, '\0');
        for (std::uint64_t done = 0; done < length;) {
            const ssize_t n =
                ::pread(fd_, out.data() + done, length - done, static_cast<off_t>(offset + done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0)
                throw StageError(path_.string() + ": cannot read back: " +
                                 (n < 0 ? std::strerror(errno) : "the file is shorter than written"));
            done += static_cast<std::uint64_t>(n);
        }
        return out;
    }

  private:
    static constexpr std::size_t flush_bytes = std::size_t{8} << 20;

    void flush() {
        for (std::size_t done = 0; done < pending_.size();) {
            const ssize_t n = ::pwrite(fd_, pending_.data() + done, pending_.size() - done,
                                       static_cast<off_t>(written_ + done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw StageError(path_.string() + ": cannot write: " + std::strerror(errno));
            done += static_cast<std::size_t>(n);
        }
        written_ += pending_.size();
        pending_.clear();
    }

    std::filesystem::path path_;
    int fd_ = -1;
    std::uint64_t written_ = 0;
    std::string pending_;
};

}  // namespace lumi::data
