#pragma once

// Log-likelihood scoring shared by the evaluations. A row is one input sequence; some of its positions each
// predict a target token. Rows are batched longest first with right padding: causal attention keeps the
// padding invisible to the real positions, whose outputs are the only ones read.
//
// The model is anything with `forward(ids [B, T]) -> logits [B, T, V]` (lumi::Transformer<S>, or a hand-made
// module, or its holder). A model that also has `model->forward(ids) -> hidden` and `head(hidden)`, as
// lumi::TransformerImpl, gets the LM head applied only at the scored positions.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <lumi/core/error.hpp>
#include <lumi/core/torch.hpp>

namespace lumi::eval {

// Called after each batch: rows (or documents, examples) done so far and the total.
using Progress = std::function<void(std::size_t done, std::size_t total)>;

// What conditions a text's first token: the document separator the model was trained with. lumi's packing
// ends each document with EOS, so a document starts after an EOS; `none` leaves the first token unscored.
enum class Prefix { eos, bos, none };

// Target set k is predicted by the positions first_target, first_target + 1, ... (one token each).
struct ScoringRow {
    std::vector<int> input;
    std::size_t first_target = 0;
    std::vector<std::vector<int>> targets;  // each of 1 .. input.size() - first_target tokens
};

struct TargetScore {
    double logprob = 0;  // sum over the set of ln p(target | everything before it)
    bool greedy = true;  // every target was the most likely token
};

namespace detail {

// The module itself, whether given as a holder (Transformer<S>) or as the module.
template <class Model>
auto& module_of(Model& model) {
    if constexpr (requires { model.ptr(); })
        return *model.ptr();
    else
        return model;
}

template <class M>
torch::Device device_of(M& module) {
    if constexpr (requires { module.parameters(); }) {
        const auto parameters = module.parameters();
        if (!parameters.empty()) return parameters.front().device();
    }
    return torch::kCPU;
}

// Evaluation mode (no dropout) for the guard's lifetime; the previous mode is restored.
template <class M>
class EvalMode {
  public:
    explicit EvalMode(M& module) : module_(module) {
        if constexpr (requires { module.is_training(); }) {
            training_ = module.is_training();
            module.eval();
        }
    }
    EvalMode(const EvalMode&) = delete;
    EvalMode& operator=(const EvalMode&) = delete;
    ~EvalMode() {
        if constexpr (requires { module_.is_training(); })
            if (training_) module_.train(true);
    }

