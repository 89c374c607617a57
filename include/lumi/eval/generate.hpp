#pragma once

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/torch.hpp"
#include "lumi/model/context.hpp"
#include "lumi/tokenizer/tokenizer.hpp"

namespace lumi::eval {

struct SamplingSettings {
    std::int64_t max_new_tokens = 128;
    double temperature = 0.0;         // 0 = greedy
    std::int64_t top_k = 0;           // 0 = no limit
    double top_p = 1.0;               // nucleus: the smallest set of tokens whose probability reaches top_p
    double repetition_penalty = 1.0;  // > 1 discourages tokens already in the prompt or the output
    std::uint64_t seed = 0;
    bool stop_at_eos = true;
    std::vector<std::string> stop;  // stop strings, cut from the output (e.g. "### Instruction:")
    bool use_cache = true;          // false recomputes the whole sequence every step (slow; for checking)

    void validate() const {
        if (max_new_tokens < 1) throw config::FieldError("max_new_tokens", "must be >= 1");
        if (!(temperature >= 0)) throw config::FieldError("temperature", "must be >= 0 (0 = greedy)");
        if (top_k < 0) throw config::FieldError("top_k", "must be >= 0 (0 = no limit)");
        if (!(top_p > 0 && top_p <= 1)) throw config::FieldError("top_p", "must be in (0, 1]");
        if (!(repetition_penalty > 0)) throw config::FieldError("repetition_penalty", "must be positive");
        for (const auto& s : stop)
            if (s.empty()) throw config::FieldError("stop", "an empty stop string would stop at once");
    }
};

// As transformers applies it: a seen token's logit is divided by the penalty when positive, multiplied when
// negative. logits: [B, V] float; seen: bool [B, V].
inline torch::Tensor apply_repetition_penalty(const torch::Tensor& logits, const torch::Tensor& seen,
                                              double penalty) {
    if (penalty == 1.0) return logits;
    auto penalised = torch::where(logits < 0, logits * penalty, logits / penalty);
    return torch::where(seen, penalised, logits);
}

// Keeps the k largest logits per row (ties at the k-th value kept); others become -inf.
inline torch::Tensor top_k_filter(const torch::Tensor& logits, std::int64_t k) {
    if (k <= 0 || k >= logits.size(-1)) return logits;
    const auto kth = std::get<0>(logits.topk(k, -1)).narrow(-1, k - 1, 1);
    return logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
}

// Keeps the smallest set of most probable tokens whose probability reaches p (at least one token).
inline torch::Tensor top_p_filter(const torch::Tensor& logits, double p) {
    if (p >= 1.0) return logits;
    auto [sorted, order] = logits.sort(-1, /*descending=*/true);
    const auto probs = sorted.softmax(-1);
    const auto before = probs.cumsum(-1) - probs;  // mass of the more probable tokens
    const auto drop_sorted = before >= p;
    const auto drop = torch::zeros_like(drop_sorted).scatter(-1, order, drop_sorted);
    return logits.masked_fill(drop, -std::numeric_limits<float>::infinity());
}

// The next token per row from logits [B, V].
inline torch::Tensor sample_next(torch::Tensor logits, const torch::Tensor& seen, const SamplingSettings& s,
                                 at::Generator& generator) {
    logits = apply_repetition_penalty(logits.to(torch::kFloat32), seen, s.repetition_penalty);
    if (s.temperature <= 0) return logits.argmax(-1);
    logits = top_p_filter(top_k_filter(logits / s.temperature, s.top_k), s.top_p);
    const auto probs = logits.softmax(-1).to(torch::kCPU);
    return torch::multinomial(probs, 1, false, generator).squeeze(-1).to(logits.device());
}

// Decoded text released while it grows: cut at the first stop string, and a tail that could still become one
// is held back until the next token decides.
struct StopScanner {
    std::size_t sent = 0;  // bytes already released

    struct Update {
        bool stopped;       // a stop string was found; the text was cut before it
        std::string delta;  // text newly safe to release
    };

