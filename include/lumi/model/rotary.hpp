#pragma once

#include <lumi/core/error.hpp>
#include <lumi/core/torch.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::model {

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

    torch::Tensor cos, sin;
};
template <ModelSpec S>
using RotaryEmbedding = torch::nn::ModuleHolder<RotaryEmbeddingImpl<S>>;

}  // namespace lumi::model
