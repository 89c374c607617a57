#pragma once

#include <ATen/Parallel.h>

#include <lumi/core/bfloat16.hpp>
#include <lumi/core/torch.hpp>
#include <lumi/core/vector_math.hpp>
#include <lumi/model/adapt.hpp>
#include <lumi/model/kernel.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::model {

namespace detail {

// silu(g) * u in one pass each way, computed in float32 for float32 or bfloat16 tensors of one shape
// (contiguous): the plain ops keep silu(g) for backward and make three passes more. Backward:
// du = dy silu(g), dg = dy u sigmoid(g) (1 + g (1 - sigmoid(g))).
struct SiluMulFunction : public torch::autograd::Function<SiluMulFunction> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& gate,
                                 const torch::Tensor& up) {
        auto y = torch::empty_like(gate);
        const std::int64_t n = gate.numel();
        visit_float_type(gate.scalar_type(), [&]<class E>(E) {
            const E *gp = gate.data_ptr<E>(), *up_p = up.data_ptr<E>();
            E* yp = y.data_ptr<E>();
            at::parallel_for(0, n, 1 << 14, [&](std::int64_t begin, std::int64_t end) {
                vectorised([&] {
                    for (std::int64_t i = begin; i < end; ++i) {
                        const float g = to_float(gp[i]);
                        yp[i] = from_float<E>(g * sigmoid_approx(g) * to_float(up_p[i]));
                    }
                });
            });
        });
        ctx->save_for_backward({gate, up});
        return y;
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_output) {
        const auto saved = ctx->get_saved_variables();
        const auto &gate = saved[0], &up = saved[1];
        const auto dy = grad_output[0].to(gate.scalar_type()).contiguous();
        auto dgate = torch::empty_like(gate), dup = torch::empty_like(up);
        const std::int64_t n = gate.numel();
        visit_float_type(gate.scalar_type(), [&]<class E>(E) {
            const E *gp = gate.data_ptr<E>(), *up_p = up.data_ptr<E>(), *dyp = dy.data_ptr<E>();
            E *dgp = dgate.data_ptr<E>(), *dup_p = dup.data_ptr<E>();
            at::parallel_for(0, n, 1 << 14, [&](std::int64_t begin, std::int64_t end) {
                vectorised([&] {
                    for (std::int64_t i = begin; i < end; ++i) {
                        const float g = to_float(gp[i]), u = to_float(up_p[i]), d = to_float(dyp[i]);
                        const float sig = sigmoid_approx(g);
                        dup_p[i] = from_float<E>(d * g * sig);
                        dgp[i] = from_float<E>(d * u * (sig * (1.0f + g * (1.0f - sig))));
                    }
                });
            });
        });
        return {dgate, dup};
    }
};

}  // namespace detail

// silu(gate) * up: the fused kernel on CPU tensors it handles, the plain ops otherwise.
inline torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up, Kernel kernel) {
    if (kernel == Kernel::fused && gate.device().is_cpu() && is_float_type(gate.scalar_type()) &&
        gate.scalar_type() == up.scalar_type() && gate.sizes() == up.sizes() && gate.is_contiguous() &&
        up.is_contiguous())
        return detail::SiluMulFunction::apply(gate, up);
    return torch::silu(gate) * up;
}

// down(silu(gate(x)) * up(x)), LLaMA's MLP.
template <ModelSpec S, class Adapt>
class SwiGLUImpl : public torch::nn::Module {
    static_assert(check_spec<S>());

  public:
    using GateProj = typename Adapt::template linear<S, Role::gate>;
    using UpProj = typename Adapt::template linear<S, Role::up>;
    using DownProj = typename Adapt::template linear<S, Role::down>;

    SwiGLUImpl()
        : gate_proj(register_module("gate_proj", GateProj(S.d_model, S.ffn_hidden))),
          up_proj(register_module("up_proj", UpProj(S.d_model, S.ffn_hidden))),
          down_proj(register_module("down_proj", DownProj(S.ffn_hidden, S.d_model))) {}

    torch::Tensor forward(const torch::Tensor& x) {
        return down_proj(silu_mul(gate_proj(x), up_proj(x), kernel));
    }

    void init(at::Generator& gen, double std, double residual_std) {
        gate_proj->init(gen, std);
        up_proj->init(gen, std);
        down_proj->init(gen, residual_std);
    }

    Kernel kernel = Kernel::fused;
    GateProj gate_proj;
    UpProj up_proj;
    DownProj down_proj;
};
template <ModelSpec S, class Adapt = Dense>
using SwiGLU = torch::nn::ModuleHolder<SwiGLUImpl<S, Adapt>>;

}  // namespace lumi::model
