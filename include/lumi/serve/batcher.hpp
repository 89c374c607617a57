#pragma once
// Continuous batching: requests join the running batch between two decoding steps, each in its own row of one
// KV cache, and leave it when done, so a new request never waits for a batch to finish.
//
// All rows share the next position T: a row's tokens fill positions [begin, T), and the step decodes every
// row's next token at T together. A request joins with its prompt right-aligned at T (prefilled alone, masked
// from the row's older contents); a prompt longer than T first moves every row right. When T reaches the
// context, every row moves left by the free room at the start. Moving a row re-rotates its cached keys by the
// distance (rotary embeddings are rotations, so R(p + d) = R(d) R(p)), as llama.cpp's context shift does:
// attention depends only on relative positions, so the result is the one each request has alone.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "lumi/core/error.hpp"
#include "lumi/core/torch.hpp"
#include "lumi/eval/generate.hpp"
#include "lumi/model/context.hpp"
#include "lumi/model/rotary.hpp"

namespace lumi::serve {

using Clock = std::chrono::steady_clock;

struct Request {
    std::vector<int> prompt;  // token ids, BOS included
    eval::SamplingSettings sampling;
    Clock::time_point deadline = Clock::time_point::max();
};

// What a request's reader receives: text as it becomes final, then one last event.
struct Event {
    std::string text;
    bool last = false;
    std::string finish_reason;  // last: "eos", "stop", "length", "cancelled", "timeout" or "shutdown"
    std::size_t prompt_tokens = 0;
    std::size_t completion_tokens = 0;
};

// One request's events, written by the decoding thread and read by the client's; cancel() (a client that went
// away) frees the request's row at the next step.
class Stream {
  public:
    // The events since the last call, waiting up to `wait` for one.
    std::vector<Event> take(std::chrono::milliseconds wait) {
        std::unique_lock lock(mutex_);
        ready_.wait_for(lock, wait, [&] { return !events_.empty(); });
        std::vector<Event> out(events_.begin(), events_.end());
        events_.clear();
        return out;
    }
    void cancel() { cancelled_ = true; }
    bool cancelled() const { return cancelled_; }

    void push(Event event) {
        {
            std::lock_guard lock(mutex_);
            events_.push_back(std::move(event));
        }
        ready_.notify_all();
    }

  private:
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<Event> events_;
    std::atomic<bool> cancelled_{false};
};

// Counters since start, for /metrics.
struct Counters {
    std::uint64_t completed = 0;
    std::uint64_t prompt_tokens = 0;
    std::uint64_t completion_tokens = 0;
    std::uint64_t steps = 0;
    std::uint64_t shifts = 0;        // times the rows moved in the cache
    double first_token_seconds = 0;  // summed over requests
    std::uint64_t first_tokens = 0;
    double decode_seconds = 0;  // in batched steps
};

// The decoding core, single-threaded: add() requests, step() until idle(). serve::Engine runs it on a thread.
template <class Model>
class Batcher {
    static constexpr ModelSpec S = std::remove_reference_t<decltype(*std::declval<Model&>())>::spec;

  public:
    using Decode = std::function<std::string(const std::vector<int>&)>;

    // decode turns a request's new tokens into text (for stop strings and the events); tokens are sampled
    // from the first `vocabulary` ids only (the tokenizer's, which may be smaller than the model's; 0: all).
    Batcher(Model model, int eos_id, Decode decode, std::int64_t max_batch, std::int64_t vocabulary = 0)
        : model_(std::move(model)),
          eos_id_(eos_id),
          decode_(std::move(decode)),
          max_batch_(max_batch),
          vocabulary_(vocabulary > 0 && vocabulary < S.vocab_size ? vocabulary : S.vocab_size) {
        if (max_batch < 1) throw Error("serve: max_batch must be >= 1");
        const auto options = model_->parameters().front().options().requires_grad(false);
        cache_ = model::KVCache(S, max_batch, S.context, options);
        for (auto& k : cache_.keys) k.zero_();  // masked positions must hold numbers: 0 * NaN is NaN
        for (auto& v : cache_.values) v.zero_();
        model_->eval();  // the batcher owns the model's use: no dropout, once rather than every step
    }

    std::int64_t capacity() const { return max_batch_; }
    std::int64_t active() const { return std::int64_t(rows_.size()); }
    bool idle() const { return rows_.empty(); }
    bool full() const { return active() >= max_batch_; }
    const Counters& counters() const { return counters_; }

