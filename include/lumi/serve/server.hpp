#pragma once
// An OpenAI-compatible HTTP server on Boost.Beast: one thread per connection reads requests (keep-alive) and
// waits on its request's Stream; every request is decoded by the one Engine, batched with the others.
//   GET  /                      the chat page (serve/page.hpp)
//   POST /v1/chat/completions   messages in the chat template, streamed (server-sent events) or not
//   POST /v1/completions        a raw prompt
//   GET  /v1/models, /health, /metrics (Prometheus text)
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "lumi/config/config.hpp"
#include "lumi/serve/engine.hpp"
#include "lumi/serve/openai.hpp"
#include "lumi/serve/page.hpp"
#include "lumi/tokenizer/tokenizer.hpp"

namespace lumi::serve {

struct ServerSettings {
    std::string host = "127.0.0.1";  // loopback only; "0.0.0.0" serves every interface
    std::int64_t port = 8000;        // 0: a free port (printed at start)
    std::string api_key;             // when set, /v1 and /metrics need `Authorization: Bearer <api_key>`
    std::string model_name;          // the model's id in the API; empty: lumi-<preset>
    eval::PromptTemplate chat_template = eval::PromptTemplate::instruct;  // how chat messages are rendered
    // What a request leaves out: max_new_tokens is the default max_tokens; seed 0 gives each request a fresh
    // random seed.
    eval::SamplingSettings sampling;
    EngineSettings engine;
    std::int64_t max_tokens_limit = 0;  // the largest max_tokens a request may ask; 0: the context
    std::int64_t max_body_bytes = 1 << 20;
    std::int64_t max_connections = 256;
    double request_timeout_seconds = 300;
    double idle_timeout_seconds = 60;    // a connection that sends no request for this long is closed
    double shutdown_grace_seconds = 10;  // SIGTERM: requests in flight get this long to finish

    void validate() const {
        sampling.validate();
        if (!sampling.use_cache)
            throw config::FieldError("sampling.use_cache",
                                     "must be true: the server always decodes with the cache");
        engine.validate();
        if (port < 0 || port > 65535) throw config::FieldError("port", "must be in [0, 65535]");
        if (max_tokens_limit < 0)
            throw config::FieldError("max_tokens_limit", "must be >= 0 (0: the context)");
        if (max_body_bytes < 1024) throw config::FieldError("max_body_bytes", "must be >= 1024");
        if (max_connections < 1) throw config::FieldError("max_connections", "must be >= 1");
        if (!(request_timeout_seconds > 0))
            throw config::FieldError("request_timeout_seconds", "must be > 0");
        if (!(idle_timeout_seconds > 0)) throw config::FieldError("idle_timeout_seconds", "must be > 0");
        if (!(shutdown_grace_seconds >= 0))
            throw config::FieldError("shutdown_grace_seconds", "must be >= 0");
    }
};

namespace detail {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

// Whether the client closed its end (checked while its answer is being decoded).
inline bool peer_gone(int fd) {
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
    char c;
    return (p.revents & POLLIN) && ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

// Requests by endpoint and status, tokens, latency: /metrics.
class Metrics {
  public:
    void count(const std::string& endpoint, int status) {
        std::lock_guard lock(mutex_);
        ++requests_[{endpoint, status}];
    }
    std::string text(const EngineStatus& engine, std::size_t connections) const {
        std::string out;
        const auto metric = [&](const char* name, const char* type, const char* help) {
            out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
        };
        metric("lumi_requests_total", "counter", "HTTP requests answered, by endpoint and status.");
        {
            std::lock_guard lock(mutex_);
            for (const auto& [key, n] : requests_)
                out += "lumi_requests_total{endpoint=\"" + key.first + "\",status=\"" +
                       std::to_string(key.second) + "\"} " + std::to_string(n) + "\n";
        }
        const auto& c = engine.counters;
        const auto number = [](double value) {
            char text[32];
            std::snprintf(text, sizeof text, "%.9g", value);
            return std::string(text);
        };
        const auto single = [&](const char* name, const char* type, const char* help, double value) {
            metric(name, type, help);
            out += std::string(name) + " " + number(value) + "\n";
        };
        single("lumi_prompt_tokens_total", "counter", "Prompt tokens prefilled.", double(c.prompt_tokens));
        single("lumi_completion_tokens_total", "counter", "Tokens generated.", double(c.completion_tokens));
        single("lumi_queue_length", "gauge", "Requests waiting for a batch row.", double(engine.queued));
        single("lumi_active_requests", "gauge", "Requests being decoded.", double(engine.active));
        single("lumi_open_connections", "gauge", "Open HTTP connections.", double(connections));
        metric("lumi_time_to_first_token_seconds", "summary", "From a request's arrival to its first token.");
        out += "lumi_time_to_first_token_seconds_sum " + number(c.first_token_seconds) +
               "\nlumi_time_to_first_token_seconds_count " + std::to_string(c.first_tokens) + "\n";
        single("lumi_decode_steps_total", "counter", "Batched decoding steps.", double(c.steps));
        single("lumi_decode_seconds_total", "counter", "Time in batched decoding steps.", c.decode_seconds);
        single("lumi_cache_shifts_total", "counter", "Times the batch's rows moved in the KV cache.",
               double(c.shifts));
        single("lumi_decode_tokens_per_second", "gauge", "Tokens per second of decoding time, since start.",
               c.decode_seconds > 0 ? double(c.completion_tokens) / c.decode_seconds : 0.0);
        return out;
    }

  private:
    mutable std::mutex mutex_;
    std::map<std::pair<std::string, int>, std::uint64_t> requests_;
};

}  // namespace detail

template <class Model>
class Server {
    static constexpr ModelSpec S = std::remove_reference_t<decltype(*std::declval<Model&>())>::spec;
    using Request_ = detail::http::request<detail::http::string_body>;

