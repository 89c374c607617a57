#pragma once

#include <lumi/model/attention.hpp>
#include <lumi/model/rmsnorm.hpp>
#include <lumi/model/swiglu.hpp>

namespace lumi::model {

// Pre-norm residual block: x + attn(norm(x)), then + mlp(norm(x)).
template <ModelSpec S, class Adapt>
class BlockImpl : public torch::nn::Module {
    static_assert(check_spec<S>());

  public:
    BlockImpl()
        : input_layernorm(register_module("input_layernorm", RMSNorm<S>())),
          self_attn(register_module("self_attn", Attention<S, Adapt>())),
          post_attention_layernorm(register_module("post_attention_layernorm", RMSNorm<S>())),
          mlp(register_module("mlp", SwiGLU<S, Adapt>())) {}

    torch::Tensor forward(const torch::Tensor& x, RotaryEmbedding<S>& rope, std::int64_t start = 0) {
        return forward(x, rope, Context{.start = start}, 0);
    }

    torch::Tensor forward(const torch::Tensor& x, RotaryEmbedding<S>& rope, const Context& ctx,
                          std::int64_t layer) {
        const auto h = x + self_attn->forward(input_layernorm(x), rope, ctx, layer);
        return h + mlp(post_attention_layernorm(h));
    }

    void init(at::Generator& gen, double std, double residual_std) {
        input_layernorm->init();
        self_attn->init(gen, std, residual_std);
        post_attention_layernorm->init();
        mlp->init(gen, std, residual_std);
    }

    RMSNorm<S> input_layernorm;
    Attention<S, Adapt> self_attn;
    RMSNorm<S> post_attention_layernorm;
    SwiGLU<S, Adapt> mlp;
};
template <ModelSpec S, class Adapt = Dense>
using Block = torch::nn::ModuleHolder<BlockImpl<S, Adapt>>;

}  // namespace lumi::model
