#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <string>
#include <type_traits>

#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/torch.hpp"
#include "lumi/io/model_io.hpp"
#include "lumi/io/safetensors.hpp"
#include "lumi/lora/spec.hpp"
#include "lumi/model/adapt.hpp"
#include "lumi/model/linear.hpp"
#include "lumi/model/spec.hpp"
#include "lumi/model/transformer.hpp"

namespace lumi::lora {

// y = x W^T + scale * B(A(dropout(x))): W frozen, A [rank, in] initialised as PEFT does (Kaiming uniform,
// a = sqrt(5)), B [out, rank] zero, so a fresh adapter changes nothing. Names match PEFT's saved adapters.
template <LoraSpec L>
class LoraLinearImpl : public torch::nn::Module {
    static_assert(check_lora<L>());

  public:
    LoraLinearImpl(std::int64_t in_features, std::int64_t out_features)
        : weight(register_parameter("weight", torch::empty({out_features, in_features}),
                                    /*requires_grad=*/false)),
          lora_A(register_module("lora_A", model::Linear(in_features, L.rank))),
          lora_B(register_module("lora_B", model::Linear(L.rank, out_features))) {}

    torch::Tensor forward(const torch::Tensor& x) {
        auto y = torch::linear(x, weight);
        if (merged || disabled) return y;
        auto h = L.dropout > 0 ? torch::dropout(x, L.dropout, is_training()) : x;
        return y + lora_B(lora_A(h)) * L.scale();
    }

    // Base weight as a plain Linear would be, then the adapter (same generator: deterministic per seed).
    void init(at::Generator& gen, double std) {
        torch::NoGradGuard no_grad;
        weight.normal_(0.0, std, gen);
        reset_adapter(gen);
    }
    void reset_adapter(at::Generator& gen) {
        torch::NoGradGuard no_grad;
        const double bound = 1.0 / std::sqrt(double(weight.size(1)));
        lora_A->weight.uniform_(-bound, bound, gen);
        lora_B->weight.zero_();
    }

    // W + scale * B A, so inference costs nothing; unmerge() restores W (to rounding).
    void merge() {
        if (merged) return;
        torch::NoGradGuard no_grad;
        weight.add_(torch::matmul(lora_B->weight, lora_A->weight) * L.scale());
        merged = true;
    }
    void unmerge() {
        if (!merged) return;
        torch::NoGradGuard no_grad;
        weight.sub_(torch::matmul(lora_B->weight, lora_A->weight) * L.scale());
        merged = false;
    }

    void pretty_print(std::ostream& os) const override {
        os << "lumi::LoraLinear(in=" << weight.size(1) << ", out=" << weight.size(0) << ", rank=" << L.rank
           << ", alpha=" << L.alpha << (merged ? ", merged" : "") << ")";
    }

    torch::Tensor weight;
    model::Linear lora_A, lora_B;
    bool merged = false;
    bool disabled = false;  // the base layer alone (AdaptersOff); the adapter is kept
};
template <LoraSpec L>
using LoraLinear = torch::nn::ModuleHolder<LoraLinearImpl<L>>;

namespace detail {
template <LoraSpec L, class F>
void for_each_adapter(torch::nn::Module& root, F&& f) {
    for (const auto& item : root.named_modules("", /*include_self=*/false))
        if (auto* lora = dynamic_cast<LoraLinearImpl<L>*>(item.value().get())) f(item.key(), *lora);
}
inline bool is_adapter_name(const std::string& name) {
    return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}
}  // namespace detail

// The adaptation policy: targeted roles get LoraLinear, the others stay plain Linear (no overhead); every
// parameter outside the adapters is frozen.
template <LoraSpec L>
struct Lora {
    static_assert(check_lora<L>());
    static constexpr LoraSpec spec = L;
    template <ModelSpec S, Role R>
    using linear = std::conditional_t<L.targets_role(R), LoraLinear<L>, model::Linear>;

