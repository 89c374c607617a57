#pragma once

// Element access for the fused CPU kernels, which read and write float32 or bfloat16 buffers and compute in
// float32. Conversions are written out (bit shifts, round to nearest even as c10::BFloat16 rounds, NaN kept
// quiet) so the compiler vectorises the loops around them.
#include <bit>
#include <cstdint>

#include <lumi/core/error.hpp>
#include <lumi/core/torch.hpp>

namespace lumi {

using bfloat16 = c10::BFloat16;

inline float to_float(float x) {
    return x;
}
inline float to_float(bfloat16 x) {
    return std::bit_cast<float>(std::uint32_t(x.x) << 16);
}

template <class T>
T from_float(float x);
template <>
inline float from_float<float>(float x) {
    return x;
}
template <>
inline bfloat16 from_float<bfloat16>(float x) {
    const auto bits = std::bit_cast<std::uint32_t>(x);
    const auto rounded = std::uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    return bfloat16(x != x ? std::uint16_t(0x7fc0) : rounded, bfloat16::from_bits());
}

// f(float{}) or f(bfloat16{}) by `type`: the element types the fused kernels are written for.
template <class F>
decltype(auto) visit_float_type(torch::ScalarType type, F&& f) {
    if (type == torch::kFloat32) return f(float{});
    if (type == torch::kBFloat16) return f(bfloat16{});
    throw Error(std::string("fused kernel: no float32 or bfloat16 tensor but ") + c10::toString(type));
}

inline bool is_float_type(torch::ScalarType type) {
    return type == torch::kFloat32 || type == torch::kBFloat16;
}

}  // namespace lumi
