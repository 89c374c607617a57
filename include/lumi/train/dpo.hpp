#pragma once

// Preference optimisation on lumi's trainer: the objective policy Dpo<Loss> (Rafailov et al.'s DPO with
// cDPO's label smoothing, or IPO), computed as TRL computes it, and the stage that trains it from an SFT
// checkpoint on a prepare_dpo dataset.

#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "lumi/core/error.hpp"
#include "lumi/core/torch.hpp"
#include "lumi/data/preference.hpp"
#include "lumi/lora/lora.hpp"
#include "lumi/model/logps.hpp"
#include "lumi/tokenizer/tokenizer.hpp"
#include "lumi/train/finetune.hpp"
#include "lumi/train/objective.hpp"
#include "lumi/train/trainer.hpp"

namespace lumi::train {

struct DpoSettings {
    double beta = 0.1;             // how far from the reference the policy may go (IPO's tau)
    double label_smoothing = 0.0;  // cDPO: the probability that a pair's labels are swapped (sigmoid loss)

    void validate() const {
        if (!(beta > 0 && std::isfinite(beta))) throw config::FieldError("beta", "must be > 0");
        if (!(label_smoothing >= 0 && label_smoothing < 0.5))
            throw config::FieldError("label_smoothing", "must be in [0, 0.5)");
    }
};

// The loss policies. h = (log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x)).
// Sigmoid: DPO, -log sigmoid(beta h), with label smoothing eps: -(1 - eps) log sigmoid(beta h) - eps log
// sigmoid(-beta h). Log-probabilities are summed over the response tokens.
struct SigmoidLoss {
    static constexpr const char* name = "sigmoid";
    static constexpr bool mean_over_tokens = false;
    static torch::Tensor loss(const torch::Tensor& h, const DpoSettings& s) {
        const auto x = s.beta * h;
        return -(1 - s.label_smoothing) * torch::log_sigmoid(x) - s.label_smoothing * torch::log_sigmoid(-x);
    }
};

// IPO (Azar et al.): (h - 1 / (2 beta))^2, with log-probabilities averaged over the response tokens (as TRL
// does; the squared loss would otherwise grow with the length).
struct IpoLoss {
    static constexpr const char* name = "ipo";
    static constexpr bool mean_over_tokens = true;
    static torch::Tensor loss(const torch::Tensor& h, const DpoSettings& s) {
        return (h - 1.0 / (2.0 * s.beta)).pow(2);
    }
};

// The objective: a batch of B pairs is [2B, T] (chosen rows, then rejected), the reference model's
// log-probabilities come from the same weights with the LoRA adapters off (no second copy), or, for full
// fine-tuning, from a frozen model given with set_reference. Metrics as TRL names them.
template <class Loss = SigmoidLoss>
class Dpo {
  public:
    static constexpr std::int64_t sequences_per_example = 2;
    using Reference = std::function<torch::Tensor(const torch::Tensor& inputs)>;  // logits

    explicit Dpo(DpoSettings settings = {}) : settings_(settings) { settings_.validate(); }

    const DpoSettings& settings() const { return settings_; }
    // A frozen model's logits (full fine-tuning); without one the policy's adapters are switched off.
    void set_reference(Reference reference) { reference_ = std::move(reference); }

    std::string identity() const {
        return std::string("dpo ") + Loss::name + " beta=" + config::detail::format_double(settings_.beta) +
               " label_smoothing=" + config::detail::format_double(settings_.label_smoothing);
    }

    std::vector<std::string> metric_names() const {
        return {"rewards/chosen",  "rewards/rejected", "rewards/accuracies",
                "rewards/margins", "logps/chosen",     "logps/rejected",
                "logits/chosen",   "logits/rejected",  "kl"};
    }

