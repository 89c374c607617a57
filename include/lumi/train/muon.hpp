#pragma once

// Muon (momentum orthogonalised by Newton-Schulz iterations) for the hidden matrices, as PyTorch's
// torch.optim.Muon defines it, and MuonAdamW, the pairing nanochat and modded-nanogpt train with: Muon for
// every 2-D hidden matrix, AdamW for the embeddings, the LM head and the vectors (norms).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/torch.hpp"
#include "lumi/train/optimizer.hpp"

namespace lumi::train {

struct MuonSettings {
    double lr = 0.02;  // peak learning rate of the hidden matrices; the schedule scales it
    double momentum = 0.95;
    bool nesterov = true;
    // The quintic Newton-Schulz polynomial and its iterations (Keller Jordan's, PyTorch's defaults).
    std::array<double, 3> ns_coefficients{3.4445, -4.7750, 2.0315};
    std::int64_t ns_steps = 5;
    double eps = 1e-7;  // floor of the norm the update is divided by before the iterations
    // The per-matrix learning rate: "original" lr * sqrt(max(1, rows / cols)) (Keller Jordan's), or
    // "match_rms_adamw" lr * 0.2 * sqrt(max(rows, cols)) (Moonshot's: reuses AdamW's lr and decay).
    std::string adjust_lr = "original";
    double weight_decay = 0.0;  // decoupled, scaled by the unadjusted lr (as PyTorch)
    // The iterations' dtype: bfloat16 as PyTorch (fast on GPUs), float32 (exact, and faster on CPUs without
    // bfloat16 matrix units), or auto: bfloat16 for CUDA parameters, float32 for the others.
    std::string ns_dtype = "auto";
    // Momentum warm-up (modded-nanogpt): from momentum_start to momentum over the first updates; 0 disables.
    std::int64_t momentum_warmup_steps = 0;
    double momentum_start = 0.85;

    void validate() const {
        if (!(lr > 0)) throw config::FieldError("lr", "must be positive");
        if (!(momentum >= 0 && momentum < 1)) throw config::FieldError("momentum", "must be in [0, 1)");
        if (ns_steps < 1 || ns_steps >= 100) throw config::FieldError("ns_steps", "must be in [1, 99]");
        for (double c : ns_coefficients)
            if (!std::isfinite(c)) throw config::FieldError("ns_coefficients", "must be finite numbers");
        if (!(eps > 0)) throw config::FieldError("eps", "must be positive");
        if (adjust_lr != "original" && adjust_lr != "match_rms_adamw")
            throw config::FieldError("adjust_lr",
                                     "must be original or match_rms_adamw, found '" + adjust_lr + "'");
        if (!(weight_decay >= 0)) throw config::FieldError("weight_decay", "must be >= 0");
        if (ns_dtype != "auto" && ns_dtype != "bfloat16" && ns_dtype != "float32")
            throw config::FieldError("ns_dtype",
                                     "must be auto, bfloat16 or float32, found '" + ns_dtype + "'");
        if (momentum_warmup_steps < 0) throw config::FieldError("momentum_warmup_steps", "must be >= 0");
        if (!(momentum_start >= 0 && momentum_start < 1))
            throw config::FieldError("momentum_start", "must be in [0, 1)");
    }

    // The momentum of update `step` (0-based).
    double momentum_at(std::int64_t step) const {
        if (momentum_warmup_steps == 0) return momentum;
        const double done = std::min(1.0, double(step) / double(momentum_warmup_steps));
        return momentum_start + (momentum - momentum_start) * done;
    }