  private:
    M& module_;
    bool training_ = false;
};

// Logits [N, V] at the flat positions (b * T + t) of ids [B, T].
template <class M>
torch::Tensor logits_at(M& module, const torch::Tensor& ids, const torch::Tensor& positions) {
    if constexpr (requires(torch::Tensor t) {
                      module.model->forward(t);
                      module.head(t);
                  }) {
        const auto hidden = module.model->forward(ids);
        return module.head(hidden.reshape({-1, hidden.size(-1)}).index_select(0, positions));
    } else {
        const auto logits = module.forward(ids);
        return logits.reshape({-1, logits.size(-1)}).index_select(0, positions);
    }
}

}  // namespace detail

// The model's context length when its type says it (TransformerImpl<S>::spec), else 0.
template <class Model>
constexpr std::int64_t context_of() {
    using M = std::remove_cvref_t<decltype(detail::module_of(std::declval<Model&>()))>;
    if constexpr (requires { M::spec.context; })
        return M::spec.context;
    else
        return 0;
}

// `window` when set, else the model's context; an error when neither is known or the window is too long.
template <class Model>
std::int64_t resolve_window(std::int64_t window, std::string_view what) {
    constexpr std::int64_t context = context_of<Model>();
    if (window <= 0) window = context;
    if (window <= 0)
        throw lumi::Error(std::string(what) +
                          ": window: the model's context is not known from its type; set it");
    if (context > 0 && window > context)
        throw lumi::Error(std::string(what) + ": window " + std::to_string(window) +
                          " is longer than the model's context " + std::to_string(context));
    return window;
}

// The token id of a prefix choice, or none; an error when the tokenizer lacks that token.
template <class Tok>
std::optional<int> prefix_id(const Tok& tokenizer, Prefix prefix) {
    if (prefix == Prefix::none) return std::nullopt;
    const int id = prefix == Prefix::eos ? tokenizer.eos_id() : tokenizer.bos_id();
    if (id < 0)
        throw lumi::Error(std::string("prefix: the tokenizer has no ") +
                          (prefix == Prefix::eos ? "EOS" : "BOS") +
                          " token; choose another prefix (eos, bos or none)");
    return id;
}

// Scores every row; result[r][k] is target set k of row r.
template <class Model>
std::vector<std::vector<TargetScore>> score_rows(Model& model, std::span<const ScoringRow> rows,
                                                 std::int64_t batch, const Progress& progress = {}) {
    if (batch < 1) throw lumi::Error("scoring: batch must be at least 1");
    auto& module = detail::module_of(model);
    torch::NoGradGuard no_grad;
    detail::EvalMode mode(module);
    const torch::Device device = detail::device_of(module);

    std::vector<std::vector<TargetScore>> scores(rows.size());
    std::vector<std::size_t> order(rows.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    // Longest first: similar lengths share a batch (little padding), and the largest batch runs first.
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return rows[a].input.size() > rows[b].input.size();
    });
    for (std::size_t r = 0; r < rows.size(); ++r) {
        const auto& row = rows[r];
        if (row.input.empty()) throw lumi::Error("scoring: row " + std::to_string(r) + " has no tokens");
        if (row.first_target > row.input.size())
            throw lumi::Error("scoring: row " + std::to_string(r) + " starts its targets past its end");
        for (const auto& set : row.targets)
            if (set.empty() || set.size() > row.input.size() - row.first_target)
                throw lumi::Error("scoring: row " + std::to_string(r) + " has a target set of " +
                                  std::to_string(set.size()) + " tokens for " +
                                  std::to_string(row.input.size() - row.first_target) + " positions");
        scores[r].resize(row.targets.size());
    }

    for (std::size_t start = 0; start < order.size(); start += static_cast<std::size_t>(batch)) {
        const std::size_t count =
            std::min<std::size_t>(static_cast<std::size_t>(batch), order.size() - start);
        const std::size_t length = rows[order[start]].input.size();
        std::vector<std::int64_t> ids(count * length, 0);  // padding: any valid id, never read
        std::vector<std::int64_t> positions;               // flat b * length + t, one per scored position
        std::vector<std::int64_t> slots, targets;          // per target: its position's slot, its token
        for (std::size_t b = 0; b < count; ++b) {
            const ScoringRow& row = rows[order[start + b]];
            std::copy(row.input.begin(), row.input.end(),
                      ids.begin() + static_cast<std::ptrdiff_t>(b * length));
            const auto first_slot = static_cast<std::int64_t>(positions.size());
            for (std::size_t t = row.first_target; t < row.input.size(); ++t)
                positions.push_back(static_cast<std::int64_t>(b * length + t));
            for (const auto& set : row.targets)
                for (std::size_t i = 0; i < set.size(); ++i) {
                    slots.push_back(first_slot + static_cast<std::int64_t>(i));
                    targets.push_back(set[i]);
                }
        }
        if (!targets.empty()) {
            const auto to_tensor = [&](std::vector<std::int64_t>& v) {
                return torch::from_blob(v.data(), {static_cast<std::int64_t>(v.size())}, torch::kLong)
                    .to(device);
            };
            const auto input =
                torch::from_blob(ids.data(),
                                 {static_cast<std::int64_t>(count), static_cast<std::int64_t>(length)},
                                 torch::kLong)
                    .to(device);
            const torch::Tensor logits =
                detail::logits_at(module, input, to_tensor(positions)).to(torch::kFloat32);
            const std::int64_t vocab = logits.size(-1);
            for (const std::int64_t target : targets)
                if (target < 0 || target >= vocab)
                    throw lumi::Error("scoring: target token " + std::to_string(target) +
                                      " is outside the model's vocabulary [0, " + std::to_string(vocab) +
                                      ")");
            const auto slot = to_tensor(slots), target = to_tensor(targets);
            const torch::Tensor logprob =
                (logits.index({slot, target}) - torch::logsumexp(logits, -1).index_select(0, slot))
                    .to(torch::kFloat64)
                    .cpu()
                    .contiguous();
            const torch::Tensor greedy =
                logits.argmax(-1).index_select(0, slot).eq(target).to(torch::kCPU, torch::kBool).contiguous();
            const double* lp = logprob.data_ptr<double>();
            const bool* best = greedy.data_ptr<bool>();
            std::size_t k = 0;
            for (std::size_t b = 0; b < count; ++b) {
                const ScoringRow& row = rows[order[start + b]];
                auto& row_scores = scores[order[start + b]];
                for (std::size_t s = 0; s < row.targets.size(); ++s)
                    for (std::size_t i = 0; i < row.targets[s].size(); ++i, ++k) {
                        row_scores[s].logprob += lp[k];
                        row_scores[s].greedy = row_scores[s].greedy && best[k];
                    }
            }
        }
        if (progress) progress(start + count, order.size());
    }
    return scores;
}

