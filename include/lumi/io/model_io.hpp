#pragma once

// Model checkpoints in Hugging Face's layout: `model.safetensors` (the parameters under their registered
// names, which are LLaMA's) and `config.json` (a LlamaConfig plus the lumi spec). A directory written by
// save_model loads with `LlamaForCausalLM.from_pretrained(dir)`; one written by `save_pretrained` of a
// LLaMA of the same shape loads with load_model.
//
// Each file is written atomically; for an all-or-nothing checkpoint directory save into a
// StagedDirectory's path() and commit() it.

#include <algorithm>
#include <concepts>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <lumi/config/config.hpp>
#include <lumi/core/error.hpp>
#include <lumi/core/torch.hpp>
#include <lumi/io/hf_config.hpp>
#include <lumi/io/safetensors.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::io {

inline constexpr std::string_view weights_file = "model.safetensors";
inline constexpr std::string_view weights_index_file = "model.safetensors.index.json";
inline constexpr std::string_view config_file = "config.json";

namespace detail {

template <class Model>
struct ModuleOf {
    using type = Model;
};
template <class Model>
requires requires {
    typename Model::ContainedType;
}
struct ModuleOf<Model> {
    using type = typename Model::ContainedType;
};

}  // namespace detail

// A module (or its holder, e.g. Transformer<S>) generated from a spec: `TransformerImpl<S>::spec`.
template <class Model>
concept SpecModel = requires {
    { detail::ModuleOf<Model>::type::spec } -> std::convertible_to<ModelSpec>;
};

template <SpecModel Model>
inline constexpr ModelSpec spec_of = detail::ModuleOf<Model>::type::spec;

namespace detail {

template <class Model>
const torch::nn::Module& module_of(const Model& model) {
    if constexpr (requires { model.ptr(); })
        return *model.ptr();
    else
        return model;
}

inline std::string torch_dtype_name(torch::ScalarType dtype) {
    switch (dtype) {
        case torch::kFloat32:
            return "float32";
        case torch::kBFloat16:
            return "bfloat16";
        case torch::kFloat16:
            return "float16";
        default:
            throw Error(std::string("save_model: weights are saved as float32, bfloat16 or float16, not ") +
                        c10::toString(dtype));
    }
}

// Names listed first, then "... and N more", so a wrong model does not print hundreds of lines.
inline std::string name_list(const std::vector<std::string>& names, std::size_t shown = 8) {
    std::string text;
    for (std::size_t i = 0; i < std::min(names.size(), shown); ++i) text += (i ? ", " : "") + names[i];
    if (names.size() > shown) text += " and " + std::to_string(names.size() - shown) + " more";
    return text;
}

// Buffers older transformers releases saved with the weights; lumi recomputes them.
inline bool is_recomputed_buffer(std::string_view name) {
    return name.ends_with("rotary_emb.inv_freq");
}

}  // namespace detail

struct SaveSettings {
    torch::ScalarType dtype = torch::kFloat32;      // of the floating-point weights written
    LlamaConfigSettings config{};                   // its torch_dtype is set from `dtype`
    std::map<std::string, std::string> metadata{};  // added to the {"format": "pt"} transformers requires
};

struct LoadSettings {
    bool ignore_unexpected = false;  // skip checkpoint tensors the model does not have (instead of an error)
    bool check_config = true;        // compare config.json, when present, with the model's spec
};

// Writes `dir`/model.safetensors and `dir`/config.json. A parameter shared under two names (tied
// embeddings) is written once, under its first name, as transformers does.
template <SpecModel Model>
void save_model(const Model& model, const std::filesystem::path& dir, const SaveSettings& settings = {}) {
    LlamaConfigSettings config = settings.config;
    config.torch_dtype = detail::torch_dtype_name(settings.dtype);
    NamedTensors tensors;
    std::set<const c10::TensorImpl*> written;
    for (const auto& item : detail::module_of(model).named_parameters()) {
        const auto& p = item.value();
        if (!written.insert(p.unsafeGetTensorImpl()).second) continue;
        tensors.emplace_back(item.key(), p.is_floating_point() ? p.detach().to(settings.dtype) : p.detach());
    }
    std::map<std::string, std::string> metadata = settings.metadata;
    metadata["format"] = "pt";
    std::filesystem::create_directories(dir);
    save_safetensors(dir / weights_file, tensors, metadata);
    config::write_json_file(llama_config(spec_of<Model>, config), dir / config_file);
}

