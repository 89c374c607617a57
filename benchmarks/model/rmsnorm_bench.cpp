// RMSNorm: lumi's layer (its fused kernel, and the plain ops it is tested against) against LibTorch's own
// rms_norm (2.4 and newer).
//   lumi_model_bench --benchmark_filter='^rmsnorm/'
#include "../bench.hpp"

#include <lumi/model/rmsnorm.hpp>

namespace {

using lumi::ModelSpec;

template <ModelSpec S>
using LumiRMSNorm = lumi::model::RMSNorm<S>;
LUMI_LAYER_VARIANT("rmsnorm", "lumi", LumiRMSNorm);

template <ModelSpec S>
class PlainRMSNormImpl : public lumi::model::RMSNormImpl<S> {
  public:
    PlainRMSNormImpl() { this->kernel = lumi::model::Kernel::plain; }
};
template <ModelSpec S>
using PlainRMSNorm = torch::nn::ModuleHolder<PlainRMSNormImpl<S>>;
LUMI_LAYER_VARIANT("rmsnorm", "plain", PlainRMSNorm);

#if LUMI_TORCH_AT_LEAST(2, 4)
// One ATen call, which upcasts to float32 inside as lumi's does.
template <ModelSpec S>
class FusedRMSNormImpl : public torch::nn::Module {
  public:
    FusedRMSNormImpl() : weight(register_parameter("weight", torch::ones({S.d_model}))) {}
    torch::Tensor forward(const torch::Tensor& x) { return at::rms_norm(x, {S.d_model}, weight, S.norm_eps); }
    torch::Tensor weight;
};
template <ModelSpec S>
using FusedRMSNorm = torch::nn::ModuleHolder<FusedRMSNormImpl<S>>;
LUMI_LAYER_VARIANT("rmsnorm", "aten", FusedRMSNorm);
#endif

}  // namespace