    // Prefills the request into a free row and samples its first token. The prompt must leave room for
    // max_new_tokens in the context (the caller checks, to answer with a clear error).
    void add(Request request, std::shared_ptr<Stream> stream, Clock::time_point received = Clock::now()) {
        request.sampling.validate();
        const std::int64_t L = std::int64_t(request.prompt.size());
        if (L < 1 || L + request.sampling.max_new_tokens > S.context)
            throw Error("serve: a prompt of " + std::to_string(L) + " tokens with max_new_tokens " +
                        std::to_string(request.sampling.max_new_tokens) + " exceeds the context of " +
                        std::to_string(S.context));
        if (full()) throw Error("serve: every row is busy");
        torch::NoGradGuard no_grad;
        const auto device = cache_.keys.front().device();
        if (rows_.empty())
            next_ = L;
        else if (L > next_)
            shift(L - next_);
        const std::int64_t start = next_ - L;
        Row row{
            .request = std::move(request), .stream = std::move(stream), .begin = start, .received = received};
        row.generator = make_generator(row.request.sampling.seed);
        row.seen = torch::zeros({1, S.vocab_size}, torch::TensorOptions().dtype(torch::kBool).device(device));
        const auto ids =
            torch::tensor(std::vector<std::int64_t>(row.request.prompt.begin(), row.request.prompt.end()),
                          torch::kInt64)
                .unsqueeze(0)
                .to(device);
        row.seen.scatter_(1, ids, true);
        auto view = rows_view(active(), 1);
        model::Context ctx{.start = start, .cache = &view};
        if (start > 0) {  // causal within the prompt, blind to what the row held before
            const auto options = torch::TensorOptions().dtype(torch::kBool).device(device);
            ctx.mask = torch::ones({L, next_}, options).tril(start) &
                       (torch::arange(next_, torch::TensorOptions().device(device)) >= start);
            ctx.mask = ctx.mask.view({1, 1, L, next_});
        }
        const auto logits = model_->forward(ids, ctx).select(1, L - 1);
        counters_.prompt_tokens += std::size_t(L);
        rows_.push_back(std::move(row));
        accept(rows_.back(), sample(rows_.back(), logits));
        retire();
    }

    // One token for every row: drops cancelled and expired requests, moves the rows when T is at the context,
    // decodes, and retires finished requests.
    void step() {
        const auto now = Clock::now();
        for (auto& row : rows_)
            if (!row.done && row.stream->cancelled())
                finish(row, "cancelled");
            else if (!row.done && now >= row.request.deadline)
                finish(row, "timeout");
        retire();
        if (rows_.empty()) return;
        torch::NoGradGuard no_grad;
        if (next_ >= S.context)
            shift(-first_position());  // > 0: a row that began at 0 would have finished by its length limit
        const auto device = cache_.keys.front().device();
        const std::int64_t n = active();
        std::vector<std::int64_t> pending, begins;
        for (const auto& row : rows_) {
            pending.push_back(row.pending);
            begins.push_back(row.begin);
        }
        const auto ids = torch::tensor(pending, torch::kInt64).view({n, 1}).to(device);
        const auto begin = torch::tensor(begins, torch::kInt64).view({n, 1, 1, 1}).to(device);
        auto view = rows_view(0, n);
        const model::Context ctx{
            .start = next_,
            .mask = torch::arange(next_ + 1, torch::TensorOptions().dtype(torch::kInt64).device(device))
                        .view({1, 1, 1, next_ + 1}) >= begin,
            .cache = &view};
        const auto started = Clock::now();
        const auto logits = model_->forward(ids, ctx).select(1, 0);
        ++next_;
        for (std::int64_t b = 0; b < n; ++b) {
            auto& row = rows_[std::size_t(b)];
            accept(row, sample(row, logits.narrow(0, b, 1)));
        }
        counters_.decode_seconds += std::chrono::duration<double>(Clock::now() - started).count();
        ++counters_.steps;
        retire();
    }

    // Ends every request now (a server that may not wait longer).
    void cancel_all(const std::string& reason) {
        for (auto& row : rows_)
            if (!row.done) finish(row, reason);
        retire();
    }

  private:
    struct Row {
        Request request;
        std::shared_ptr<Stream> stream;
        std::int64_t begin = 0;  // first position of the row's tokens
        Clock::time_point received;
        at::Generator generator;
        torch::Tensor seen;        // [1, vocab] tokens in the prompt or the output (repetition penalty)
        std::vector<int> tokens;   // generated
        std::int64_t pending = 0;  // sampled, not yet in the cache
        eval::StopScanner scanner;
        std::string text;
        bool done = false;
    };