// Copies every parameter of `model` from a checkpoint directory (or its model.safetensors file; a sharded
// checkpoint through model.safetensors.index.json). Everything is checked before anything is copied: a
// config.json of another shape, a missing or unexpected tensor, a shape or dtype mismatch are one error
// listing all of them, and the model is left unchanged.
template <SpecModel Model>
void load_model(Model& model, const std::filesystem::path& dir_or_file, const LoadSettings& settings = {}) {
    namespace fs = std::filesystem;
    const bool is_dir = fs::is_directory(dir_or_file);
    const fs::path dir = is_dir ? dir_or_file : dir_or_file.parent_path();

    if (settings.check_config && fs::exists(dir / config_file)) {
        const fs::path file = dir / config_file;
        const ModelSpec found = spec_from_llama_config(config::read_json_file(file), file.string());
        const auto differences = spec_differences(spec_of<Model>, found);
        if (!differences.empty()) {
            std::string text;
            for (const auto& d : differences) text += (text.empty() ? "" : "; ") + d;
            throw Error("checkpoint " + dir_or_file.string() + " was made for a different model: " + text);
        }
    }

    std::vector<fs::path> files;
    if (!is_dir) {
        files.push_back(dir_or_file);
    } else if (fs::exists(dir / weights_file)) {
        files.push_back(dir / weights_file);
    } else if (fs::exists(dir / weights_index_file)) {
        const fs::path index = dir / weights_index_file;
        const boost::json::value json = config::read_json_file(index);
        const boost::json::value* map =
            json.is_object() ? json.get_object().if_contains("weight_map") : nullptr;
        if (!map || !map->is_object()) throw Error(index.string() + ": missing weight_map");
        std::set<std::string> shards;
        for (const auto& [name, shard] : map->get_object())
            if (shard.is_string()) shards.emplace(shard.get_string());
        for (const auto& shard : shards) files.push_back(dir / shard);
    } else {
        throw Error(dir.string() + ": no " + std::string(weights_file) + " (nor " +
                    std::string(weights_index_file) + ") in the directory");
    }

    std::vector<SafetensorsReader> readers;
    std::map<std::string, std::pair<SafetensorsReader*, const TensorEntry*>> stored;
    readers.reserve(files.size());
    for (const auto& file : files) readers.emplace_back(file);
    for (auto& reader : readers)
        for (const auto& entry : reader.header().tensors)
            if (!stored.emplace(entry.name, std::pair(&reader, &entry)).second)
                throw Error(reader.path().string() + ": tensor '" + entry.name +
                            "' is also in another shard");

    auto params = detail::module_of(model).named_parameters();
    std::vector<std::string> missing, unexpected, mismatched;
    for (const auto& item : params) {
        const auto found = stored.find(item.key());
        if (found == stored.end()) {
            missing.push_back(item.key());
            continue;
        }
        const TensorEntry& entry = *found->second.second;
        const auto& p = item.value();
        if (entry.shape != p.sizes().vec())
            mismatched.push_back(item.key() + ": shape " + detail::shape_text(entry.shape) +
                                 " in the checkpoint, " + detail::shape_text(p.sizes().vec()) +
                                 " in the model");
        else if (p.is_floating_point() != c10::isFloatingType(entry.dtype))
            mismatched.push_back(item.key() + ": dtype " + std::string(safetensors_dtype_name(entry.dtype)) +
                                 " in the checkpoint, " + c10::toString(p.scalar_type()) + " in the model");
    }
    for (const auto& [name, where] : stored)
        if (!params.contains(name) && !detail::is_recomputed_buffer(name)) unexpected.push_back(name);

    std::vector<std::string> problems;
    if (!missing.empty()) problems.push_back("missing tensors: " + detail::name_list(missing));
    if (!unexpected.empty() && !settings.ignore_unexpected)
        problems.push_back("unexpected tensors: " + detail::name_list(unexpected) +
                           " (LoadSettings.ignore_unexpected skips them)");
    for (const auto& m : mismatched) problems.push_back(m);
    if (!problems.empty()) {
        std::string text;
        for (const auto& p : problems) text += (text.empty() ? "" : "; ") + p;
        throw Error("checkpoint " + dir_or_file.string() + " does not fit the model: " + text);
    }

    torch::NoGradGuard no_grad;
    for (auto& item : params) {
        const auto& [reader, entry] = stored.at(item.key());
        item.value().copy_(reader->read(*entry));
    }
}

}  // namespace lumi::io

namespace lumi {
using io::load_model;
using io::save_model;
}  // namespace lumi
