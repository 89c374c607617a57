#pragma once

// Lumi-Lab's configuration files (the original Python project's config/ folder) as lumi pipeline settings:
//
//   auto imported = lumi::pipeline::import_lumi_lab({.original = "Lumi-Lab/config", .recipe = "tiny"});
//   lumi::config::save(imported.settings, "presets/pipeline/tiny-lumi-lab.json");
//   std::cout << lumi::pipeline::mapping_markdown(imported.keys);
//
// Every key of every file read is accounted for, in the order of the file, as one of
//   mapped         it sets a lumi field (named, with the conversion when there is one);
//   checked        its value is what lumi does by construction (RMSNorm, bias none, ...); another is refused;
//   ignored        it changes how fast or how visibly the original runs, not what it trains (workers,
//                  logging backends, flash-attention flags), or a value another file supersedes (said which);
//   documentation  descriptive text: name, description, version, notes, citations and `_`-prefixed keys;
//   accepted       lumi has no equivalent and the importer was told to go without it (`accept`).
// Any other key, or a value lumi cannot reproduce and was not accepted, is an error naming the file and the
// key. The architecture must be one of lumi's presets and the LoRA its `<preset>_lora`; a difference is an
// error naming each differing field. Hugging Face data sets become paths under `data` (a placeholder the user
// fills, `{data}` unless set) in the layout of the Parquet files the Hub serves
// (`<dataset>/<subset or default>/<split>/*.parquet`). The settings are built as the PipelineSettings
// aggregate and read back strictly, so the file written loads in lumi_pipeline_<preset> by construction.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include <lumi/presets.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/pipeline/pipeline.hpp"

namespace lumi::pipeline {

// Which of the original's files, each relative to LumiLabImportSettings::original; an empty path is left out.
struct LumiLabFiles {
    std::filesystem::path architecture;          // architectures/<model>.json
    std::filesystem::path corpus;                // pretrain/corpus/*.json: the pretraining mix
    std::vector<std::filesystem::path> sources;  // pretrain/sources/*.json: licences of the mix's data sets
    std::filesystem::path tokenizer;             // pretrain/tokenizer/*.json
    std::filesystem::path packing;               // pretrain/packing/*.json
    std::filesystem::path pretraining;           // pretrain/training/*.json
    std::filesystem::path sft_datasets;          // sft/datasets/*.json
    std::filesystem::path sft_training;          // sft/training/*.json
    std::vector<std::filesystem::path> dpo_datasets;  // dpo/datasets/*.json; none: the DPO stages stay off
    std::filesystem::path dpo_training;               // dpo/training/*.json
    std::filesystem::path evaluation;                 // evaluation/*.json (the SFT evaluation)

    bool empty() const { return architecture.empty(); }
};

// The original's runs for the presets lumi shares with it: `tiny` (chinchilla_tiny_500m, lora_tiny_23m,
// dpo_tiny), `small` (chinchilla_small_900m, lora_small_42m) and `medium` (chinchilla_medium_1800m,
// lora_medium_84m); the original has no DPO settings for small and medium.
inline LumiLabFiles lumi_lab_recipe(std::string_view name) {
    LumiLabFiles f;
    f.sources = {"pretrain/sources/c4_english.json", "pretrain/sources/fineweb_edu.json",
                 "pretrain/sources/gutenberg_books.json", "pretrain/sources/vietgpt_wikipedia.json"};
    f.tokenizer = "pretrain/tokenizer/spm32k.json";
    f.packing = "pretrain/packing/default.json";
    f.evaluation = "evaluation/sft_standard.json";
    if (name == "tiny") {
        f.architecture = "architectures/tiny.json";
        f.corpus = "pretrain/corpus/tiny_23M_chinchilla_500M.json";
        f.pretraining = "pretrain/training/chinchilla_tiny_500m.json";
        f.sft_datasets = "sft/datasets/tiny_23m_sft_balanced.json";
        f.sft_training = "sft/training/lora_tiny_23m.json";
        f.dpo_datasets = {"dpo/datasets/hh_rlhf.json"};
        f.dpo_training = "dpo/training/dpo_tiny.json";
    } else if (name == "small") {
        f.architecture = "architectures/small.json";
        f.corpus = "pretrain/corpus/small_42M_chinchilla_900M.json";
        f.pretraining = "pretrain/training/chinchilla_small_900m.json";
        f.sft_datasets = "sft/datasets/small_42m_sft_balanced.json";
        f.sft_training = "sft/training/lora_small_42m.json";
    } else if (name == "medium") {
        f.architecture = "architectures/medium.json";
        f.corpus = "pretrain/corpus/medium_84M_chinchilla_1800M.json";
        f.pretraining = "pretrain/training/chinchilla_medium_1800m.json";
        f.sft_datasets = "sft/datasets/medium_84m_sft_balanced.json";
        f.sft_training = "sft/training/lora_medium_84m.json";
    } else {
        throw config::FieldError("recipe", "no Lumi-Lab recipe '" + std::string(name) +
                                               "' (tiny, small, medium; or empty with every files.* set)");
    }
    return f;
}

struct LumiLabImportSettings {
    std::filesystem::path original = "config";  // Lumi-Lab's config/ folder
    std::string recipe = "tiny";                // the files (lumi_lab_recipe); empty: `files` names them all
    LumiLabFiles files;                         // when set (architecture given), instead of the recipe's
    std::string data = "{data}";                // the folder the data sets were downloaded to
    // `<kind>:<key>` patterns (`*` within one key segment) of keys lumi cannot reproduce, to import without
    // them: kinds are architecture, corpus, source, tokenizer, packing, pretraining, sft_datasets,
    // sft_training, dpo_datasets, dpo_training, evaluation.
    std::vector<std::string> accept;
    std::filesystem::path output;   // the pipeline settings file written by lumi_import_config
    std::filesystem::path mapping;  // the key mapping as Markdown; empty: printed

    void validate() const {
        if (original.empty()) throw config::FieldError("original", "must name Lumi-Lab's config folder");
        if (recipe.empty() && files.empty())
            throw config::FieldError("files.architecture", "is required when no recipe is named");
        if (data.empty()) throw config::FieldError("data", "must name the data folder (or '{data}')");
    }
};

// How an original key reaches lumi.
enum class KeyUse { mapped, checked, ignored, documentation, accepted };

struct KeyMapping {
    std::string file;   // as given: original / relative path
    std::string key;    // dotted, `datasets[0].name`
    std::string value;  // as JSON, shortened
    KeyUse use = KeyUse::mapped;
    std::string lumi;  // the field it sets, what lumi does instead, or why it has no effect
};

struct LumiLabImport {
    PipelineSettings settings;
    std::vector<KeyMapping> keys;  // every key of every file read, in file order
    std::string preset;            // the lumi preset the architecture is
};

namespace detail::lab {

namespace json = boost::json;
namespace fs = std::filesystem;

// `*` matches any run of characters within one dotted segment.
inline bool glob(std::string_view pattern, std::string_view text) {
    if (pattern.empty()) return text.empty();
    if (pattern.front() == '*') {
        for (std::size_t i = 0; i <= text.size(); ++i) {
            if (glob(pattern.substr(1), text.substr(i))) return true;
            if (i < text.size() && text[i] == '.') break;
        }
        return false;
    }
    return !text.empty() && pattern.front() == text.front() && glob(pattern.substr(1), text.substr(1));
}

inline std::string shown(const json::value& value) {
    std::string text = config::format_json_line(value);
    if (text.size() > 72) text = text.substr(0, 68) + " ...";
    return text;
}

inline bool same(const json::value& a, const json::value& b) {
    if (a.is_number() && b.is_number()) return a.to_number<double>() == b.to_number<double>();
    return a == b;
}

using Holds = std::function<bool(const json::value&)>;

inline Holds is(json::value expected) {
    return [expected = std::move(expected)](const json::value& v) { return same(v, expected); };
}

// One key pattern of a file kind, and what lumi makes of it.
struct Rule {
    std::string pattern;
    KeyUse use;
    std::string lumi;
    Holds holds{};     // checked: the values lumi reproduces (any when empty); a gap: where lumi equals it
    bool gap = false;  // lumi has no equivalent: refused unless accepted (or `holds`)
};

inline Rule map(std::string pattern, std::string field) {
    return {std::move(pattern), KeyUse::mapped, std::move(field)};
}
inline Rule check(std::string pattern, std::string what, Holds holds = {}) {
    return {std::move(pattern), KeyUse::checked, std::move(what), std::move(holds)};
}
inline Rule ignore(std::string pattern, std::string why) {
    return {std::move(pattern), KeyUse::ignored, std::move(why)};
}
inline Rule doc(std::string pattern) {
    return {std::move(pattern), KeyUse::documentation, "descriptive text"};
}
inline Rule gap(std::string pattern, std::string why, Holds neutral = {}) {
    return {std::move(pattern), KeyUse::accepted, std::move(why), std::move(neutral), true};
}

// One original file, parsed, with typed access by dotted key; errors name the file and the key.
struct Document {
    std::string kind;
    std::string file;  // as shown in messages
    fs::path relative;
    json::value root;

    [[noreturn]] void fail(std::string_view key, const std::string& message) const {
        throw lumi::Error(file + ": " + std::string(key) + ": " + message);
    }

    const json::value* find(std::string_view key) const {
        const json::value* node = &root;
        std::size_t at = 0;
        while (node && at < key.size()) {
            std::size_t end = key.find_first_of(".[", at);
            if (end == std::string_view::npos) end = key.size();
            if (key[at] == '[') {
                const std::size_t close = key.find(']', at);
                const std::size_t index = std::stoul(std::string(key.substr(at + 1, close - at - 1)));
                const json::array* array = node->if_array();
                node = array && index < array->size() ? &(*array)[index] : nullptr;
                at = close + 1;
            } else {
                const json::object* object = node->if_object();
                node = object ? object->if_contains(key.substr(at, end - at)) : nullptr;
                at = end;
            }
            if (at < key.size() && key[at] == '.') ++at;
        }
        return node;
    }