    // Called once the model is built: only the adapters train.
    static void prepare(torch::nn::Module& model) {
        for (auto& p : model.parameters()) p.requires_grad_(false);
        detail::for_each_adapter<L>(model, [](const std::string&, LoraLinearImpl<L>& m) {
            m.lora_A->weight.requires_grad_(true);
            m.lora_B->weight.requires_grad_(true);
        });
    }
};

template <ModelSpec S, LoraSpec L>
using LoraTransformer = Transformer<S, Lora<L>>;

template <ModelSpec S, LoraSpec L>
void merge(Transformer<S, Lora<L>>& model) {
    detail::for_each_adapter<L>(*model, [](const std::string&, LoraLinearImpl<L>& m) { m.merge(); });
}
template <ModelSpec S, LoraSpec L>
void unmerge(Transformer<S, Lora<L>>& model) {
    detail::for_each_adapter<L>(*model, [](const std::string&, LoraLinearImpl<L>& m) { m.unmerge(); });
}

// While it lives the model computes as its base alone (PEFT's disable_adapter): DPO's reference model is the
// policy with its adapters off, no second copy. Merged adapters cannot be switched off.
template <LoraSpec L>
class AdaptersOff {
  public:
    explicit AdaptersOff(torch::nn::Module& model) : model_(model) {
        detail::for_each_adapter<L>(model_, [](const std::string& name, LoraLinearImpl<L>& m) {
            if (m.merged)
                throw lumi::Error(name +
                                  ": the adapter is merged into the weight, so it cannot be switched off");
        });
        set(true);
    }
    AdaptersOff(const AdaptersOff&) = delete;
    AdaptersOff& operator=(const AdaptersOff&) = delete;
    ~AdaptersOff() { set(false); }

