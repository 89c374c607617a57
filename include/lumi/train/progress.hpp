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
#include "lumi/core/progress.hpp"

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

// The bar is lumi::ProgressBar (core/progress.hpp), shared with the data stages.
using Progress = lumi::ProgressBar;
using lumi::format_duration;

}  // namespace lumi::train