    bool has(std::string_view key) const {
        const json::value* v = find(key);
        return v && !v->is_null();
    }

    template <class T>
    T get(std::string_view key) const {
        const json::value* v = find(key);
        if (!v) fail(key, "missing: lumi needs it to import this file");
        return config::from_json<T>(*v, file + ": " + std::string(key));
    }

    template <class T>
    std::optional<T> get_optional(std::string_view key) const {
        if (!has(key)) return std::nullopt;
        return get<T>(key);
    }
};

// A Hugging Face data set's folder under `data`, in the layout of the Hub's Parquet files.
inline std::string hub_path(const std::string& data, const Document& d, const std::string& at) {
    const auto subset = d.get_optional<std::string>(at + ".subset");
    return data + "/" + d.get<std::string>(at + ".dataset_name") + "/" + subset.value_or("default") + "/" +
           d.get<std::string>(at + ".split");
}

inline double complement(double train_fraction) {
    return std::round((1.0 - train_fraction) * 1e9) / 1e9;  // 1 - 0.95 as 0.05, not 0.050000000000000044
}

inline const json::value null_value{};

}  // namespace detail::lab

namespace detail {

namespace json = boost::json;

// The LoRA each preset fine-tunes with (`<preset>_lora`, as the stage binaries choose it).
inline std::optional<LoraSpec> preset_lora(std::string_view name) {
    if (name == "nano") return presets::nano_lora;
    if (name == "micro") return presets::micro_lora;
    if (name == "tiny") return presets::tiny_lora;
    if (name == "small") return presets::small_lora;
    if (name == "medium") return presets::medium_lora;
    if (name == "base") return presets::base_lora;
    return std::nullopt;
}

class LumiLabImporter {
  public:
    using Document = lab::Document;
    using Rule = lab::Rule;

    explicit LumiLabImporter(const LumiLabImportSettings& settings) : settings_(settings) {
        settings.validate();
        files_ = settings.files.empty() ? lumi_lab_recipe(settings.recipe) : settings.files;
        if (files_.corpus.empty() || files_.tokenizer.empty() || files_.packing.empty() ||
            files_.pretraining.empty() || files_.sft_datasets.empty() || files_.sft_training.empty())
            throw config::FieldError("files",
                                     "name the corpus, tokenizer, packing, pretraining, sft_datasets "
                                     "and sft_training files (each run of the pipeline needs them)");
        if (files_.dpo_datasets.empty() != files_.dpo_training.empty())
            throw config::FieldError("files.dpo_training",
                                     "DPO needs both dpo_datasets and dpo_training, or neither");
    }

    LumiLabImport run() {
        const Document architecture = open("architecture", files_.architecture);
        import_architecture(architecture);
        // The mix first: the sources' files are checked against it.
        const Document corpus = open("corpus", files_.corpus);
        std::vector<Document> sources;
        for (const auto& file : files_.sources) sources.push_back(open("source", file));
        const Document tokenizer = open("tokenizer", files_.tokenizer);
        const Document packing = open("packing", files_.packing);
        const Document pretraining = open("pretraining", files_.pretraining);
        const Document sft_datasets = open("sft_datasets", files_.sft_datasets);
        const Document sft_training = open("sft_training", files_.sft_training);
        std::vector<Document> dpo_datasets;
        for (const auto& file : files_.dpo_datasets) dpo_datasets.push_back(open("dpo_datasets", file));
        std::optional<Document> dpo_training;
        if (!files_.dpo_training.empty()) dpo_training = open("dpo_training", files_.dpo_training);
        std::optional<Document> evaluation;
        if (!files_.evaluation.empty()) evaluation = open("evaluation", files_.evaluation);

        import_corpus(corpus);
        for (const auto& source : sources) import_source(source, corpus);
        import_tokenizer(tokenizer);
        import_packing(packing);
        import_pretraining(pretraining);
        import_sft_datasets(sft_datasets);
        import_sft_training(sft_training);
        for (const auto& d : dpo_datasets) import_dpo_datasets(d);
        if (dpo_training) import_dpo_training(*dpo_training);
        if (evaluation) import_evaluation(*evaluation);

        // Fixed by the import: the instruction data must be the datasets, never WordNet's stand-in.
        out_.instructions.source = InstructionSource::datasets;
        out_.dpo_corpus.chat_template = out_.sft_corpus.chat_template;
        // What lumi writes must read back strictly as what was built.
        const json::value written = config::to_json(out_);
        out_ = config::from_json<PipelineSettings>(written, "the imported settings");
        if (config::to_json(out_) != written)
            throw lumi::Error("the imported settings do not read back as written (a lumi bug)");
        return {out_, std::move(keys_), preset_};
    }

  private:
    const LumiLabImportSettings& settings_;
    LumiLabFiles files_;
    PipelineSettings out_;
    std::vector<KeyMapping> keys_;
    std::string preset_;
    ModelSpec spec_{};
    LoraSpec lora_{};
    std::string architecture_file_;
    // lumi field -> (the original key that set it, its value as JSON): two keys must agree.
    std::map<std::string, std::pair<std::string, std::string>> assigned_;

    Document open(std::string kind, const std::filesystem::path& relative) {
        const auto path = settings_.original / relative;
        Document d{std::move(kind), path.string(), relative, config::read_json_file(path)};
        if (!d.root.is_object()) throw lumi::Error(d.file + ": expected a JSON object");
        return d;
    }

    bool accepted(const Document& d, std::string_view key) const {
        const std::string name = d.kind + ":" + std::string(key);
        return std::any_of(settings_.accept.begin(), settings_.accept.end(),
                           [&](const std::string& pattern) { return lab::glob(pattern, name); });
    }

    [[noreturn]] void refuse_gap(const Document& d, std::string_view key, const json::value& value,
                                 const std::string& why) const {
        d.fail(key, lab::shown(value) + " has no lumi equivalent: " + why + "; list '" + d.kind + ":" +
                        std::string(key) + "' in accept to import without it");
    }

    void record(const Document& d, const std::string& key, const json::value& value, KeyUse use,
                std::string lumi) {
        keys_.push_back({d.file, key, lab::shown(value), use, std::move(lumi)});
    }

    // Every key of the file, classified by the rules; what a rule maps is set afterwards by the caller.
    void classify(const Document& d, const std::vector<Rule>& rules) { walk(d, rules, d.root, ""); }

    const Rule* rule_for(const std::vector<Rule>& rules, const std::string& key) const {
        for (const Rule& rule : rules)
            if (lab::glob(rule.pattern, key)) return &rule;
        return nullptr;
    }

    // A rule below `key` (`_architecture_details.head_dim` under `_*`) keeps the walk going into it.
    static bool has_deeper_rule(const std::vector<Rule>& rules, const std::string& key) {
        return std::any_of(rules.begin(), rules.end(), [&](const Rule& rule) {
            return rule.pattern.size() > key.size() && rule.pattern[key.size()] == '.' &&
                   lab::glob(std::string_view(rule.pattern).substr(0, key.size()), key);
        });
    }

    void walk(const Document& d, const std::vector<Rule>& rules, const json::value& value,
              const std::string& key) {
        const Rule* rule = key.empty() ? nullptr : rule_for(rules, key);
        if (rule && rule->use == KeyUse::documentation && !has_deeper_rule(rules, key))
            return record(d, key, value, rule->use, rule->lumi);
        if (const json::object* object = value.if_object()) {
            // A mapped object is a named entry (a corpus source): its name is the value.
            if (rule && rule->use == KeyUse::mapped)
                record(d, key, json::string(key.substr(key.rfind('.') + 1)), rule->use, rule->lumi);
            for (const auto& [name, item] : *object)
                walk(d, rules, item, key.empty() ? std::string(name) : key + "." + std::string(name));
            return;
        }
        if (const json::array* array = value.if_array();
            array && !array->empty() && array->front().is_object()) {
            for (std::size_t i = 0; i < array->size(); ++i)
                walk(d, rules, (*array)[i], key + "[" + std::to_string(i) + "]");
            return;
        }
        if (!rule)
            d.fail(key,
                   "no lumi equivalent is known for this key; lumi imports only the keys it can map "
                   "(see docs/reproducing-lumi-lab.md)");
        if (rule->gap) {
            if (rule->holds && rule->holds(value))
                return record(d, key, value, KeyUse::checked,
                              rule->lumi + " (this value is lumi's behaviour)");
            if (!accepted(d, key)) refuse_gap(d, key, value, rule->lumi);
            return record(d, key, value, KeyUse::accepted, rule->lumi);
        }
        if (rule->use == KeyUse::checked && rule->holds && !rule->holds(value))
            d.fail(key, lab::shown(value) + " is not what lumi does (" + rule->lumi +
                            "); lumi cannot import another value");
        record(d, key, value, rule->use, rule->lumi);
    }

    // A lumi field set from an original key: a second key setting it to another value is an error.
    template <class T>
    void assign(const Document& d, std::string_view key, const std::string& field, T& target, T value) {
        const std::string text = config::format_json_line(config::to_json(value));
        const std::string origin = d.file + ": " + std::string(key);
        const auto [at, inserted] = assigned_.emplace(field, std::pair{origin, text});
        if (!inserted && at->second.second != text)
            d.fail(key, "sets " + field + " to " + text + ", but " + at->second.first + " set it to " +
                            at->second.second);
        target = std::move(value);
    }

    // A gap decided after classification (values that differ between entries): refused or marked accepted.
    void accept_or_refuse(const Document& d, const std::string& key, const std::string& why) {
        const json::value* value = d.find(key);
        if (!accepted(d, key)) refuse_gap(d, key, value ? *value : lab::null_value, why);
        for (KeyMapping& row : keys_)
            if (row.file == d.file && row.key == key) row.use = KeyUse::accepted, row.lumi = why;
    }

