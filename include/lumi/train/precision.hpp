#pragma once

#include <optional>

#include "lumi/config/config.hpp"
#include "lumi/core/autocast.hpp"
#include "lumi/core/device.hpp"

namespace lumi::train {

using lumi::AutocastGuard;
using lumi::cpu_has_bf16;

using lumi::Dtype;

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
