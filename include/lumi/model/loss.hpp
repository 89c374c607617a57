#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>

#include <lumi/core/bfloat16.hpp>
#include <lumi/core/torch.hpp>
#include <lumi/core/vector_math.hpp>
#include <lumi/model/kernel.hpp>

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

// grad_w (float32) = g^T x on the first chunk, += after: one matmul into it in float32; in bfloat16 each
// chunk's product is added in float32.
inline void accumulate_weight_gradient(torch::Tensor& grad_w, const torch::Tensor& g, const torch::Tensor& x,
                                       bool first) {
    if (g.scalar_type() != torch::kFloat32)
        first ? grad_w.copy_(torch::mm(g.t(), x)) : grad_w.add_(torch::mm(g.t(), x));
    else if (first)
        torch::mm_out(grad_w, g.t(), x);
    else
        grad_w.addmm_(g.t(), x);
}

// The same with LibTorch ops (GPUs, other dtypes): one pass over hidden [N, d] in chunks of tokens: per chunk
// the logits, their log-softmax (one fused kernel) and, when asked, the gradients of the mean loss, so
// backward only rescales them. The gradient of a chunk's logits is softmax minus one-hot; its 1 / count
// weighting (0 for ignored targets) is applied to the small [n, d] operands instead of the [n, vocab] one,
// which is touched three times in all: written by the matmul, log-softmax, exp. The matmuls run in the dtype
// autocast picks for the head, the softmax in float32, as cross_entropy.
inline HeadLossParts head_loss_chunks_composed(const torch::Tensor& hidden, const torch::Tensor& weight,
                                               const torch::Tensor& targets, std::int64_t chunk,
                                               bool want_hidden, bool want_weight) {
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
        if (want_weight) accumulate_weight_gradient(grad_w, gc, scaled_x.narrow(0, start, n), start == 0);
    }
    // The chunks' sums are each weighted by 1 / count already: the mean over counted targets (0 / 0, NaN,
    // when there are none, as cross_entropy).
    const auto total = sums.empty() ? torch::zeros({}, torch::kFloat32) : torch::stack(sums).sum();
    out.loss = (total / (count > 0).to(torch::kFloat32)).to(hidden.device());
    if (want_hidden) out.grad_hidden = out.grad_hidden.to(hidden.scalar_type());
    if (want_weight) out.grad_weight = grad_w.to(weight.scalar_type());
    return out;
}

// Per row of a chunk's logits [n, V] (float32 or bfloat16, as the matmul wrote them), in float32 with one
// exp per element: loss[r] = weight[r] (logsumexp - logit[target]) and, when asked, the gradient
// weight[r] (softmax - one-hot) written over the logits in place. A row of V floats stays in cache across
// its three passes (max, exp and sum, scale), where the composed ops make whole-chunk passes and copies.
template <class E>
void softmax_cross_entropy_rows(E* logits, std::int64_t n, std::int64_t V, const std::int64_t* targets,
                                const float* weight, float* loss, bool want_grad) {
    at::parallel_for(0, n, 1, [&](std::int64_t begin, std::int64_t end) {
        std::vector<float> e(static_cast<std::size_t>(V));
        vectorised([&] {
            for (std::int64_t r = begin; r < end; ++r) {
                E* row = logits + r * V;
                const float w = weight[r];
                if (w == 0.0f) {  // an ignored target: no loss, no gradient
                    loss[r] = 0.0f;
                    if (want_grad) std::fill(row, row + V, from_float<E>(0.0f));
                    continue;
                }
                float top[16];
                std::fill(top, top + 16, -std::numeric_limits<float>::infinity());
                std::int64_t i = 0;
                for (; i + 16 <= V; i += 16)
                    for (int k = 0; k < 16; ++k) top[k] = std::max(top[k], to_float(row[i + k]));
                float m = -std::numeric_limits<float>::infinity();
                for (; i < V; ++i) m = std::max(m, to_float(row[i]));
                for (float t : top) m = std::max(m, t);
                float partial[16] = {};
                float* ep = e.data();
                for (i = 0; i + 16 <= V; i += 16)
                    for (int k = 0; k < 16; ++k) {
                        ep[i + k] = exp_approx(to_float(row[i + k]) - m);
                        partial[k] += ep[i + k];
                    }
                float sum = 0;
                for (; i < V; ++i) {
                    ep[i] = exp_approx(to_float(row[i]) - m);
                    sum += ep[i];
                }
                for (float p : partial) sum += p;
                const std::int64_t t = targets[r];
                loss[r] = w * (m + std::log(sum) - to_float(row[t]));
                if (!want_grad) continue;
                const float scale = w / sum;
                for (i = 0; i < V; ++i) row[i] = from_float<E>(ep[i] * scale);
                row[t] = from_float<E>(ep[t] * scale - w);
            }
        });
    });
}