    template <class Model>
    ObjectiveOutput operator()(Model& model, const Batch& batch) const {
        const auto rows = batch.tokens.size(0);
        if (rows % 2 != 0 || !batch.loss_mask.defined())
            throw lumi::Error("Dpo: a batch must hold chosen and rejected rows with a loss mask (" +
                              std::to_string(rows) + " rows)");
        const auto pairs = rows / 2;
        // Every row is right-padded: read only up to the last response token of any row.
        const auto used = batch.loss_mask.any(0).nonzero();
        const std::int64_t length = used.numel() ? used.max().template item<std::int64_t>() + 1 : 2;
        const auto tokens = batch.tokens.narrow(1, 0, std::max<std::int64_t>(length, 2));
        const auto mask = batch.loss_mask.narrow(1, 0, tokens.size(1));

        const lumi::model::ResponseLogps policy = lumi::model::response_logps(
            [&](const torch::Tensor& inputs) { return model->forward(inputs); }, tokens, mask, true);
        torch::Tensor reference;
        {
            torch::NoGradGuard no_grad;
            reference = reference_logps(model, tokens, mask).logps;
        }
        auto logps = policy.logps, ref = reference;
        const auto counts = policy.tokens.clamp_min(1);
        if constexpr (Loss::mean_over_tokens) {
            logps = logps / counts;
            ref = ref / counts;
        }
        const auto chosen = logps.narrow(0, 0, pairs), rejected = logps.narrow(0, pairs, pairs);
        const auto ref_chosen = ref.narrow(0, 0, pairs), ref_rejected = ref.narrow(0, pairs, pairs);
        const auto h = (chosen - rejected) - (ref_chosen - ref_rejected);
        const auto loss = Loss::loss(h, settings_).mean();

        torch::NoGradGuard no_grad;
        const auto chosen_rewards = settings_.beta * (chosen - ref_chosen).detach();
        const auto rejected_rewards = settings_.beta * (rejected - ref_rejected).detach();
        // TRL's logits/chosen: the mean logit over the vocabulary and every chosen response token of the
        // batch.
        auto logit_mean = [&](std::int64_t first) {
            return policy.logit_sums.narrow(0, first, pairs).sum() /
                   policy.tokens.narrow(0, first, pairs).sum().clamp_min(1);
        };
        // The mean per-token log-ratio to the reference on the pairs' responses: how far the policy drifted.
        const auto kl = (policy.logps.detach() - reference).sum() / policy.tokens.sum().clamp_min(1);
        return {loss,
                torch::full({}, double(pairs)),
                {chosen_rewards.mean(), rejected_rewards.mean(),
                 (chosen_rewards > rejected_rewards).to(torch::kFloat32).mean(),
                 (chosen_rewards - rejected_rewards).mean(), chosen.detach().mean(), rejected.detach().mean(),
                 logit_mean(0), logit_mean(pairs), kl}};
    }

  private:
    template <class Model>
    lumi::model::ResponseLogps reference_logps(Model& model, const torch::Tensor& tokens,
                                               const torch::Tensor& mask) const {
        if (reference_) return lumi::model::response_logps(reference_, tokens, mask, false);
        using Adaptation = typename Model::ContainedType::Adaptation;
        if constexpr (requires { Adaptation::spec; }) {
            lora::AdaptersOff<Adaptation::spec> off(*model);
            return lumi::model::response_logps(
                [&](const torch::Tensor& inputs) { return model->forward(inputs); }, tokens, mask, false);
        } else {
            throw lumi::Error("Dpo: a model without LoRA adapters needs a frozen reference (set_reference)");
        }
    }

    DpoSettings settings_;
    Reference reference_;
};

enum class DpoLoss { sigmoid, ipo };

struct DpoData {
    std::string dataset = "runs/dpo";      // the prepare_dpo output
    std::string base = "runs/sft/merged";  // the checkpoint to start from, which is also the reference
    std::string tokenizer;                 // when set, the pairs must have been made with it
    bool verify = false;
};

// The DPO stage's settings file.
template <class Optimizer = AdamW, class Schedule = CosineWarmup, class Precision = MixedPrecision>
struct DpoStageSettings {
    std::string preset;
    FinetuneMethod method = FinetuneMethod::lora;  // lora: the preset's LoraSpec, reference = adapters off
    DpoLoss loss = DpoLoss::sigmoid;
    DpoSettings dpo;
    DpoData data;
    RunSettings run;
    typename Optimizer::Settings optimizer;
    typename Schedule::Settings schedule;
    typename Precision::Settings precision;

