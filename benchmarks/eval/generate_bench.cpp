// Generation throughput with the KV cache, batch 1 and 8 (greedy, a 32-token prompt, 64 new tokens, EOS
// ignored so every row runs to the end), and at batch 1 without the cache for comparison. Items are
// generated tokens.
//   lumi_eval_bench --benchmark_filter='^generate/'
#include "../bench.hpp"

#include <lumi/eval/generate.hpp>

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
void add(const char* preset) {
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
