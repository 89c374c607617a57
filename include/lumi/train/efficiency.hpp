#pragma once

// How much of the machine a training run uses: model FLOPs per token, the device's peak, and their ratio at
// the measured tokens/s (MFU, model FLOPs utilisation, as PaLM defines it).
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "lumi/core/torch.hpp"
#include "lumi/model/spec.hpp"

namespace lumi::train {

// Model FLOPs per trained token (PaLM, appendix B): every weight that takes part in a matmul costs 2 in the
// forward pass, 2 for the gradient of its input and, when it is trained, 2 for its own gradient (so 6N for
// full training); attention's scores and weighted sums add 12 * n_layer * d_model * T (forward and backward,
// the causal half not discounted, as PaLM counts). The token embedding is a lookup, not a matmul, unless it
// is tied to the LM head. Recomputation is not counted: these are model FLOPs, not hardware FLOPs.
struct FlopsPerToken {
    std::int64_t matmul_parameters = 0, trained_matmul_parameters = 0;
    double attention = 0;
    double total() const {
        return 4.0 * double(matmul_parameters) + 2.0 * double(trained_matmul_parameters) + attention;
    }
};

template <class Named>
FlopsPerToken training_flops_per_token(const ModelSpec& spec, const Named& parameters, std::int64_t seq_len) {
    FlopsPerToken f;
    for (const auto& [name, p] : parameters) {
        if (p.dim() < 2) continue;  // norms: element-wise
        if (!spec.tie_embeddings && std::string(name).ends_with("embed_tokens.weight")) continue;
        f.matmul_parameters += p.numel();
        if (p.requires_grad()) f.trained_matmul_parameters += p.numel();
    }
    f.attention = 12.0 * double(spec.n_layer) * double(spec.d_model) * double(seq_len);
    return f;
}

// A device's peak FLOP/s for the training dtype, and where the figure comes from.
struct DevicePeak {
    double flops = 0;
    std::string source;  // "datasheet <name>", "measured (<matmul>)" or "settings"
};

namespace detail {

// Dense peaks from the vendors' datasheets (no sparsity), FLOP/s: bf16 tensor cores, and float32 as TF32
// tensor cores (what float32 matmuls use when TF32 is allowed) or CUDA cores.
struct KnownGpu {
    const char* name;  // matched as a substring of the device name
    double bf16, fp32;
};
inline constexpr std::array<KnownGpu, 9> known_gpus{{
    {"H200", 989.4e12, 66.9e12},
    {"H100 PCIe", 756.0e12, 51.2e12},
    {"H100", 989.4e12, 66.9e12},  // SXM
    {"GH200", 989.4e12, 66.9e12},
    {"A100", 312.0e12, 19.5e12},
    {"L40S", 362.1e12, 91.6e12},
    {"L4", 121.0e12, 30.3e12},
    {"A10G", 70.0e12, 31.2e12},
    {"RTX 4090", 165.2e12, 82.6e12},
}};

// The GPU's marketing name (nvidia-smi's), or empty.
inline std::string gpu_name(int index) {
    const std::string command =
        "nvidia-smi --query-gpu=name --format=csv,noheader -i " + std::to_string(index) + " 2>/dev/null";
    std::FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) return {};
    char buffer[256] = {};
    std::string name = std::fgets(buffer, sizeof buffer, pipe) ? buffer : "";
    ::pclose(pipe);
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    return name;
}

// The best rate of a few 1024^3 matmuls in `dtype` (about 50 ms on two CPU cores): what this device's matmul
// library reaches, a ceiling no training step exceeds.
inline double measured_matmul_flops(torch::Device device, torch::ScalarType dtype) {
    torch::NoGradGuard no_grad;
    constexpr std::int64_t n = 1024;
    const auto options = torch::TensorOptions().device(device).dtype(dtype);
    // Not randn: the measurement must not draw from the generator a training run is reproduced from.
    const auto a = torch::full({n, n}, 0.5, options), b = torch::full({n, n}, 0.25, options);
    auto c = torch::mm(a, b);  // warm-up: thread pool, packing buffers
    double best = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(60);
    for (int i = 0; i < 20 && (i < 3 || std::chrono::steady_clock::now() < deadline); ++i) {
        if (device.is_cuda()) torch::cuda::synchronize();
        const auto start = std::chrono::steady_clock::now();
        torch::mm_out(c, a, b);
        if (device.is_cuda()) torch::cuda::synchronize();
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        best = std::max(best, 2.0 * double(n) * double(n) * double(n) / seconds);
    }
    return best;
}

}  // namespace detail

// `configured` (FLOP/s, from the settings) wins; then a known GPU's datasheet; else a short measurement,
// taken once per process, device and dtype.
inline DevicePeak device_peak(torch::Device device, torch::ScalarType dtype, double configured = 0) {
    if (configured > 0) return {configured, "settings"};
    const bool bf16 = dtype == torch::kBFloat16 || dtype == torch::kHalf;
    if (device.is_cuda()) {
        const std::string name = detail::gpu_name(device.has_index() ? device.index() : 0);
        for (const auto& gpu : detail::known_gpus)
            if (!name.empty() && name.find(gpu.name) != std::string::npos)
                return {bf16 ? gpu.bf16 : gpu.fp32, std::string("datasheet ") + gpu.name};
    }
    static std::mutex mutex;
    static std::map<std::pair<std::string, int>, double> measured;
    const std::lock_guard<std::mutex> lock(mutex);
    auto [it, inserted] = measured.try_emplace({device.str(), int(dtype)}, 0.0);
    if (inserted) it->second = detail::measured_matmul_flops(device, dtype);
    return {it->second, std::string("measured (") + c10::toString(dtype) + " 1024^3 matmul)"};
}

}  // namespace lumi::train
