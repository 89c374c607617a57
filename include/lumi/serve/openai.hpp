#pragma once
// OpenAI's chat and text completion API as lumi answers it: requests read strictly (a field lumi does not
// honour is a 400 naming it, in OpenAI's error shape), responses and stream chunks in OpenAI's format.
#include <ctime>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "lumi/core/error.hpp"
#include "lumi/eval/generate.hpp"
#include "lumi/eval/prompt.hpp"

namespace lumi::serve {

namespace json = boost::json;

// An error answered to the client: HTTP status, message, the request field at fault (OpenAI's `param`).
struct ApiError : Error {
    ApiError(int status_, const std::string& message, std::string param_ = {},
             std::string type_ = "invalid_request_error")
        : Error(message), status(status_), param(std::move(param_)), type(std::move(type_)) {}
    int status;
    std::string param;
    std::string type;
};

inline std::string error_body(const std::string& message, const std::string& type, const std::string& param) {
    json::object error{{"message", message}, {"type", type}, {"code", nullptr}};
    error["param"] = param.empty() ? json::value(nullptr) : json::value(param);
    return json::serialize(json::object{{"error", std::move(error)}});
}
inline std::string error_body(const ApiError& e) {
    return error_body(e.what(), e.type, e.param);
}

// A completion request, read: either chat messages or a prompt, and the sampling the request asked for.
struct CompletionRequest {
    bool chat = false;
    std::vector<eval::ChatMessage> messages;
    std::string prompt;
    std::optional<std::int64_t> max_tokens;
    std::optional<double> temperature, top_p;
    std::optional<std::uint64_t> seed;
    std::vector<std::string> stop;
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage: a last chunk with usage and no choices
};

namespace detail {

inline const json::value* field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v && !v->is_null() ? v : nullptr;  // OpenAI's clients send null for "not given" too
}

inline ApiError bad(const std::string& param, const std::string& message) {
    return ApiError(400, param + ": " + message, param);
}

inline std::string text_of(const json::value& v, const std::string& param) {
    if (v.is_string()) return std::string(v.get_string());
    if (v.is_array()) {  // content parts: [{"type": "text", "text": ...}]
        std::string text;
        for (std::size_t i = 0; i < v.get_array().size(); ++i) {
            const auto& part = v.get_array()[i];
            const std::string where = param + "[" + std::to_string(i) + "]";
            if (!part.is_object() || !part.get_object().contains("type") ||
                part.get_object().at("type") != "text" || !part.get_object().contains("text") ||
                !part.get_object().at("text").is_string())
                throw bad(where, "only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
            text += part.get_object().at("text").get_string();
        }
        return text;
    }
    throw bad(param, "expected a string");
}

inline double number_of(const json::value& v, const std::string& param) {
    if (v.is_double()) return v.get_double();
    if (v.is_int64()) return double(v.get_int64());
    if (v.is_uint64()) return double(v.get_uint64());
    throw bad(param, "expected a number");
}

inline std::int64_t integer_of(const json::value& v, const std::string& param) {
    if (v.is_int64()) return v.get_int64();
    if (v.is_uint64() && v.get_uint64() <= std::uint64_t(INT64_MAX)) return std::int64_t(v.get_uint64());
    throw bad(param, "expected an integer");
}

}  // namespace detail

// Reads a /v1/chat/completions (chat) or /v1/completions body. `model` is the one model this server has.
inline CompletionRequest read_completion_request(std::string_view body, bool chat, const std::string& model) {
    using namespace detail;
    json::value parsed;
    try {
        parsed = json::parse(body);
    } catch (const std::exception& e) {
        throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what());
    }
    if (!parsed.is_object()) throw ApiError(400, "the request body must be a JSON object");
    const auto& o = parsed.get_object();
    std::vector<std::string> known{"model", "max_tokens", "temperature", "top_p",          "stop",
                                   "seed",  "n",          "stream",      "stream_options", "user"};
    if (chat)
        known.insert(known.begin() + 1, {"messages", "max_completion_tokens"});
    else
        known.insert(known.begin() + 1, "prompt");
    for (const auto& [key, value] : o)
        if (std::find(known.begin(), known.end(), std::string(key)) == known.end() && !value.is_null())
            throw bad(
                std::string(key), "not supported by this server (it honours: " + [&] {
                    std::string list;
                    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
                    return list;
                }() + ")");
    CompletionRequest r;
    r.chat = chat;
    const auto* m = field(o, "model");
    if (!m) throw bad("model", "required (this server has '" + model + "')");
    if (!m->is_string() || m->get_string() != model)
        throw ApiError(400,
                       "model: unknown model " + json::serialize(*m) + " (this server has '" + model + "')",
                       "model", "invalid_request_error");
    if (chat) {
        const auto* messages = field(o, "messages");
        if (!messages || !messages->is_array() || messages->get_array().empty())
            throw bad("messages", "required: a non-empty array of {role, content}");
        for (std::size_t i = 0; i < messages->get_array().size(); ++i) {
            const std::string where = "messages[" + std::to_string(i) + "]";
            const auto& message = messages->get_array()[i];
            if (!message.is_object()) throw bad(where, "expected an object {role, content}");
            for (const auto& [key, value] : message.get_object())
                if (key != "role" && key != "content" && key != "name")
                    throw bad(where + "." + std::string(key),
                              "not supported (messages have role and content)");
            const auto* role = field(message.get_object(), "role");
            const auto* content = field(message.get_object(), "content");
            if (!role || !role->is_string()) throw bad(where + ".role", "required: a string");
            if (!content) throw bad(where + ".content", "required");
            r.messages.push_back({std::string(role->get_string()), text_of(*content, where + ".content")});
        }
    } else {
        const auto* prompt = field(o, "prompt");
        if (!prompt) throw bad("prompt", "required");
        if (prompt->is_array()) {
            if (prompt->get_array().size() != 1 || !prompt->get_array()[0].is_string())
                throw bad("prompt", "one prompt per request (a string, or an array of one string)");
            r.prompt = std::string(prompt->get_array()[0].get_string());
        } else if (prompt->is_string()) {
            r.prompt = std::string(prompt->get_string());
        } else {
            throw bad("prompt", "expected a string");
        }
    }
    for (const char* key : {"max_tokens", "max_completion_tokens"})
        if (const auto* v = field(o, key)) {
            r.max_tokens = integer_of(*v, key);
            if (*r.max_tokens < 1) throw bad(key, "must be >= 1");
        }
    if (const auto* v = field(o, "temperature")) {
        r.temperature = number_of(*v, "temperature");
        if (!(*r.temperature >= 0 && *r.temperature <= 2)) throw bad("temperature", "must be in [0, 2]");
    }
    if (const auto* v = field(o, "top_p")) {
        r.top_p = number_of(*v, "top_p");
        if (!(*r.top_p > 0 && *r.top_p <= 1)) throw bad("top_p", "must be in (0, 1]");
    }
    if (const auto* v = field(o, "seed")) r.seed = std::uint64_t(integer_of(*v, "seed"));
    if (const auto* v = field(o, "n"))
        if (integer_of(*v, "n") != 1) throw bad("n", "only n = 1 is supported");
    if (const auto* v = field(o, "stop")) {
        if (v->is_string()) {
            r.stop.emplace_back(v->get_string());
        } else if (v->is_array() && v->get_array().size() <= 4) {
            for (const auto& s : v->get_array()) {
                if (!s.is_string()) throw bad("stop", "expected a string or an array of up to 4 strings");
                r.stop.emplace_back(s.get_string());
            }
        } else {
            throw bad("stop", "expected a string or an array of up to 4 strings");
        }
        for (const auto& s : r.stop)
            if (s.empty()) throw bad("stop", "an empty stop string would stop at once");
    }
    if (const auto* v = field(o, "stream")) {
        if (!v->is_bool()) throw bad("stream", "expected true or false");
        r.stream = v->get_bool();
    }
    if (const auto* v = field(o, "stream_options")) {
        if (!v->is_object()) throw bad("stream_options", "expected an object");
        for (const auto& [key, value] : v->get_object()) {
            if (key != "include_usage" || !value.is_bool())
                throw bad("stream_options." + std::string(key),
                          "only include_usage (true or false) is supported");
            r.include_usage = value.get_bool();
        }
    }
    return r;
}

