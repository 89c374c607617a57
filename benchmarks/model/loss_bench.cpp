// The LM head and the cross-entropy over the full vocabulary: logits for every token then the loss (full)
// against the fused, chunked kernel that never holds them (chunked; and with 1/2, 2 and 4x its default
// chunk), in float32 and under bfloat16 autocast (the trainer's default where the CPU has native bfloat16).
// One target in eight is ignored, as in masked instruction data. peak_bytes shows the memory the full logits
// take.
//   lumi_model_bench --benchmark_filter='^lm_head_loss/'
#include "../bench.hpp"

#include <lumi/model/loss.hpp>

namespace {

using lumi::ModelSpec;
using lumi::model::LossKernel;

template <ModelSpec S, LossKernel K, int ChunkScale = 4, bool BFloat16 = false>
class HeadLossImpl : public torch::nn::Module {
  public:
    HeadLossImpl() : weight(register_parameter("weight", torch::empty({S.vocab_size, S.d_model}))) {}

    torch::Tensor forward(const torch::Tensor& x) {
        if (!targets.defined() || targets.size(0) != x.size(0) || targets.size(1) != x.size(1)) {
            targets = lumi::bench::random_tokens(S.vocab_size, x.size(0), x.size(1), 3);
            targets.index_put_(
                {torch::indexing::Slice(), torch::indexing::Slice(0, torch::indexing::None, 8)},
                lumi::model::ignore_index);
        }
        std::optional<lumi::train::AutocastGuard> guard;
        if constexpr (BFloat16) guard.emplace(torch::kCPU, torch::kBFloat16);
        if constexpr (K == LossKernel::full)
            return lumi::model::cross_entropy(torch::linear(x, weight), targets);
        else
            return lumi::model::chunked_head_loss(
                x, weight, targets, lumi::model::default_loss_chunk(S.vocab_size) * ChunkScale / 4);
    }

    torch::Tensor weight, targets;
};

template <ModelSpec S>
using Full = torch::nn::ModuleHolder<HeadLossImpl<S, LossKernel::full>>;
template <ModelSpec S>
using Chunked = torch::nn::ModuleHolder<HeadLossImpl<S, LossKernel::chunked>>;
template <ModelSpec S>
using ChunkedHalf = torch::nn::ModuleHolder<HeadLossImpl<S, LossKernel::chunked, 2>>;
template <ModelSpec S>
using ChunkedDouble = torch::nn::ModuleHolder<HeadLossImpl<S, LossKernel::chunked, 8>>;
template <ModelSpec S>
using ChunkedLarge = torch::nn::ModuleHolder<HeadLossImpl<S, LossKernel::chunked, 16>>;
template <ModelSpec S>
using FullBf16 = torch::nn::ModuleHolder<HeadLossImpl<S, LossKernel::full, 4, true>>;
template <ModelSpec S>
using ChunkedBf16 = torch::nn::ModuleHolder<HeadLossImpl<S, LossKernel::chunked, 4, true>>;

LUMI_LAYER_VARIANT("lm_head_loss", "full", Full);
LUMI_LAYER_VARIANT("lm_head_loss", "chunked", Chunked);
LUMI_LAYER_VARIANT("lm_head_loss", "chunked_half", ChunkedHalf);
LUMI_LAYER_VARIANT("lm_head_loss", "chunked_x2", ChunkedDouble);
LUMI_LAYER_VARIANT("lm_head_loss", "chunked_x4", ChunkedLarge);
LUMI_LAYER_VARIANT("lm_head_loss", "full_bf16", FullBf16);
LUMI_LAYER_VARIANT("lm_head_loss", "chunked_bf16", ChunkedBf16);

}  // namespace
