#pragma once

// Autocast (mixed precision) across LibTorch versions, and whether this CPU computes bfloat16 natively. In
// core because the model's fused kernels ask which dtype autocast gives the next matmul.
#include <fstream>
#include <optional>
#include <string>

#include <ATen/autocast_mode.h>

#include "lumi/core/torch.hpp"

namespace lumi {

// Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX); without it bf16 is emulated.
inline bool cpu_has_bf16() {
    static const bool has = [] {
        std::ifstream in("/proc/cpuinfo");
        std::string word;
        while (in >> word)
            if (word == "avx512_bf16" || word == "amx_bf16") return true;
        return false;
    }();
    return has;
}

namespace detail {

// Whether autocast is on for `device` and its dtype; one place for the API LibTorch 2.4 changed.
struct AutocastState {
    bool enabled = false;
    torch::ScalarType dtype = torch::kFloat32;
};

inline AutocastState autocast_state(torch::DeviceType device) {
#if LUMI_TORCH_AT_LEAST(2, 4)
    return {at::autocast::is_autocast_enabled(device), at::autocast::get_autocast_dtype(device)};
#else
    if (device == torch::kCUDA) return {at::autocast::is_enabled(), at::autocast::get_autocast_gpu_dtype()};
    return {at::autocast::is_cpu_enabled(), at::autocast::get_autocast_cpu_dtype()};
#endif
}

inline void set_autocast_state(torch::DeviceType device, const AutocastState& state) {
#if LUMI_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(device, state.enabled);
    at::autocast::set_autocast_dtype(device, state.dtype);
#else
    if (device == torch::kCUDA) {
        at::autocast::set_enabled(state.enabled);
        at::autocast::set_autocast_gpu_dtype(state.dtype);
    } else {
        at::autocast::set_cpu_enabled(state.enabled);
        at::autocast::set_autocast_cpu_dtype(state.dtype);
    }
#endif
}

}  // namespace detail

// Turns on autocast to `dtype` for `device` within a scope, restoring what was set before.
class AutocastGuard {
  public:
    AutocastGuard(torch::DeviceType device, torch::ScalarType dtype)
        : device_(device), previous_(detail::autocast_state(device)) {
        detail::set_autocast_state(device, {true, dtype});
        at::autocast::increment_nesting();
    }
    AutocastGuard(const AutocastGuard&) = delete;
    AutocastGuard& operator=(const AutocastGuard&) = delete;
    ~AutocastGuard() {
        if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
        detail::set_autocast_state(device_, previous_);
    }

  private:
    torch::DeviceType device_;
    detail::AutocastState previous_;
};

// The dtype autocast casts matmul inputs to on `device` here, if it is on.
inline std::optional<torch::ScalarType> autocast_dtype(torch::DeviceType device) {
    const auto state = detail::autocast_state(device);
    if (!state.enabled) return std::nullopt;
    return state.dtype;
}

}  // namespace lumi