// OpenAI's finish reasons: "stop" (the end of the text or a stop string) or "length".
inline std::string openai_finish_reason(const std::string& reason) {
    return reason == "length" ? "length" : "stop";
}

inline json::object usage_json(std::size_t prompt, std::size_t completion) {
    return {
        {"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

// The whole answer (stream false).
inline std::string completion_body(const CompletionRequest& r, const std::string& id, std::int64_t created,
                                   const std::string& model, const std::string& text,
                                   const std::string& finish, std::size_t prompt_tokens,
                                   std::size_t completion_tokens) {
    json::object choice{{"index", 0}, {"finish_reason", openai_finish_reason(finish)}, {"logprobs", nullptr}};
    if (r.chat)
        choice["message"] = json::object{{"role", "assistant"}, {"content", text}};
    else
        choice["text"] = text;
    return json::serialize(json::object{{"id", id},
                                        {"object", r.chat ? "chat.completion" : "text_completion"},
                                        {"created", created},
                                        {"model", model},
                                        {"choices", json::array{std::move(choice)}},
                                        {"usage", usage_json(prompt_tokens, completion_tokens)}});
}

namespace detail {
inline json::object chunk_head(const CompletionRequest& r, const std::string& id, std::int64_t created,
                               const std::string& model) {
    return {{"id", id},
            {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created},
            {"model", model}};
}
}  // namespace detail

// One server-sent event of a streamed answer: text so far, or (finish non-empty) the last one with usage.
inline std::string chunk_event(const CompletionRequest& r, const std::string& id, std::int64_t created,
                               const std::string& model, const std::string& text, const std::string& finish,
                               bool first, std::size_t prompt_tokens = 0, std::size_t completion_tokens = 0) {
    json::object choice{{"index", 0}, {"logprobs", nullptr}};
    choice["finish_reason"] =
        finish.empty() ? json::value(nullptr) : json::value(openai_finish_reason(finish));
    if (r.chat) {
        json::object delta;
        if (first) delta["role"] = "assistant";
        if (!text.empty() || (first && finish.empty())) delta["content"] = text;
        choice["delta"] = std::move(delta);
    } else {
        choice["text"] = text;
    }
    json::object chunk = detail::chunk_head(r, id, created, model);
    chunk["choices"] = json::array{std::move(choice)};
    if (!finish.empty()) chunk["usage"] = usage_json(prompt_tokens, completion_tokens);
    return "data: " + json::serialize(chunk) + "\n\n";
}

// stream_options.include_usage's extra last event: no choices, the usage.
inline std::string usage_event(const CompletionRequest& r, const std::string& id, std::int64_t created,
                               const std::string& model, std::size_t prompt_tokens,
                               std::size_t completion_tokens) {
    json::object chunk = detail::chunk_head(r, id, created, model);
    chunk["choices"] = json::array{};
    chunk["usage"] = usage_json(prompt_tokens, completion_tokens);
    return "data: " + json::serialize(chunk) + "\n\n";
}

}  // namespace lumi::serve
