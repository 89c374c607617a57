#pragma once

#include <lumi/core/torch.hpp>

namespace lumi::model {

// A bias-free projection y = x W^T; `weight` is [out, in] as in Hugging Face checkpoints.
class LinearImpl : public torch::nn::Module {
  public:
    LinearImpl(std::int64_t in_features, std::int64_t out_features)
        : weight(register_parameter("weight", torch::empty({out_features, in_features}))) {}

    torch::Tensor forward(const torch::Tensor& x) { return torch::linear(x, weight); }

    void init(at::Generator& gen, double std) {
        torch::NoGradGuard no_grad;
        weight.normal_(0.0, std, gen);
    }

    void pretty_print(std::ostream& os) const override {
        os << "lumi::Linear(in=" << weight.size(1) << ", out=" << weight.size(0) << ")";
    }

    torch::Tensor weight;
};
using Linear = torch::nn::ModuleHolder<LinearImpl>;

}  // namespace lumi::model
