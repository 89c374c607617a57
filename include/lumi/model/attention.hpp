#pragma once

#include <cmath>

#include <lumi/core/error.hpp>
#include <lumi/core/torch.hpp>
#include <lumi/model/adapt.hpp>
#include <lumi/model/context.hpp>
#include <lumi/model/rotary.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::model {

// fused: LibTorch's scaled_dot_product_attention (2.x only); math: softmax(q k^T / sqrt(d) + mask) v written
// out.
enum class AttentionKernel { fused, math };

inline constexpr AttentionKernel default_attention_kernel =
    has_fused_attention ? AttentionKernel::fused : AttentionKernel::math;

// Causal mask for queries at the last q_len of k_len positions: true where attention is allowed.
inline torch::Tensor causal_mask(std::int64_t q_len, std::int64_t k_len, const torch::Device& device) {
    return torch::ones({q_len, k_len}, torch::TensorOptions().dtype(torch::kBool).device(device))
        .tril(k_len - q_len);
}

// q: [B, H, Tq, D], k and v: [B, H, Tk, D] (heads already repeated for grouped-query attention); mask: bool,
// broadcastable to [B, H, Tq, Tk], true = may attend; undefined = causal.
inline torch::Tensor attention_math(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const torch::Tensor& mask = {}) {
    const double scale = 1.0 / std::sqrt(double(q.size(-1)));
    auto scores = torch::matmul(q, k.transpose(-2, -1)).to(torch::kFloat32) * scale;
    scores = scores.masked_fill(
        (mask.defined() ? mask : causal_mask(q.size(-2), k.size(-2), q.device())).logical_not(),
        -std::numeric_limits<float>::infinity());
    return torch::matmul(scores.softmax(-1).to(v.scalar_type()), v);
}

#if LUMI_HAS_SDPA
inline torch::Tensor attention_fused(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     const torch::Tensor& mask = {}) {
    if (mask.defined()) return at::scaled_dot_product_attention(q, k, v, mask, 0.0, false);
    if (q.size(-2) == k.size(-2))
        return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
    return at::scaled_dot_product_attention(q, k, v, causal_mask(q.size(-2), k.size(-2), q.device()), 0.0,
                                            false);
}
#endif

inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               AttentionKernel kernel, const torch::Tensor& mask = {}) {
#if LUMI_HAS_SDPA
    if (kernel == AttentionKernel::fused) return attention_fused(q, k, v, mask);
#else
    if (kernel == AttentionKernel::fused)
        throw Error("attention: the fused kernel needs LibTorch 2.0 or newer; this build links " +
                    std::to_string(torch_version_major) + "." + std::to_string(torch_version_minor));
#endif
    return attention_math(q, k, v, mask);
}

// Causal self-attention; grouped-query when n_kv_head < n_head (each key/value head serves a group of
// query heads). The projections' types come from the adaptation policy.
template <ModelSpec S, class Adapt>
class AttentionImpl : public torch::nn::Module {
    static_assert(check_spec<S>());

  public:
    using QProj = typename Adapt::template linear<S, Role::q>;
    using KProj = typename Adapt::template linear<S, Role::k>;
    using VProj = typename Adapt::template linear<S, Role::v>;
    using OProj = typename Adapt::template linear<S, Role::o>;

    AttentionImpl()
        : q_proj(register_module("q_proj", QProj(S.d_model, S.d_model))),
          k_proj(register_module("k_proj", KProj(S.d_model, S.kv_dim()))),
          v_proj(register_module("v_proj", VProj(S.d_model, S.kv_dim()))),
          o_proj(register_module("o_proj", OProj(S.d_model, S.d_model))) {}

    // x: [B, T, d_model] at positions start .. start + T - 1.
    torch::Tensor forward(const torch::Tensor& x, RotaryEmbedding<S>& rope, std::int64_t start = 0) {
        return forward(x, rope, Context{.start = start}, 0);
    }

    // With ctx.cache, this layer's keys and values for the new positions are stored and all cached ones used.
    torch::Tensor forward(const torch::Tensor& x, RotaryEmbedding<S>& rope, const Context& ctx,
                          std::int64_t layer) {
        const auto B = x.size(0), T = x.size(1);
        const auto start = ctx.start;
        auto q = q_proj(x).view({B, T, S.n_head, S.head_dim()}).transpose(1, 2);
        auto k = k_proj(x).view({B, T, S.n_kv_head, S.head_dim()}).transpose(1, 2);
        auto v = v_proj(x).view({B, T, S.n_kv_head, S.head_dim()}).transpose(1, 2);
        q = rope->forward(q, start);
        k = rope->forward(k, start);
        if (ctx.cache) {
            auto& keys = ctx.cache->keys.at(std::size_t(layer));
            auto& values = ctx.cache->values.at(std::size_t(layer));
            if (start + T > keys.size(2))
                throw Error("KVCache: positions up to " + std::to_string(start + T) +
                            " exceed its capacity of " + std::to_string(keys.size(2)));
            keys.narrow(2, start, T).copy_(k);
            values.narrow(2, start, T).copy_(v);
            k = keys.narrow(2, 0, start + T);
            v = values.narrow(2, 0, start + T);
        }
        if constexpr (S.query_groups() > 1) {
            k = k.repeat_interleave(S.query_groups(), 1);
            v = v.repeat_interleave(S.query_groups(), 1);
        }
        const auto y = attention(q, k, v, kernel, ctx.mask);
        return o_proj(y.transpose(1, 2).reshape({B, T, S.d_model}));
    }

    void init(at::Generator& gen, double std, double residual_std) {
        q_proj->init(gen, std);
        k_proj->init(gen, std);
        v_proj->init(gen, std);
        o_proj->init(gen, residual_std);
    }

    AttentionKernel kernel = default_attention_kernel;
    QProj q_proj;
    KProj k_proj;
    VProj v_proj;
    OProj o_proj;
};
template <ModelSpec S, class Adapt = Dense>
using Attention = torch::nn::ModuleHolder<AttentionImpl<S, Adapt>>;

}  // namespace lumi::model