    // --- architectures/*.json ---------------------------------------------------------------------------

    void import_architecture(const Document& d) {
        using lab::check, lab::doc, lab::gap, lab::is, lab::map;
        preset_ = d.get<std::string>("model_name");
        const auto spec = presets::find(preset_);
        if (!spec) {
            std::string names;
            for (const auto& p : presets::all) names += (names.empty() ? "" : ", ") + std::string(p.name);
            d.fail("model_name", "'" + preset_ + "' is not a lumi preset (" + names + ")");
        }
        spec_ = *spec;
        lora_ = *preset_lora(preset_);
        architecture_file_ = d.relative.filename().string();
        classify(d, {
                        map("model_name", "preset, pretrain.preset, sft.preset, dpo.preset"),
                        check("n_layer", "presets::" + preset_ + ".n_layer"),
                        check("d_model", "presets::" + preset_ + ".d_model"),
                        check("n_head",
                              "presets::" + preset_ + ".n_head (= n_kv_head: no grouped-query attention)"),
                        check("d_ff", "presets::" + preset_ + ".ffn_hidden"),
                        check("vocab_size", "presets::" + preset_ + ".vocab_size"),
                        check("sequence_length", "presets::" + preset_ + ".context"),
                        check("layer_norm_epsilon", "presets::" + preset_ + ".norm_eps"),
                        gap("dropout", "lumi's model has no dropout", is(0.0)),
                        check("_architecture_details.head_dim", "d_model / n_head"),
                        check("_architecture_details.ffn_ratio", "ffn_hidden / d_model"),
                        check("_architecture_details.normalization", "RMSNorm", is("RMSNorm")),
                        check("_architecture_details.activation", "SwiGLU", is("SwiGLU")),
                        check("_architecture_details.position_encoding", "RoPE", is("RoPE")),
                        check("_architecture_details.attention_type", "causal self-attention",
                              is("causal_self_attention")),
                        check("_architecture_details.bias_terms", "no biases", is(false)),
                        doc("_architecture_details.estimated_parameters"),
                        doc("_*"),
                    });
        // Every differing field in one message.
        std::string differences;
        auto compare = [&](std::string_view key, const json::value& lumi, std::string_view field) {
            const auto value = d.get_optional<double>(key);
            if (value && *value != lumi.to_number<double>())
                differences += (differences.empty() ? "" : ", ") + std::string(key) + " " +
                               config::format_json_line(*d.find(key)) + " (lumi's " + std::string(field) +
                               " " + config::format_json_line(lumi) + ")";
        };
        compare("n_layer", spec_.n_layer, "n_layer");
        compare("d_model", spec_.d_model, "d_model");
        compare("n_head", spec_.n_head, "n_head");
        compare("n_head", spec_.n_kv_head, "n_kv_head");
        compare("d_ff", spec_.ffn_hidden, "ffn_hidden");
        compare("vocab_size", spec_.vocab_size, "vocab_size");
        compare("sequence_length", spec_.context, "context");
        compare("layer_norm_epsilon", spec_.norm_eps, "norm_eps");
        compare("_architecture_details.head_dim", spec_.head_dim(), "head_dim");
        compare("_architecture_details.ffn_ratio", double(spec_.ffn_hidden) / double(spec_.d_model),
                "ffn_hidden / d_model");
        if (!differences.empty())
            throw lumi::Error(d.file + ": the architecture is not lumi's preset '" + preset_ +
                              "': " + differences + "; lumi builds only its presets (presets/lumi/presets/)");
        out_.preset = out_.pretrain.preset = out_.sft.preset = out_.dpo.preset = preset_;
        out_.tokenizer.model_max_length = spec_.context;
    }

    // --- pretrain/corpus/*.json -------------------------------------------------------------------------

    void import_corpus(const Document& d) {
        using lab::check, lab::doc, lab::gap, lab::ignore, lab::is, lab::map;
        const json::value vocab(spec_.vocab_size), context(spec_.context);
        classify(
            d,
            {
                doc("name"),
                doc("description"),
                doc("version"),
                doc("model_target"),
                doc("chinchilla_ratio"),
                doc("strategy"),
                doc("_*"),
                map("target_total_tokens", "corpus.budget.tokens (shared by the sources' weights)"),
                check("datasets_count", "the number of corpus.sources"),
                check("sequence_length", "presets::" + preset_ + ".context", lab::is(context)),
                check("vocab_size", "presets::" + preset_ + ".vocab_size", lab::is(vocab)),
                map("processing_params.shard_size", "corpus.shards.max_documents"),
                check("processing_params.vocab_size", "presets::" + preset_ + ".vocab_size", lab::is(vocab)),
                map("deduplication.threshold", "corpus.dedup.threshold"),
                map("deduplication.num_perm", "corpus.dedup.permutations"),
                map("deduplication.shingle_size", "corpus.dedup.shingle_size (word shingles)"),
                ignore("training_params.train_ratio",
                       "superseded by the packing file's packing_params.train_val_split: lumi splits once, "
                       "when packing (pack.validation_fraction)"),
                ignore("training_params.shard_tokens",
                       "superseded by the packing file's optimization.shard_size (pack.sequences_per_shard)"),
                check("training_params.sequence_length", "presets::" + preset_ + ".context",
                      lab::is(context)),
                check("training_params.vocab_size", "presets::" + preset_ + ".vocab_size", lab::is(vocab)),
                ignore("training_params.tokenizer_path",
                       "the pipeline's tokenizer is its run directory's 02_tokenizer"),
                map("sources.*", "corpus.sources[].name (the entry's name)"),
                check("sources.*.type", "read from the data set's downloaded files (Parquet)",
                      is("huggingface")),
                map("sources.*.dataset_name",
                    "corpus.sources[].paths: {data}/<dataset_name>/<subset>/<split>"),
                map("sources.*.subset", "corpus.sources[].paths (`default` when null)"),
                map("sources.*.split", "corpus.sources[].paths"),
                map("sources.*.text_keys", "corpus.sources[].text_field"),
                check("sources.*.token_budget",
                      "weight x target_total_tokens: lumi shares corpus.budget.tokens by weight"),
                map("sources.*.weight", "corpus.sources[].weight"),
                doc("sources.*.description"),
                ignore("sources.*.analysis_sample_size",
                       "documents the original samples to estimate characters per token; lumi takes "
                       "corpus.budget.chars_per_token as given"),
                map("sources.*.chars_per_token", "corpus.budget.chars_per_token (one for every source)"),
                gap("sources.*.margin_ratio",
                    "the original collects that much more text than the budget; lumi fills the budget "
                    "exactly",
                    is(0.0)),
                check("sources.*.trust_remote_code", "lumi runs no data-set code: it reads the files",
                      is(false)),
                map("sources.*.min_length", "corpus.sources[].min_characters"),
                map("sources.*.max_length", "corpus.sources[].max_characters"),
                gap("sources.*.require_english", "lumi's corpus stage has no language filter", is(false)),
            });
        // The entries' names are keys of `sources`: recorded as the walk saw the leaves below them.
        const json::object& sources = d.find("sources")->as_object();
        if (const auto count = d.get_optional<std::uint64_t>("datasets_count");
            count && *count != sources.size())
            d.fail("datasets_count", std::to_string(*count) + ", but `sources` lists " +
                                         std::to_string(sources.size()) + " data sets");
        data::CorpusSettings& c = out_.corpus;
        c.sources.clear();
        const std::uint64_t total = d.get<std::uint64_t>("target_total_tokens");
        c.budget.tokens = total;
        c.budget.on_shortfall = data::Shortfall::fail;
        if (d.has("processing_params.shard_size"))
            c.shards.max_documents = d.get<std::uint64_t>("processing_params.shard_size");
        if (d.has("deduplication.threshold")) c.dedup.threshold = d.get<double>("deduplication.threshold");
        if (d.has("deduplication.num_perm"))
            c.dedup.permutations = d.get<std::uint32_t>("deduplication.num_perm");
        if (d.has("deduplication.shingle_size"))
            c.dedup.shingle_size = d.get<std::uint32_t>("deduplication.shingle_size");
        c.dedup.shingle = data::Shingle::words;

        for (const auto& [name, entry] : sources) {
            const std::string at = "sources." + std::string(name);
            if (!entry.is_object()) d.fail(at, "expected an object describing a data set");
            data::CorpusSource s;
            s.name = std::string(name);
            s.paths = {lab::hub_path(settings_.data, d, at)};
            s.match = {"*.parquet"};
            s.format = data::SourceFormat::parquet;
            s.text_field = text_key(d, at + ".text_keys");
            s.weight = d.get<double>(at + ".weight");
            const auto budget = d.get_optional<double>(at + ".token_budget");
            if (budget && std::abs(*budget - *s.weight * double(total)) > 0.5)
                d.fail(at + ".token_budget",
                       config::format_json_line(*d.find(at + ".token_budget")) +
                           " is not weight x target_total_tokens (" +
                           config::format_json_line(boost::json::value(*s.weight * double(total))) +
                           "): lumi gives a weighted source its share of corpus.budget.tokens");
            if (d.has(at + ".chars_per_token"))
                assign(d, at + ".chars_per_token", "corpus.budget.chars_per_token", c.budget.chars_per_token,
                       d.get<double>(at + ".chars_per_token"));
            s.license = "https://huggingface.co/datasets/" + d.get<std::string>(at + ".dataset_name");
            s.min_characters = d.get_optional<std::uint64_t>(at + ".min_length");
            s.max_characters = d.get_optional<std::uint64_t>(at + ".max_length");
            c.sources.push_back(std::move(s));
        }
    }

    static std::string text_key(const Document& d, const std::string& key) {
        const json::value* v = d.find(key);
        if (v && v->is_array() && v->as_array().size() == 1) return d.get<std::string>(key + "[0]");
        if (v && v->is_array()) d.fail(key, "lumi reads the text of a source from one field; list one key");
        return d.get<std::string>(key);
    }

