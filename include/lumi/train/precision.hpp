#pragma once

#include <fstream>
#include <string>

#include <ATen/autocast_mode.h>

#include "lumi/config/config.hpp"
#include "lumi/core/torch.hpp"

namespace lumi::train {

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

enum class Dtype { float32, bfloat16 };

struct PrecisionSettings {
    Dtype dtype = Dtype::bfloat16;           // matmuls in bfloat16 with float32 master weights
    bool cpu_bf16_without_hardware = false;  // emulated bf16 is slower than float32: off unless asked
};

// Precision policies: `guard(device)` returns what to hold around forward passes.
struct FullPrecision {
    using Settings = PrecisionSettings;
    static const char* describe(const Settings&, torch::Device) { return "float32"; }
    static torch::ScalarType compute_dtype(const Settings&, torch::Device) { return torch::kFloat32; }
    static std::optional<AutocastGuard> guard(const Settings&, torch::Device) { return std::nullopt; }
};

struct MixedPrecision {
    using Settings = PrecisionSettings;
    static bool active(const Settings& s, torch::Device device) {
        if (s.dtype != Dtype::bfloat16) return false;
        return device.is_cuda() || cpu_has_bf16() || s.cpu_bf16_without_hardware;
    }
    static const char* describe(const Settings& s, torch::Device device) {
        if (active(s, device)) return "bfloat16 autocast, float32 weights";
        return s.dtype == Dtype::bfloat16 ? "float32 (this CPU has no native bfloat16)" : "float32";
    }
    // The dtype of the matmuls: what the device's peak is taken for.
    static torch::ScalarType compute_dtype(const Settings& s, torch::Device device) {
        return active(s, device) ? torch::kBFloat16 : torch::kFloat32;
    }
    static std::optional<AutocastGuard> guard(const Settings& s, torch::Device device) {
        if (!active(s, device)) return std::nullopt;
        return std::optional<AutocastGuard>(std::in_place, device.type(), torch::kBFloat16);
    }
};

}  // namespace lumi::train
