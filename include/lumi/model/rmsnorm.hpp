#pragma once

#include <cmath>
#include <vector>

#include <ATen/Parallel.h>

#include <lumi/core/autocast.hpp>
#include <lumi/core/bfloat16.hpp>
#include <lumi/core/torch.hpp>
#include <lumi/core/vector_math.hpp>
#include <lumi/model/kernel.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::model {

namespace detail {

// Sum of squares of n floats in eight independent partial sums, which compilers turn into vector code.
inline float sum_of_squares(const float* x, std::int64_t n) {
    float partial[8] = {};
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) partial[k] += x[i + k] * x[i + k];
    float total = 0;
    for (; i < n; ++i) total += x[i] * x[i];
    for (float p : partial) total += p;
    return total;
}

inline float dot(const float* a, const float* b, const float* c, std::int64_t n) {  // sum a * b * c
    float partial[8] = {};
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) partial[k] += a[i + k] * b[i + k] * c[i + k];
    float total = 0;
    for (; i < n; ++i) total += a[i] * b[i] * c[i];
    for (float p : partial) total += p;
    return total;
}

// Row r of a float32 or bfloat16 buffer as float32: the row itself, or converted into `scratch`.
template <class T>
const float* row_as_float(const T* p, std::int64_t d, float* scratch) {
    if constexpr (std::is_same_v<T, float>) {
        return p;
    } else {
        for (std::int64_t i = 0; i < d; ++i) scratch[i] = to_float(p[i]);
        return scratch;
    }
}

// Rows handled together in backward: the weight's gradient is summed per block, then over blocks in order,
// so it does not depend on the number of threads.
inline constexpr std::int64_t rmsnorm_block = 32;

