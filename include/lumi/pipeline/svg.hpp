#pragma once

// Line charts as SVG, written by hand: a report needs loss and learning-rate curves, not a plotting library.
//
//   lumi::pipeline::Chart chart{.title = "pretraining loss", .x_label = "step", .y_label = "loss"};
//   chart.series.push_back({.name = "train", .points = {{10, 5.1}, {20, 4.7}}});
//   chart.series.push_back({.name = "validation", .points = {{100, 4.2}}, .markers = true});
//   lumi::write_file_atomic("loss.svg", lumi::pipeline::svg(chart));

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lumi::pipeline {

struct Series {
    std::string name;
    std::vector<std::pair<double, double>> points;  // (x, y), in x order
    std::string colour = "#1f77b4";
    bool markers = false;  // circles at the points as well as a line
};

struct Chart {
    std::string title;
    std::string x_label = "step";
    std::string y_label;
    std::vector<Series> series;
    int width = 640, height = 320;
};

namespace detail {

inline std::string escape_xml(std::string_view text) {
    std::string out;
    for (const char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

inline std::string short_number(double value) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.3g", value);
    return buffer;
}

// About `count` round tick values (1, 2 or 5 times a power of ten apart) covering [low, high].
inline std::vector<double> ticks(double low, double high, int count = 5) {
    if (!(high > low)) return {low};
    const double raw = (high - low) / count;
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    const double step = raw / magnitude < 2   ? 2 * magnitude
                        : raw / magnitude < 5 ? 5 * magnitude
                                              : 10 * magnitude;
    std::vector<double> out;
    for (double t = std::ceil(low / step) * step; t <= high + step * 1e-9; t += step)
        out.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    return out;
}

}  // namespace detail

// A complete SVG document: axes with ticks, one polyline per series (markers where asked), a legend.
inline std::string svg(const Chart& chart) {
    const double left = 64, right = 16, top = 32, bottom = 44;
    const double w = chart.width - left - right, h = chart.height - top - bottom;
    double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
    for (const auto& s : chart.series)
        for (const auto& [x, y] : s.points) {
            if (!std::isfinite(x) || !std::isfinite(y)) continue;
            x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
        }
    if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + std::max(1e-9, std::abs(y0) * 0.1), y0 -= std::max(1e-9, std::abs(y0) * 0.1);
    const double pad = (y1 - y0) * 0.05;
    y0 -= pad, y1 += pad;
    auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * w; };
    auto py = [&](double y) { return top + (1 - (y - y0) / (y1 - y0)) * h; };
    auto num = [](double v) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%.1f", v);
        return std::string(buffer);
    };

    std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(chart.width) +
                      "\" height=\"" + std::to_string(chart.height) + "\" viewBox=\"0 0 " +
                      std::to_string(chart.width) + " " + std::to_string(chart.height) +
                      "\" font-family=\"sans-serif\" font-size=\"11\">\n";
    out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    out += "<text x=\"" + num(left + w / 2) + "\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">" +
           detail::escape_xml(chart.title) + "</text>\n";
    for (const double t : detail::ticks(x0, x1)) {
        out += "<line x1=\"" + num(px(t)) + "\" y1=\"" + num(top) + "\" x2=\"" + num(px(t)) + "\" y2=\"" +
               num(top + h) + "\" stroke=\"#e5e5e5\"/>\n";
        out += "<text x=\"" + num(px(t)) + "\" y=\"" + num(top + h + 14) + "\" text-anchor=\"middle\">" +
               detail::short_number(t) + "</text>\n";
    }
    for (const double t : detail::ticks(y0, y1)) {
        out += "<line x1=\"" + num(left) + "\" y1=\"" + num(py(t)) + "\" x2=\"" + num(left + w) + "\" y2=\"" +
               num(py(t)) + "\" stroke=\"#e5e5e5\"/>\n";
        out += "<text x=\"" + num(left - 6) + "\" y=\"" + num(py(t) + 4) + "\" text-anchor=\"end\">" +
               detail::short_number(t) + "</text>\n";
    }
    out += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(w) + "\" height=\"" +
           num(h) + "\" fill=\"none\" stroke=\"#333\"/>\n";
    out += "<text x=\"" + num(left + w / 2) + "\" y=\"" + num(chart.height - 8.0) +
           "\" text-anchor=\"middle\">" + detail::escape_xml(chart.x_label) + "</text>\n";
    out += "<text x=\"14\" y=\"" + num(top + h / 2) + "\" text-anchor=\"middle\" transform=\"rotate(-90 14 " +
           num(top + h / 2) + ")\">" + detail::escape_xml(chart.y_label) + "</text>\n";

    double legend_y = top + 14;
    for (const auto& s : chart.series) {
        std::string points;
        for (const auto& [x, y] : s.points)
            if (std::isfinite(x) && std::isfinite(y)) points += num(px(x)) + "," + num(py(y)) + " ";
        if (!points.empty()) points.pop_back();
        out += "<polyline fill=\"none\" stroke=\"" + s.colour + "\" stroke-width=\"1.5\" points=\"" + points +
               "\"/>\n";
        if (s.markers)
            for (const auto& [x, y] : s.points)
                if (std::isfinite(x) && std::isfinite(y))
                    out += "<circle cx=\"" + num(px(x)) + "\" cy=\"" + num(py(y)) + "\" r=\"3\" fill=\"" +
                           s.colour + "\"/>\n";
        out += "<line x1=\"" + num(left + w - 110) + "\" y1=\"" + num(legend_y - 4) + "\" x2=\"" +
               num(left + w - 92) + "\" y2=\"" + num(legend_y - 4) + "\" stroke=\"" + s.colour +
               "\" stroke-width=\"2\"/>\n";
        out += "<text x=\"" + num(left + w - 86) + "\" y=\"" + num(legend_y) + "\">" +
               detail::escape_xml(s.name) + "</text>\n";
        legend_y += 14;
    }
    return out + "</svg>\n";
}

}  // namespace lumi::pipeline