    TrainerSettings<Optimizer, Schedule, Precision> trainer() const {
        return {run, optimizer, schedule, precision, {}};
    }
};

// Trains Transformer<S, Adapt> from data.base on preference pairs with Dpo<Loss>; the result's adapter and
// merged model are written as finetune's are.
template <ModelSpec S, class Adapt, class Loss = SigmoidLoss, class Optimizer = AdamW,
          class Schedule = CosineWarmup, class Precision = MixedPrecision>
FinetuneResult train_dpo(const DpoStageSettings<Optimizer, Schedule, Precision>& settings,
                         std::FILE* out = stdout) {
    if (distributed::environment().rank != 0) out = nullptr;
    settings.dpo.validate();
    data::PackedOptions options{.split = "train", .verify = settings.data.verify, .seed = settings.run.seed};
    if (!settings.data.tokenizer.empty())
        options.tokenizer_sha256 = tokenizer::Tokenizer::load(settings.data.tokenizer).sha256();
    const data::PreferenceDataset train(settings.data.dataset, options);
    std::optional<data::PreferenceDataset> validation;
    if (data::PackedDataset::has_split(settings.data.dataset, "val")) {
        auto val_options = options;
        val_options.split = "val";
        validation.emplace(settings.data.dataset, val_options);
        if (validation->size() == 0)
            validation.reset();
        else
            train.check_matches(*validation);
    }
    detail::check_data_fits<S>(train, settings.data.dataset, settings.data.base, "prepared");

    using Model = Transformer<S, Adapt>;
    Model model = detail::load_start<S, Adapt>(settings.data.base);
    Dpo<Loss> objective(settings.dpo);
    Trainer<Model, Optimizer, Schedule, Precision, Dpo<Loss>> trainer(model, settings.trainer(), objective);
    std::optional<Transformer<S>> reference;
    if constexpr (std::is_same_v<Adapt, Dense>) {
        reference.emplace();
        io::load_model(*reference, settings.data.base);
        (*reference)->to(trainer.device());
        (*reference)->eval();
        for (auto& p : (*reference)->parameters()) p.requires_grad_(false);
        auto frozen = *reference;
        trainer.objective().set_reference(
            [frozen](const torch::Tensor& inputs) mutable { return frozen->forward(inputs); });
    }
    const std::int64_t trainable = model->trainable_parameter_count();
    if (out) {
        std::fprintf(out,
                     "%s\nbase %s (also the reference%s); trainable parameters %lld of %lld (%.2f%%)\n"
                     "data %s: %lld pairs of %lld-token rows (%lld validation)\n%s, beta %g, label "
                     "smoothing %g\ndevice %s, %d threads, %s\n",
                     model::describe<S>().c_str(), settings.data.base.c_str(),
                     std::is_same_v<Adapt, Dense> ? ", a frozen copy" : ": the adapters switched off",
                     (long long)trainable, (long long)model->parameter_count(),
                     100.0 * double(trainable) / double(model->parameter_count()),
                     settings.data.dataset.c_str(), (long long)train.size(),
                     (long long)train.sequence_length(), (long long)(validation ? validation->size() : 0),
                     Loss::name, settings.dpo.beta, settings.dpo.label_smoothing,
                     trainer.device().str().c_str(), torch::get_num_threads(),
                     Precision::describe(settings.precision, trainer.device()));
        std::fflush(out);
    }
    return detail::finish_finetune(trainer, trainer.fit(train, validation ? &*validation : nullptr),
                                   settings.data.base);
}

}  // namespace lumi::train

namespace lumi {
using train::Dpo;
using train::IpoLoss;
using train::SigmoidLoss;
}  // namespace lumi
