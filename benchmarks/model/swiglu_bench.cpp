// The MLP: LLaMA's SwiGLU (its fused silu x up, and the plain ops) against a GELU MLP of equal parameters
// (hidden 3/2 of SwiGLU's, since SwiGLU has three matrices to GELU's two).
//   lumi_model_bench --benchmark_filter='^mlp/'
#include "../bench.hpp"

#include <lumi/model/swiglu.hpp>

namespace {

using lumi::ModelSpec;

template <ModelSpec S>
using SwiGLUMlp = lumi::model::SwiGLU<S>;
LUMI_LAYER_VARIANT("mlp", "swiglu", SwiGLUMlp);

template <ModelSpec S>
class PlainSwiGLUImpl : public lumi::model::SwiGLUImpl<S, lumi::model::Dense> {
  public:
    PlainSwiGLUImpl() { this->kernel = lumi::model::Kernel::plain; }
};
template <ModelSpec S>
using PlainSwiGLU = torch::nn::ModuleHolder<PlainSwiGLUImpl<S>>;
LUMI_LAYER_VARIANT("mlp", "swiglu_plain", PlainSwiGLU);

template <ModelSpec S>
class GeluMlpImpl : public torch::nn::Module {
    static constexpr std::int64_t hidden = 3 * S.ffn_hidden / 2;

  public:
    GeluMlpImpl()
        : up_proj(register_module("up_proj", lumi::model::Linear(S.d_model, hidden))),
          down_proj(register_module("down_proj", lumi::model::Linear(hidden, S.d_model))) {}
    torch::Tensor forward(const torch::Tensor& x) { return down_proj(torch::gelu(up_proj(x))); }
    lumi::model::Linear up_proj, down_proj;
};
template <ModelSpec S>
using GeluMlp = torch::nn::ModuleHolder<GeluMlpImpl<S>>;
LUMI_LAYER_VARIANT("mlp", "gelu", GeluMlp);

}  // namespace