    // The learning rate of a [rows, cols] matrix when the schedule gives `lr`.
    double adjusted(double lr, std::int64_t rows, std::int64_t cols) const {
        if (adjust_lr == "match_rms_adamw") return lr * 0.2 * std::sqrt(double(std::max(rows, cols)));
        return lr * std::sqrt(std::max(1.0, double(rows) / double(cols)));
    }
};

namespace detail {
// The zeroth power of g (U V^T of its SVD, approximately) by the quintic iteration, in PyTorch's operation
// order so the rounding is the same.
inline torch::Tensor newton_schulz(const torch::Tensor& g, const MuonSettings& s) {
    const auto [a, b, c] = s.ns_coefficients;
    const bool exact = s.ns_dtype == "float32" || (s.ns_dtype == "auto" && !g.is_cuda());
    torch::Tensor x = g.to(exact ? torch::kFloat32 : torch::kBFloat16);
    const bool tall = g.size(0) > g.size(1);
    if (tall) x = x.t();
    x.div_(x.norm().clamp_min(s.eps));
    for (std::int64_t i = 0; i < s.ns_steps; ++i) {
        const auto gram = x.mm(x.t());
        const auto update = torch::addmm(gram, gram, gram, b, c);
        x = torch::addmm(x, update, x, a);
    }
    return tall ? x.t() : x;
}
}  // namespace detail

// Muon as torch.optim.Muon: for 2-D parameters only (MuonAdamW pairs it with AdamW for the others).
class Muon {
  public:
    using Settings = MuonSettings;

    Muon(const NamedTensors& parameters, Settings settings) : settings_(std::move(settings)) {
        settings_.validate();
        for (const auto& [name, parameter] : parameters) {
            if (!parameter.requires_grad()) continue;
            if (parameter.dim() != 2)
                throw lumi::Error("Muon: '" + name + "' has shape " + c10::str(parameter.sizes()) +
                                  "; Muon trains 2-D matrices only (MuonAdamW gives the others to AdamW)");
            names_.push_back(name);
            params_.push_back(parameter);
            momentum_.push_back(torch::zeros_like(parameter, torch::MemoryFormat::Preserve));
        }
        if (params_.empty()) throw lumi::Error("Muon: the model has no trainable parameters");
    }

    const Settings& settings() const { return settings_; }
    std::int64_t steps_taken() const { return step_; }
    const std::vector<std::string>& names() const { return names_; }
    double peak_lr() const { return settings_.lr; }

    const std::vector<torch::Tensor>& parameters() const { return params_; }

    // Global gradient norm; the next step() scales the gradients when it exceeds `max_norm` (0: never).
    double clip_gradients(double max_norm = 0) {
        const double total = detail::global_norm(detail::gradient_norms(params_));
        grad_scale_ = detail::clip_scale(total, max_norm);
        return total;
    }
    // For an optimizer that clips over several: the factor the next step() applies to the gradients.
    void scale_gradients(double scale) { grad_scale_ = scale; }

    // One update with learning rate `lr`; parameters without a gradient are skipped, as in PyTorch.
    void step(double lr) {
        torch::NoGradGuard no_grad;
        const double momentum = settings_.momentum_at(step_);
        ++step_;
        const double grad_scale = std::exchange(grad_scale_, 1.0);
        for (std::size_t i = 0; i < params_.size(); ++i) {
            auto& p = params_[i];
            torch::Tensor grad = p.grad();
            if (!grad.defined()) continue;
            if (grad_scale != 1.0) grad = grad * grad_scale;  // a new tensor: the caller's stays as it is
            auto& buffer = momentum_[i];
            buffer.lerp_(grad, 1.0 - momentum);
            const torch::Tensor update =
                detail::newton_schulz(settings_.nesterov ? grad.lerp(buffer, momentum) : buffer, settings_);
            p.mul_(1.0 - lr * settings_.weight_decay);
            p.add_(update, -settings_.adjusted(lr, p.size(0), p.size(1)));
        }
    }

    // The schedule's factor times the peak learning rate.
    void step_scaled(double factor) { step(settings_.lr * factor); }

    void zero_grad() { detail::drop_gradients(params_); }

    NamedTensors state() const {
        NamedTensors out;
        out.emplace_back("step", torch::tensor(step_, torch::kInt64));
        for (std::size_t i = 0; i < params_.size(); ++i)
            out.emplace_back("momentum_buffer." + names_[i], momentum_[i]);
        return out;
    }

    void load_state(const NamedTensors& state, const std::string& origin) {
        const std::map<std::string, torch::Tensor> by_name(state.begin(), state.end());
        torch::NoGradGuard no_grad;
        step_ = detail::state_tensor(by_name, "step", torch::tensor(0), origin).item<std::int64_t>();
        for (std::size_t i = 0; i < params_.size(); ++i)
            momentum_[i].copy_(
                detail::state_tensor(by_name, "momentum_buffer." + names_[i], momentum_[i], origin));
    }

