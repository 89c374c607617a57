#pragma once

// results.json: every metric with its definition, sample size and time, plus free-form run information and
// per-task details; a table printer; and a side-by-side comparison of two runs (pretrain against SFT).
//
//   {"info": {"model": "runs/x/checkpoint"},
//    "metrics": {"boolq.accuracy": {"value": 0.62, "definition": "...", "sample_size": 3270,
//                                   "sample_unit": "examples", "seconds": 41.2, "higher_is_better": true}},
//    "details": {"smoke": [...]}}

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/error.hpp>

namespace lumi::eval {

struct Metric {
    std::string name;  // `task.figure`, e.g. `wikitext.word_perplexity`
    double value = 0;
    std::string definition;  // how the value is computed, precisely enough to reproduce it
    std::int64_t sample_size = 0;
    std::string sample_unit;  // what sample_size counts: tokens, words, bytes, examples, prompts
    double seconds = 0;       // the task's wall time
    bool higher_is_better = true;
};

struct Results {
    boost::json::object info;     // model, checkpoint, tokenizer, device, date: whatever identifies the run
    std::vector<Metric> metrics;  // in the order they were added
    boost::json::object details;  // per task: per-example outputs and settings

    void add(std::vector<Metric> more) {
        for (auto& metric : more) metrics.push_back(std::move(metric));
    }
    const Metric* find(std::string_view name) const {
        for (const auto& metric : metrics)
            if (metric.name == name) return &metric;
        return nullptr;
    }
};

inline boost::json::value to_json(const Results& results) {
    boost::json::object metrics;
    for (const Metric& m : results.metrics)
        metrics[m.name] = boost::json::object{{"value", m.value},
                                              {"definition", m.definition},
                                              {"sample_size", m.sample_size},
                                              {"sample_unit", m.sample_unit},
                                              {"seconds", m.seconds},
                                              {"higher_is_better", m.higher_is_better}};
    return boost::json::object{{"info", results.info}, {"metrics", metrics}, {"details", results.details}};
}

namespace detail {

inline const boost::json::value& member(const boost::json::object& object, std::string_view key,
                                        boost::json::kind kind, const std::string& where) {
    const boost::json::value* value = object.if_contains(key);
    const bool number = kind == boost::json::kind::double_;
    if (!value || (number ? !value->is_number() : value->kind() != kind))
        throw lumi::Error(where + "." + std::string(key) + ": missing or not " +
                          (number                              ? "a number"
                           : kind == boost::json::kind::string ? "a string"
                           : kind == boost::json::kind::bool_  ? "a boolean"
                           : kind == boost::json::kind::int64  ? "an integer"
                                                               : "an object"));
    return *value;
}

}  // namespace detail

inline Results results_from_json(const boost::json::value& root, const std::string& origin) {
    if (!root.is_object()) throw lumi::Error(origin + ": expected a results object");
    const auto& object = root.as_object();
    Results results;
    if (const auto* info = object.if_contains("info"); info && info->is_object())
        results.info = info->as_object();
    if (const auto* details = object.if_contains("details"); details && details->is_object())
        results.details = details->as_object();
    const auto* metrics = object.if_contains("metrics");
    if (!metrics || !metrics->is_object()) throw lumi::Error(origin + ": metrics: missing or not an object");
    using boost::json::kind;
    for (const auto& [name, body] : metrics->as_object()) {
        const std::string where = origin + ": metrics." + std::string(name);
        if (!body.is_object()) throw lumi::Error(where + ": expected an object");
        const auto& m = body.as_object();
        results.metrics.push_back(
            {.name = std::string(name),
             // null: a metric that could not be computed (written for NaN)
             .value = m.contains("value") && m.at("value").is_null()
                          ? std::numeric_limits<double>::quiet_NaN()
                          : detail::member(m, "value", kind::double_, where).to_number<double>(),
             .definition = std::string(detail::member(m, "definition", kind::string, where).as_string()),
             .sample_size = detail::member(m, "sample_size", kind::double_, where).to_number<std::int64_t>(),
             .sample_unit = std::string(detail::member(m, "sample_unit", kind::string, where).as_string()),
             .seconds = detail::member(m, "seconds", kind::double_, where).to_number<double>(),
             .higher_is_better = detail::member(m, "higher_is_better", kind::bool_, where).as_bool()});
    }
    return results;
}

// Written atomically: a reader never sees half a file.
inline void write_results(const Results& results, const std::filesystem::path& file) {
    lumi::config::write_json_file(to_json(results), file);
}

inline Results read_results(const std::filesystem::path& file) {
    return results_from_json(lumi::config::read_json_file(file), file.string());
}

namespace detail {

// Six significant digits: perplexities in the thousands and accuracies alike.
inline std::string number(double value) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.6g", value);
    return buffer;
}

inline std::string pad(std::string text, std::size_t width, bool right) {
    if (text.size() >= width) return text;
    return right ? std::string(width - text.size(), ' ') + text
                 : text + std::string(width - text.size(), ' ');
}

// Columns sized to their widest cell; the first column left-aligned, the others right-aligned.
inline std::string table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> widths;
    for (const auto& row : rows)
        for (std::size_t c = 0; c < row.size(); ++c) {
            if (widths.size() <= c) widths.push_back(0);
            widths[c] = std::max(widths[c], row[c].size());
        }
    std::string out;
    for (std::size_t r = 0; r < rows.size(); ++r) {
        for (std::size_t c = 0; c < rows[r].size(); ++c)
            out += (c > 0 ? "  " : "") + pad(rows[r][c], widths[c], c > 0);
        while (!out.empty() && out.back() == ' ') out.pop_back();
        out += '\n';
        if (r == 0) {
            std::size_t total = 0;
            for (std::size_t w : widths) total += w + 2;
            out += std::string(total - 2, '-') + '\n';
        }
    }
    return out;
}

}  // namespace detail