    // --- pretrain/sources/*.json: the licence of each data set the mix reads ---------------------------

    void import_source(const Document& d, const Document& corpus) {
        using lab::check, lab::doc, lab::ignore, lab::is, lab::map;
        const std::string superseded = "superseded by the corpus mix's entry for this data set";
        classify(d,
                 {
                     doc("name"),
                     doc("description"),
                     doc("_*"),
                     check("type", "read from the data set's downloaded files (Parquet)", is("huggingface")),
                     map("dataset_name", "the corpus mix's source of this data set"),
                     check("subset", "equal to the corpus mix's entry"),
                     check("split", "equal to the corpus mix's entry"),
                     check("text_keys", "equal to the corpus mix's entry"),
                     check("trust_remote_code", "lumi runs no data-set code: it reads the files", is(false)),
                     ignore("quality_filters.*", superseded),
                     ignore("processing_params.chars_per_token", superseded),
                     ignore("processing_params.margin_ratio", superseded),
                     ignore("processing_params.use_streaming", "lumi streams the downloaded files"),
                     ignore("processing_params.max_stream_samples",
                            "superseded by the source's share of corpus.budget.tokens"),
                     ignore("processing_params.shard_size",
                            "superseded by the mix's processing_params.shard_size"),
                     map("source_metadata.license", "corpus.sources[].license"),
                     doc("source_metadata.*"),
                 });
        const std::string dataset = d.get<std::string>("dataset_name");
        const json::object& entries = corpus.find("sources")->as_object();
        for (std::size_t i = 0; i < out_.corpus.sources.size(); ++i) {
            const std::string at = "sources." + out_.corpus.sources[i].name;
            if (corpus.get<std::string>(at + ".dataset_name") != dataset) continue;
            for (const char* key : {"subset", "split", "text_keys"}) {
                const json::value* mine = d.find(key);
                const json::value* theirs = corpus.find(at + "." + key);
                if (mine && theirs && *mine != *theirs)
                    d.fail(key, config::format_json_line(*mine) + ", but " + corpus.file + " reads " +
                                    dataset + " with " + key + " " + config::format_json_line(*theirs));
            }
            if (const auto license = d.get_optional<std::string>("source_metadata.license"))
                out_.corpus.sources[i].license =
                    *license + ": " + dataset + " (https://huggingface.co/datasets/" + dataset + ")";
            return;
        }
        std::string used;
        for (const auto& [name, entry] : entries)
            used += (used.empty() ? "" : ", ") +
                    corpus.get<std::string>("sources." + std::string(name) + ".dataset_name");
        d.fail("dataset_name",
               "'" + dataset + "' is not in the corpus mix " + corpus.file + " (" + used + ")");
    }

    // --- pretrain/tokenizer/*.json ----------------------------------------------------------------------

    void import_tokenizer(const Document& d) {
        using lab::check, lab::doc, lab::gap, lab::ignore, lab::is, lab::map;
        auto& t = out_.tokenizer;
        const std::string after = "a measurement made after training; the tokenizer does not depend on it";
        classify(
            d,
            {
                doc("name"),
                doc("description"),
                doc("version"),
                doc("_*"),
                doc("special_tokens._comment"),
                map("tokenizer_params.vocab_size", "tokenizer.vocab_size"),
                map("tokenizer_params.model_type", "tokenizer.model_type"),
                map("tokenizer_params.character_coverage", "tokenizer.character_coverage"),
                map("tokenizer_params.normalization_rule", "tokenizer.normalization"),
                map("training_params.max_training_sentences", "tokenizer.input_sentence_size"),
                map("training_params.max_sentence_length", "tokenizer.max_sentence_length (bytes)"),
                ignore("training_params.calibration_samples", after),
                map("training_params.shuffle_input_sentence", "tokenizer.shuffle"),
                check("training_params.seed_sentencepiece_size",
                      "SentencePiece's default seed vocabulary of 1,000,000, which lumi keeps", is(1000000)),
                gap("training_params.min_sentence_length",
                    "lumi's tokenizer stage skips no sentence for being short", is(0)),
                gap("training_params.sentence_filter_max_length",
                    "lumi skips only sentences over tokenizer.max_sentence_length bytes"),
                ignore("training_params.initial_chars_per_token",
                       "an estimate of characters per token before training; the tokenizer does not depend "
                       "on it"),
                map("training_params.num_threads",
                    "tokenizer.threads (a unigram model depends on the count)"),
                ignore("training_params.train_extremely_large_corpus",
                       "a SentencePiece switch for counting over huge inputs; lumi samples "
                       "tokenizer.input_sentence_size sentences"),
                map("training_params.split_digits", "tokenizer.split_digits"),
                check("training_params.allow_whitespace_only_pieces",
                      "SentencePiece's default (false), which lumi keeps", is(false)),
                map("training_params.byte_fallback", "tokenizer.byte_fallback"),
                map("special_tokens.unk_id", "tokenizer.unk_id"),
                map("special_tokens.bos_id", "tokenizer.bos_id"),
                map("special_tokens.eos_id", "tokenizer.eos_id"),
                map("special_tokens.pad_id", "tokenizer.pad_id"),
                gap("special_tokens.control_symbols",
                    "lumi's tokenizer reserves unk, bos, eos and pad (<pad>) and no other control symbol",
                    is(boost::json::array{"<pad>"})),
                ignore("validation_params.*", after),
                gap("corpus_manifest",
                    "the original trains its tokenizer on a corpus of its own (tokenizer_training_mix); "
                    "lumi's pipeline trains it on the pretraining corpus (01_corpus), sampling "
                    "tokenizer.input_sentence_size sentences"),
            });
        assign(d, "tokenizer_params.vocab_size", "tokenizer.vocab_size", t.vocab_size,
               d.get<std::int32_t>("tokenizer_params.vocab_size"));
        if (t.vocab_size != spec_.vocab_size)
            d.fail("tokenizer_params.vocab_size", std::to_string(t.vocab_size) + ", but presets::" + preset_ +
                                                      " has a vocabulary of " +
                                                      std::to_string(spec_.vocab_size));
        if (d.has("tokenizer_params.model_type"))
            t.model_type = d.get<tokenizer::ModelType>("tokenizer_params.model_type");
        if (d.has("tokenizer_params.character_coverage"))
            t.character_coverage = d.get<double>("tokenizer_params.character_coverage");
        if (d.has("tokenizer_params.normalization_rule"))
            t.normalization = d.get<std::string>("tokenizer_params.normalization_rule");
        if (d.has("training_params.max_training_sentences"))
            t.input_sentence_size = d.get<std::uint64_t>("training_params.max_training_sentences");
        if (d.has("training_params.max_sentence_length"))
            t.max_sentence_length = d.get<std::uint32_t>("training_params.max_sentence_length");
        if (d.has("training_params.shuffle_input_sentence"))
            t.shuffle = d.get<bool>("training_params.shuffle_input_sentence");
        if (d.has("training_params.num_threads"))
            t.threads = d.get<std::uint32_t>("training_params.num_threads");
        if (d.has("training_params.split_digits"))
            t.split_digits = d.get<bool>("training_params.split_digits");
        if (d.has("training_params.byte_fallback"))
            t.byte_fallback = d.get<bool>("training_params.byte_fallback");
        if (d.has("special_tokens.unk_id")) t.unk_id = d.get<std::int32_t>("special_tokens.unk_id");
        if (d.has("special_tokens.bos_id")) t.bos_id = d.get<std::int32_t>("special_tokens.bos_id");
        if (d.has("special_tokens.eos_id")) t.eos_id = d.get<std::int32_t>("special_tokens.eos_id");
        if (d.has("special_tokens.pad_id")) t.pad_id = d.get<std::int32_t>("special_tokens.pad_id");
    }

    // --- pretrain/packing/*.json ------------------------------------------------------------------------

    void import_packing(const Document& d) {
        using lab::check, lab::doc, lab::ignore, lab::is, lab::map;
        auto& p = out_.pack;
        classify(
            d,
            {
                doc("name"),
                doc("description"),
                doc("version"),
                doc("_*"),
                map("packing_params.sequence_length", "pack.sequence_length"),
                map("packing_params.train_val_split", "pack.validation_fraction = 1 - train_val_split"),
                check("packing_params.packing_strategy",
                      "lumi appends each document and its EOS to one stream and cuts it into rows",
                      is("greedy")),
                check("packing_params.shuffle",
                      "lumi's loader draws the rows in a seeded random order (pretrain.run.seed)", is(true)),
                map("packing_params.seed", "pack.seed (the train/validation assignment)"),
                map("optimization.shard_size", "pack.sequences_per_shard"),
                ignore("optimization.num_workers", "a throughput setting (pack.threads, 0: every core)"),
                ignore("optimization.buffer_size",
                       "a throughput setting (pack.batch_documents documents tokenised at a time)"),
            });
        assign(d, "packing_params.sequence_length", "pack.sequence_length", p.sequence_length,
               d.get<std::uint32_t>("packing_params.sequence_length"));
        if (p.sequence_length > spec_.context + 1)
            d.fail("packing_params.sequence_length",
                   std::to_string(p.sequence_length) + " exceeds presets::" + preset_ + "'s context of " +
                       std::to_string(spec_.context) + " (+1 for the targets)");
        if (d.has("packing_params.train_val_split"))
            assign(d, "packing_params.train_val_split", "pack.validation_fraction", p.validation_fraction,
                   lab::complement(d.get<double>("packing_params.train_val_split")));
        if (d.has("packing_params.seed")) p.seed = d.get<std::uint64_t>("packing_params.seed");
        if (d.has("optimization.shard_size"))
            p.sequences_per_shard = d.get<std::uint64_t>("optimization.shard_size");
    }

    // --- the trainers' shared keys (transformers' TrainingArguments) -------------------------------------

