#pragma once

#include <ATen/Parallel.h>

#include <lumi/core/bfloat16.hpp>
#include <lumi/core/error.hpp>
#include <lumi/core/torch.hpp>
#include <lumi/core/vector_math.hpp>
#include <lumi/model/kernel.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::model {

namespace detail {

// out = x cos + rotate_half(x) sin per row of D (the last dimension, contiguous in x; other strides any),
// rows [B, H, T] with the tables' row t for position t; `sign` -1 applies the transpose (backward). x float32
// or bfloat16 (computed in float32), out in x's dtype.
inline torch::Tensor rope_rows(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                               float sign) {
    const std::int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3), half = D / 2;
    auto out = torch::empty({B, H, T, D}, x.options());
    const float *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
    const std::int64_t sb = x.stride(0), sh = x.stride(1), st = x.stride(2);
    visit_float_type(x.scalar_type(), [&]<class E>(E) {
        const E* xp = x.data_ptr<E>();
        E* op = out.data_ptr<E>();
        at::parallel_for(0, B * H * T, 64, [&](std::int64_t begin, std::int64_t end) {
            vectorised([&] {
                for (std::int64_t r = begin; r < end; ++r) {
                    const std::int64_t t = r % T, h = (r / T) % H, b = r / (T * H);
                    const E* xr = xp + b * sb + h * sh + t * st;
                    const float *c = cp + t * D, *s = sp + t * D;
                    E* o = op + r * D;
                    // rotate_half(x) = (-x2, x1); its transpose maps (y1, y2) to (y2, -y1). cos and sin
                    // repeat per half.
                    for (std::int64_t i = 0; i < half; ++i)
                        o[i] = from_float<E>(to_float(xr[i]) * c[i] - sign * (to_float(xr[i + half]) * s[i]));
                    for (std::int64_t i = half; i < D; ++i)
                        o[i] = from_float<E>(to_float(xr[i]) * c[i] + sign * (to_float(xr[i - half]) * s[i]));
                }
            });
        });
    });
    return out;
}

// RoPE as one pass each way; backward needs only the tables, not the input.
struct RopeFunction : public torch::autograd::Function<RopeFunction> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                                 const torch::Tensor& cos, const torch::Tensor& sin) {
        ctx->save_for_backward({cos, sin});
        return rope_rows(x, cos, sin, 1.0f);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_output) {
        const auto saved = ctx->get_saved_variables();
        auto g = grad_output[0];
        if (g.stride(-1) != 1) g = g.contiguous();
        return {rope_rows(g, saved[0], saved[1], -1.0f), torch::Tensor(), torch::Tensor()};
    }
};

}  // namespace detail

// Rotary position embedding in Hugging Face LLaMA's rotate-half convention, so checkpoints interoperate.
// cos/sin are computed once (in float64) for every position up to the context.
template <ModelSpec S>
class RotaryEmbeddingImpl : public torch::nn::Module {
    static_assert(check_spec<S>());
    static_assert(S.head_dim() % 2 == 0, "lumi: RoPE rotates pairs of dimensions: head_dim must be even");

  public:
    RotaryEmbeddingImpl() {
        const auto half = torch::arange(0, S.head_dim(), 2, torch::kFloat64) / double(S.head_dim());
        const auto inv_freq = torch::pow(S.rope_theta, -half);
        const auto t = torch::arange(S.context, torch::kFloat64);
        const auto freqs = torch::outer(t, inv_freq);
        const auto emb = torch::cat({freqs, freqs}, -1);
        cos = register_buffer("cos", emb.cos().to(torch::kFloat32));
        sin = register_buffer("sin", emb.sin().to(torch::kFloat32));
    }

    // x: [B, H, T, head_dim] at positions start .. start + T - 1.
    torch::Tensor forward(const torch::Tensor& x, std::int64_t start = 0) {
        const auto len = x.size(-2);
        if (start < 0 || start + len > S.context)
            throw Error("RotaryEmbedding: positions " + std::to_string(start) + ".." +
                        std::to_string(start + len - 1) + " exceed the context of " +
                        std::to_string(S.context));
        if (kernel == Kernel::fused && x.device().is_cpu() && is_float_type(x.scalar_type()) &&
            x.dim() == 4 && x.stride(-1) == 1 && cos.scalar_type() == torch::kFloat32)
            return detail::RopeFunction::apply(x, cos.narrow(0, start, len), sin.narrow(0, start, len));
        const auto c = cos.narrow(0, start, len).to(x.scalar_type());
        const auto s = sin.narrow(0, start, len).to(x.scalar_type());
        return x * c + rotate_half(x) * s;
    }

    static torch::Tensor rotate_half(const torch::Tensor& x) {
        const auto halves = x.chunk(2, -1);
        return torch::cat({-halves[1], halves[0]}, -1);
    }

    void pretty_print(std::ostream& os) const override {
        os << "lumi::RotaryEmbedding(head_dim=" << S.head_dim() << ", theta=" << S.rope_theta << ")";
    }

    Kernel kernel = Kernel::fused;
    torch::Tensor cos, sin;
};
template <ModelSpec S>
using RotaryEmbedding = torch::nn::ModuleHolder<RotaryEmbeddingImpl<S>>;

}  // namespace lumi::model