  public:
    Server(Model model, const tokenizer::Tokenizer& tokenizer, ServerSettings settings)
        : settings_((settings.validate(), std::move(settings))),
          tokenizer_(tokenizer),
          engine_(
              std::move(model), tokenizer.eos_id(),
              [this](const std::vector<int>& t) { return tokenizer_.decode(t); }, settings_.engine,
              tokenizer.vocab_size()),
          acceptor_(io_) {}

    ~Server() { stop(); }

    // Binds and listens; returns the port (the one picked when port is 0).
    std::uint16_t listen() {
        namespace net = detail::net;
        const auto address = net::ip::make_address(settings_.host);
        const detail::tcp::endpoint endpoint(address, std::uint16_t(settings_.port));
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(net::socket_base::reuse_address(true));
        boost::system::error_code ec;
        acceptor_.bind(endpoint, ec);
        if (ec)
            throw Error("serve: cannot listen on " + settings_.host + ":" + std::to_string(settings_.port) +
                        ": " + ec.message());
        acceptor_.listen();
        return acceptor_.local_endpoint().port();
    }

    // Accepts connections until stop(); then lets requests in flight finish (shutdown_grace_seconds) and
    // closes every connection.
    void run() {
        for (;;) {
            detail::tcp::socket socket(io_);
            boost::system::error_code ec;
            acceptor_.accept(socket, ec);
            if (stopping_) break;
            if (ec) continue;
            std::unique_lock lock(mutex_);
            if (std::int64_t(connections_.size()) >= settings_.max_connections) {
                lock.unlock();
                refuse(socket, 503,
                       "too many connections (max_connections " + std::to_string(settings_.max_connections) +
                           ")");
                continue;
            }
            const int fd = socket.native_handle();
            connections_.insert(fd);
            std::thread([this, fd, s = std::move(socket)]() mutable {
                session(s);
                boost::system::error_code ignored;
                s.shutdown(detail::tcp::socket::shutdown_both, ignored);
                s.close(ignored);
                std::lock_guard lock(mutex_);
                connections_.erase(fd);
                closed_.notify_all();
            }).detach();
        }
        engine_.shutdown(std::chrono::milliseconds(std::int64_t(settings_.shutdown_grace_seconds * 1000)));
        std::unique_lock lock(mutex_);
        for (int fd : connections_) ::shutdown(fd, SHUT_RD);  // idle keep-alive reads end
        closed_.wait_for(lock, std::chrono::seconds(5), [&] { return connections_.empty(); });
    }

