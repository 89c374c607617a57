#pragma once

#include <cmath>
#include <concepts>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/torch.hpp"
#include "lumi/train/adamw_kernel.hpp"

namespace lumi::train {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

namespace detail {

// Gradients dropped, not zeroed: the next backward writes fresh tensors (PyTorch's set_to_none).
inline void drop_gradients(std::vector<torch::Tensor>& params) {
    for (auto& p : params)
        if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
}

// Each defined gradient's L2 norm (float32, one element each): their norm is the global norm.
inline std::vector<torch::Tensor> gradient_norms(const std::vector<torch::Tensor>& params) {
    std::vector<torch::Tensor> norms;
    for (const auto& p : params)
        if (p.grad().defined()) norms.push_back(p.grad().to(torch::kFloat32).norm().reshape({1}));
    return norms;
}

// The global norm from gradient_norms' parts; 0 when no gradient is defined.
inline double global_norm(const std::vector<torch::Tensor>& norms) {
    return norms.empty() ? 0.0 : torch::cat(norms).norm().item<double>();
}

// The factor clip_gradients applies: max_norm / (norm + 1e-6) above max_norm (as clip_grad_norm_), else 1.
inline double clip_scale(double norm, double max_norm) {
    return max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
}

// A checkpoint's optimizer tensor `name`, which must have `like`'s shape.
inline const torch::Tensor& state_tensor(const std::map<std::string, torch::Tensor>& state,
                                         const std::string& name, const torch::Tensor& like,
                                         const std::string& origin) {
    const auto found = state.find(name);
    if (found == state.end()) throw lumi::Error(origin + ": optimizer state lacks '" + name + "'");
    if (found->second.sizes() != like.sizes())
        throw lumi::Error(origin + ": optimizer state '" + name + "' has shape " +
                          c10::str(found->second.sizes()) + ", expected " + c10::str(like.sizes()));
    return found->second;
}
}  // namespace detail

// An optimizer policy (Trainer's second parameter): built from the named parameters and its settings
// aggregate; the trainer clips (returning the global gradient norm), steps with the schedule's factor, clears
// the gradients, and saves and restores its state by name for exact resume.
template <class O>
concept OptimizerPolicy = std::constructible_from<O, const NamedTensors&, typename O::Settings> &&
    requires(O optimizer, const O& constant, double factor, const NamedTensors& state) {
    { optimizer.clip_gradients() } -> std::convertible_to<double>;
    optimizer.step_scaled(factor);
    optimizer.zero_grad();
    { constant.peak_lr() } -> std::convertible_to<double>;
    { constant.state() } -> std::convertible_to<NamedTensors>;
    optimizer.load_state(state, std::string());
};

struct AdamWSettings {
    double lr = 3e-4;  // peak learning rate; the schedule scales it
    double beta1 = 0.9;
    double beta2 = 0.95;
    double eps = 1e-8;
    double weight_decay = 0.1;  // decoupled, on matrices only (never norms)
    double grad_clip = 1.0;     // max global L2 norm of the gradients; 0 disables
    bool fused = true;          // float32 CPU tensors in one pass (clipping folded in); false: foreach ops

    void validate() const {
        if (!(lr > 0)) throw config::FieldError("lr", "must be positive");
        if (!(beta1 >= 0 && beta1 < 1)) throw config::FieldError("beta1", "must be in [0, 1)");
        if (!(beta2 >= 0 && beta2 < 1)) throw config::FieldError("beta2", "must be in [0, 1)");
        if (!(eps > 0)) throw config::FieldError("eps", "must be positive");
        if (!(weight_decay >= 0)) throw config::FieldError("weight_decay", "must be >= 0");
        if (!(grad_clip >= 0)) throw config::FieldError("grad_clip", "must be >= 0 (0 disables clipping)");
    }
};

// AdamW as PyTorch defines it. float32 CPU parameters are updated in one fused pass (adamw_kernel.hpp),
// others in a few multi-tensor (foreach) passes. Only parameters that require gradients are trained.
class AdamW {
  public:
    using Settings = AdamWSettings;

    AdamW(const NamedTensors& parameters, Settings settings) : settings_(settings) {
        settings_.validate();
        for (const auto& [name, parameter] : parameters) {
            if (!parameter.requires_grad()) continue;
            names_.push_back(name);
            params_.push_back(parameter);
            decays_.push_back(parameter.dim() >= 2);
            exp_avg_.push_back(torch::zeros_like(parameter, torch::MemoryFormat::Preserve));
            exp_avg_sq_.push_back(torch::zeros_like(parameter, torch::MemoryFormat::Preserve));
        }
        if (params_.empty()) throw lumi::Error("AdamW: the model has no trainable parameters");
    }

    const Settings& settings() const { return settings_; }
    std::int64_t steps_taken() const { return step_; }
    const std::vector<std::string>& names() const { return names_; }
    bool decays(std::size_t i) const { return decays_[i]; }

