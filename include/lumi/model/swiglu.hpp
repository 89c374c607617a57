#pragma once

#include <lumi/core/torch.hpp>
#include <lumi/model/adapt.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::model {

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
        return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
    }

    void init(at::Generator& gen, double std, double residual_std) {
        gate_proj->init(gen, std);
        up_proj->init(gen, std);
        down_proj->init(gen, residual_std);
    }

    GateProj gate_proj;
    UpProj up_proj;
    DownProj down_proj;
};
template <ModelSpec S, class Adapt = Dense>
using SwiGLU = torch::nn::ModuleHolder<SwiGLUImpl<S, Adapt>>;

}  // namespace lumi::model