    int sample(Row& row, const torch::Tensor& logits) {
        return int(eval::sample_next(logits.narrow(-1, 0, vocabulary_), row.seen.narrow(-1, 0, vocabulary_),
                                     row.request.sampling, row.generator)
                       .to(torch::kCPU)
                       .template item<std::int64_t>());
    }

    void accept(Row& row, int token) {
        const auto& s = row.request.sampling;
        if (row.tokens.empty()) {
            counters_.first_token_seconds +=
                std::chrono::duration<double>(Clock::now() - row.received).count();
            ++counters_.first_tokens;
        }
        if (s.stop_at_eos && token == eos_id_) return finish(row, "eos");
        row.tokens.push_back(token);
        ++counters_.completion_tokens;
        row.seen.index_put_({0, std::int64_t(token)}, true);
        if (decode_) {  // without it (benchmarks): tokens only, no text and no stop strings
            row.text = decode_(row.tokens);
            auto update = row.scanner.update(row.text, s.stop);
            if (!update.delta.empty()) row.stream->push(Event{.text = std::move(update.delta)});
            if (update.stopped) return finish(row, "stop");
        }
        if (std::int64_t(row.tokens.size()) >= s.max_new_tokens) return finish(row, "length");
        row.pending = token;
    }

    void finish(Row& row, const std::string& reason) {
        Event last{.last = true,
                   .finish_reason = reason,
                   .prompt_tokens = row.request.prompt.size(),
                   .completion_tokens = row.tokens.size()};
        if (row.text.size() > row.scanner.sent) last.text = row.text.substr(row.scanner.sent);
        row.stream->push(std::move(last));
        row.done = true;
        ++counters_.completed;
    }

    // Finished rows leave; the last row moves into each hole, so the live rows stay 0 .. n - 1.
    void retire() {
        for (std::size_t r = 0; r < rows_.size();) {
            if (!rows_[r].done) {
                ++r;
                continue;
            }
            const std::size_t last = rows_.size() - 1;
            if (r != last) {
                const std::int64_t from = rows_[last].begin, len = next_ - from;
                for (auto* tensors : {&cache_.keys, &cache_.values})
                    for (auto& t : *tensors)
                        t.select(0, std::int64_t(r))
                            .narrow(1, from, len)
                            .copy_(t.select(0, std::int64_t(last)).narrow(1, from, len));
                rows_[r] = std::move(rows_[last]);
            }
            rows_.pop_back();
        }
    }

    // Moves every row's positions by `delta` (keys re-rotated, values copied).
    void shift(std::int64_t delta) {
        const std::int64_t lowest = first_position(), len = next_ - lowest, n = active();
        if (lowest + delta < 0 || next_ + delta > S.context) throw Error("serve: a shift out of the context");
        const auto& rope = model_->model->rotary_emb;
        const std::int64_t distance = delta < 0 ? -delta : delta;
        const auto cos = rope->cos.select(0, distance);
        const auto sin = rope->sin.select(0, distance) * (delta < 0 ? -1.0 : 1.0);
        for (std::size_t l = 0; l < cache_.keys.size(); ++l) {
            auto keys = cache_.keys[l].narrow(0, 0, n);
            auto values = cache_.values[l].narrow(0, 0, n);
            const auto k = keys.narrow(2, lowest, len).to(torch::kFloat32);
            const auto rotated = k * cos + model::RotaryEmbeddingImpl<S>::rotate_half(k) * sin;
            keys.narrow(2, lowest + delta, len).copy_(rotated);
            values.narrow(2, lowest + delta, len).copy_(values.narrow(2, lowest, len).clone());
        }
        for (auto& row : rows_) row.begin += delta;
        next_ += delta;
        ++counters_.shifts;
    }

    // The earliest position any row uses.
    std::int64_t first_position() const {
        std::int64_t lowest = next_;
        for (const auto& row : rows_) lowest = std::min(lowest, row.begin);
        return lowest;
    }

    // A KV cache over rows [first, first + count) of the shared one (views: writes land in it).
    model::KVCache rows_view(std::int64_t first, std::int64_t count) {
        model::KVCache view;
        view.capacity = cache_.capacity;
        for (std::size_t l = 0; l < cache_.keys.size(); ++l) {
            view.keys.push_back(cache_.keys[l].narrow(0, first, count));
            view.values.push_back(cache_.values[l].narrow(0, first, count));
        }
        return view;
    }

    Model model_;
    int eos_id_;
    Decode decode_;
    std::int64_t max_batch_;
    std::int64_t vocabulary_;
    model::KVCache cache_;
    std::vector<Row> rows_;
    std::int64_t next_ = 0;  // T: the position every row's next token takes
    Counters counters_;
};

}  // namespace lumi::serve