// y = x * rstd * weight per row of d, rstd = 1 / sqrt(mean(x^2) + eps); x float32 or bfloat16, weight
// float32, y in `out` (float32 or bfloat16: under autocast the bfloat16 the next matmul would cast it to,
// so the cast is not made once per projection), everything computed in float32.
struct RMSNormFunction : public torch::autograd::Function<RMSNormFunction> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input,
                                 const torch::Tensor& weight, double eps, torch::ScalarType out) {
        const auto x = input.contiguous();
        const std::int64_t d = x.size(-1), rows = x.numel() / d;
        auto y = torch::empty(x.sizes(), x.options().dtype(out));
        auto rstd = torch::empty({rows}, x.options().dtype(torch::kFloat32));
        const float* wp = weight.data_ptr<float>();
        float* rp = rstd.data_ptr<float>();
        const float feps = float(eps), inv_d = 1.0f / float(d);
        visit_float_type(x.scalar_type(), [&]<class In>(In) {
            visit_float_type(out, [&]<class Out>(Out) {
                const In* xp = x.data_ptr<In>();
                Out* yp = y.data_ptr<Out>();
                at::parallel_for(0, rows, 16, [&](std::int64_t begin, std::int64_t end) {
                    std::vector<float> scratch(std::is_same_v<In, float> ? 0 : std::size_t(d));
                    vectorised([&] {
                        for (std::int64_t r = begin; r < end; ++r) {
                            const float* xr = row_as_float(xp + r * d, d, scratch.data());
                            Out* yr = yp + r * d;
                            const float s = 1.0f / std::sqrt(sum_of_squares(xr, d) * inv_d + feps);
                            rp[r] = s;
                            for (std::int64_t i = 0; i < d; ++i) yr[i] = from_float<Out>(wp[i] * (xr[i] * s));
                        }
                    });
                });
            });
        });
        ctx->save_for_backward({x, weight, rstd});
        return y;
    }

    // dx = rstd * (w dy - x rstd^2 mean(w dy x)); dw = sum over rows of dy x rstd. dx in x's dtype.
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_output) {
        const auto saved = ctx->get_saved_variables();
        const auto &x = saved[0], &weight = saved[1], &rstd = saved[2];
        const auto dy = grad_output[0].contiguous();
        const std::int64_t d = x.size(-1), rows = x.numel() / d;
        const std::int64_t blocks = (rows + rmsnorm_block - 1) / rmsnorm_block;
        const bool want_x = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1);
        auto dx = want_x ? torch::empty_like(x) : torch::Tensor();
        std::vector<float> partial(want_w ? std::size_t(blocks * d) : 0, 0.0f);
        const float *wp = weight.data_ptr<float>(), *rp = rstd.data_ptr<float>();
        const float inv_d = 1.0f / float(d);
        visit_float_type(x.scalar_type(), [&]<class In>(In) {
            visit_float_type(dy.scalar_type(), [&]<class G>(G) {
                const In* xp = x.data_ptr<In>();
                const G* gp = dy.data_ptr<G>();
                In* dxp = want_x ? dx.data_ptr<In>() : nullptr;
                at::parallel_for(0, blocks, 1, [&](std::int64_t first, std::int64_t last) {
                    std::vector<float> xs(std::is_same_v<In, float> ? 0 : std::size_t(d));
                    std::vector<float> gs(std::is_same_v<G, float> ? 0 : std::size_t(d));
                    vectorised([&] {
                        for (std::int64_t b = first; b < last; ++b) {
                            float* pw = want_w ? partial.data() + b * d : nullptr;
                            for (std::int64_t r = b * rmsnorm_block;
                                 r < std::min(rows, (b + 1) * rmsnorm_block); ++r) {
                                const float* xr = row_as_float(xp + r * d, d, xs.data());
                                const float* gr = row_as_float(gp + r * d, d, gs.data());
                                const float s = rp[r];
                                if (want_w)
                                    for (std::int64_t i = 0; i < d; ++i) pw[i] += gr[i] * (xr[i] * s);
                                if (want_x) {
                                    const float c = dot(wp, gr, xr, d) * inv_d * s * s;
                                    In* o = dxp + r * d;
                                    for (std::int64_t i = 0; i < d; ++i)
                                        o[i] = from_float<In>(s * (wp[i] * gr[i] - xr[i] * c));
                                }
                            }
                        }
                    });
                });
            });
        });
        torch::Tensor dw;
        if (want_w) {
            dw = torch::zeros_like(weight);
            float* dwp = dw.data_ptr<float>();
            for (std::int64_t b = 0; b < blocks; ++b)
                for (std::int64_t i = 0; i < d; ++i) dwp[i] += partial[std::size_t(b * d + i)];
        }
        return {dx, dw, torch::Tensor(), torch::Tensor()};
    }
};

}  // namespace detail

// y = x / sqrt(mean(x^2) + eps) * weight, computed in float32 whatever the input dtype (as Hugging Face).
template <ModelSpec S>
class RMSNormImpl : public torch::nn::Module {
    static_assert(check_spec<S>());

  public:
    RMSNormImpl() : weight(register_parameter("weight", torch::ones({S.d_model}))) {}

    torch::Tensor forward(const torch::Tensor& x) {
        if (kernel == Kernel::fused && x.device().is_cpu() && is_float_type(x.scalar_type()) &&
            weight.scalar_type() == torch::kFloat32) {
            // Under CPU autocast to bfloat16 the output goes straight to matmuls that would cast it.
            const auto cast = autocast_dtype(torch::kCPU);
            const auto out = cast == torch::kBFloat16 ? torch::kBFloat16 : x.scalar_type();
            return detail::RMSNormFunction::apply(x, weight, S.norm_eps, out);
        }
        const auto x32 = x.to(torch::kFloat32);
        const auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + S.norm_eps);
        return weight * normed.to(x.scalar_type());
    }

    void init() {
        torch::NoGradGuard no_grad;
        weight.fill_(1.0);
    }

    void pretty_print(std::ostream& os) const override {
        os << "lumi::RMSNorm(" << S.d_model << ", eps=" << S.norm_eps << ")";
    }

    Kernel kernel = Kernel::fused;
    torch::Tensor weight;
};
template <ModelSpec S>
using RMSNorm = torch::nn::ModuleHolder<RMSNormImpl<S>>;

}  // namespace lumi::model