// The windows over a sequence x_0 .. x_{L-1} in which each of x_1 .. x_{L-1} is predicted exactly once:
// inputs x[begin, end), whose positions first_target .. end - 1 predict x[first_target + 1 .. end]. Each
// window ends `stride` tokens after the previous one and reaches back `window` tokens, so every prediction
// has at least window - stride + 1 tokens of context (all of them near the start). stride == window gives
// disjoint windows.
struct Window {
    std::int64_t begin = 0, end = 0, first_target = 0;  // absolute indices into the sequence
};

inline std::vector<Window> sliding_windows(std::int64_t length, std::int64_t window, std::int64_t stride) {
    if (window < 1 || stride < 1 || stride > window)
        throw lumi::Error("sliding windows: need 1 <= stride (" + std::to_string(stride) + ") <= window (" +
                          std::to_string(window) + ")");
    std::vector<Window> windows;
    const std::int64_t last = length - 1;  // index of the last target
    std::int64_t scored = 0;               // targets 1 .. scored are done
    while (scored < last) {
        const std::int64_t end = std::min(scored == 0 ? window : scored + stride, last);
        windows.push_back({std::max<std::int64_t>(0, end - window), end, scored});
        scored = end;
    }
    return windows;
}

struct TokenScore {
    double nll = 0;            // total negative log-likelihood, nats
    std::int64_t tokens = 0;   // tokens predicted
    std::int64_t windows = 0;  // forward rows
    std::int64_t inputs = 0;   // input tokens run through the model (overlap included)
};

// Every token of every document predicted once with sliding windows; each document starts after `prefix`
// (its first token is then predicted too) and documents never see each other.
template <class Model>
TokenScore score_documents(Model& model, const std::vector<std::vector<int>>& documents,
                           std::optional<int> prefix, std::int64_t window, std::int64_t stride,
                           std::int64_t batch, const Progress& progress = {}) {
    std::vector<ScoringRow> rows;
    std::vector<int> sequence;
    TokenScore score;
    for (const auto& document : documents) {
        sequence.clear();
        if (prefix) sequence.push_back(*prefix);
        sequence.insert(sequence.end(), document.begin(), document.end());
        for (const Window& w : sliding_windows(static_cast<std::int64_t>(sequence.size()), window, stride)) {
            ScoringRow row;
            row.input.assign(sequence.begin() + w.begin, sequence.begin() + w.end);
            row.first_target = static_cast<std::size_t>(w.first_target - w.begin);
            row.targets.emplace_back(sequence.begin() + w.first_target + 1, sequence.begin() + w.end + 1);
            score.tokens += w.end - w.first_target;
            score.inputs += w.end - w.begin;
            rows.push_back(std::move(row));
        }
    }
    score.windows = static_cast<std::int64_t>(rows.size());
    for (const auto& row_scores : score_rows(model, rows, batch, progress))
        score.nll -= row_scores.front().logprob;
    return score;
}

// ln p(continuation | context), lm-eval's `loglikelihood` request.
struct ContinuationRequest {
    std::vector<int> context;
    std::vector<int> continuation;
};

struct ContinuationScore {
    double logprob = 0;
    bool greedy = true;      // the continuation is what greedy decoding would produce
    bool truncated = false;  // the context lost tokens on the left to fit the window
};