    // Keys of `training_params` that only change speed, memory or logging backends.
    static std::vector<Rule> trainer_rules(const std::string& p) {
        using lab::check, lab::ignore, lab::is;
        return {
            ignore(p + ".dataloader_num_workers", "lumi's loader prepares the next batch on one thread"),
            ignore(p + ".gradient_checkpointing",
                   "recomputes activations to save memory; the training is the same, and lumi keeps them"),
            ignore(p + ".per_device_eval_batch_size",
                   "validation batches of run.micro_batch rows; the validation loss does not depend on it"),
            ignore(p + ".report_to", "lumi logs metrics.jsonl"),
            ignore(p + ".remove_unused_columns", "a switch of transformers' data collator"),
            ignore(p + ".ddp_find_unused_parameters", "lumi's data parallelism reduces every gradient"),
            check(p + ".evaluation_strategy", "validation every run.eval_every steps", is("steps")),
            check(p + ".save_strategy", "a checkpoint every run.checkpoint_every steps", is("steps")),
            check(p + ".optim", "AdamW as PyTorch defines it", is("adamw_torch")),
            check(p + ".lr_scheduler_type", "linear warm-up, cosine decay to 0 (schedule.min_lr_ratio 0)",
                  is("cosine")),
            check(p + ".fp16", "lumi's mixed precision is bfloat16 (precision.dtype)", is(false)),
            check(p + ".group_by_length", "lumi packs examples into rows; it does not batch by length",
                  is(false)),
            lab::gap(p + ".load_best_model_at_end",
                     "lumi keeps the last weights (final/, merged/), not the best-validated", is(false)),
            ignore(p + ".metric_for_best_model", "only used with load_best_model_at_end"),
            ignore(p + ".greater_is_better", "only used with load_best_model_at_end"),
        };
    }

    // transformers' AdamW defaults, which apply when a file names no adam_* key.
    static train::AdamWSettings transformers_adamw() {
        return {.lr = 5e-5, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0, .grad_clip = 1.0};
    }

    // The run, optimizer and schedule a transformers trainer's `training_params` give.
    void import_training_params(const Document& d, const std::string& stage, train::RunSettings& run,
                                train::AdamWSettings& adamw, train::ScheduleSettings& schedule,
                                train::PrecisionSettings& precision) {
        const std::string p = "training_params.";
        run.micro_batch = d.get<std::int64_t>(p + "per_device_train_batch_size");
        run.grad_accum = d.get_optional<std::int64_t>(p + "gradient_accumulation_steps").value_or(1);
        run.max_steps = d.get<std::int64_t>(p + "max_steps");
        if (run.max_steps <= 0)
            d.fail(p + "max_steps",
                   "lumi trains a number of steps: give max_steps > 0 (transformers then ignores "
                   "num_train_epochs)");
        if (const auto v = d.get_optional<std::int64_t>(p + "logging_steps")) run.log_every = *v;
        if (const auto v = d.get_optional<std::int64_t>(p + "eval_steps")) run.eval_every = *v;
        if (const auto v = d.get_optional<std::int64_t>(p + "save_steps")) run.checkpoint_every = *v;
        if (const auto v = d.get_optional<std::int64_t>(p + "save_total_limit")) run.keep_checkpoints = *v;
        if (d.has(p + "seed"))
            assign(d, p + "seed", stage + ".run.seed", run.seed, d.get<std::uint64_t>(p + "seed"));
        if (d.has(p + "data_seed"))
            assign(d, p + "data_seed", stage + ".run.seed", run.seed, d.get<std::uint64_t>(p + "data_seed"));
        adamw.lr = d.get<double>(p + "learning_rate");
        if (const auto v = d.get_optional<double>(p + "weight_decay")) adamw.weight_decay = *v;
        if (const auto v = d.get_optional<double>(p + "max_grad_norm")) adamw.grad_clip = *v;
        if (const auto v = d.get_optional<double>(p + "adam_beta1")) adamw.beta1 = *v;
        if (const auto v = d.get_optional<double>(p + "adam_beta2")) adamw.beta2 = *v;
        if (const auto v = d.get_optional<double>(p + "adam_epsilon")) adamw.eps = *v;
        schedule.warmup_steps = d.get_optional<std::int64_t>(p + "warmup_steps").value_or(0);
        schedule.warmup_ratio = d.get_optional<double>(p + "warmup_ratio").value_or(0.0);
        schedule.min_lr_ratio = 0.0;  // transformers' cosine ends at zero
        precision.dtype =
            d.get_optional<bool>(p + "bf16").value_or(false) ? train::Dtype::bfloat16 : train::Dtype::float32;
    }

    static std::vector<Rule> training_param_rules(const std::string& stage) {
        using lab::map;
        const std::string p = "training_params.";
        return {
            map(p + "learning_rate", stage + ".optimizer.lr"),
            map(p + "per_device_train_batch_size", stage + ".run.micro_batch"),
            map(p + "gradient_accumulation_steps", stage + ".run.grad_accum"),
            map(p + "max_steps", stage + ".run.max_steps"),
            lab::ignore(p + "num_train_epochs", "transformers ignores it when max_steps > 0"),
            map(p + "warmup_steps", stage + ".schedule.warmup_steps"),
            map(p + "warmup_ratio",
                stage + ".schedule.warmup_ratio (used when warmup_steps is 0, as in transformers)"),
            map(p + "weight_decay", stage + ".optimizer.weight_decay"),
            map(p + "max_grad_norm", stage + ".optimizer.grad_clip"),
            map(p + "logging_steps", stage + ".run.log_every"),
            map(p + "eval_steps", stage + ".run.eval_every"),
            map(p + "save_steps", stage + ".run.checkpoint_every"),
            map(p + "save_total_limit", stage + ".run.keep_checkpoints"),
            map(p + "seed", stage + ".run.seed (the data order)"),
            map(p + "data_seed", stage + ".run.seed (the data order)"),
            map(p + "bf16", stage + ".precision.dtype (bfloat16; float32 when false)"),
            map(p + "adam_beta1", stage + ".optimizer.beta1"),
            map(p + "adam_beta2", stage + ".optimizer.beta2"),
            map(p + "adam_epsilon", stage + ".optimizer.eps"),
        };
    }

    // A `lora_config` must be the preset's LoraSpec: every differing field in one message.
    std::vector<Rule> lora_rules() const {
        using lab::check, lab::is;
        const std::string name = "presets::" + preset_ + "_lora";
        return {
            check("lora_config.r", name + ".rank"),
            check("lora_config.lora_alpha", name + ".alpha"),
            check("lora_config.lora_dropout", name + ".dropout"),
            check("lora_config.target_modules", name + ".targets"),
            check("lora_config.bias", "LoRA trains no biases", is("none")),
            check("lora_config.task_type", "a causal language model", is("CAUSAL_LM")),
            check("lora_config.fan_in_fan_out", "lumi's projections are stored [out, in]", is(false)),
            check("lora_config.init_lora_weights", "A Kaiming-uniform and B zero, as PEFT", is(true)),
            check("lora_config.modules_to_save", "no module trains beside the adapters", lab::is(nullptr)),
        };
    }