    // From any thread (a signal's watcher): stops accepting; run() then drains and returns.
    void stop() {
        if (stopping_.exchange(true)) return;
        if (acceptor_.is_open()) ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes accept()
    }

  private:
    // An error answer, then the connection closes. drain: the client may still be sending a body; it is read
    // and dropped (for a second at most) so that the client sees the answer, not a reset.
    void refuse(detail::tcp::socket& socket, int status, const std::string& message, bool drain = false) {
        detail::http::response<detail::http::string_body> res{detail::http::status(status), 11};
        res.set(detail::http::field::content_type, "application/json");
        res.body() = error_body(message, "server_error", "");
        res.keep_alive(false);
        res.prepare_payload();
        boost::system::error_code ec;
        detail::http::write(socket, res, ec);
        if (drain && !ec) {
            socket.shutdown(detail::tcp::socket::shutdown_send, ec);
            const timeval second{1, 0};
            ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &second, sizeof second);
            char sink[65536];
            for (std::size_t total = 0; total < (std::size_t(64) << 20);) {
                const auto n = ::recv(socket.native_handle(), sink, sizeof sink, 0);
                if (n <= 0) break;
                total += std::size_t(n);
            }
        }
        socket.close(ec);
    }

    void session(detail::tcp::socket& socket) {
        namespace http = detail::http;
        detail::beast::flat_buffer buffer;
        for (;;) {
            // An idle client cannot hold a connection (and its thread) for ever: no request within
            // idle_timeout_seconds closes it. (Asio's blocking reads would wait past SO_RCVTIMEO.)
            if (buffer.size() == 0) {
                pollfd p{socket.native_handle(), POLLIN, 0};
                if (::poll(&p, 1, int(settings_.idle_timeout_seconds * 1000)) <= 0) return;
            }
            http::request_parser<http::string_body> parser;
            parser.body_limit(std::uint64_t(settings_.max_body_bytes));
            boost::system::error_code ec;
            http::read(socket, buffer, parser, ec);
            if (ec == http::error::body_limit) {
                metrics_.count("other", 413);
                refuse(socket, 413,
                       "the request body exceeds max_body_bytes (" +
                           std::to_string(settings_.max_body_bytes) + ")",
                       /*drain=*/true);
                return;
            }
            if (ec) return;  // closed, or not HTTP
            Request_ req = parser.release();
            if (!handle(socket, req) || !req.keep_alive() || stopping_) return;
        }
    }

    // Writes a whole response; false when the connection cannot go on.
    bool send(detail::tcp::socket& socket, const Request_& req, int status, const std::string& type,
              std::string body, const std::string& endpoint) {
        namespace http = detail::http;
        metrics_.count(endpoint, status);
        http::response<http::string_body> res{http::status(status), req.version()};
        res.set(http::field::server, "lumi");
        res.set(http::field::content_type, type);
        res.keep_alive(req.keep_alive());
        res.body() = std::move(body);
        res.prepare_payload();
        boost::system::error_code ec;
        http::write(socket, res, ec);
        return !ec;
    }

    bool send_error(detail::tcp::socket& socket, const Request_& req, const ApiError& e,
                    const std::string& endpoint) {
        return send(socket, req, e.status, "application/json", error_body(e), endpoint);
    }