  private:
    Settings settings_;
    std::vector<std::string> names_;
    std::vector<torch::Tensor> params_, momentum_;
    std::int64_t step_ = 0;
    double grad_scale_ = 1.0;
};

struct MuonAdamWSettings {
    MuonSettings muon;    // the hidden matrices
    AdamWSettings adamw;  // the rest; its grad_clip bounds the global norm over all parameters
};

// Muon for the 2-D hidden matrices, AdamW for the embeddings, the LM head and every vector, one schedule
// scaling both learning rates. The gradient norm is clipped over all parameters together.
class MuonAdamW {
  public:
    using Settings = MuonAdamWSettings;

    // Whether Muon trains this parameter: a matrix that is neither the token embedding nor the LM head.
    static bool hidden_matrix(const std::string& name, const torch::Tensor& parameter) {
        return parameter.dim() == 2 && name.find("embed_tokens") == std::string::npos &&
               !name.starts_with("lm_head");
    }

    MuonAdamW(const NamedTensors& parameters, Settings settings) : settings_(std::move(settings)) {
        settings_.muon.validate();
        settings_.adamw.validate();
        NamedTensors matrices, others;
        for (const auto& item : parameters)
            if (item.second.requires_grad())
                (hidden_matrix(item.first, item.second) ? matrices : others).push_back(item);
        if (matrices.empty() && others.empty())
            throw lumi::Error("MuonAdamW: the model has no trainable parameters");
        if (!matrices.empty()) muon_.emplace(matrices, settings_.muon);
        if (!others.empty()) adamw_.emplace(others, settings_.adamw);
    }

    const Settings& settings() const { return settings_; }
    std::int64_t steps_taken() const { return step_; }
    double peak_lr() const { return settings_.muon.lr; }
    const Muon* muon() const { return muon_ ? &*muon_ : nullptr; }
    const AdamW* adamw() const { return adamw_ ? &*adamw_ : nullptr; }

    double clip_gradients() {
        std::vector<torch::Tensor> norms;
        if (muon_) norms = detail::gradient_norms(muon_->parameters());
        if (adamw_)
            for (auto& norm : detail::gradient_norms(adamw_->parameters())) norms.push_back(std::move(norm));
        const double total = detail::global_norm(norms);
        const double scale = detail::clip_scale(total, settings_.adamw.grad_clip);
        if (muon_) muon_->scale_gradients(scale);
        if (adamw_) adamw_->scale_gradients(scale);
        return total;
    }

    void step_scaled(double factor) {
        ++step_;
        if (muon_) muon_->step(settings_.muon.lr * factor);
        if (adamw_) adamw_->step(settings_.adamw.lr * factor);
    }

    void zero_grad() {
        if (muon_) muon_->zero_grad();
        if (adamw_) adamw_->zero_grad();
    }

    // AdamW's tensors under their own names, Muon's under "muon.".
    NamedTensors state() const {
        NamedTensors out{{"step", torch::tensor(step_, torch::kInt64)}};
        if (adamw_)
            for (auto& item : adamw_->state())
                if (item.first != "step") out.push_back(std::move(item));
        if (muon_)
            for (auto& [name, tensor] : muon_->state()) out.emplace_back("muon." + name, std::move(tensor));
        return out;
    }

    void load_state(const NamedTensors& state, const std::string& origin) {
        const std::map<std::string, torch::Tensor> by_name(state.begin(), state.end());
        const auto step = detail::state_tensor(by_name, "step", torch::tensor(0), origin);
        NamedTensors adamw{{"step", step}}, muon;
        for (const auto& [name, tensor] : state)
            if (name.starts_with("muon."))
                muon.emplace_back(name.substr(5), tensor);
            else if (name != "step")
                adamw.emplace_back(name, tensor);
        if (muon_) muon_->load_state(muon, origin);
        if (adamw_) adamw_->load_state(adamw, origin);
        step_ = step.item<std::int64_t>();
    }

  private:
    Settings settings_;
    std::optional<Muon> muon_;
    std::optional<AdamW> adamw_;
    std::int64_t step_ = 0;
};

}  // namespace lumi::train
