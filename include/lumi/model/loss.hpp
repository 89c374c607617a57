#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <lumi/core/torch.hpp>

namespace lumi::model {

// Targets equal to this take no part in the loss (Hugging Face's convention).
inline constexpr std::int64_t ignore_index = -100;

// How a model turns hidden states into its training loss. full: logits for every position, then
// cross-entropy (the logits are returned too); chunked: the LM head fused with the loss, a chunk of tokens at
// a time, so the [tokens, vocab] logits never exist (forward or backward) and no logits are returned.
enum class LossKernel { full, chunked };

// Tokens per chunk such that one chunk's float32 logits take about 32 MiB. Each chunk's matmuls repack the
// whole head for the BLAS, so fewer, larger chunks are faster (tiny's head+loss: 64 tokens 0.80x the full
// path's speed, 128 0.95x, 256 1.00x, 512 1.12x; benchmarks/model/loss_bench.cpp), while memory grows with
// the chunk: 256 at a 32,768 vocabulary keeps a training step's peak under two thirds of the full path's.
inline std::int64_t default_loss_chunk(std::int64_t vocab) {
    return std::max<std::int64_t>(16, (std::int64_t(8) << 20) / vocab);
}

// Mean cross-entropy of logits [..., vocab] against targets [...], skipping ignore_index; float32.
inline torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
    return torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32), targets.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(ignore_index));
}

namespace detail {

struct HeadLossParts {
    torch::Tensor loss;         // mean over counted targets (NaN when there are none, as cross_entropy)
    torch::Tensor grad_hidden;  // d loss / d hidden, when asked
    torch::Tensor grad_weight;  // d loss / d weight, when asked
};

// One pass over hidden [N, d] in chunks of tokens: per chunk the logits, their log-softmax (one fused kernel)
// and, when asked, the gradients of the mean loss, so backward only rescales them. The gradient of a chunk's
// logits is softmax minus one-hot; its 1 / count weighting (0 for ignored targets) is applied to the small
// [n, d] operands instead of the [n, vocab] one, which is touched three times in all: written by the matmul,
// log-softmax, exp. The matmuls run in the dtype autocast picks for the head, the softmax in float32, as
// cross_entropy.
inline HeadLossParts head_loss_chunks(const torch::Tensor& hidden, const torch::Tensor& weight,
                                      const torch::Tensor& targets, std::int64_t chunk, bool want_hidden,
                                      bool want_weight) {
    const auto N = hidden.size(0);
    const auto valid = targets != ignore_index;
    const auto count = valid.sum();
    // Autocast decides the matmul dtype; casting once (not per chunk) matters when the head is frozen.
    const auto compute =
        torch::linear(hidden.narrow(0, 0, std::min<std::int64_t>(N, 1)), weight.narrow(0, 0, 1))
            .scalar_type();
    const auto x = hidden.to(compute), w = weight.to(compute);
    const auto scale = (valid.to(torch::kFloat32) / count.clamp_min(1).to(torch::kFloat32)).unsqueeze(1);
    const auto safe_targets = targets.masked_fill(valid.logical_not(), 0).unsqueeze(1);
    const bool want_grad = want_hidden || want_weight;
    // The rows of x weighted for the weight's gradient: g^T (scale x) = (scale g)^T x.
    const auto scaled_x = want_weight ? x * scale.to(compute) : torch::Tensor();
    const auto minus_one =
        want_grad ? torch::full({std::min(chunk, N), 1}, -1.0f, scale.options()) : torch::Tensor();

    HeadLossParts out;
    if (want_hidden) out.grad_hidden = torch::empty(hidden.sizes(), hidden.options().dtype(compute));
    torch::Tensor grad_w;  // float32 when computing in float32; one matmul per chunk otherwise
    if (want_weight) grad_w = torch::empty(weight.sizes(), weight.options().dtype(torch::kFloat32));
    std::vector<torch::Tensor> sums;
    for (std::int64_t start = 0; start < N; start += chunk) {
        const auto n = std::min(chunk, N - start);
        const auto xc = x.narrow(0, start, n);
        const auto t = safe_targets.narrow(0, start, n);
        auto log_probs = torch::log_softmax(torch::linear(xc, w).to(torch::kFloat32), 1);
        sums.push_back(-(log_probs.gather(1, t) * scale.narrow(0, start, n)).sum());
        if (!want_grad) continue;
        auto g = log_probs.exp_();  // softmax, in the log-probabilities' memory
        g.scatter_add_(1, t, minus_one.narrow(0, 0, n));
        const auto gc = g.to(compute);
        if (want_hidden) {
            auto rows = out.grad_hidden.narrow(0, start, n);
            torch::mm_out(rows, gc, w);
            rows.mul_(scale.narrow(0, start, n).to(compute));
        }
        if (want_weight) {
            const auto xs = scaled_x.narrow(0, start, n);
            if (compute != torch::kFloat32)
                start == 0 ? grad_w.copy_(torch::mm(gc.t(), xs)) : grad_w.add_(torch::mm(gc.t(), xs));
            else if (start == 0)
                torch::mm_out(grad_w, gc.t(), xs);
            else
                grad_w.addmm_(gc.t(), xs);
        }
    }
    // The chunks' sums are each weighted by 1 / count already: the mean over counted targets (0 / 0, NaN,
    // when there are none, as cross_entropy).
    const auto total = sums.empty() ? torch::zeros({}, torch::kFloat32) : torch::stack(sums).sum();
    out.loss = (total / (count > 0).to(torch::kFloat32)).to(hidden.device());
    if (want_hidden) out.grad_hidden = out.grad_hidden.to(hidden.scalar_type());
    if (want_weight) out.grad_weight = grad_w.to(weight.scalar_type());
    return out;
}

// The gradients are computed in forward (the loss is a scalar, so they only need scaling by the incoming
// gradient): backward costs two multiplications, the whole costs the matmuls of the full path.
struct ChunkedHeadLoss : public torch::autograd::Function<ChunkedHeadLoss> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                                 const torch::Tensor& weight, const torch::Tensor& targets,
                                 std::int64_t chunk) {
        auto parts =
            head_loss_chunks(hidden, weight, targets, chunk, hidden.requires_grad(), weight.requires_grad());
        ctx->save_for_backward({parts.grad_hidden, parts.grad_weight});
        return parts.loss;
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_output) {
        const auto saved = ctx->get_saved_variables();
        const auto& g = grad_output[0];
        auto scaled = [&](const torch::Tensor& t) { return t.defined() ? t * g : torch::Tensor(); };
        return {scaled(saved[0]), scaled(saved[1]), torch::Tensor(), torch::Tensor()};
    }
};

}  // namespace detail

// cross_entropy(linear(hidden, weight), targets) without the logits: hidden [..., d], weight [vocab, d],
// targets [...] (ignore_index skipped); `chunk` tokens at a time (0 = default_loss_chunk). Differentiable in
// hidden and weight.
inline torch::Tensor chunked_head_loss(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, std::int64_t chunk = 0) {
    const auto h = hidden.reshape({-1, hidden.size(-1)});
    const auto t = targets.reshape({-1});
    if (chunk <= 0) chunk = default_loss_chunk(weight.size(0));
    if (torch::GradMode::is_enabled() && (h.requires_grad() || weight.requires_grad()))
        return detail::ChunkedHeadLoss::apply(h, weight, t, chunk);
    return detail::head_loss_chunks(h, weight, t, chunk, false, false).loss;
}

}  // namespace lumi::model
