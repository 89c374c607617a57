// Generation throughput with the KV cache, batch 1 and 8 (greedy, a 32-token prompt, 64 new tokens, EOS
// ignored so every row runs to the end), and at batch 1 without the cache for comparison. Items are
// generated tokens. serve/: the server's engine (continuous batching) with 1 to 32 streams submitted
// together, each with its own prompt; items are generated tokens, ttft_ms the mean time to a stream's first
// token.
//   lumi_eval_bench --benchmark_filter='^(generate|serve)/'
#include "../bench.hpp"

#include <lumi/eval/generate.hpp>
#include <lumi/serve/engine.hpp>

namespace {

using lumi::ModelSpec;

template <ModelSpec S, bool Cache>
void generate(benchmark::State& state) {
    lumi::Transformer<S> model(lumi::InitSettings{.seed = 1});
    const auto batch = state.range(0);
    const auto ids = lumi::bench::random_tokens(S.vocab_size, batch, 32, 4);
    std::vector<std::vector<int>> prompts;
    for (std::int64_t b = 0; b < batch; ++b) {
        const auto row = ids[b];
        prompts.emplace_back(row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + row.numel());
    }
    lumi::eval::SamplingSettings settings;
    settings.max_new_tokens = 64;
    settings.stop_at_eos = false;
    settings.use_cache = Cache;
    std::int64_t tokens = 0;
    for (auto _ : state)
        for (const auto& row : lumi::eval::generate_ids(model, prompts, settings, -1))
            tokens += std::int64_t(row.tokens.size());
    state.SetItemsProcessed(tokens);
}

template <ModelSpec S>
void serve(benchmark::State& state) {
    using Model = lumi::Transformer<S>;
    Model model(lumi::InitSettings{.seed = 1});
    const auto streams = state.range(0);
    const auto ids = lumi::bench::random_tokens(S.vocab_size, streams, 32, 4);
    lumi::serve::Engine<Model> engine(model, -1, {}, {.max_batch = std::max<std::int64_t>(streams, 1)});
    std::int64_t tokens = 0;
    double first_token_seconds = 0;
    std::int64_t firsts = 0;
    for (auto _ : state) {
        std::vector<std::shared_ptr<lumi::serve::Stream>> running;
        for (std::int64_t b = 0; b < streams; ++b) {
            const auto row = ids[b];
            lumi::serve::Request request{
                .prompt = {row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + row.numel()},
                .sampling = {.max_new_tokens = 64, .stop_at_eos = false}};
            running.push_back(engine.submit(std::move(request)));
        }
        for (auto& stream : running)
            for (bool last = false; !last;)
                for (const auto& event : stream->take(std::chrono::milliseconds(100)))
                    if (event.last) {
                        last = true;
                        tokens += std::int64_t(event.completion_tokens);
                    }
    }
    const auto status = engine.status();
    first_token_seconds = status.counters.first_token_seconds;
    firsts = std::int64_t(status.counters.first_tokens);
    state.SetItemsProcessed(tokens);
    state.counters["ttft_ms"] = firsts > 0 ? 1000 * first_token_seconds / double(firsts) : 0.0;
}

template <ModelSpec S>
void add(const char* preset) {
    for (std::int64_t streams : {1, 8, 16, 32})
        benchmark::RegisterBenchmark((std::string("serve/") + preset).c_str(), serve<S>)
            ->ArgName("streams")
            ->Arg(streams)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    const std::string name = std::string("generate/") + preset;
    for (std::int64_t batch : {1, 8})
        benchmark::RegisterBenchmark((name + "/kv_cache").c_str(), generate<S, true>)
            ->ArgName("batch")
            ->Arg(batch)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    benchmark::RegisterBenchmark((name + "/no_cache").c_str(), generate<S, false>)
        ->ArgName("batch")
        ->Arg(1)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
}

[[maybe_unused]] const bool registered = [] {
    add<lumi::presets::nano>("nano");
    add<lumi::presets::tiny>("tiny");
    return true;
}();

}  // namespace
