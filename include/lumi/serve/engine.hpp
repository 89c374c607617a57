#pragma once
// The decoding thread: a bounded queue in front of a Batcher. Clients submit() from any thread and read their
// Stream; the thread admits queued requests into free rows between steps.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include "lumi/config/config.hpp"
#include "lumi/serve/batcher.hpp"

namespace lumi::serve {

struct EngineSettings {
    std::int64_t max_batch = 16;  // requests decoded together
    std::int64_t max_queue = 64;  // requests waiting for a row; more are refused (HTTP 429)

    void validate() const {
        if (max_batch < 1) throw config::FieldError("max_batch", "must be >= 1");
        if (max_queue < 0) throw config::FieldError("max_queue", "must be >= 0");
    }
};

// submit() when the queue is full or the engine is stopping.
struct Busy : Error {
    using Error::Error;
};

struct EngineStatus {
    Counters counters;
    std::size_t queued = 0;
    std::size_t active = 0;
    std::uint64_t submitted = 0;
};

template <class Model>
class Engine {
  public:
    using Decode = typename Batcher<Model>::Decode;

    // As Batcher's: decode turns tokens into text, `vocabulary` bounds the sampled ids.
    Engine(Model model, int eos_id, Decode decode, EngineSettings settings, std::int64_t vocabulary = 0)
        : settings_((settings.validate(), settings)),
          batcher_(std::move(model), eos_id, std::move(decode), settings.max_batch, vocabulary),
          thread_([this] { run(); }) {}
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    ~Engine() { shutdown(std::chrono::milliseconds(0)); }

    std::shared_ptr<Stream> submit(Request request) {
        auto stream = std::make_shared<Stream>();
        {
            std::lock_guard lock(mutex_);
            if (stopping_) throw Busy("the server is shutting down");
            // Free rows take requests at the next step; beyond them, max_queue may wait.
            const auto free_rows = settings_.max_batch - std::int64_t(status_.active);
            if (std::int64_t(queue_.size()) >= settings_.max_queue + free_rows)
                throw Busy("the queue is full (" + std::to_string(settings_.max_queue) +
                           " waiting requests)");
            queue_.push_back({std::move(request), stream, Clock::now()});
            ++status_.submitted;
        }
        wake_.notify_all();
        return stream;
    }

    // Stops taking requests, lets those queued or running finish for up to `grace`, ends the rest
    // ("shutdown"), and joins the thread.
    void shutdown(std::chrono::milliseconds grace) {
        {
            std::lock_guard lock(mutex_);
            if (!stopping_) {
                stopping_ = true;
                stop_by_ = Clock::now() + grace;
            }
        }
        wake_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    EngineStatus status() const {
        std::lock_guard lock(mutex_);
        auto s = status_;
        s.queued = queue_.size();
        return s;
    }

  private:
    struct Queued {
        Request request;
        std::shared_ptr<Stream> stream;
        Clock::time_point received;
    };

    static void end(const Queued& q, const std::string& reason) {
        q.stream->push(
            Event{.last = true, .finish_reason = reason, .prompt_tokens = q.request.prompt.size()});
    }

    void run() {
        torch::NoGradGuard no_grad;
        for (;;) {
            std::vector<Queued> admit;
            bool stop_now = false;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || !batcher_.idle(); });
                if (stopping_ && queue_.empty() && batcher_.idle()) return;
                stop_now = stopping_ && Clock::now() >= stop_by_;
                if (stop_now) {
                    for (const auto& q : queue_) end(q, "shutdown");
                    queue_.clear();
                } else {
                    while (!queue_.empty() &&
                           batcher_.active() + std::int64_t(admit.size()) < batcher_.capacity()) {
                        admit.push_back(std::move(queue_.front()));
                        queue_.pop_front();
                    }
                    status_.active += admit.size();  // submit() counts them as taken at once
                }
            }
            try {
                if (stop_now) {
                    batcher_.cancel_all("shutdown");
                } else {
                    const auto now = Clock::now();
                    for (auto& q : admit) {
                        if (q.stream->cancelled()) {
                            end(q, "cancelled");
                        } else if (now >= q.request.deadline) {
                            end(q, "timeout");
                        } else {
                            // A request that cannot be prefilled ends alone; the others are still admitted.
                            try {
                                batcher_.add(std::move(q.request), q.stream, q.received);
                            } catch (const std::exception& e) {
                                std::cerr << "serve: a request failed: " << e.what() << "\n";
                                end(q, "error");
                            }
                        }
                    }
                    batcher_.step();
                }
            } catch (const std::exception& e) {
                // One bad step must not stop the server: its requests end, the next ones run.
                std::cerr << "serve: decoding failed: " << e.what() << "\n";
                batcher_.cancel_all("error");
            }
            std::lock_guard lock(mutex_);
            status_.counters = batcher_.counters();
            status_.active = std::size_t(batcher_.active());
        }
    }

    const EngineSettings settings_;
    Batcher<Model> batcher_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Queued> queue_;
    bool stopping_ = false;
    Clock::time_point stop_by_{};
    EngineStatus status_;
    std::thread thread_;  // last: starts after everything it reads
};

}  // namespace lumi::serve