// One line per metric: value, sample size and unit, seconds.
inline std::string format_table(const Results& results) {
    std::vector<std::vector<std::string>> rows{{"metric", "value", "n", "unit", "seconds"}};
    for (const Metric& m : results.metrics)
        rows.push_back({m.name, detail::number(m.value), std::to_string(m.sample_size), m.sample_unit,
                        detail::number(std::round(m.seconds * 10) / 10)});
    return detail::table(rows);
}

// The metrics of a and b side by side with b - a, relative change and whether b is better; metrics found in
// only one of them are listed with a blank on the other side.
inline std::string compare(const Results& a, const Results& b, std::string_view label_a = "a",
                           std::string_view label_b = "b") {
    std::vector<std::vector<std::string>> rows{
        {"metric", std::string(label_a), std::string(label_b), "delta", "relative", ""}};
    auto add = [&](const Metric* x, const Metric* y) {
        const Metric& any = x ? *x : *y;
        std::vector<std::string> row{
            any.name, x ? detail::number(x->value) : "-", y ? detail::number(y->value) : "-", "", "", ""};
        if (x && y) {
            double delta = y->value - x->value;
            // Boost.JSON before 1.83 may read a double back a few ulps off: no change, not a tiny one.
            if (std::abs(delta) <= 1e-12 * std::max(std::abs(x->value), std::abs(y->value))) delta = 0;
            row[3] = (delta > 0 ? "+" : "") + detail::number(delta);
            if (x->value != 0) {
                char relative[32];
                std::snprintf(relative, sizeof relative, "%+.3g%%", 100 * delta / std::abs(x->value));
                row[4] = relative;
            }
            if (delta != 0) row[5] = (delta > 0) == any.higher_is_better ? "better" : "worse";
        }
        rows.push_back(std::move(row));
    };
    for (const Metric& x : a.metrics) add(&x, b.find(x.name));
    for (const Metric& y : b.metrics)
        if (!a.find(y.name)) add(nullptr, &y);
    return detail::table(rows);
}

inline std::string compare(const std::filesystem::path& a, const std::filesystem::path& b) {
    return compare(read_results(a), read_results(b), a.string(), b.string());
}

}  // namespace lumi::eval
