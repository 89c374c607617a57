#pragma once

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"

namespace lumi::train {

// Appends one JSON object per line; flushed per line so a crash loses at most the line being written.
// Opened for a new run it starts empty; for a run resumed at `resumed_step` it keeps the records up to that
// step and drops the later ones (and a torn last line), which the resumed run writes again: no step twice.
class MetricsLog {
  public:
    MetricsLog() = default;
    MetricsLog(const std::filesystem::path& file, std::optional<std::int64_t> resumed_step) : file_(file) {
        std::string kept;
        if (resumed_step && std::filesystem::exists(file)) {
            std::ifstream in(file, std::ios::binary);
            for (std::string line; std::getline(in, line);) {
                boost::json::error_code error;
                const boost::json::value record = boost::json::parse(line, error);
                const boost::json::value* step =
                    !error && record.is_object() ? record.get_object().if_contains("step") : nullptr;
                if (step && step->is_int64() && step->get_int64() <= *resumed_step) kept += line + "\n";
            }
            if (in.bad()) throw lumi::Error(file.string() + ": cannot read the metrics log");
        }
        write_file_atomic(file, kept);
        out_.open(file, std::ios::app | std::ios::binary);
        if (!out_) throw lumi::Error(file.string() + ": cannot open the metrics log for writing");
    }
    MetricsLog(MetricsLog&&) = default;
    MetricsLog& operator=(MetricsLog&&) = default;
    void write(const boost::json::object& record) {
        if (!out_.is_open()) return;
        out_ << config::format_json_line(record) << '\n';  // valid JSON even for a NaN
        out_.flush();
    }
    const std::filesystem::path& file() const { return file_; }

  private:
    std::filesystem::path file_;
    std::ofstream out_;
};

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

// A one-line bar redrawn in place on a terminal; plain lines every `every` updates otherwise (logs, CI).
class Progress {
  public:
    Progress(std::string label, std::int64_t total, std::int64_t every, std::FILE* out = stderr)
        : label_(std::move(label)),
          total_(total),
          every_(std::max<std::int64_t>(1, every)),
          out_(out),
          terminal_(isatty(fileno(out)) != 0),
          start_(std::chrono::steady_clock::now()) {}

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
        } else if (done % every_ == 0 || done >= total_) {
            std::fprintf(out_, "%s %lld/%lld %s elapsed %s eta %s\n", label_.c_str(), (long long)done,
                         (long long)total_, detail.c_str(), format_duration(elapsed).c_str(),
                         format_duration(eta).c_str());
            std::fflush(out_);
        }
    }
    // Ends an in-place line before other output.
    void interrupt() {
        if (terminal_) std::fputc('\n', out_);
    }

  private:
    std::string label_;
    std::int64_t total_, every_;
    std::FILE* out_;
    bool terminal_;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace lumi::train