    bool handle(detail::tcp::socket& socket, const Request_& req) {
        namespace http = detail::http;
        const std::string target(req.target().substr(0, req.target().find('?')));
        const bool get = req.method() == http::verb::get, post = req.method() == http::verb::post;
        const std::string endpoint = target == "/" || target == "/health" || target == "/metrics" ||
                                             target == "/v1/models" || target == "/v1/chat/completions" ||
                                             target == "/v1/completions"
                                         ? target
                                         : "other";
        if (target == "/health" && get)
            return send(socket, req, 200, "application/json", R"({"status":"ok"})", endpoint);
        if (target == "/" && get)
            return send(socket, req, 200, "text/html; charset=utf-8", std::string(chat_page), endpoint);
        if (endpoint == "other")
            return send_error(
                socket, req,
                ApiError(404, "no such endpoint: " + std::string(req.method_string()) + " " + target, "",
                         "not_found_error"),
                endpoint);
        if (!settings_.api_key.empty() && req[http::field::authorization] != "Bearer " + settings_.api_key)
            return send_error(socket, req,
                              ApiError(401, "a valid API key is required (Authorization: Bearer ...)", "",
                                       "authentication_error"),
                              endpoint);
        if (target == "/metrics" && get)
            return send(socket, req, 200, "text/plain; version=0.0.4",
                        metrics_.text(engine_.status(), open_connections()), endpoint);
        if (target == "/v1/models" && get)
            return send(
                socket, req, 200, "application/json",
                json::serialize(json::object{{"object", "list"},
                                             {"data", json::array{json::object{{"id", settings_.model_name},
                                                                               {"object", "model"},
                                                                               {"created", started_},
                                                                               {"owned_by", "lumi"}}}}}),
                endpoint);
        if (!post || (target != "/v1/chat/completions" && target != "/v1/completions"))
            return send_error(
                socket, req, ApiError(405, std::string(req.method_string()) + " is not allowed on " + target),
                endpoint);
        try {
            return complete(
                socket, req,
                read_completion_request(req.body(), target == "/v1/chat/completions", settings_.model_name),
                endpoint);
        } catch (const ApiError& e) {
            return send_error(socket, req, e, endpoint);
        }
    }

    // The request as the engine takes it: tokens (chat history trimmed to fit) and sampling.
    Request prepare(const CompletionRequest& r) {
        const std::int64_t limit =
            settings_.max_tokens_limit > 0 ? settings_.max_tokens_limit : S.context - 1;
        if (r.max_tokens && *r.max_tokens > limit)
            throw ApiError(400,
                           "max_tokens: " + std::to_string(*r.max_tokens) +
                               " exceeds this server's limit of " + std::to_string(limit),
                           "max_tokens");
        Request out;
        out.sampling = settings_.sampling;
        std::int64_t budget = r.max_tokens.value_or(std::min(settings_.sampling.max_new_tokens, limit));
        if (budget >= S.context)
            throw ApiError(400,
                           "max_tokens: " + std::to_string(budget) +
                               " leaves no room for a prompt in the context of " + std::to_string(S.context),
                           "max_tokens");
        const auto encode = [&](std::string_view text) { return tokenizer_.encode(text); };
        if (r.chat) {
            try {
                out.prompt = eval::chat_prompt(settings_.chat_template, r.messages, encode,
                                               tokenizer_.bos_id(), std::size_t(S.context - budget))
                                 .ids;
            } catch (const Error& e) {
                throw ApiError(400, e.what(), "messages");
            }
            for (auto& stop : eval::template_stops(settings_.chat_template))
                out.sampling.stop.push_back(stop);
        } else {
            out.prompt = {tokenizer_.bos_id()};
            const auto ids = tokenizer_.encode(r.prompt);
            out.prompt.insert(out.prompt.end(), ids.begin(), ids.end());
            const std::int64_t room = S.context - std::int64_t(out.prompt.size());
            if (room < 1 || (r.max_tokens && budget > room))
                throw ApiError(400,
                               "prompt: " + std::to_string(out.prompt.size()) + " tokens" +
                                   (r.max_tokens ? " with max_tokens " + std::to_string(budget) : "") +
                                   " exceed the context of " + std::to_string(S.context),
                               "prompt");
            budget = std::min(budget, room);
        }
        out.sampling.max_new_tokens = budget;
        if (r.temperature) out.sampling.temperature = *r.temperature;
        if (r.top_p) out.sampling.top_p = *r.top_p;
        out.sampling.seed = r.seed ? *r.seed
                            : settings_.sampling.seed != 0
                                ? settings_.sampling.seed
                                : std::random_device{}() ^ (std::uint64_t(std::random_device{}()) << 32);
        for (const auto& stop : r.stop) out.sampling.stop.push_back(stop);
        out.deadline =
            Clock::now() + std::chrono::milliseconds(std::int64_t(settings_.request_timeout_seconds * 1000));
        return out;
    }

