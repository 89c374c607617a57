#pragma once

// AdamW's update of float32 CPU tensors in one pass: each element's gradient, moments and weight are read
// once and written once (the foreach form makes about a dozen passes over the 23M weights of tiny: the
// optimizer was a fifth of a training step). The gradient-clipping factor is applied on the way, so the
// gradients are never rewritten either.
#include <cmath>
#include <cstdint>
#include <vector>

#include <ATen/Parallel.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LUMI_ADAMW_AVX2 1
#else
#define LUMI_ADAMW_AVX2 0
#endif

#include "lumi/core/torch.hpp"

namespace lumi::train::detail {

// The scalars of one update, in float32 as the foreach ops round them.
struct AdamWScalars {
    float grad_scale;  // clipping factor, 1 when not clipping
    float decay;       // 1 - lr * weight_decay for decayed tensors, else 1
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float sqrt_bias2;  // sqrt(1 - beta2^t)
    float eps;
    float step;  // -lr / (1 - beta1^t)
};

// The element-wise rule, in the operation order of PyTorch's foreach AdamW.
inline void adamw_scalar(float* p, const float* g, float* m, float* v, std::int64_t n,
                         const AdamWScalars& s) {
    for (std::int64_t i = 0; i < n; ++i) {
        const float grad = g[i] * s.grad_scale;
        const float mi = m[i] * s.beta1 + s.one_minus_beta1 * grad;
        const float vi = v[i] * s.beta2 + s.one_minus_beta2 * grad * grad;
        const float denom = std::sqrt(vi) / s.sqrt_bias2 + s.eps;
        p[i] = p[i] * s.decay + s.step * mi / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

#if LUMI_ADAMW_AVX2
// The same rule eight lanes at a time, without fused multiply-adds, so it rounds as the scalar rule does.
__attribute__((target("avx2"))) inline void adamw_avx2(float* p, const float* g, float* m, float* v,
                                                       std::int64_t n, const AdamWScalars& s) {
    const __m256 scale = _mm256_set1_ps(s.grad_scale), decay = _mm256_set1_ps(s.decay);
    const __m256 b1 = _mm256_set1_ps(s.beta1), c1 = _mm256_set1_ps(s.one_minus_beta1);
    const __m256 b2 = _mm256_set1_ps(s.beta2), c2 = _mm256_set1_ps(s.one_minus_beta2);
    const __m256 bias2 = _mm256_set1_ps(s.sqrt_bias2), eps = _mm256_set1_ps(s.eps);
    const __m256 step = _mm256_set1_ps(s.step);
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 grad = _mm256_mul_ps(_mm256_loadu_ps(g + i), scale);
        const __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1), _mm256_mul_ps(c1, grad));
        const __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2),
                                        _mm256_mul_ps(_mm256_mul_ps(c2, grad), grad));
        const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bias2), eps);
        const __m256 pi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(p + i), decay),
                                        _mm256_div_ps(_mm256_mul_ps(step, mi), denom));
        _mm256_storeu_ps(p + i, pi);
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
    }
    adamw_scalar(p + i, g + i, m + i, v + i, n - i, s);
}

inline bool cpu_has_avx2() {
    static const bool has = __builtin_cpu_supports("avx2");
    return has;
}
#endif

// One tensor's share of the work: elements [begin, end) of tensor `index`.
struct AdamWSlice {
    std::size_t index;
    std::int64_t begin, end;
};

// Updates every params[i] (float32, contiguous, CPU) from grads[i], in slices spread over the intra-op
// threads; decays[i] chooses decay or 1.
inline void fused_adamw(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                        const std::vector<torch::Tensor>& exp_avg,
                        const std::vector<torch::Tensor>& exp_avg_sq, const std::vector<bool>& decays,
                        AdamWScalars s) {
    constexpr std::int64_t slice = 1 << 16;  // 256 KiB of each stream: long enough to hide the loop overhead
    std::vector<AdamWSlice> slices;
    for (std::size_t i = 0; i < params.size(); ++i)
        for (std::int64_t begin = 0, n = params[i].numel(); begin < n; begin += slice)
            slices.push_back({i, begin, std::min(n, begin + slice)});
    const float decay = s.decay;
    at::parallel_for(0, std::int64_t(slices.size()), 1, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t k = first; k < last; ++k) {
            const AdamWSlice& w = slices[std::size_t(k)];
            AdamWScalars local = s;
            local.decay = decays[w.index] ? decay : 1.0f;
            float* p = params[w.index].data_ptr<float>() + w.begin;
            const float* g = grads[w.index].data_ptr<float>() + w.begin;
            float* m = exp_avg[w.index].data_ptr<float>() + w.begin;
            float* v = exp_avg_sq[w.index].data_ptr<float>() + w.begin;
#if LUMI_ADAMW_AVX2
            if (cpu_has_avx2()) {
                adamw_avx2(p, g, m, v, w.end - w.begin, local);
                continue;
            }
#endif
            adamw_scalar(p, g, m, v, w.end - w.begin, local);
        }
    });
}

// Whether fused_adamw can update this parameter with this gradient.
inline bool fusable(const torch::Tensor& param, const torch::Tensor& grad, const torch::Tensor& m,
                    const torch::Tensor& v) {
    for (const auto* t : {&param, &grad, &m, &v})
        if (!t->device().is_cpu() || t->scalar_type() != torch::kFloat32 || !t->is_contiguous()) return false;
    return true;
}

}  // namespace lumi::train::detail
