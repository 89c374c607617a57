// RoPE: lumi's cos/sin tables computed once against recomputing them every forward pass (as many
// implementations do). Input [batch, seq, d_model] viewed as heads.
//   lumi_model_bench --benchmark_filter='^rope/'
#include "../bench.hpp"

#include <lumi/model/rotary.hpp>

namespace {

using lumi::ModelSpec;

template <ModelSpec S>
torch::Tensor heads(const torch::Tensor& x) {
    return x.view({x.size(0), x.size(1), S.n_head, S.head_dim()}).transpose(1, 2);
}

template <ModelSpec S>
class CachedRopeImpl : public torch::nn::Module {
  public:
    CachedRopeImpl() : rope(register_module("rope", lumi::model::RotaryEmbedding<S>())) {}
    torch::Tensor forward(const torch::Tensor& x) { return rope->forward(heads<S>(x)); }
    lumi::model::RotaryEmbedding<S> rope;
};
template <ModelSpec S>
using CachedRope = torch::nn::ModuleHolder<CachedRopeImpl<S>>;
LUMI_LAYER_VARIANT("rope", "cached", CachedRope);

template <ModelSpec S>
class RecomputedRopeImpl : public torch::nn::Module {
  public:
    torch::Tensor forward(const torch::Tensor& x) {
        const auto q = heads<S>(x);
        const auto half = torch::arange(0, S.head_dim(), 2, torch::kFloat32) / double(S.head_dim());
        const auto inv_freq = torch::pow(S.rope_theta, -half);
        const auto freqs = torch::outer(torch::arange(q.size(2), torch::kFloat32), inv_freq);
        const auto emb = torch::cat({freqs, freqs}, -1);
        return q * emb.cos() + lumi::model::RotaryEmbeddingImpl<S>::rotate_half(q) * emb.sin();
    }
};
template <ModelSpec S>
using RecomputedRope = torch::nn::ModuleHolder<RecomputedRopeImpl<S>>;
LUMI_LAYER_VARIANT("rope", "recomputed", RecomputedRope);

}  // namespace
