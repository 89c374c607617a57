// Evaluation throughput on a random nano model, in wall-clock time (LibTorch runs its own threads):
// perplexity windows (items = tokens predicted, inputs = tokens run through the model) and BoolQ scoring
// (items = input tokens), the latter with the LM head applied only at the scored positions and, for
// comparison, on every position.
//   lumi_eval_bench --benchmark_format=json --benchmark_out=eval.json
#include <benchmark/benchmark.h>

#include <lumi/eval/scoring.hpp>
#include <lumi/model/transformer.hpp>
#include <lumi/presets.hpp>

namespace {

using Nano = lumi::Transformer<lumi::presets::nano>;
constexpr std::int64_t vocab = lumi::presets::nano.vocab_size;

std::vector<int> random_tokens(std::int64_t count, std::uint64_t seed) {
    auto gen = lumi::make_generator(seed);
    const auto ids = torch::randint(3, vocab, {count}, gen, torch::kLong);
    return {ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + count};
}

// The same model seen only through forward(ids): logits on every position.
struct FullLogits {
    Nano model;
    torch::Tensor forward(const torch::Tensor& ids) { return model->forward(ids); }
};

// Args: stride, batch. One 4,096-token document, window = the model's context (256).
void perplexity_windows(benchmark::State& state) {
    Nano model(lumi::InitSettings{.seed = 1});
    const std::vector<std::vector<int>> documents{random_tokens(4096, 2)};
    std::int64_t tokens = 0;
    for (auto _ : state)
        tokens +=
            lumi::eval::score_documents(model, documents, 2, 256, state.range(0), state.range(1)).tokens;
    state.SetItemsProcessed(tokens);
}

// BoolQ-shaped requests: a prompt of range(0) tokens, then " yes" and " no" of one token each (one shared
// row per example); batch range(1); 16 examples per iteration.
template <class Model>
void boolq_rows(benchmark::State& state) {
    Model model{Nano(lumi::InitSettings{.seed = 1})};
    std::vector<lumi::eval::ContinuationRequest> requests;
    for (std::uint64_t i = 0; i < 16; ++i) {
        auto context = random_tokens(state.range(0), 10 + i);
        context.front() = 2;
        requests.push_back({context, {100}});
        requests.push_back({context, {101}});
    }
    std::int64_t inputs = 0;
    for (auto _ : state)
        inputs += lumi::eval::score_continuations(model, requests, 256, 1, state.range(1)).inputs;
    state.SetItemsProcessed(inputs);
}

}  // namespace

BENCHMARK(perplexity_windows)
    ->Args({256, 8})
    ->Args({128, 8})
    ->Args({128, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(boolq_rows, Nano)
    ->Args({200, 8})
    ->Args({200, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(boolq_rows, FullLogits)->Args({200, 8})->UseRealTime()->Unit(benchmark::kMillisecond);
