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
#include <optional>
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

// The tokenizer a model was trained with, recorded in its config.json (`lumi_tokenizer`) so a later stage
// refuses another one.
struct TokenizerIdentity {
    std::string sha256;  // of the tokenizer's model file (spm.model)
    std::int64_t vocab_size = 0;
};

struct SaveSettings {
    torch::ScalarType dtype = torch::kFloat32;      // of the floating-point weights written
    LlamaConfigSettings config{};                   // its torch_dtype is set from `dtype`
    std::map<std::string, std::string> metadata{};  // added to the {"format": "pt"} transformers requires
    std::optional<TokenizerIdentity> tokenizer{};   // recorded in config.json when known
};

struct LoadSettings {
    bool ignore_unexpected = false;  // skip checkpoint tensors the model does not have (instead of an error)
    bool check_config = true;        // require config.json and compare it with the model's spec
};

// The tokenizer `checkpoint` (a directory or its weights file) records, or none (a checkpoint made
// elsewhere, e.g. by transformers).
inline std::optional<TokenizerIdentity> checkpoint_tokenizer(const std::filesystem::path& checkpoint) {
    namespace fs = std::filesystem;
    const fs::path file =
        (fs::is_directory(checkpoint) ? checkpoint : checkpoint.parent_path()) / config_file;
    if (!fs::exists(file)) return std::nullopt;
    const boost::json::value json = config::read_json_file(file);
    const auto* object = json.if_object();
    const auto* recorded = object ? object->if_contains("lumi_tokenizer") : nullptr;
    if (!recorded || recorded->is_null()) return std::nullopt;
    return config::from_json<TokenizerIdentity>(*recorded, file.string() + ": lumi_tokenizer");
}

// Refuses a tokenizer other than the one `checkpoint` was trained with (when it records one): its ids would
// mean other pieces.
inline void check_tokenizer(const std::filesystem::path& checkpoint, const TokenizerIdentity& tokenizer,
                            const std::string& tokenizer_origin) {
    const auto recorded = checkpoint_tokenizer(checkpoint);
    if (!recorded) return;
    if (recorded->sha256 != tokenizer.sha256 || recorded->vocab_size != tokenizer.vocab_size)
        throw Error(tokenizer_origin + ": tokenizer " + tokenizer.sha256 + " (vocabulary " +
                    std::to_string(tokenizer.vocab_size) + ") is not the one checkpoint " +
                    checkpoint.string() + " was trained with: " + recorded->sha256 + " (vocabulary " +
                    std::to_string(recorded->vocab_size) + "), recorded in its config.json");
}

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
    boost::json::object json = llama_config(spec_of<Model>, config);
    if (settings.tokenizer) json["lumi_tokenizer"] = config::to_json(*settings.tokenizer);
    config::write_json_file(json, dir / config_file);
}

// Copies every parameter of `model` from a checkpoint directory (or its model.safetensors file; a sharded
// checkpoint through model.safetensors.index.json). Everything is checked before anything is copied: a
// missing config.json or one of another shape, a missing or unexpected tensor, a shape or dtype mismatch are
// one error listing all of them, and the model is left unchanged. A weight holding NaN or Inf is an error
// naming the tensor, found as the weights are copied (the model is then partly loaded: discard it).
template <SpecModel Model>
void load_model(Model& model, const std::filesystem::path& dir_or_file, const LoadSettings& settings = {}) {
    namespace fs = std::filesystem;
    const bool is_dir = fs::is_directory(dir_or_file);
    const fs::path dir = is_dir ? dir_or_file : dir_or_file.parent_path();

    if (!fs::exists(dir_or_file)) throw Error(dir_or_file.string() + ": no such checkpoint");
    if (settings.check_config && !fs::is_regular_file(dir / config_file))
        throw Error((dir / config_file).string() +
                    ": missing: a checkpoint needs its config.json to check that it fits the model "
                    "(LoadSettings.check_config = false skips the check)");
    if (settings.check_config) {
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
        for (const auto& [name, shard] : map->get_object()) {
            const auto* file = shard.if_string();
            // A shard is a file beside the index: a path cannot lead out of the checkpoint.
            const fs::path relative = file ? fs::path(std::string(*file)) : fs::path();
            if (!file || relative.empty() || relative != relative.filename() || *file == "." || *file == "..")
                throw Error(index.string() + ": weight_map." + std::string(name) +
                            ": expected the name of a " + "file in " + dir.string() + ", found " +
                            config::detail::describe_found(shard));
            shards.emplace(*file);
        }
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
        const torch::Tensor tensor = reader->read(*entry);
        if (tensor.is_floating_point() && !torch::isfinite(tensor).all().item<bool>())
            throw Error(reader->path().string() + ": tensor '" + item.key() + "' holds " +
                        std::to_string(torch::isnan(tensor).sum().item<std::int64_t>()) + " NaN and " +
                        std::to_string(torch::isinf(tensor).sum().item<std::int64_t>()) +
                        " infinite values (a diverged or corrupted checkpoint)");
        item.value().copy_(tensor);
    }
}

// load_model for text work: `tokenizer` (anything with sha256() and vocab_size(), e.g. lumi::Tokenizer, from
// `tokenizer_origin`) must be the one the checkpoint was trained with, and its ids must fit the model.
template <SpecModel Model, class Tokenizer>
void load_model_for(Model& model, const std::filesystem::path& checkpoint, const Tokenizer& tokenizer,
                    const std::string& tokenizer_origin) {
    const TokenizerIdentity identity{std::string(tokenizer.sha256()), std::int64_t(tokenizer.vocab_size())};
    if (identity.vocab_size > spec_of<Model>.vocab_size)
        throw Error(tokenizer_origin + ": its vocabulary of " + std::to_string(identity.vocab_size) +
                    " tokens is larger than the model's " + std::to_string(spec_of<Model>.vocab_size));
    load_model(model, checkpoint);
    check_tokenizer(checkpoint, identity, tokenizer_origin);
}

}  // namespace lumi::io

namespace lumi {
using io::load_model;
using io::save_model;
}  // namespace lumi