// One pass over hidden [N, d] in chunks of tokens: per chunk the logits (one matmul into a reused buffer),
// then softmax_cross_entropy_rows gives the loss terms and, when asked, turns the logits into their gradient,
// which two matmuls take to the gradients of hidden and weight, so backward only rescales them. Each row is
// weighted by 1 / count (0 for ignored targets) on the way. The matmuls run in the dtype autocast picks for
// the head, the softmax in float32, as cross_entropy.
inline HeadLossParts head_loss_chunks(const torch::Tensor& hidden, const torch::Tensor& weight,
                                      const torch::Tensor& targets, std::int64_t chunk, bool want_hidden,
                                      bool want_weight, Kernel kernel = Kernel::fused) {
    if (kernel == Kernel::plain || !hidden.device().is_cpu())
        return head_loss_chunks_composed(hidden, weight, targets, chunk, want_hidden, want_weight);
    const auto N = hidden.size(0), V = weight.size(0);
    // Autocast decides the matmul dtype; casting once (not per chunk) matters when the head is frozen.
    const auto compute =
        torch::linear(hidden.narrow(0, 0, std::min<std::int64_t>(N, 1)), weight.narrow(0, 0, 1))
            .scalar_type();
    if (!is_float_type(compute))
        return head_loss_chunks_composed(hidden, weight, targets, chunk, want_hidden, want_weight);
    const auto valid = targets != ignore_index;
    const auto count = valid.sum();
    const auto x = hidden.to(compute).contiguous(), w = weight.to(compute).contiguous();
    const auto row_weight = (valid.to(torch::kFloat32) / count.clamp_min(1).to(torch::kFloat32)).contiguous();
    const auto safe_targets = targets.masked_fill(valid.logical_not(), 0).to(torch::kInt64).contiguous();
    const bool want_grad = want_hidden || want_weight;

    HeadLossParts out;
    if (want_hidden) out.grad_hidden = torch::empty(hidden.sizes(), hidden.options().dtype(compute));
    torch::Tensor grad_w;  // float32 when computing in float32; one matmul per chunk otherwise
    if (want_weight) grad_w = torch::empty(weight.sizes(), weight.options().dtype(torch::kFloat32));
    auto logits = torch::empty({std::min(chunk, N), V}, x.options());
    auto loss_rows = torch::empty({N}, row_weight.options());
    for (std::int64_t start = 0; start < N; start += chunk) {
        const auto n = std::min(chunk, N - start);
        const auto xc = x.narrow(0, start, n);
        auto g = logits.narrow(0, 0, n);
        torch::mm_out(g, xc, w.t());
        visit_float_type(compute, [&]<class E>(E) {
            softmax_cross_entropy_rows(g.data_ptr<E>(), n, V, safe_targets.data_ptr<std::int64_t>() + start,
                                       row_weight.data_ptr<float>() + start,
                                       loss_rows.data_ptr<float>() + start, want_grad);
        });
        if (!want_grad) continue;
        if (want_hidden) {
            auto rows = out.grad_hidden.narrow(0, start, n);
            torch::mm_out(rows, g, w);
        }
        if (want_weight) accumulate_weight_gradient(grad_w, g, xc, start == 0);
    }
    // The rows are each weighted by 1 / count already: their sum is the mean over counted targets (0 / 0,
    // NaN, when there are none, as cross_entropy).
    const float* lp = loss_rows.data_ptr<float>();
    double total = 0;
    for (std::int64_t r = 0; r < N; ++r) total += lp[r];
    out.loss = (torch::tensor(float(total)) / (count > 0).to(torch::kFloat32)).to(hidden.device());
    if (want_hidden) out.grad_hidden = out.grad_hidden.to(hidden.scalar_type());
    if (want_weight) out.grad_weight = grad_w.to(weight.scalar_type());
    return out;
}

// The gradients are computed in forward (the loss is a scalar, so they only need scaling by the incoming
// gradient): backward costs two multiplications, the whole costs the matmuls of the full path.
struct ChunkedHeadLoss : public torch::autograd::Function<ChunkedHeadLoss> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                                 const torch::Tensor& weight, const torch::Tensor& targets,
                                 std::int64_t chunk, Kernel kernel) {
        auto parts = head_loss_chunks(hidden, weight, targets, chunk, hidden.requires_grad(),
                                      weight.requires_grad(), kernel);
        ctx->save_for_backward({parts.grad_hidden, parts.grad_weight});
        return parts.loss;
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_output) {
        const auto saved = ctx->get_saved_variables();
        const auto& g = grad_output[0];
        // loss.backward() seeds 1: the gradients as computed, without a pass over the head's.
        const bool one = g.device().is_cpu() && g.numel() == 1 && g.item<double>() == 1.0;
        auto scaled = [&](const torch::Tensor& t) {
            return !t.defined() ? torch::Tensor() : one ? t : t * g;
        };
        return {scaled(saved[0]), scaled(saved[1]), torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
};

}  // namespace detail

// cross_entropy(linear(hidden, weight), targets) without the logits: hidden [..., d], weight [vocab, d],
// targets [...] (ignore_index skipped); `chunk` tokens at a time (0 = default_loss_chunk); `kernel` plain:
// the composed LibTorch ops, as on GPUs. Differentiable in hidden and weight.
inline torch::Tensor chunked_head_loss(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, std::int64_t chunk = 0,
                                       Kernel kernel = Kernel::fused) {
    const auto h = hidden.reshape({-1, hidden.size(-1)});
    const auto t = targets.reshape({-1});
    if (chunk <= 0) chunk = default_loss_chunk(weight.size(0));
    if (torch::GradMode::is_enabled() && (h.requires_grad() || weight.requires_grad()))
        return detail::ChunkedHeadLoss::apply(h, weight, t, chunk, kernel);
    return detail::head_loss_chunks(h, weight, t, chunk, false, false, kernel).loss;
}

}  // namespace lumi::model