    bool complete(detail::tcp::socket& socket, const Request_& req, const CompletionRequest& r,
                  const std::string& endpoint) {
        namespace http = detail::http;
        namespace net = detail::net;
        if (stopping_) throw ApiError(503, "the server is shutting down", "", "server_error");
        std::shared_ptr<Stream> stream;
        try {
            stream = engine_.submit(prepare(r));
        } catch (const Busy& e) {
            throw ApiError(stopping_ ? 503 : 429, e.what(), "",
                           stopping_ ? "server_error" : "rate_limit_error");
        }
        const std::string id = (r.chat ? "chatcmpl-" : "cmpl-") + std::to_string(++ids_);
        const std::int64_t created = std::time(nullptr);
        const int fd = socket.native_handle();
        const auto failure = [&](const Event& e) {
            return e.finish_reason == "timeout"
                       ? ApiError(504,
                                  "the request timed out after " +
                                      std::to_string(settings_.request_timeout_seconds) + " s",
                                  "", "timeout_error")
                   : e.finish_reason == "shutdown"
                       ? ApiError(503, "the server shut down before the answer was complete", "",
                                  "server_error")
                       : ApiError(500, "decoding failed (the server's log says why)", "", "server_error");
        };
        const auto failed = [](const Event& e) {
            return e.finish_reason != "eos" && e.finish_reason != "stop" && e.finish_reason != "length";
        };
        if (!r.stream) {
            std::string text;
            for (;;) {
                for (auto& e : stream->take(std::chrono::milliseconds(50))) {
                    text += e.text;
                    if (!e.last) continue;
                    if (failed(e)) return send_error(socket, req, failure(e), endpoint);
                    return send(socket, req, 200, "application/json",
                                completion_body(r, id, created, settings_.model_name, text, e.finish_reason,
                                                e.prompt_tokens, e.completion_tokens),
                                endpoint);
                }
                if (detail::peer_gone(fd)) {
                    stream->cancel();  // the engine frees the row at its next step
                    metrics_.count(endpoint, 499);
                    return false;
                }
            }
        }
        http::response<http::empty_body> res{http::status::ok, req.version()};
        res.set(http::field::server, "lumi");
        res.set(http::field::content_type, "text/event-stream");
        res.set(http::field::cache_control, "no-cache");
        res.keep_alive(req.keep_alive());
        res.chunked(true);
        http::response_serializer<http::empty_body> serializer{res};
        boost::system::error_code ec;
        http::write_header(socket, serializer, ec);
        const auto write = [&](const std::string& data) {
            if (!ec) net::write(socket, http::make_chunk(net::buffer(data)), ec);
            return !ec;
        };
        bool first = true;
        for (;;) {
            for (auto& e : stream->take(std::chrono::milliseconds(50))) {
                if (e.last && failed(e)) {
                    write("data: " + error_body(failure(e)) + "\n\n");
                } else {
                    if (!e.text.empty() || first)
                        write(chunk_event(r, id, created, settings_.model_name, e.text, "", first));
                    first = false;
                    if (!e.last) continue;
                    write(chunk_event(r, id, created, settings_.model_name, "", e.finish_reason, false,
                                      e.prompt_tokens, e.completion_tokens));
                    if (r.include_usage)
                        write(usage_event(r, id, created, settings_.model_name, e.prompt_tokens,
                                          e.completion_tokens));
                }
                if (!e.last) continue;
                write("data: [DONE]\n\n");
                if (!ec) net::write(socket, http::make_chunk_last(), ec);
                metrics_.count(endpoint, ec ? 499 : 200);
                return !ec;
            }
            if (ec || detail::peer_gone(fd)) {
                stream->cancel();
                metrics_.count(endpoint, 499);
                return false;
            }
        }
    }

    std::size_t open_connections() {
        std::lock_guard lock(mutex_);
        return connections_.size();
    }

    const ServerSettings settings_;
    const tokenizer::Tokenizer& tokenizer_;
    Engine<Model> engine_;
    detail::net::io_context io_;
    detail::tcp::acceptor acceptor_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> ids_{0};
    const std::int64_t started_ = std::time(nullptr);
    detail::Metrics metrics_;
    std::mutex mutex_;
    std::condition_variable closed_;
    std::set<int> connections_;
};

}  // namespace lumi::serve