    // text: everything decoded so far (cut in place at a stop string).
    Update update(std::string& text, const std::vector<std::string>& stops) {
        std::size_t cut = std::string::npos;
        for (const auto& stop : stops) cut = std::min(cut, text.find(stop));
        const bool stopped = cut != std::string::npos;
        if (stopped) text.resize(cut);
        std::size_t safe = text.size();
        if (!stopped)
            for (const auto& stop : stops)
                for (std::size_t k = std::min(stop.size() - 1, text.size()); k > 0; --k)
                    if (text.compare(text.size() - k, k, stop, 0, k) == 0) {
                        safe = std::min(safe, text.size() - k);
                        break;
                    }
        Update out{stopped, safe > sent ? text.substr(sent, safe - sent) : std::string()};
        sent = std::max(sent, safe);
        return out;
    }
};

struct Generated {
    std::vector<int> tokens;    // new tokens, up to and excluding EOS
    std::string text;           // decoded, cut at the first stop string
    std::string finish_reason;  // "eos", "stop" or "length"
};

// Continues each prompt (token ids, BOS included) with the model; prompts of different lengths are
// left-padded and masked (rotary attention depends only on relative positions, so padding does not change the
// result). `decode` turns a row's new tokens into text for stop strings; `on_text(row, delta)` streams it.
template <class Model>
std::vector<Generated> generate_ids(Model& model, std::vector<std::vector<int>> prompts,
                                    const SamplingSettings& s, int eos_id,
                                    std::function<std::string(const std::vector<int>&)> decode = {},
                                    std::function<void(std::size_t, const std::string&)> on_text = {}) {
    s.validate();
    constexpr ModelSpec S = std::remove_reference_t<decltype(*model)>::spec;
    if (prompts.empty()) return {};
    torch::NoGradGuard no_grad;
    const bool was_training = model->is_training();
    model->eval();
    const auto device = model->parameters().front().device();
    const auto dtype = model->parameters().front().scalar_type();
    const std::int64_t B = std::int64_t(prompts.size());
    std::int64_t P = 0;
    for (auto& prompt : prompts) {
        if (prompt.empty()) throw Error("generate: an empty prompt (it needs at least BOS)");
        // The newest context wins: an over-long prompt loses its beginning.
        const std::int64_t room = S.context - s.max_new_tokens;
        if (room < 1)
            throw Error("generate: max_new_tokens " + std::to_string(s.max_new_tokens) +
                        " leaves no room in the context of " + std::to_string(S.context));
        if (std::int64_t(prompt.size()) > room) prompt.erase(prompt.begin(), prompt.end() - room);
        P = std::max<std::int64_t>(P, std::int64_t(prompt.size()));
    }
    const std::int64_t total = P + s.max_new_tokens;
    auto ids = torch::zeros({B, total}, torch::kInt64);
    auto valid = torch::zeros({B, total}, torch::kBool);
    bool padded = false;
    for (std::int64_t b = 0; b < B; ++b) {
        const auto& prompt = prompts[std::size_t(b)];
        const std::int64_t offset = P - std::int64_t(prompt.size());
        padded |= offset > 0;
        for (std::size_t i = 0; i < prompt.size(); ++i) ids[b][offset + std::int64_t(i)] = prompt[i];
        valid[b].narrow(0, offset, std::int64_t(prompt.size())).fill_(true);
    }
    ids = ids.to(device);
    valid = valid.to(device);
    auto seen = torch::zeros({B, S.vocab_size}, torch::TensorOptions().dtype(torch::kBool).device(device));
    seen.scatter_(1, ids.narrow(1, 0, P), valid.narrow(1, 0, P));
    auto generator = make_generator(s.seed);

    std::optional<model::KVCache> cache;
    if (s.use_cache) cache.emplace(S, B, total, torch::TensorOptions().dtype(dtype).device(device));
    std::vector<Generated> out(static_cast<std::size_t>(B));
    std::vector<bool> done(std::size_t(B), false);
    std::vector<StopScanner> streams(static_cast<std::size_t>(B));
    std::int64_t length = P;  // tokens so far
    for (std::int64_t step = 0; step < s.max_new_tokens; ++step) {
        torch::Tensor logits;
        if (s.use_cache) {
            const std::int64_t start = step == 0 ? 0 : length - 1;
            const std::int64_t n = length - start;
            model::Context ctx{.start = start, .cache = &*cache};
            if (padded) ctx.mask = model::padding_mask(valid.narrow(1, 0, length), n);
            logits = model->forward(ids.narrow(1, start, n), ctx).select(1, n - 1);
        } else {
            model::Context ctx{};
            if (padded) ctx.mask = model::padding_mask(valid.narrow(1, 0, length), length);
            logits = model->forward(ids.narrow(1, 0, length), ctx).select(1, length - 1);
        }
        const auto next = sample_next(logits, seen, s, generator);
        ids.select(1, length).copy_(next);
        valid.select(1, length).fill_(true);
        seen.scatter_(1, next.unsqueeze(1), true);
        ++length;
        const auto next_cpu = next.to(torch::kCPU);
        bool all_done = true;
        for (std::int64_t b = 0; b < B; ++b) {
            auto& row = out[std::size_t(b)];
            if (done[std::size_t(b)]) continue;
            const int token = static_cast<int>(next_cpu[b].template item<std::int64_t>());
            if (s.stop_at_eos && token == eos_id) {
                row.finish_reason = "eos";
                done[std::size_t(b)] = true;
                continue;
            }
            row.tokens.push_back(token);
            if (decode) {
                std::string text = decode(row.tokens);
                const auto [stopped, delta] = streams[std::size_t(b)].update(text, s.stop);
                if (stopped) {
                    row.finish_reason = "stop";
                    done[std::size_t(b)] = true;
                }
                if (on_text && !delta.empty()) on_text(std::size_t(b), delta);
                row.text = std::move(text);
            }
            all_done &= done[std::size_t(b)];
        }
        if (all_done) break;
    }
    for (std::size_t b = 0; b < out.size(); ++b) {
        if (out[b].finish_reason.empty()) out[b].finish_reason = "length";
        if (decode && out[b].finish_reason != "stop") out[b].text = decode(out[b].tokens);
        if (on_text && out[b].text.size() > streams[b].sent) on_text(b, out[b].text.substr(streams[b].sent));
    }
    if (was_training) model->train();
    return out;
}

// Text in, text out: BOS + the encoded prompt, then generate_ids with the tokenizer's EOS and decoding.
template <class Model>
std::vector<Generated> generate(Model& model, const tokenizer::Tokenizer& tokenizer,
                                const std::vector<std::string>& prompts, const SamplingSettings& s,
                                std::function<void(std::size_t, const std::string&)> on_text = {}) {
    std::vector<std::vector<int>> ids;
    for (const auto& prompt : prompts) {
        std::vector<int> row{tokenizer.bos_id()};
        const auto encoded = tokenizer.encode(prompt);
        row.insert(row.end(), encoded.begin(), encoded.end());
        ids.push_back(std::move(row));
    }
    return generate_ids(
        model, std::move(ids), s, tokenizer.eos_id(),
        [&](const std::vector<int>& tokens) { return tokenizer.decode(tokens); }, std::move(on_text));
}

}  // namespace lumi::eval
