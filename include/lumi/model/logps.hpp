#pragma once

// Log-probabilities of responses: what preference optimisation (train/dpo.hpp) and its evaluation
// (eval/preference.hpp) compare between chosen and rejected answers.

#include "lumi/core/torch.hpp"

namespace lumi::model {

// The summed log-probability of each row's response tokens, from `logits_of(inputs)` ([R, T - 1, vocab]):
// tokens [R, T], mask [R, T] (true on the response). log p = logit[target] - logsumexp(logits), so no
// [R, T, vocab] log-softmax is kept for backward.
struct ResponseLogps {
    torch::Tensor logps;       // [R], float32
    torch::Tensor tokens;      // [R] response tokens counted
    torch::Tensor logit_sums;  // [R] the sum over response tokens of the mean logit over the vocabulary
};

template <class LogitsOf>
ResponseLogps response_logps(const LogitsOf& logits_of, const torch::Tensor& tokens,
                             const torch::Tensor& mask, bool with_logit_sums) {
    const auto length = tokens.size(1);
    const auto targets = tokens.narrow(1, 1, length - 1);
    const auto counted = mask.narrow(1, 1, length - 1);
    const auto logits = logits_of(tokens.narrow(1, 0, length - 1)).to(torch::kFloat32);
    const auto picked = logits.gather(2, targets.unsqueeze(2)).squeeze(2);
    const auto per_token = (picked - logits.logsumexp(2)).masked_fill(counted.logical_not(), 0.0);
    ResponseLogps out{per_token.sum(1), counted.sum(1).to(torch::kFloat32), {}};
    if (with_logit_sums) {
        torch::NoGradGuard no_grad;
        out.logit_sums = (logits.mean(2) * counted).sum(1);
    }
    return out;
}

}  // namespace lumi::model
