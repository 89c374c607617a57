#pragma once

#include <cstdint>
#include <vector>

#include <lumi/core/error.hpp>
#include <lumi/core/torch.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::model {

// Keys and values of every layer for positions already seen, so decoding computes one new position per
// step. Stored before grouped-query repetition: [B, n_kv_head, capacity, head_dim] per layer.
struct KVCache {
    std::vector<torch::Tensor> keys, values;
    std::int64_t capacity = 0;

    KVCache() = default;
    KVCache(const ModelSpec& s, std::int64_t batch, std::int64_t capacity_, torch::TensorOptions options)
        : capacity(capacity_) {
        if (capacity > s.context)
            throw Error("KVCache: capacity " + std::to_string(capacity) + " exceeds the context of " +
                        std::to_string(s.context));
        for (std::int64_t i = 0; i < s.n_layer; ++i) {
            keys.push_back(torch::empty({batch, s.n_kv_head, capacity, s.head_dim()}, options));
            values.push_back(torch::empty({batch, s.n_kv_head, capacity, s.head_dim()}, options));
        }
    }
    std::int64_t bytes() const {
        std::int64_t n = 0;
        for (const auto& k : keys) n += 2 * k.numel() * std::int64_t(k.element_size());
        return n;
    }
};

// What a forward pass needs besides the tokens: the first position, an optional attention mask and cache.
struct Context {
    std::int64_t start = 0;  // position of the first input token
    torch::Tensor mask{};    // bool [B or 1, 1, T, start + T], true = may attend; undefined = causal
    KVCache* cache = nullptr;
};

// Causal and within one example: packed instruction data must not attend across example boundaries.
// segments: [B, T] example index per token.
inline torch::Tensor segment_mask(const torch::Tensor& segments) {
    const auto T = segments.size(1);
    auto same = segments.unsqueeze(2) == segments.unsqueeze(1);  // [B, T, T]
    auto causal =
        torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(segments.device())).tril();
    return (same & causal).unsqueeze(1);
}

// Causal over `keys` positions for the last `queries` of them, not attending to padding (valid: [B, keys],
// true for real tokens). A padding query still sees itself, so no row is empty (no NaN), and it is never
// read.
inline torch::Tensor padding_mask(const torch::Tensor& valid, std::int64_t queries) {
    const auto keys = valid.size(1);
    const auto options = torch::TensorOptions().dtype(torch::kBool).device(valid.device());
    auto causal = torch::ones({queries, keys}, options).tril(keys - queries);
    auto self = torch::zeros({queries, keys}, options);
    self.narrow(1, keys - queries, queries).fill_diagonal_(true);
    return ((causal & valid.unsqueeze(1)) | self).unsqueeze(1);  // [B, 1, queries, keys]
}

}  // namespace lumi::model
