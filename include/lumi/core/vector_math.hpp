#pragma once

// Element-wise math for the fused CPU kernels, written so the compiler vectorises the loops that use it (no
// calls, no branches), and `vectorised`, which runs such a loop compiled for AVX-512 or AVX2 when the CPU has
// them (lumi's headers are built for the baseline x86-64).
#include <algorithm>
#include <bit>
#include <cstdint>

namespace lumi {

// e^x in float32 as Cephes' expf computes it (x = n ln 2 + r, |r| <= ln 2 / 2, a degree-6 polynomial in r,
// times 2^n): within 2 ulp of std::exp; 0 below -87.3 (where e^x is subnormal), clamped near FLT_MAX above.
[[gnu::always_inline]] inline float exp_approx(float x) {
    const float clamped = std::min(std::max(x, -87.33654f), 88.37626f);
    // Round to nearest by the 1.5 * 2^23 trick: n in the low bits of the sum, and exact as a float.
    const float shifted = clamped * 1.44269504088896341f + 12582912.0f;
    const float n = shifted - 12582912.0f;
    float r = clamped - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * (r * r) + r + 1.0f;
    const auto exponent = (std::bit_cast<std::uint32_t>(shifted) - 0x4b400000u + 127u) << 23;
    const float result = y * std::bit_cast<float>(exponent);
    return x < -87.33654f ? 0.0f : result;
}

[[gnu::always_inline]] inline float sigmoid_approx(float x) {
    return 1.0f / (1.0f + exp_approx(-x));
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
namespace detail {

enum class Isa { baseline, avx2, avx512 };

inline Isa cpu_isa() {
    static const Isa isa = [] {
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl"))
            return Isa::avx512;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
        return Isa::baseline;
    }();
    return isa;
}

// f() with everything it calls inlined and compiled for the instruction set: the loops inside vectorise
// for it.
template <class F>
[[gnu::target("avx512f,avx512bw,avx512vl,avx2,fma"), gnu::flatten]] inline void run_avx512(F& f) {
    f();
}
template <class F>
[[gnu::target("avx2,fma"), gnu::flatten]] inline void run_avx2(F& f) {
    f();
}

}  // namespace detail

// Runs f() compiled for AVX-512 (F, BW, VL) or AVX2 + FMA when the CPU has them, else as built. Call it
// inside at::parallel_for's body (each worker runs the compiled loop). Results may differ in the last bits
// between instruction sets (fused multiply-adds).
template <class F>
inline void vectorised(F&& f) {
    switch (detail::cpu_isa()) {
        case detail::Isa::avx512:
            detail::run_avx512(f);
            return;
        case detail::Isa::avx2:
            detail::run_avx2(f);
            return;
        case detail::Isa::baseline:
            f();
            return;
    }
}
#else
template <class F>
inline void vectorised(F&& f) {
    f();
}
#endif

}  // namespace lumi