struct ContinuationScores {
    std::vector<ContinuationScore> scores;  // one per request, in order
    std::int64_t rows = 0;                  // forward rows (shared ones counted once)
    std::int64_t inputs = 0;                // input tokens run through the model
};

// Each request as one row of at most `window` inputs: the context is cut from the left when it must be,
// keeping its first `keep_first` tokens (a prefix token). Neighbouring requests with the same context share
// one row when each continuation, but for its last token, is a prefix of the longest one (" yes" = `▁ye s`
// and " no" = `▁no`): the row is context + the longest continuation, and each request reads its own tokens.
template <class Model>
ContinuationScores score_continuations(Model& model, std::span<const ContinuationRequest> requests,
                                       std::int64_t window, std::size_t keep_first, std::int64_t batch,
                                       const Progress& progress = {}) {
    for (std::size_t r = 0; r < requests.size(); ++r) {
        if (requests[r].continuation.empty())
            throw lumi::Error("scoring: request " + std::to_string(r) + " has an empty continuation");
        if (requests[r].context.empty())
            throw lumi::Error("scoring: request " + std::to_string(r) +
                              " has an empty context: give a prefix token to predict its first token from");
    }
    std::vector<ScoringRow> rows;
    std::vector<std::pair<std::size_t, std::size_t>> where(requests.size());  // request -> (row, set)
    ContinuationScores result;
    result.scores.resize(requests.size());
    const auto limit = static_cast<std::size_t>(window);

    // One row for the requests `members` (same context), whose continuations agree with `longest`'s.
    auto add_row = [&](std::span<const std::size_t> members, std::size_t longest) {
        const auto& context = requests[longest].context;
        const auto& continuation = requests[longest].continuation;
        const std::size_t kept_first = std::min(keep_first, context.size());
        if (continuation.size() + kept_first > limit)
            throw lumi::Error("scoring: request " + std::to_string(longest) + ": a continuation of " +
                              std::to_string(continuation.size()) + " tokens does not fit a window of " +
                              std::to_string(window));
        ScoringRow row;
        const std::size_t inputs = context.size() + continuation.size() - 1;
        const bool truncated = inputs > limit;
        if (!truncated) {
            row.input = context;
        } else {
            row.input.assign(context.begin(), context.begin() + static_cast<std::ptrdiff_t>(kept_first));
            row.input.insert(row.input.end(),
                             context.begin() + static_cast<std::ptrdiff_t>(kept_first + inputs - limit),
                             context.end());
        }
        row.first_target = row.input.size() - 1;
        row.input.insert(row.input.end(), continuation.begin(), continuation.end() - 1);
        for (const std::size_t r : members) {
            where[r] = {rows.size(), row.targets.size()};
            row.targets.push_back(requests[r].continuation);
            result.scores[r].truncated = truncated;
        }
        result.inputs += static_cast<std::int64_t>(row.input.size());
        rows.push_back(std::move(row));
    };

    std::vector<std::size_t> members;
    for (std::size_t begin = 0, end = 0; begin < requests.size(); begin = end) {
        members.clear();
        std::size_t longest = begin;
        for (end = begin; end < requests.size() && requests[end].context == requests[begin].context; ++end) {
            members.push_back(end);
            if (requests[end].continuation.size() > requests[longest].continuation.size()) longest = end;
        }
        const auto& reference = requests[longest].continuation;
        const bool shared = std::all_of(members.begin(), members.end(), [&](std::size_t r) {
            const auto& c = requests[r].continuation;
            return std::equal(c.begin(), c.end() - 1, reference.begin());
        });
        if (shared)
            add_row(members, longest);
        else
            for (const std::size_t r : members) add_row(std::span(&r, 1), r);
    }
    result.rows = static_cast<std::int64_t>(rows.size());
    const auto scores = score_rows(model, rows, batch, progress);
    for (std::size_t r = 0; r < requests.size(); ++r) {
        const TargetScore& s = scores[where[r].first][where[r].second];
        result.scores[r].logprob = s.logprob;
        result.scores[r].greedy = s.greedy;
    }
    return result;
}

}  // namespace lumi::eval
