#pragma once

// What a trainer minimises: the objective policy turns a micro-batch into a loss (and metrics). NextToken is
// pretraining's and SFT's; train/dpo.hpp adds preference optimisation.

#include <string>
#include <utility>
#include <vector>

#include "lumi/core/torch.hpp"
#include "lumi/model/loss.hpp"
#include "lumi/model/transformer.hpp"
#include "lumi/train/loader.hpp"

namespace lumi::train {

// One micro-batch's contribution. The loss is its mean over `weight` units (target tokens, pairs), so means
// over several batches weight each by it; metrics are means over the same units.
struct ObjectiveOutput {
    torch::Tensor loss;
    torch::Tensor weight;                // a scalar; read only where a weighted mean needs it (validation)
    std::vector<torch::Tensor> metrics;  // scalars, in metric_names()' order
};

// Targets for next-token prediction: tokens shifted left; positions outside the loss mask, and the last
// position of each example (its next token belongs to another example), are ignored.
inline std::pair<torch::Tensor, torch::Tensor> inputs_and_targets(const Batch& batch) {
    auto inputs = batch.tokens.narrow(1, 0, batch.tokens.size(1) - 1);
    auto targets = batch.tokens.narrow(1, 1, batch.tokens.size(1) - 1).clone();
    if (batch.loss_mask.defined())
        targets.masked_fill_(batch.loss_mask.narrow(1, 1, targets.size(1)).logical_not(),
                             model::ignore_index);
    if (batch.segments.defined()) {
        auto crosses =
            batch.segments.narrow(1, 1, targets.size(1)) != batch.segments.narrow(1, 0, targets.size(1));
        targets.masked_fill_(crosses, model::ignore_index);
    }
    return {inputs, targets};
}

// Packed instruction data keeps each example's attention to itself.
inline model::Context context_of(const Batch& batch) {
    if (!batch.segments.defined()) return {};
    return {.start = 0, .mask = model::segment_mask(batch.segments.narrow(1, 0, batch.segments.size(1) - 1))};
}

// The mean next-token cross-entropy over the batch's target tokens (the loss mask's, for SFT).
struct NextToken {
    static constexpr std::int64_t sequences_per_example = 1;

    // What decides the objective, compared when a run resumes: nothing to choose here.
    std::string identity() const { return {}; }
    // Names of the metrics operator() returns, in its order.
    std::vector<std::string> metric_names() const { return {}; }

    template <class Model>
    ObjectiveOutput operator()(Model& model, const Batch& batch) const {
        auto [inputs, targets] = inputs_and_targets(batch);
        auto loss = model->forward(inputs, targets, context_of(batch)).loss;
        return {std::move(loss), (targets != model::ignore_index).sum(), {}};
    }
};

}  // namespace lumi::train
