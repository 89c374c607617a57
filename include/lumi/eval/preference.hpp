#pragma once

// The preference task: on held-out pairs of a prepare_dpo dataset, how often the model prefers the chosen
// answer. With a reference model it scores DPO's implicit reward, beta (log pi(y|x) - log ref(y|x)), so the
// same reference (the SFT model) makes the figure comparable before DPO (every margin 0: accuracy 0.5) and
// after; without one, the summed log-likelihood of each answer.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "lumi/config/config.hpp"
#include "lumi/core/torch.hpp"
#include "lumi/data/preference.hpp"
#include "lumi/eval/results.hpp"
#include "lumi/model/logps.hpp"

namespace lumi::eval {

struct PreferenceTaskSettings {
    std::filesystem::path dataset{};  // a prepare_dpo output directory
    std::string split = "val";
    std::string reference{};  // a checkpoint for the implicit reward; empty: the log-likelihood alone
    double beta = 0.1;        // the reward's scale (DPO's beta): the margin is in its units
    std::int64_t limit = 0;   // the first pairs only; 0 = all
    std::int64_t batch = 8;   // pairs per forward pass

    void validate() const {
        using lumi::config::FieldError;
        if (!(beta > 0 && std::isfinite(beta))) throw FieldError("beta", "must be > 0");
        if (limit < 0) throw FieldError("limit", "must be >= 0 (0: every pair)");
        if (batch < 1) throw FieldError("batch", "must be at least 1");
    }
};

struct PreferenceTaskResult {
    std::int64_t n = 0;
    double accuracy = 0;  // chosen scored above rejected; a tie counts one half
    double margin = 0;    // mean of score(chosen) - score(rejected)
    bool implicit_reward = false;
    std::string dataset;
    double seconds = 0;
};

using LogitsOf = std::function<torch::Tensor(const torch::Tensor& inputs)>;

// Scores every pair of `settings.dataset` with `policy` (and `reference`, when given) on `device`.
inline PreferenceTaskResult preference(const LogitsOf& policy, const LogitsOf& reference,
                                       const PreferenceTaskSettings& settings, torch::Device device,
                                       const std::function<void(std::size_t, std::size_t)>& progress = {}) {
    settings.validate();
    const auto start = std::chrono::steady_clock::now();
    const data::PreferenceDataset pairs(settings.dataset, {.split = settings.split});
    const std::int64_t n = settings.limit > 0 ? std::min(settings.limit, pairs.size()) : pairs.size();
    if (n == 0)
        throw lumi::Error(settings.dataset.string() + ": the " + settings.split + " split holds no pairs");
    torch::NoGradGuard no_grad;
    PreferenceTaskResult result;
    result.n = n;
    result.implicit_reward = bool(reference);
    result.dataset = settings.dataset.string();
    double wins = 0, margins = 0;
    std::vector<std::int64_t> indices;
    for (std::int64_t first = 0; first < n; first += settings.batch) {
        const std::int64_t b = std::min(settings.batch, n - first);
        indices.resize(std::size_t(b));
        for (std::int64_t i = 0; i < b; ++i) indices[std::size_t(i)] = first + i;
        const auto sample = pairs.samples(indices);
        const auto tokens = sample.tokens.to(device), mask = sample.loss_mask.to(device);
        auto score = lumi::model::response_logps(policy, tokens, mask, false).logps;
        if (reference)
            score =
                settings.beta * (score - lumi::model::response_logps(reference, tokens, mask, false).logps);
        const auto margin = (score.narrow(0, 0, b) - score.narrow(0, b, b)).to(torch::kCPU);
        wins += (margin > 0).sum().item<double>() + 0.5 * (margin == 0).sum().item<double>();
        margins += margin.sum().item<double>();
        if (progress) progress(std::size_t(first + b), std::size_t(n));
    }
    result.accuracy = wins / double(n);
    result.margin = margins / double(n);
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

inline std::vector<Metric> metrics(const PreferenceTaskResult& r, std::string_view task = "preference") {
    const std::string t(task);
    const std::string score = r.implicit_reward
                                  ? "the implicit reward beta (log pi(answer|prompt) - log "
                                    "ref(answer|prompt)), log-probabilities summed "
                                    "over the answer's tokens"
                                  : "the summed log-likelihood of the answer's tokens after the prompt";
    return {
        {t + ".accuracy", r.accuracy,
         "fraction of held-out pairs whose chosen answer scores above the rejected one (ties count 1/2); "
         "score: " +
             score + "; " + r.dataset,
         r.n, "pairs", r.seconds, true},
        {t + ".margin", r.margin, "mean over the pairs of score(chosen) - score(rejected); score: " + score,
         r.n, "pairs", r.seconds, true},
    };
}

}  // namespace lumi::eval