    void check_lora(const Document& d) const {
        std::string differences;
        auto differ = [&](std::string_view key, const std::string& found, const std::string& lumi) {
            differences +=
                (differences.empty() ? "" : ", ") + std::string(key) + " " + found + " (lumi's " + lumi + ")";
        };
        if (const auto r = d.get_optional<std::int64_t>("lora_config.r"); r && *r != lora_.rank)
            differ("r", std::to_string(*r), "rank " + std::to_string(lora_.rank));
        if (const auto a = d.get_optional<double>("lora_config.lora_alpha"); a && *a != lora_.alpha)
            differ("lora_alpha", config::format_json_line(boost::json::value(*a)),
                   "alpha " + config::format_json_line(boost::json::value(lora_.alpha)));
        if (const auto p = d.get_optional<double>("lora_config.lora_dropout"); p && *p != lora_.dropout)
            differ("lora_dropout", config::format_json_line(boost::json::value(*p)),
                   "dropout " + config::format_json_line(boost::json::value(lora_.dropout)));
        if (const auto modules = d.get_optional<std::vector<std::string>>("lora_config.target_modules")) {
            std::uint32_t targets = 0;
            for (const std::string& module : *modules) {
                bool known = false;
                for (const auto role : {model::Role::q, model::Role::k, model::Role::v, model::Role::o,
                                        model::Role::gate, model::Role::up, model::Role::down}) {
                    if (module == model::module_name(role)) targets |= lora::role_bit(role), known = true;
                }
                if (!known)
                    d.fail("lora_config.target_modules",
                           "'" + module +
                               "' is not a projection of lumi's blocks "
                               "(q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
            }
            if (targets != lora_.targets)
                differ("target_modules", config::format_json_line(*d.find("lora_config.target_modules")),
                       "targets");
        }
        if (!differences.empty())
            throw lumi::Error(d.file + ": lora_config is not lumi's presets::" + preset_ + "_lora: " +
                              differences + "; the adapter's shape is compiled into lumi_pipeline_" +
                              preset_ + " (presets/lumi/presets/" + preset_ + ".hpp)");
    }

    // --- pretrain/training/*.json -----------------------------------------------------------------------

    void import_pretraining(const Document& d) {
        using lab::check, lab::doc, lab::ignore, lab::is, lab::map;
        std::vector<Rule> rules = {
            doc("name"),
            doc("description"),
            doc("version"),
            doc("_*"),
            check("architecture_config", "the architecture file imported (" + architecture_file_ + ")"),
            ignore("training_params.log_dataset_mix_steps",
                   "the original logs its mix during training; lumi's corpus manifest records it"),
            map("optimizer.type", "pretrain.recipe adamw_cosine (with scheduler.type cosine)"),
            map("optimizer.betas", "pretrain.optimizer.beta1, beta2"),
            map("optimizer.eps", "pretrain.optimizer.eps"),
            map("scheduler.type",
                "pretrain.recipe adamw_cosine; pretrain.schedule.min_lr_ratio 0 (transformers' "
                "cosine ends at zero)"),
            check("scheduler.num_cycles", "half a cosine period from the peak to the end", is(0.5)),
            ignore("hardware_params.use_flash_attn", "lumi uses LibTorch's fused attention where it has one"),
            map("hardware_params.bf16", "pretrain.precision.dtype (bfloat16; float32 when false)"),
            ignore("hardware_params.gradient_checkpointing",
                   "recomputes activations to save memory; the training is the same, and lumi keeps them"),
            ignore("hardware_params.dataloader_num_workers",
                   "lumi's loader prepares the next batch on one thread"),
            map("reproducibility.seed", "pretrain.init.seed (the initial weights)"),
            ignore(
                "reproducibility.deterministic",
                "lumi has no such switch; its data order and initialisation are seeded, and resume is exact"),
            map("data_params.sequence_length", "pack.sequence_length"),
            map("data_params.data_seed", "pretrain.run.seed (the data order)"),
            map("data_params.train_val_split", "pack.validation_fraction = 1 - train_val_split"),
        };
        for (auto& r : training_param_rules("pretrain")) rules.push_back(std::move(r));
        for (auto& r : trainer_rules("training_params")) rules.push_back(std::move(r));
        classify(d, rules);
        if (const auto file = d.get_optional<std::string>("architecture_config");
            file && std::filesystem::path(*file).filename() != architecture_file_)
            d.fail("architecture_config",
                   "'" + *file + "', but the architecture imported is " + architecture_file_);
        const auto optimizer = d.get_optional<std::string>("optimizer.type").value_or("adamw");
        const auto scheduler = d.get_optional<std::string>("scheduler.type").value_or("cosine");
        if (optimizer != "adamw")
            d.fail("optimizer.type", "'" + optimizer + "': lumi's recipe for it is AdamW (adamw)");
        if (scheduler != "cosine")
            d.fail("scheduler.type", "'" + scheduler + "': lumi imports the cosine schedule (adamw_cosine)");

        auto& p = out_.pretrain;
        p.recipe = "adamw_cosine";
        train::AdamWSettings adamw;
        train::ScheduleSettings schedule;
        train::PrecisionSettings precision = p.precision;
        import_training_params(d, "pretrain", p.run, adamw, schedule, precision);
        if (const auto betas = d.get_optional<std::vector<double>>("optimizer.betas")) {
            if (betas->size() != 2) d.fail("optimizer.betas", "expected two numbers, beta1 and beta2");
            adamw.beta1 = (*betas)[0];
            adamw.beta2 = (*betas)[1];
        }
        if (const auto eps = d.get_optional<double>("optimizer.eps")) adamw.eps = *eps;
        if (const auto bf16 = d.get_optional<bool>("hardware_params.bf16"))
            precision.dtype = *bf16 ? train::Dtype::bfloat16 : train::Dtype::float32;
        p.precision = precision;
        p.optimizer = config::to_json(adamw);
        p.schedule = config::to_json(schedule);
        if (const auto seed = d.get_optional<std::uint64_t>("reproducibility.seed")) p.init.seed = *seed;
        if (d.has("data_params.data_seed"))
            assign(d, "data_params.data_seed", "pretrain.run.seed", p.run.seed,
                   d.get<std::uint64_t>("data_params.data_seed"));
        if (d.has("data_params.sequence_length"))
            assign(d, "data_params.sequence_length", "pack.sequence_length", out_.pack.sequence_length,
                   d.get<std::uint32_t>("data_params.sequence_length"));
        if (d.has("data_params.train_val_split"))
            assign(d, "data_params.train_val_split", "pack.validation_fraction",
                   out_.pack.validation_fraction,
                   lab::complement(d.get<double>("data_params.train_val_split")));
    }

    // --- sft/datasets/*.json ----------------------------------------------------------------------------

    // The lumi reader of an instruction data set, from the fields the original reads (text_fields).
    static std::string sft_reader(const Document& d, const std::string& at) {
        const auto prompt = d.get<std::string>(at + ".text_fields.prompt");
        const auto response = d.get<std::string>(at + ".text_fields.response");
        if (prompt == "text" && response == "text" &&
            d.get_optional<bool>(at + ".custom_processing.conversation_tree").value_or(false))
            return "oasst";
        if (prompt == "instruction" && response == "output") return "alpaca";
        if (prompt == "instruction" && response == "response") return "dolly";
        if (prompt == "question" && response == "response") return "orca";
        d.fail(at + ".text_fields",
               "prompt '" + prompt + "', response '" + response +
                   "' is none of lumi's instruction readers: alpaca (instruction, output), dolly "
                   "(instruction, response), oasst (text, text with conversation_tree) or orca "
                   "(question, response)");
    }

    void import_sft_datasets(const Document& d) {
        using lab::check, lab::doc, lab::gap, lab::ignore, lab::is, lab::map;
        const std::string no_filter =
            "lumi's instruction corpus filters no example by its length (rows are cut to "
            "sft_corpus.sequence_length)";
        classify(
            d,
            {
                doc("name"),
                doc("description"),
                doc("version"),
                doc("_*"),
                doc("processing_metadata"),
                map("template", "sft_corpus.chat_template (and dpo_corpus.chat_template)"),
                gap("sampling_strategy.mode",
                    "lumi budgets instruction data in tokens (sft_corpus.datasets[].max_tokens), not in "
                    "conversations",
                    is("target_tokens")),
                map("sampling_strategy.target_tokens",
                    "sft_corpus.datasets[].max_tokens: target_tokens shared by the datasets' weights"),
                gap("sampling_strategy.target_conversations",
                    "lumi budgets instruction data in tokens, not in conversations", lab::is(nullptr)),
                gap("sampling_strategy.max_samples_per_dataset",
                    "lumi budgets instruction data in tokens (sft_corpus.datasets[].max_tokens)",
                    lab::is(nullptr)),
                map("sampling_strategy.seed", "sft_corpus.seed"),
                ignore("sampling_strategy.chars_per_token",
                       "the original's estimate for sampling; lumi counts the tokens it packs"),
                ignore("sampling_strategy.analysis_sample_size",
                       "the original's estimate for sampling; lumi counts the tokens it packs"),
                map("output_params.sequence_length", "sft_corpus.sequence_length"),
                map("output_params.shard_size", "sft_corpus.sequences_per_shard"),
                map("output_params.train_ratio", "sft_corpus.validation_fraction = 1 - train_ratio"),
                map("output_params.enable_packing",
                    "sft_corpus.packing (best_fit_decreasing; none when false)"),
                ignore("output_params.batch_size", "a processing batch; the rows do not depend on it"),
                gap("quality_filters.min_prompt_length", no_filter),
                gap("quality_filters.max_prompt_length", no_filter),
                gap("quality_filters.min_response_length", no_filter),
                gap("quality_filters.max_response_length", no_filter),
                gap("quality_filters.filter_urls", "lumi's instruction corpus filters no URL", is(false)),
                gap("quality_filters.filter_code_blocks", "lumi's instruction corpus filters no code",
                    is(false)),
                gap("quality_filters.require_ascii", "lumi's instruction corpus keeps any text", is(false)),
                gap("quality_filters.remove_duplicates", "lumi's instruction corpus keeps duplicates",
                    is(false)),
                gap("quality_filters.deduplication.*", "lumi's instruction corpus keeps duplicates"),
                ignore("datasets[*].name", "lumi names a dataset by its path"),
                doc("datasets[*].description"),
                check("datasets[*].type", "read from the data set's downloaded files (Parquet)",
                      is("huggingface")),
                map("datasets[*].dataset_name",
                    "sft_corpus.datasets[].path: {data}/<dataset_name>/<subset>/<split>"),
                map("datasets[*].subset", "sft_corpus.datasets[].path (`default` when null)"),
                map("datasets[*].split", "sft_corpus.datasets[].path"),
                check("datasets[*].text_fields.*",
                      "the fields of lumi's reader for the data set: sft_corpus.datasets[].format alpaca, "
                      "dolly, oasst or orca"),
                map("datasets[*].weight", "the dataset's share of target_tokens (datasets[].max_tokens)"),
                check("datasets[*].custom_processing.conversation_tree",
                      "lumi's oasst reader follows each tree's best-ranked thread", is(true)),
                map("datasets[*].custom_processing.filter_language", "sft_corpus.datasets[].language"),
                gap("datasets[*].custom_processing.min_score",
                    "lumi's oasst reader keeps the best-ranked replies but filters none by score"),
                check("datasets[*].custom_processing.role_filter", "the roles lumi's oasst reader reads",
                      is(boost::json::array{"prompter", "assistant"})),
            });
        auto& s = out_.sft_corpus;
        if (d.has("template"))
            assign(d, "template", "sft_corpus.chat_template", s.chat_template,
                   d.get<data::ChatTemplate>("template"));
        if (d.has("sampling_strategy.seed"))
            assign(d, "sampling_strategy.seed", "sft_corpus.seed", s.seed,
                   d.get<std::uint64_t>("sampling_strategy.seed"));
        if (d.has("output_params.sequence_length"))
            s.sequence_length = d.get<std::uint32_t>("output_params.sequence_length");
        if (s.sequence_length > spec_.context + 1)
            d.fail("output_params.sequence_length", std::to_string(s.sequence_length) +
                                                        " exceeds presets::" + preset_ + "'s context of " +
                                                        std::to_string(spec_.context));
        if (d.has("output_params.shard_size"))
            s.sequences_per_shard = d.get<std::uint64_t>("output_params.shard_size");
        if (d.has("output_params.train_ratio"))
            s.validation_fraction = lab::complement(d.get<double>("output_params.train_ratio"));
        if (d.has("output_params.enable_packing"))
            s.packing = d.get<bool>("output_params.enable_packing")
                            ? data::PackingAlgorithm::best_fit_decreasing
                            : data::PackingAlgorithm::none;
        const auto* list = d.find("datasets");
        if (!list || !list->is_array() || list->as_array().empty())
            d.fail("datasets", "list at least one instruction data set");
        const std::size_t n = list->as_array().size();
        const auto target = d.get_optional<std::uint64_t>("sampling_strategy.target_tokens");
        const bool by_tokens =
            d.get_optional<std::string>("sampling_strategy.mode").value_or("target_tokens") ==
            "target_tokens";
        if (by_tokens && !target)
            d.fail("sampling_strategy.target_tokens", "missing: mode target_tokens needs it");
        double weights = 0;
        for (std::size_t i = 0; i < n; ++i)
            weights += d.get_optional<double>("datasets[" + std::to_string(i) + "].weight").value_or(1.0);
        s.datasets.clear();
        for (std::size_t i = 0; i < n; ++i) {
            const std::string at = "datasets[" + std::to_string(i) + "]";
            data::SftDataset dataset;
            dataset.path = lab::hub_path(settings_.data, d, at);
            dataset.format = config::from_json<data::SftFormat>(json::string(sft_reader(d, at)), d.file);
            const double weight = d.get_optional<double>(at + ".weight").value_or(1.0);
            if (by_tokens)
                dataset.max_tokens = std::uint64_t(std::llround(double(*target) * weight / weights));
            else if (weight != 1.0)
                accept_or_refuse(
                    d, at + ".weight",
                    "without a token budget the weight has no lumi equivalent (lumi's weight copies "
                    "examples); the dataset is read whole");
            dataset.language =
                d.get_optional<std::string>(at + ".custom_processing.filter_language").value_or("");
            s.datasets.push_back(std::move(dataset));
        }
    }

    // --- sft/training/*.json ----------------------------------------------------------------------------

    void import_sft_training(const Document& d) {
        using lab::check, lab::doc, lab::ignore, lab::is, lab::map;
        const std::string monitoring =
            "the original's trainer samples these to watch the run; lumi's generations "
            "stage answers after training (the evaluation file's prompts)";
        std::vector<Rule> rules = {
            doc("name"),
            doc("description"),
            doc("version"),
            doc("model_target"),
            doc("_*"),
            map("dataset_config.interleave_strategy.seed", "sft_corpus.seed"),
            check("dataset_config.interleave_strategy.stopping_strategy",
                  "lumi packs every example of every dataset (within its max_tokens)", is("all_exhausted")),
            ignore("evaluation_config.generation_config.*", monitoring),
            ignore("evaluation_config.eval_prompts", monitoring),
        };
        for (auto& r : training_param_rules("sft")) rules.push_back(std::move(r));
        for (auto& r : trainer_rules("training_params")) rules.push_back(std::move(r));
        for (auto& r : lora_rules()) rules.push_back(std::move(r));
        classify(d, rules);
        check_lora(d);
        auto& s = out_.sft;
        s.method = train::FinetuneMethod::lora;
        s.optimizer = transformers_adamw();
        import_training_params(d, "sft", s.run, s.optimizer, s.schedule, s.precision);
        if (d.has("dataset_config.interleave_strategy.seed"))
            assign(d, "dataset_config.interleave_strategy.seed", "sft_corpus.seed", out_.sft_corpus.seed,
                   d.get<std::uint64_t>("dataset_config.interleave_strategy.seed"));
    }

    // --- dpo/datasets/*.json ----------------------------------------------------------------------------

    void import_dpo_datasets(const Document& d) {
        using lab::check, lab::doc, lab::gap, lab::ignore, lab::is, lab::map;
        const std::string no_filter =
            "lumi's preference corpus filters no pair by length (it truncates to "
            "dpo_corpus.sequence_length and max_prompt_tokens)";
        classify(
            d,
            {
                doc("name"),
                doc("description"),
                doc("version"),
                doc("_*"),
                doc("statistics"),
                doc("citation"),
                doc("notes"),
                doc("recommended_weight"),
                doc("recommended_usage"),
                gap("template",
                    "lumi renders the pairs' prompts in the fine-tuning template (sft_corpus.chat_template), "
                    "which the tuned model learnt"),
                map("output_params.shard_size", "dpo_corpus.sequences_per_shard (rows: two per pair)"),
                map("output_params.train_val_split", "dpo_corpus.validation_fraction = 1 - train_val_split"),
                ignore("datasets[*].name", "lumi names a dataset by its path"),
                check("datasets[*].type", "read from the data set's downloaded files (Parquet)",
                      is("huggingface")),
                map("datasets[*].dataset_name",
                    "dpo_corpus.datasets[].path: {data}/<dataset_name>/<subset>/<split>"),
                map("datasets[*].subset", "dpo_corpus.datasets[].path (`default` when null)"),
                map("datasets[*].split", "dpo_corpus.datasets[].path"),
                check("datasets[*].text_fields.*",
                      "the fields of lumi's reader for the data set: dpo_corpus.datasets[].format hh_rlhf "
                      "(parse_conversation) or pairs"),
                map("datasets[*].max_samples", "dpo_corpus.datasets[].max_pairs (0 when null)"),
                check("datasets[*].processing.parse_conversation",
                      "lumi's hh_rlhf reader takes the prompt both transcripts share", is(true)),
                check("datasets[*].processing.extract_last_turn",
                      "lumi keeps the earlier turns as the prompt's history", is(false)),
                check("datasets[*].processing.strip_tags", "lumi keeps the text as written", is(false)),
                check("datasets[*].processing.combine_system_user",
                      "lumi's pairs reader shows the system text with the prompt", is(true)),
                check("datasets[*].processing.remove_markdown", "lumi keeps the text as written", is(false)),
                gap("quality_filters.min_prompt_length", no_filter),
                gap("quality_filters.max_prompt_length", no_filter),
                gap("quality_filters.min_chosen_length", no_filter),
                gap("quality_filters.max_chosen_length", no_filter),
                gap("quality_filters.min_rejected_length", no_filter),
                gap("quality_filters.max_rejected_length", no_filter),
                gap("quality_filters.min_margin_tokens",
                    "lumi drops only pairs whose answers are equal after truncation", is(0)),
                check("quality_filters.max_identical_pairs", "lumi drops pairs whose answers are equal",
                      is(0)),
                gap("quality_filters.language", "lumi's preference corpus has no language filter"),
                gap("quality_filters.language_threshold", "lumi's preference corpus has no language filter"),
                check("quality_filters.remove_duplicates",
                      "lumi drops exact repeats of prompt, chosen and rejected", is(true)),
                gap("quality_filters.deduplication_method",
                    "lumi drops exact repeats of whole pairs (prompt, chosen and rejected)"),
                gap("quality_filters.min_quality_score", "lumi's preference corpus scores no pair"),
            });
        auto& p = out_.dpo_corpus;
        if (d.has("output_params.shard_size"))
            p.sequences_per_shard = 2 * d.get<std::uint64_t>("output_params.shard_size");
        if (d.has("output_params.train_val_split"))
            assign(d, "output_params.train_val_split", "dpo_corpus.validation_fraction",
                   p.validation_fraction, lab::complement(d.get<double>("output_params.train_val_split")));
        const auto* list = d.find("datasets");
        if (!list || !list->is_array() || list->as_array().empty())
            d.fail("datasets", "list at least one preference data set");
        for (std::size_t i = 0; i < list->as_array().size(); ++i) {
            const std::string at = "datasets[" + std::to_string(i) + "]";
            const auto chosen = d.get<std::string>(at + ".text_fields.chosen");
            const auto rejected = d.get<std::string>(at + ".text_fields.rejected");
            const auto prompt = d.get<std::string>(at + ".text_fields.prompt");
            if (chosen != "chosen" || rejected != "rejected" || (prompt != "prompt" && prompt != "system"))
                d.fail(at + ".text_fields",
                       "lumi's preference readers read chosen and rejected, with the prompt from "
                       "the transcripts (hh_rlhf) or from prompt/question and system (pairs)");
            data::PreferenceSource source;
            source.path = lab::hub_path(settings_.data, d, at);
            source.format = d.get_optional<bool>(at + ".processing.parse_conversation").value_or(false)
                                ? data::PreferenceFormat::hh_rlhf
                                : data::PreferenceFormat::pairs;
            source.max_pairs = d.get_optional<std::uint64_t>(at + ".max_samples").value_or(0);
            p.datasets.push_back(std::move(source));
        }
    }

    // --- dpo/training/*.json ----------------------------------------------------------------------------

    void import_dpo_training(const Document& d) {
        using lab::check, lab::doc, lab::ignore, lab::is, lab::map;
        const std::string monitoring =
            "the original's trainer samples these to watch the run; lumi's DPO stage "
            "scores the held-out pairs before and after";
        std::vector<Rule> rules = {
            doc("name"),
            doc("description"),
            doc("version"),
            doc("_*"),
            doc("notes"),
            doc("hyperparameter_guidelines"),
            map("dpo_params.beta", "dpo.dpo.beta"),
            map("dpo_params.max_length", "dpo_corpus.sequence_length"),
            map("dpo_params.max_prompt_length", "dpo_corpus.max_prompt_tokens"),
            map("dpo_params.label_smoothing", "dpo.dpo.label_smoothing"),
            map("dpo_params.loss_type", "dpo.loss"),
            check("dpo_params.reference_free", "lumi's reference is the tuned model, adapters off",
                  is(false)),
            ignore("dpo_params.label_pad_token_id",
                   "lumi masks the loss by the rows' loss mask, not a pad label"),
            ignore("dpo_params.padding_value", "lumi masks padding; its value has no effect"),
            check("dpo_params.truncation_mode", "a long prompt keeps its last max_prompt_tokens tokens",
                  is("keep_end")),
            check("dpo_params.generate_during_eval", "lumi's DPO stage generates nothing", is(false)),
            ignore("dpo_params.precompute_ref_log_probs",
                   "a speed switch: lumi computes the reference with the adapters off in each step"),
            map("evaluation_config.eval_dataset_size",
                "dpo.run.eval_batches = eval_dataset_size / per_device_eval_batch_size (pairs per batch)"),
            ignore("evaluation_config.eval_accumulation_steps",
                   "a memory setting of transformers' evaluation"),
            ignore("evaluation_config.generation_config.*", monitoring),
            ignore("evaluation_config.eval_prompts", monitoring),
            check("checkpointing.save_safetensors", "lumi's checkpoints are safetensors", is(true)),
            ignore("checkpointing.save_on_each_node", "rank 0 writes lumi's checkpoints"),
            check("checkpointing.resume_from_checkpoint", "the pipeline resumes an interrupted stage itself",
                  lab::is(nullptr)),
            check("checkpointing.ignore_data_skip", "lumi resumes its data order exactly", is(false)),
            check("hardware_optimization.auto_find_batch_size", "lumi trains run.micro_batch rows",
                  is(false)),
            ignore("hardware_optimization.dataloader_pin_memory", "a throughput setting"),
            ignore("hardware_optimization.max_memory_mb", "lumi's memory follows run.micro_batch"),
            ignore("hardware_optimization.low_cpu_mem_usage", "a loading switch of transformers"),
            check("hardware_optimization.torch_compile", "lumi runs its own kernels uncompiled", is(false)),
            ignore("hardware_optimization.torch_compile_*", "only used with torch_compile"),
            map("reproducibility.seed", "dpo.run.seed (the data order)"),
            ignore(
                "reproducibility.deterministic",
                "lumi has no such switch; its data order and initialisation are seeded, and resume is exact"),
            ignore(
                "reproducibility.full_determinism",
                "lumi has no such switch; its data order and initialisation are seeded, and resume is exact"),
        };
        for (auto& r : training_param_rules("dpo")) rules.push_back(std::move(r));
        for (auto& r : trainer_rules("training_params")) rules.push_back(std::move(r));
        for (auto& r : lora_rules()) rules.push_back(std::move(r));
        classify(d, rules);
        check_lora(d);
        auto& t = out_.dpo;
        t.method = train::FinetuneMethod::lora;
        t.optimizer = transformers_adamw();
        import_training_params(d, "dpo", t.run, t.optimizer, t.schedule, t.precision);
        if (d.has("reproducibility.seed"))
            assign(d, "reproducibility.seed", "dpo.run.seed", t.run.seed,
                   d.get<std::uint64_t>("reproducibility.seed"));
        if (const auto beta = d.get_optional<double>("dpo_params.beta")) t.dpo.beta = *beta;
        if (const auto s = d.get_optional<double>("dpo_params.label_smoothing")) t.dpo.label_smoothing = *s;
        if (d.has("dpo_params.loss_type")) t.loss = d.get<train::DpoLoss>("dpo_params.loss_type");
        auto& p = out_.dpo_corpus;
        if (d.has("dpo_params.max_length")) p.sequence_length = d.get<std::uint32_t>("dpo_params.max_length");
        if (d.has("dpo_params.max_prompt_length"))
            p.max_prompt_tokens = d.get<std::uint32_t>("dpo_params.max_prompt_length");
        if (p.sequence_length > spec_.context + 1)
            d.fail("dpo_params.max_length", std::to_string(p.sequence_length) + " exceeds presets::" +
                                                preset_ + "'s context of " + std::to_string(spec_.context));
        if (const auto pairs = d.get_optional<std::int64_t>("evaluation_config.eval_dataset_size")) {
            const auto batch = d.get_optional<std::int64_t>("training_params.per_device_eval_batch_size")
                                   .value_or(t.run.micro_batch);
            t.run.eval_batches = std::max<std::int64_t>(1, (*pairs + batch - 1) / batch);
        }
    }

    // --- evaluation/*.json ------------------------------------------------------------------------------

    void import_evaluation(const Document& d) {
        using lab::check, lab::doc, lab::gap, lab::ignore, lab::is, lab::map;
        classify(
            d,
            {
                doc("name"),
                doc("description"),
                doc("version"),
                doc("_*"),
                doc("mode"),
                check("model_params.prompt_template",
                      "the fine-tuned model is asked in sft_corpus.chat_template"),
                check("model_params.use_lora",
                      "lumi evaluates the adapter merged into the weights (07_sft/merged)", is(true)),
                map("model_params.device", "evaluation.device, generations.device"),
                map("metrics.perplexity.enabled", "evaluation.tasks: wikitext"),
                map("metrics.perplexity.max_samples",
                    "evaluation.wikitext.limit (0, every article, when null)"),
                check("metrics.perplexity.dataset", "WikiText-2 (evaluation.wikitext.file)", is("wikitext2")),
                map("metrics.boolq.enabled", "evaluation.tasks: boolq"),
                map("metrics.boolq.max_samples", "evaluation.boolq.limit (0, every question, when null)"),
                map("metrics.smoke_tests.enabled", "evaluation.tasks: smoke"),
                check("metrics.smoke_tests.categories",
                      "the categories of lumi's smoke prompts (presets/eval/smoke_prompts.json)",
                      is(boost::json::array{"basic_knowledge", "language_understanding", "reasoning",
                                            "creativity", "instruction_following", "wikipedia_style",
                                            "conversation", "multilingual"})),
                check("metrics.generation.enabled", "lumi's pipeline always answers generations.prompts",
                      is(true)),
                check("metrics.generation.num_samples", "the number of metrics.generation.prompts"),
                map("metrics.generation.prompts", "generations.prompts"),
                map("generation_params.max_new_tokens",
                    "generations.sampling.max_new_tokens, evaluation.smoke.sampling.max_new_tokens"),
                map("generation_params.temperature",
                    "generations.sampling.temperature, evaluation.smoke.sampling.temperature"),
                map("generation_params.top_p", "generations.sampling.top_p, evaluation.smoke.sampling.top_p"),
                map("generation_params.top_k", "generations.sampling.top_k, evaluation.smoke.sampling.top_k"),
                map("generation_params.do_sample", "sampling.temperature as given; 0 (greedy) when false"),
                map("generation_params.repetition_penalty",
                    "generations.sampling.repetition_penalty, evaluation.smoke.sampling.repetition_penalty"),
                gap("generation_params.no_repeat_ngram_size", "lumi's sampler has no n-gram ban", is(0)),
                check("output.save_generations", "lumi writes 09_generations/generations.jsonl", is(true)),
                check("output.save_metrics", "lumi writes results.json", is(true)),
                check("output.format", "lumi's results are JSON", is("json")),
            });
        if (const auto t = d.get_optional<std::string>("model_params.prompt_template");
            t && *t != config::enum_name(out_.sft_corpus.chat_template))
            d.fail("model_params.prompt_template",
                   "'" + *t + "', but the fine-tuning data use '" +
                       std::string(config::enum_name(out_.sft_corpus.chat_template)) + "'");
        auto& e = out_.evaluation;
        if (const auto device = d.get_optional<std::string>("model_params.device"))
            e.device = out_.generations.device = *device;
        // heldout: the validation split the packing file's train_val_split sets aside.
        e.tasks = {"heldout"};
        if (d.get_optional<bool>("metrics.perplexity.enabled").value_or(false)) e.tasks.push_back("wikitext");
        if (d.get_optional<bool>("metrics.boolq.enabled").value_or(false)) e.tasks.push_back("boolq");
        if (d.get_optional<bool>("metrics.smoke_tests.enabled").value_or(false)) e.tasks.push_back("smoke");
        e.wikitext.limit = d.get_optional<std::int64_t>("metrics.perplexity.max_samples").value_or(0);
        e.boolq.limit = d.get_optional<std::int64_t>("metrics.boolq.max_samples").value_or(0);
        if (const auto prompts = d.get_optional<std::vector<std::string>>("metrics.generation.prompts")) {
            if (const auto n = d.get_optional<std::size_t>("metrics.generation.num_samples");
                n && *n != prompts->size())
                d.fail("metrics.generation.num_samples", std::to_string(*n) +
                                                             ", but metrics.generation.prompts lists " +
                                                             std::to_string(prompts->size()));
            out_.generations.prompts = *prompts;
        }
        for (eval::SamplingSettings* s : {&out_.generations.sampling, &e.smoke.sampling}) {
            const std::string p = "generation_params.";
            if (const auto v = d.get_optional<std::int64_t>(p + "max_new_tokens")) s->max_new_tokens = *v;
            if (const auto v = d.get_optional<double>(p + "temperature")) s->temperature = *v;
            if (const auto v = d.get_optional<double>(p + "top_p")) s->top_p = *v;
            if (const auto v = d.get_optional<std::int64_t>(p + "top_k")) s->top_k = *v;
            if (const auto v = d.get_optional<double>(p + "repetition_penalty")) s->repetition_penalty = *v;
            if (!d.get_optional<bool>(p + "do_sample").value_or(false)) s->temperature = 0.0;
        }
    }
};

}  // namespace detail

// Reads the original's files and builds the equivalent pipeline settings; every key is in `keys`.
inline LumiLabImport import_lumi_lab(const LumiLabImportSettings& settings) {
    return detail::LumiLabImporter(settings).run();
}

// The mapping as a Markdown table: file, key, value, how it is used and the lumi field (or why not).
inline std::string mapping_markdown(const std::vector<KeyMapping>& keys) {
    auto cell = [](std::string text) {
        std::string out;
        for (const char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
        return out;
    };
    std::string out = "| file | original key | value | use | lumi |\n|---|---|---|---|---|\n";
    for (const KeyMapping& k : keys)
        out += "| " + cell(k.file) + " | `" + cell(k.key) + "` | `" + cell(k.value) + "` | " +
               std::string(config::enum_name(k.use)) + " | " + cell(k.lumi) + " |\n";
    return out;
}

}  // namespace lumi::pipeline
