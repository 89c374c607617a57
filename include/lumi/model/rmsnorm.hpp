#pragma once

#include <lumi/core/torch.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::model {

// y = x / sqrt(mean(x^2) + eps) * weight, computed in float32 whatever the input dtype (as Hugging Face).
template <ModelSpec S>
class RMSNormImpl : public torch::nn::Module {
    static_assert(check_spec<S>());

  public:
    RMSNormImpl() : weight(register_parameter("weight", torch::ones({S.d_model}))) {}

    torch::Tensor forward(const torch::Tensor& x) {
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

    torch::Tensor weight;
};
template <ModelSpec S>
using RMSNorm = torch::nn::ModuleHolder<RMSNormImpl<S>>;

}  // namespace lumi::model
