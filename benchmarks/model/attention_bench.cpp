// Causal self-attention with its projections and RoPE: the fused scaled_dot_product_attention kernel
// (LibTorch 2.x) against the explicit softmax(q k^T) v, each multi-head (the preset) and grouped-query (the
// preset with the largest proper divisor of n_head as key/value heads: nano 1, tiny 2).
//   lumi_model_bench --benchmark_filter='^attention/'
#include "../bench.hpp"

#include <lumi/model/attention.hpp>

namespace {

using lumi::ModelSpec;
using lumi::model::AttentionKernel;

constexpr ModelSpec grouped(ModelSpec s) {
    for (auto kv = s.n_head / 2; kv >= 1; --kv)
        if (s.n_head % kv == 0) {
            s.n_kv_head = kv;
            break;
        }
    return s;
}

template <ModelSpec S, AttentionKernel K>
class AttentionLayerImpl : public torch::nn::Module {
  public:
    AttentionLayerImpl()
        : attention(register_module("attention", lumi::model::Attention<S>())),
          rope(register_module("rope", lumi::model::RotaryEmbedding<S>())) {
        attention->kernel = K;
    }
    torch::Tensor forward(const torch::Tensor& x) { return attention->forward(x, rope); }
    lumi::model::Attention<S> attention;
    lumi::model::RotaryEmbedding<S> rope;
};

template <ModelSpec S>
using MathMha = torch::nn::ModuleHolder<AttentionLayerImpl<S, AttentionKernel::math>>;
template <ModelSpec S>
using MathGqa = torch::nn::ModuleHolder<AttentionLayerImpl<grouped(S), AttentionKernel::math>>;
LUMI_LAYER_VARIANT("attention", "math_mha", MathMha);
LUMI_LAYER_VARIANT("attention", "math_gqa", MathGqa);

#if LUMI_HAS_SDPA
template <ModelSpec S>
using FusedMha = torch::nn::ModuleHolder<AttentionLayerImpl<S, AttentionKernel::fused>>;
template <ModelSpec S>
using FusedGqa = torch::nn::ModuleHolder<AttentionLayerImpl<grouped(S), AttentionKernel::fused>>;
LUMI_LAYER_VARIANT("attention", "fused_mha", FusedMha);
LUMI_LAYER_VARIANT("attention", "fused_gqa", FusedGqa);
#endif

}  // namespace
