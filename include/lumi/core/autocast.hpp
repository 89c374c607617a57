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

// Turns on autocast to `dtype` for `device` within a scope (the C++ API changed in LibTorch 2.4).
class AutocastGuard {
  public:
    AutocastGuard(torch::DeviceType device, torch::ScalarType dtype) : device_(device) {
#if LUMI_TORCH_AT_LEAST(2, 4)
        previous_enabled_ = at::autocast::is_autocast_enabled(device);
        previous_dtype_ = at::autocast::get_autocast_dtype(device);
        at::autocast::set_autocast_enabled(device, true);
        at::autocast::set_autocast_dtype(device, dtype);
#else
        if (device == torch::kCUDA) {
            previous_enabled_ = at::autocast::is_enabled();
            previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
            at::autocast::set_enabled(true);
            at::autocast::set_autocast_gpu_dtype(dtype);
        } else {
            previous_enabled_ = at::autocast::is_cpu_enabled();
            previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
            at::autocast::set_cpu_enabled(true);
            at::autocast::set_autocast_cpu_dtype(dtype);
        }
#endif
        at::autocast::increment_nesting();
    }
    AutocastGuard(const AutocastGuard&) = delete;
    AutocastGuard& operator=(const AutocastGuard&) = delete;
    ~AutocastGuard() {
        if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if LUMI_TORCH_AT_LEAST(2, 4)
        at::autocast::set_autocast_enabled(device_, previous_enabled_);
        at::autocast::set_autocast_dtype(device_, previous_dtype_);
#else
        if (device_ == torch::kCUDA) {
            at::autocast::set_enabled(previous_enabled_);
            at::autocast::set_autocast_gpu_dtype(previous_dtype_);
        } else {
            at::autocast::set_cpu_enabled(previous_enabled_);
            at::autocast::set_autocast_cpu_dtype(previous_dtype_);
        }
#endif
    }

  private:
    torch::DeviceType device_;
    bool previous_enabled_ = false;
    torch::ScalarType previous_dtype_ = torch::kFloat32;
};

// The dtype autocast casts matmul inputs to on `device` here, if it is on (LibTorch 2.4 changed the API).
inline std::optional<torch::ScalarType> autocast_dtype(torch::DeviceType device) {
#if LUMI_TORCH_AT_LEAST(2, 4)
    if (!at::autocast::is_autocast_enabled(device)) return std::nullopt;
    return at::autocast::get_autocast_dtype(device);
#else
    if (device == torch::kCUDA) {
        if (!at::autocast::is_enabled()) return std::nullopt;
        return at::autocast::get_autocast_gpu_dtype();
    }
    if (!at::autocast::is_cpu_enabled()) return std::nullopt;
    return at::autocast::get_autocast_cpu_dtype();
#endif
}

}  // namespace lumi
