#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numbers>
#include <string>

#include "lumi/config/config.hpp"

namespace lumi::train {

namespace detail {
// The warm-up shared by every schedule: `steps` updates, or `ratio` of the total when steps is 0.
inline void check_warmup(std::int64_t steps, double ratio) {
    if (steps < 0) throw config::FieldError("warmup_steps", "must be >= 0");
    if (!(ratio >= 0 && ratio < 1)) throw config::FieldError("warmup_ratio", "must be in [0, 1)");
}

inline std::int64_t warmup_of(std::int64_t steps, double ratio, std::int64_t total) {
    return steps > 0 ? steps : std::int64_t(std::llround(ratio * double(total)));
}

// Update s (0-based) of a linear warm-up uses (s + 1) / warmup of the peak, so none is wasted at zero.
inline double rise(std::int64_t step, std::int64_t warmup) {
    return step < warmup ? double(step + 1) / double(warmup) : 1.0;
}
}  // namespace detail

struct ScheduleSettings {
    std::int64_t warmup_steps = 0;  // when 0, warmup_ratio of the total steps
    double warmup_ratio = 0.0;
    double min_lr_ratio = 0.1;  // the floor, as a fraction of the peak learning rate

    void validate() const {
        detail::check_warmup(warmup_steps, warmup_ratio);
        if (!(min_lr_ratio >= 0 && min_lr_ratio <= 1))
            throw config::FieldError("min_lr_ratio", "must be in [0, 1]");
    }

    std::int64_t warmup(std::int64_t total_steps) const {
        return detail::warmup_of(warmup_steps, warmup_ratio, total_steps);
    }
};

// A schedule policy: its settings aggregate and the factor applied to the peak learning rate(s) for update
// `step` (0-based) of `total`.
template <class S>
concept SchedulePolicy = requires(const typename S::Settings& settings, std::int64_t step) {
    { S::factor(settings, step, step) } -> std::convertible_to<double>;
};

namespace detail {
// Linear warm-up to the peak over `warmup` updates, then `decay(progress in [0, 1])`.
template <class Decay>
double warmup_then(const ScheduleSettings& s, std::int64_t step, std::int64_t total, Decay decay) {
    const std::int64_t warmup = s.warmup(total);
    if (step < warmup) return rise(step, warmup);
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
        return detail::rise(step, s.warmup(total));
    }
};

struct WsdSettings {
    std::int64_t warmup_steps = 0;  // when 0, warmup_ratio of the total steps
    double warmup_ratio = 0.0;
    double decay_ratio = 0.2;      // the final fraction of the steps that cools down from the peak
    std::string decay = "linear";  // the cool-down's shape: linear or cosine
    double min_lr_ratio = 0.0;     // where the cool-down ends, as a fraction of the peak

    void validate() const {
        detail::check_warmup(warmup_steps, warmup_ratio);
        if (!(decay_ratio >= 0 && decay_ratio <= 1))
            throw config::FieldError("decay_ratio", "must be in [0, 1]");
        if (decay != "linear" && decay != "cosine")
            throw config::FieldError("decay", "must be linear or cosine, found '" + decay + "'");
        if (!(min_lr_ratio >= 0 && min_lr_ratio <= 1))
            throw config::FieldError("min_lr_ratio", "must be in [0, 1]");
    }

    std::int64_t warmup(std::int64_t total_steps) const {
        return detail::warmup_of(warmup_steps, warmup_ratio, total_steps);
    }
};

// Warmup-stable-decay (the trapezoid of MiniCPM and nanochat): linear warm-up, the peak until the last
// decay_ratio of the steps, then a linear or cosine cool-down to min_lr_ratio. With warm-up and cool-down
// overlapping (a short run), the smaller factor wins.
struct WarmupStableDecay {
    using Settings = WsdSettings;
    static double factor(const Settings& s, std::int64_t step, std::int64_t total) {
        const std::int64_t warmup = s.warmup(total);
        const double rise = detail::rise(step, warmup);
        const std::int64_t decay_steps = std::llround(s.decay_ratio * double(total));
        const std::int64_t decay_start = total - decay_steps;
        if (decay_steps == 0 || step < decay_start) return rise;
        const double progress = std::clamp(double(step - decay_start) / double(decay_steps), 0.0, 1.0);
        const double shape =
            s.decay == "cosine" ? 0.5 * (1.0 + std::cos(std::numbers::pi * progress)) : 1.0 - progress;
        return std::min(rise, s.min_lr_ratio + (1.0 - s.min_lr_ratio) * shape);
    }
};

}  // namespace lumi::train
