#pragma once

// A ModelSpec as Hugging Face's LLaMA config.json and back, so a lumi checkpoint loads in `transformers`
// (`LlamaForCausalLM.from_pretrained(dir)`) unchanged and a LLaMA checkpoint's shape can be checked here.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json.hpp>
#include <boost/pfr.hpp>

#include <lumi/config/config.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::io {

// What config.json says beyond the shape.
struct LlamaConfigSettings {
    std::int64_t bos_token_id = 1;
    std::int64_t eos_token_id = 2;
    std::optional<std::int64_t> pad_token_id{};
    std::string torch_dtype = "float32";  // the dtype of the weights in model.safetensors
};

inline boost::json::object llama_config(const ModelSpec& spec, const LlamaConfigSettings& settings = {}) {
    boost::json::object config{
        {"architectures", boost::json::array{"LlamaForCausalLM"}},
        {"model_type", "llama"},
        {"vocab_size", spec.vocab_size},
        {"hidden_size", spec.d_model},
        {"intermediate_size", spec.ffn_hidden},
        {"num_hidden_layers", spec.n_layer},
        {"num_attention_heads", spec.n_head},
        {"num_key_value_heads", spec.n_kv_head},
        {"head_dim", spec.head_dim()},
        {"max_position_embeddings", spec.context},
        {"rms_norm_eps", spec.norm_eps},
        {"rope_theta", spec.rope_theta},
        {"rope_scaling", nullptr},
        // where transformers 5 reads rope_theta (4.x reads the key above)
        {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", spec.rope_theta}}},
        {"tie_word_embeddings", spec.tie_embeddings},
        {"hidden_act", "silu"},
        {"attention_bias", false},
        {"attention_dropout", 0.0},
        {"mlp_bias", false},
        {"pretraining_tp", 1},
        {"initializer_range", 0.02},
        {"use_cache", true},
        {"torch_dtype", settings.torch_dtype},
        {"bos_token_id", settings.bos_token_id},
        {"eos_token_id", settings.eos_token_id}};
    if (settings.pad_token_id) config["pad_token_id"] = *settings.pad_token_id;
    config["lumi"] = config::to_json(spec);
    return config;
}

namespace detail {

inline std::int64_t read_count(const boost::json::object& config, std::string_view key,
                               const std::string& origin,
                               std::optional<std::int64_t> fallback = std::nullopt) {
    const boost::json::value* value = config.if_contains(key);
    if (!value || value->is_null()) {
        if (fallback) return *fallback;
        throw config::ConfigError(origin, std::string(key), "missing: a LLaMA config.json must give it");
    }
    if (const auto* i = value->if_int64(); i && *i > 0) return *i;
    if (const auto* u = value->if_uint64();
        u && *u <= std::uint64_t(std::numeric_limits<std::int64_t>::max()))
        return static_cast<std::int64_t>(*u);
    throw config::ConfigError(origin, std::string(key),
                              "expected a positive integer, found " + config::detail::describe_found(*value));
}

inline double read_positive(const boost::json::object& config, std::string_view key,
                            const std::string& origin, double fallback) {
    const boost::json::value* value = config.if_contains(key);
    if (!value || value->is_null()) return fallback;
    if (value->is_number()) {
        const double x = value->to_number<double>();
        if (x > 0) return x;
    }
    throw config::ConfigError(origin, std::string(key),
                              "expected a positive number, found " + config::detail::describe_found(*value));
}

// A feature lumi does not implement must not be dropped silently.
inline void require(const boost::json::object& config, std::string_view key,
                    const boost::json::value& expected, const std::string& origin, std::string_view why) {
    const boost::json::value* value = config.if_contains(key);
    if (!value || *value == expected) return;
    throw config::ConfigError(origin, std::string(key),
                              "lumi supports only " + boost::json::serialize(expected) + " (" +
                                  std::string(why) + "), found " + config::detail::describe_found(*value));
}

}  // namespace detail

// The spec a Hugging Face LLaMA config describes; fields LlamaConfig defaults may be absent. A config
// lumi cannot represent exactly (biases, another activation, RoPE scaling, ...) is an error naming the field.
inline ModelSpec spec_from_llama_config(const boost::json::value& value, const std::string& origin) {
    const boost::json::object* config = value.if_object();
    if (!config) throw config::ConfigError(origin, "", "expected a JSON object (a Hugging Face config.json)");
    detail::require(*config, "model_type", "llama", origin, "a LLaMA architecture");
    detail::require(*config, "hidden_act", "silu", origin, "SwiGLU");
    detail::require(*config, "attention_bias", false, origin, "projections without bias");
    detail::require(*config, "mlp_bias", false, origin, "projections without bias");
    detail::require(*config, "rope_scaling", nullptr, origin, "plain RoPE");

    ModelSpec spec;
    spec.vocab_size = detail::read_count(*config, "vocab_size", origin);
    spec.d_model = detail::read_count(*config, "hidden_size", origin);
    spec.ffn_hidden = detail::read_count(*config, "intermediate_size", origin);
    spec.n_layer = detail::read_count(*config, "num_hidden_layers", origin);
    spec.n_head = detail::read_count(*config, "num_attention_heads", origin);
    spec.n_kv_head = detail::read_count(*config, "num_key_value_heads", origin, spec.n_head);
    spec.context = detail::read_count(*config, "max_position_embeddings", origin);
    spec.norm_eps = detail::read_positive(*config, "rms_norm_eps", origin, 1e-6);  // LlamaConfig's defaults
    spec.rope_theta = detail::read_positive(*config, "rope_theta", origin, 10000.0);
    // transformers 5 moved rope_theta into rope_parameters.
    if (const auto* rope = config->if_contains("rope_parameters"); rope && rope->is_object()) {
        const std::string where = origin + ": rope_parameters";
        detail::require(rope->get_object(), "rope_type", "default", where, "plain RoPE");
        spec.rope_theta = detail::read_positive(rope->get_object(), "rope_theta", where, spec.rope_theta);
    }
    if (const auto* tied = config->if_contains("tie_word_embeddings"); tied && !tied->is_null()) {
        if (!tied->is_bool())
            throw config::ConfigError(origin, "tie_word_embeddings",
                                      "expected a boolean, found " + config::detail::describe_found(*tied));
        spec.tie_embeddings = tied->get_bool();
    } else {
        spec.tie_embeddings = false;
    }
    if (spec.d_model % spec.n_head != 0)
        throw config::ConfigError(origin, "num_attention_heads",
                                  "must divide hidden_size " + std::to_string(spec.d_model));
    if (const auto* head_dim = config->if_contains("head_dim"); head_dim && !head_dim->is_null()) {
        const std::int64_t given = detail::read_count(*config, "head_dim", origin);
        if (given != spec.head_dim())
            throw config::ConfigError(
                origin, "head_dim",
                "lumi derives it as hidden_size / num_attention_heads = " + std::to_string(spec.head_dim()) +
                    ", found " + std::to_string(given));
    }
    return spec;
}

// One line per differing field: "d_model: expected 256, found 192".
inline std::vector<std::string> spec_differences(const ModelSpec& expected, const ModelSpec& found) {
    constexpr auto names = config::field_names<ModelSpec>();
    auto text = [](const auto& field) {
        std::string s = config::format_json(config::to_json(field));
        s.pop_back();  // format_json's final newline
        return s;
    };
    std::vector<std::string> differences;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        auto compare = [&](std::string_view name, const auto& a, const auto& b) {
            if (!(a == b))
                differences.push_back(std::string(name) + ": expected " + text(a) + ", found " + text(b));
        };
        (compare(names[I], boost::pfr::get<I>(expected), boost::pfr::get<I>(found)), ...);
    }
    (std::make_index_sequence<names.size()>{});
    return differences;
}

}  // namespace lumi::io