  private:
    void set(bool off) {
        detail::for_each_adapter<L>(model_,
                                    [off](const std::string&, LoraLinearImpl<L>& m) { m.disabled = off; });
    }
    torch::nn::Module& model_;
};

// The adapter tensors, named as PEFT saves them: base_model.model.<module>.lora_A.weight.
template <ModelSpec S, LoraSpec L>
io::NamedTensors adapter_tensors(Transformer<S, Lora<L>>& model) {
    io::NamedTensors out;
    for (const auto& item : model->named_parameters())
        if (detail::is_adapter_name(item.key()))
            out.emplace_back("base_model.model." + item.key(), item.value().detach());
    return out;
}

template <LoraSpec L>
boost::json::object adapter_config(const std::string& base_model) {
    boost::json::array targets;
    for (std::size_t r = 0; r < model::role_names.size(); ++r)
        if (L.targets_role(Role(r))) targets.emplace_back(std::string(model::role_names[r]));
    return {{"peft_type", "LORA"},
            {"task_type", "CAUSAL_LM"},
            {"base_model_name_or_path", base_model},
            {"r", L.rank},
            {"lora_alpha", L.alpha},
            {"lora_dropout", L.dropout},
            {"target_modules", targets},
            {"bias", "none"},
            {"fan_in_fan_out", false},
            {"inference_mode", true},
            {"init_lora_weights", true},
            {"use_rslora", false},
            {"use_dora", false},
            {"modules_to_save", nullptr},
            {"revision", nullptr}};
}

// `dir`/adapter_model.safetensors + adapter_config.json, loadable by PEFT's PeftModel.from_pretrained.
template <ModelSpec S, LoraSpec L>
void save_adapter(Transformer<S, Lora<L>>& model, const std::filesystem::path& dir,
                  const std::string& base_model = "") {
    if constexpr (true) {
        bool merged = false;
        detail::for_each_adapter<L>(*model,
                                    [&](const std::string&, LoraLinearImpl<L>& m) { merged |= m.merged; });
        if (merged)
            throw Error(dir.string() + ": cannot save the adapter of a merged model (unmerge it first)");
    }
    std::filesystem::create_directories(dir);
    io::save_safetensors(dir / "adapter_model.safetensors", adapter_tensors(model), {{"format", "pt"}});
    config::write_json_file(adapter_config<L>(base_model), dir / "adapter_config.json");
}

// Reads an adapter saved by save_adapter or by PEFT; its rank, alpha and targets must equal L's.
template <ModelSpec S, LoraSpec L>
void load_adapter(Transformer<S, Lora<L>>& model, const std::filesystem::path& dir) {
    const auto config_file = dir / "adapter_config.json";
    const auto json = config::read_json_file(config_file);
    if (!json.is_object())
        throw Error(config_file.string() + ": expected a JSON object (a PEFT adapter config)");
    const auto& config = json.get_object();
    auto number = [&](const char* key) {
        if (!config.contains(key) || !config.at(key).is_number())
            throw Error(config_file.string() + ": missing or non-numeric '" + key + "'");
        return config.at(key).to_number<double>();
    };
    if (number("r") != double(L.rank) || number("lora_alpha") != L.alpha)
        throw Error(config_file.string() + ": adapter has r " + std::to_string(number("r")) +
                    ", lora_alpha " + std::to_string(number("lora_alpha")) + "; this model expects r " +
                    std::to_string(L.rank) + ", lora_alpha " + std::to_string(L.alpha));
    const auto file = io::load_safetensors(dir / "adapter_model.safetensors");
    std::map<std::string, torch::Tensor> by_name;
    for (const auto& [name, tensor] : file.tensors) by_name[name] = tensor;
    torch::NoGradGuard no_grad;
    std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
    for (const auto& item : model->named_parameters()) {
        if (!detail::is_adapter_name(item.key())) continue;
        auto found = by_name.find("base_model.model." + item.key());
        if (found == by_name.end())
            throw Error((dir / "adapter_model.safetensors").string() + ": missing 'base_model.model." +
                        item.key() + "'");
        if (found->second.sizes() != item.value().sizes())
            throw Error((dir / "adapter_model.safetensors").string() + ": '" + found->first + "' has shape " +
                        c10::str(found->second.sizes()) + ", expected " + c10::str(item.value().sizes()));
        copies.emplace_back(item.value(), found->second);
        by_name.erase(found);
    }
    if (!by_name.empty())
        throw Error((dir / "adapter_model.safetensors").string() + ": unexpected tensor '" +
                    by_name.begin()->first + "' (an adapter for other target modules?)");
    for (auto& [to, from] : copies) to.copy_(from.to(to.scalar_type()));
}

// Loads a dense checkpoint (pretraining output) into the base weights of a LoRA model.
template <ModelSpec S, LoraSpec L>
void load_base(Transformer<S, Lora<L>>& model, const std::filesystem::path& dir) {
    Transformer<S> dense;
    io::load_model(dense, dir);
    torch::NoGradGuard no_grad;
    auto target = model->named_parameters();
    for (const auto& item : dense->named_parameters()) target[item.key()].copy_(item.value());
}

// The LoRA model with its adapters merged, as a plain model (to save as a normal checkpoint); the LoRA model
// itself is left untouched.
template <ModelSpec S, LoraSpec L>
Transformer<S> merged_copy(Transformer<S, Lora<L>>& model) {
    Transformer<S> dense;
    dense->to(model->parameters().front().device());
    torch::NoGradGuard no_grad;
    const auto source = model->named_parameters();
    auto target = dense->named_parameters();
    for (auto& item : target) item.value().copy_(source[item.key()]);
    detail::for_each_adapter<L>(*model, [&](const std::string& name, LoraLinearImpl<L>& m) {
        if (!m.merged)
            target[name + ".weight"].add_(torch::matmul(m.lora_B->weight, m.lora_A->weight) * L.scale());
    });
    return dense;
}

}  // namespace lumi::lora

namespace lumi {
using lora::Lora;
using lora::LoraSpec;
}  // namespace lumi
