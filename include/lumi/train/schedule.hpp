#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "lumi/config/config.hpp"

namespace lumi::train {

struct ScheduleSettings {
    std::int64_t warmup_steps = 0;  // when 0, warmup_ratio of the total steps
    double warmup_ratio = 0.0;
    double min_lr_ratio = 0.1;  // the floor, as a fraction of the peak learning rate

    void validate() const {
        if (warmup_steps < 0) throw config::FieldError("warmup_steps", "must be >= 0");
        if (!(warmup_ratio >= 0 && warmup_ratio < 1))
            throw config::FieldError("warmup_ratio", "must be in [0, 1)");
        if (!(min_lr_ratio >= 0 && min_lr_ratio <= 1))
            throw config::FieldError("min_lr_ratio", "must be in [0, 1]");
    }

    std::int64_t warmup(std::int64_t total_steps) const {
        return warmup_steps > 0 ? warmup_steps
                                : std::int64_t(std::llround(warmup_ratio * double(total_steps)));
    }
};

namespace detail {
// Linear warm-up to the peak over `warmup` updates (update s uses (s + 1) / warmup, so none is wasted at
// zero), then `decay(progress in [0, 1])`.
template <class Decay>
double warmup_then(const ScheduleSettings& s, std::int64_t step, std::int64_t total, Decay decay) {
    const std::int64_t warmup = s.warmup(total);
    if (step < warmup) return double(step + 1) / double(warmup);
    const double span = double(std::max<std::int64_t>(1, total - warmup));
    const double progress = std::clamp(double(step - warmup) / span, 0.0, 1.0);
    return s.min_lr_ratio + (1.0 - s.min_lr_ratio) * decay(progress);
}
}  // namespace detail

// Schedules: the factor applied to the peak learning rate for update `step` (0-based) of `total`.
struct CosineWarmup {
    using Settings = ScheduleSettings;
    static double factor(const Settings& s, std::int64_t step, std::int64_t total) {
        return detail::warmup_then(s, step, total,
                                   [](double p) { return 0.5 * (1.0 + std::cos(std::numbers::pi * p)); });
    }
};

struct LinearWarmup {
    using Settings = ScheduleSettings;
    static double factor(const Settings& s, std::int64_t step, std::int64_t total) {
        return detail::warmup_then(s, step, total, [](double p) { return 1.0 - p; });
    }
};

struct ConstantWarmup {
    using Settings = ScheduleSettings;
    static double factor(const Settings& s, std::int64_t step, std::int64_t total) {
        const std::int64_t warmup = s.warmup(total);
        return step < warmup ? double(step + 1) / double(warmup) : 1.0;
    }
};

}  // namespace lumi::train
