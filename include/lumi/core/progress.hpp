#pragma once

// Progress of a long stage (training, data preparation): a bar with rate and ETA on a terminal, plain
// periodic lines in logs and pipes.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

namespace lumi {

inline std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "--:--";
    const long s = std::lround(seconds);
    char buffer[32];
    if (s >= 3600)
        std::snprintf(buffer, sizeof buffer, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
        std::snprintf(buffer, sizeof buffer, "%02ld:%02ld", s / 60, s % 60);
    return buffer;
}

// A one-line bar redrawn in place on a terminal; plain lines otherwise (logs, CI): every `every` units of
// progress, or with `every` 0 at most one per `plain_seconds`.
class ProgressBar {
  public:
    ProgressBar(std::string label, std::int64_t total, std::int64_t every, std::FILE* out = stderr)
        : label_(std::move(label)),
          total_(total),
          every_(std::max<std::int64_t>(0, every)),
          out_(out),
          terminal_(isatty(fileno(out)) != 0),
          start_(std::chrono::steady_clock::now()),
          last_(start_) {}

    // `done` of `total`, started this run at `first`; `detail` is e.g. "loss 3.21 lr 3e-4 tok/s 1200".
    void update(std::int64_t done, std::int64_t first, const std::string& detail) {
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        const double rate = done > first ? double(done - first) / elapsed : 0.0;
        const double eta = rate > 0 ? double(total_ - done) / rate : NAN;
        if (terminal_) {
            const int width = 24;
            const int filled = total_ > 0 ? int(double(width) * double(done) / double(total_)) : 0;
            std::string bar(std::size_t(filled), '#');
            bar.resize(width, '.');
            std::fprintf(out_, "\r%s [%s] %lld/%lld %s | %s<%s  ", label_.c_str(), bar.c_str(),
                         (long long)done, (long long)total_, detail.c_str(), format_duration(elapsed).c_str(),
                         format_duration(eta).c_str());
            if (done >= total_) std::fputc('\n', out_);
            std::fflush(out_);
        } else if (plain_due(done)) {
            std::fprintf(out_, "%s %lld/%lld %s elapsed %s eta %s\n", label_.c_str(), (long long)done,
                         (long long)total_, detail.c_str(), format_duration(elapsed).c_str(),
                         format_duration(eta).c_str());
            std::fflush(out_);
        }
    }
    static constexpr double plain_seconds = 10;

    // Ends an in-place line before other output.
    void interrupt() {
        if (terminal_) std::fputc('\n', out_);
    }

  private:
    bool plain_due(std::int64_t done) {
        if (done >= total_) return true;
        if (every_ > 0) return done % every_ == 0;
        const auto now = std::chrono::steady_clock::now();
        if (std::chrono::duration<double>(now - last_).count() < plain_seconds) return false;
        last_ = now;
        return true;
    }

    std::string label_;
    std::int64_t total_, every_;
    std::FILE* out_;
    bool terminal_;
    std::chrono::steady_clock::time_point start_, last_;
};

// A data stage's progress through its input, in MiB with the rate: nothing for inputs under 64 MiB (they take
// seconds), a ProgressBar above. advance() stays below the total until finish(), since what a stage counts
// (text read) only approximates the bytes of its files.
class InputProgress {
  public:
    static constexpr std::uint64_t min_bytes = std::uint64_t{64} << 20;

    InputProgress(std::string label, std::uint64_t total_bytes, bool show) : total_(total_bytes) {
        if (show && total_bytes >= min_bytes) bar_.emplace(std::move(label) + " MiB", mib(total_bytes), 0);
    }

    void advance(std::uint64_t bytes, const std::string& detail = {}) {
        done_ += bytes;
        if (bar_) bar_->update(std::min(mib(done_), mib(total_) - 1), 0, rate() + detail);
    }

    void finish(const std::string& detail = {}) {
        if (bar_) bar_->update(mib(total_), 0, rate() + detail);
        bar_.reset();
    }

  private:
    static std::int64_t mib(std::uint64_t bytes) { return static_cast<std::int64_t>(bytes >> 20); }

    std::string rate() const {
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        char text[32];
        std::snprintf(text, sizeof text, "%.1f MiB/s", double(done_) / (1 << 20) / std::max(seconds, 1e-9));
        return text;
    }

    std::uint64_t total_, done_ = 0;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    std::optional<ProgressBar> bar_;
};

}  // namespace lumi
