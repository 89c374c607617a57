// Layers and the whole model, forward and forward+backward, per preset. Figures are tokens (items) per
// second.
//   lumi_model_bench --benchmark_format=json --benchmark_out=model.json
#include <benchmark/benchmark.h>

#include <lumi/lumi.hpp>
#include <lumi/presets.hpp>

namespace {

using lumi::model::AttentionKernel;

torch::Tensor tokens(std::int64_t vocab, std::int64_t batch, std::int64_t length) {
    auto gen = lumi::make_generator(0);
    return torch::randint(vocab, {batch, length}, gen, torch::kLong);
}

template <lumi::ModelSpec S>
void rmsnorm_forward(benchmark::State& state) {
    lumi::model::RMSNorm<S> norm;
    const auto x = torch::randn({state.range(0), state.range(1), S.d_model});
    torch::NoGradGuard no_grad;
    for (auto _ : state) benchmark::DoNotOptimize(norm(x));
    state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1));
    state.SetBytesProcessed(state.iterations() * 2 * x.numel() * 4);
}

template <lumi::ModelSpec S, AttentionKernel K>
void attention_forward_backward(benchmark::State& state) {
    if (K == AttentionKernel::fused && !lumi::has_fused_attention) {
        state.SkipWithError("this LibTorch has no fused attention");
        return;
    }
    lumi::model::Attention<S> attention;
    lumi::model::RotaryEmbedding<S> rope;
    attention->kernel = K;
    const auto x = torch::randn({state.range(0), state.range(1), S.d_model}, torch::requires_grad());
    for (auto _ : state) {
        attention->forward(x, rope).sum().backward();
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1));
}

template <lumi::ModelSpec S>
void model_forward(benchmark::State& state) {
    lumi::Transformer<S> model;
    const auto ids = tokens(S.vocab_size, state.range(0), state.range(1));
    torch::NoGradGuard no_grad;
    for (auto _ : state) benchmark::DoNotOptimize(model->forward(ids));
    state.SetItemsProcessed(state.iterations() * ids.numel());
}

template <lumi::ModelSpec S>
void model_forward_backward(benchmark::State& state) {
    lumi::Transformer<S> model;
    const auto ids = tokens(S.vocab_size, state.range(0), state.range(1) + 1);
    const auto input = ids.narrow(1, 0, state.range(1)), target = ids.narrow(1, 1, state.range(1));
    for (auto _ : state) {
        model->zero_grad();
        model->forward(input, target).loss.backward();
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * input.numel());
}

using namespace lumi::presets;

BENCHMARK(rmsnorm_forward<tiny>)->Args({8, 256})->Unit(benchmark::kMicrosecond);
BENCHMARK(attention_forward_backward<tiny, AttentionKernel::math>)
    ->Args({4, 256})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(attention_forward_backward<tiny, AttentionKernel::fused>)
    ->Args({4, 256})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(model_forward<nano>)->Args({8, 256})->Unit(benchmark::kMillisecond);
BENCHMARK(model_forward_backward<nano>)->Args({8, 256})->Unit(benchmark::kMillisecond);
BENCHMARK(model_forward_backward<micro>)->Args({4, 256})->Unit(benchmark::kMillisecond);
BENCHMARK(model_forward_backward<tiny>)->Args({4, 256})->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
