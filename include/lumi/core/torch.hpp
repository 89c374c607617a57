#pragma once

// LibTorch, and the features of the linked version detected at compile time.
#include <torch/torch.h>
#include <torch/version.h>

#define LUMI_TORCH_AT_LEAST(major, minor) \
    (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// at::scaled_dot_product_attention (fused flash / memory-efficient kernels, CPU flash kernel) arrived in 2.0.
#if LUMI_TORCH_AT_LEAST(2, 0)
#define LUMI_HAS_SDPA 1
#else
#define LUMI_HAS_SDPA 0
#endif

namespace lumi {

inline constexpr int torch_version_major = TORCH_VERSION_MAJOR;
inline constexpr int torch_version_minor = TORCH_VERSION_MINOR;
inline constexpr bool has_fused_attention = LUMI_HAS_SDPA;

// A generator of its own for initialisation, so a seed gives the same weights whatever else used the
// global one.
inline at::Generator make_generator(std::uint64_t seed) {
    return at::make_generator<at::CPUGeneratorImpl>(seed);
}

}  // namespace lumi
