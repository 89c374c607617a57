// The whole model per preset: inference forward, and forward+backward with the full loss
// (train/step_bench.cpp compares the loss kernels within a training step).
//   lumi_model_bench --benchmark_filter='^transformer/'
#include "../bench.hpp"

namespace {

using lumi::ModelSpec;
using lumi::model::LossKernel;

template <ModelSpec S>
void forward(benchmark::State& state) {
    lumi::Transformer<S> model(lumi::InitSettings{.seed = 1});
    const auto ids = lumi::bench::random_tokens(S.vocab_size, state.range(0), state.range(1));
    torch::NoGradGuard no_grad;
    for (auto _ : state) benchmark::DoNotOptimize(model->forward(ids));
    state.SetItemsProcessed(state.iterations() * ids.numel());
}

template <ModelSpec S, LossKernel K>
void forward_backward(benchmark::State& state) {
    lumi::Transformer<S> model(lumi::InitSettings{.seed = 1});
    model->loss_kernel = K;
    const auto ids = lumi::bench::random_tokens(S.vocab_size, state.range(0), state.range(1) + 1);
    const auto input = ids.narrow(1, 0, state.range(1)), target = ids.narrow(1, 1, state.range(1));
    auto step = [&](const torch::Tensor& in, const torch::Tensor& out) {
        model->zero_grad();
        model->forward(in, out).loss.backward();
    };
    lumi::bench::run_steps(state, step, input, target);
}

template <ModelSpec S>
void add(const char* preset, std::int64_t batch, std::int64_t seq) {
    const std::string name = std::string("transformer/") + preset;
    benchmark::RegisterBenchmark((name + "/forward").c_str(), forward<S>)
        ->ArgNames({"batch", "seq"})
        ->Args({batch, seq})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark((name + "/forward_backward").c_str(), forward_backward<S, LossKernel::full>)
        ->ArgNames({"batch", "seq"})
        ->Args({batch, seq})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
}

[[maybe_unused]] const bool registered = [] {
    using namespace lumi::presets;
    add<nano>("nano", 8, 256);
    add<tiny>("tiny", 4, 256);
    return true;
}();

}  // namespace