    // Global gradient norm before clipping. When settings.grad_clip > 0 and the norm exceeds it, the next
    // step() scales the gradients by grad_clip / (norm + 1e-6) as it reads them (as PyTorch's clip_grad_norm_
    // does in place), so they are not rewritten.
    double clip_gradients() {
        const double total = detail::global_norm(detail::gradient_norms(params_));
        grad_scale_ = detail::clip_scale(total, settings_.grad_clip);
        return total;
    }

    // For an optimizer that clips over several: the factor the next step() applies to the gradients.
    void scale_gradients(double scale) { grad_scale_ = scale; }
    const std::vector<torch::Tensor>& parameters() const { return params_; }
    double peak_lr() const { return settings_.lr; }

    // One update with learning rate `lr`; parameters without a gradient are skipped, as in PyTorch.
    void step(double lr) {
        torch::NoGradGuard no_grad;
        ++step_;
        const double b1 = settings_.beta1, b2 = settings_.beta2;
        const double bias1 = 1.0 - std::pow(b1, double(step_));
        const double bias2 = 1.0 - std::pow(b2, double(step_));
        const double grad_scale = std::exchange(grad_scale_, 1.0);
        std::vector<torch::Tensor> params, grads, m, v;      // the foreach path
        std::vector<torch::Tensor> fparams, fgrads, fm, fv;  // the fused path
        std::vector<bool> fdecays;
        std::vector<torch::Tensor> decayed;
        for (std::size_t i = 0; i < params_.size(); ++i) {
            const auto& grad = params_[i].grad();
            if (!grad.defined()) continue;
            if (settings_.fused && detail::fusable(params_[i], grad, exp_avg_[i], exp_avg_sq_[i])) {
                fparams.push_back(params_[i]);
                fgrads.push_back(grad);
                fm.push_back(exp_avg_[i]);
                fv.push_back(exp_avg_sq_[i]);
                fdecays.push_back(decays_[i]);
                continue;
            }
            params.push_back(params_[i]);
            grads.push_back(grad);
            m.push_back(exp_avg_[i]);
            v.push_back(exp_avg_sq_[i]);
            if (decays_[i]) decayed.push_back(params_[i]);
        }
        const double decay = 1.0 - lr * settings_.weight_decay;
        if (!fparams.empty())
            detail::fused_adamw(fparams, fgrads, fm, fv, fdecays,
                                {.grad_scale = float(grad_scale),
                                 .decay = float(decay),
                                 .beta1 = float(b1),
                                 .one_minus_beta1 = float(1.0 - b1),
                                 .beta2 = float(b2),
                                 .one_minus_beta2 = float(1.0 - b2),
                                 .sqrt_bias2 = float(std::sqrt(bias2)),
                                 .eps = float(settings_.eps),
                                 .step = float(-lr / bias1)});
        if (params.empty()) return;
        if (grad_scale != 1.0) {
            for (auto& g : grads) g = g * grad_scale;  // new tensors: the callers' gradients stay as they are
        }
        if (settings_.weight_decay > 0 && !decayed.empty()) at::_foreach_mul_(decayed, decay);
        at::_foreach_mul_(m, b1);
        at::_foreach_add_(m, grads, 1.0 - b1);
        at::_foreach_mul_(v, b2);
        at::_foreach_addcmul_(v, grads, grads, 1.0 - b2);
        auto denom = at::_foreach_sqrt(v);
        at::_foreach_div_(denom, std::sqrt(bias2));
        at::_foreach_add_(denom, settings_.eps);
        at::_foreach_addcdiv_(params, m, denom, -lr / bias1);
    }

    // The update a trainer makes: the peak learning rate scaled by the schedule's factor.
    void step_scaled(double factor) { step(settings_.lr * factor); }

    void zero_grad() { detail::drop_gradients(params_); }

    // Moments by parameter name plus the step count, for checkpoints.
    NamedTensors state() const {
        NamedTensors out;
        out.emplace_back("step", torch::tensor(step_, torch::kInt64));
        for (std::size_t i = 0; i < params_.size(); ++i) {
            out.emplace_back("exp_avg." + names_[i], exp_avg_[i]);
            out.emplace_back("exp_avg_sq." + names_[i], exp_avg_sq_[i]);
        }
        return out;
    }

    void load_state(const NamedTensors& state, const std::string& origin) {
        const std::map<std::string, torch::Tensor> by_name(state.begin(), state.end());
        auto take = [&](const std::string& name, const torch::Tensor& like) {
            return detail::state_tensor(by_name, name, like, origin);
        };
        torch::NoGradGuard no_grad;
        step_ = take("step", torch::tensor(0)).item<std::int64_t>();
        for (std::size_t i = 0; i < params_.size(); ++i) {
            exp_avg_[i].copy_(take("exp_avg." + names_[i], exp_avg_[i]));
            exp_avg_sq_[i].copy_(take("exp_avg_sq." + names_[i], exp_avg_sq_[i]));
        }
    }

  private:
    Settings settings_;
    std::vector<std::string> names_;
    std::vector<torch::Tensor> params_, exp_avg_, exp_avg_sq_;
    std::vector<bool> decays_;
    std::int64_t step_ = 0;
    double grad_scale_ = 1.0;  // set by clip_gradients, used and reset by step
};

}  // namespace lumi::train
