#pragma once

// What lumi's benchmarks share: token batches, the peak-memory probe, the training step and the one-line
// registration of a layer variant. Benchmarks are not tests: nothing here asserts a time.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <c10/util/ThreadLocalDebugInfo.h>

#include <lumi/model/transformer.hpp>
#include <lumi/presets.hpp>
#include <lumi/train/efficiency.hpp>
#include <lumi/train/optimizer.hpp>
#include <lumi/train/precision.hpp>

namespace lumi::bench {

inline torch::Tensor random_tokens(std::int64_t vocab, std::int64_t batch, std::int64_t length,
                                   std::uint64_t seed = 0) {
    auto gen = make_generator(seed);
    return torch::randint(vocab, {batch, length}, gen, torch::kLong);
}

inline std::int64_t tensor_bytes(const torch::Tensor& t) {
    return t.defined() ? t.numel() * std::int64_t(t.element_size()) : 0;
}

template <class Module>
std::int64_t parameter_bytes(const Module& m) {
    std::int64_t n = 0;
    for (const auto& p : m->parameters()) n += tensor_bytes(p);
    return n;
}

namespace detail {
template <class>
struct TotalArg;
template <class C, class A, class B, class T, class D>
struct TotalArg<void (C::*)(A, B, T, T, D)> {
    using type = T;  // int64_t in LibTorch 1.13, size_t in 2.x
};
}  // namespace detail

// Peak bytes of CPU tensor memory allocated on this thread while it is alive, above what was live when it
// started: the c10 CPU allocator reports every allocation and free to the profiler's thread-local hook, which
// this takes. No custom allocator; the same figure the Python profiler reports with profile_memory=True
// (scripts/peer_bench.py), so the two sides compare. Work on other threads (OpenMP workers) is not seen.
class PeakMemory {
    struct Reporter : c10::MemoryReportingInfoBase {
        using Total = detail::TotalArg<decltype(&c10::MemoryReportingInfoBase::reportMemoryUsage)>::type;
        std::int64_t current = 0, peak = 0;
        void reportMemoryUsage(void*, std::int64_t size, Total, Total, c10::Device device) override {
            if (!device.is_cpu()) return;
            current += size;
            peak = std::max(peak, current);
        }
        bool memoryProfilingEnabled() const override { return true; }
    };

  public:
    PeakMemory()
        : reporter_(std::make_shared<Reporter>()), guard_(c10::DebugInfoKind::PROFILER_STATE, reporter_) {}
    std::int64_t peak() const { return reporter_->peak; }

  private:
    std::shared_ptr<Reporter> reporter_;
    c10::DebugInfoGuard guard_;
};

inline benchmark::Counter bytes_counter(std::int64_t bytes) {
    return benchmark::Counter(double(bytes), benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
}

// One optimizer step as the Trainer takes it: forward with the precision policy's guard, backward, clip,
// the optimizer policy's update (its default settings), zero_grad; on `device` (the CPU unless told).
template <class Model, class Precision = train::FullPrecision, class Optimizer = train::AdamW>
struct TrainStep {
    Model model;
    Optimizer optimizer;
    train::PrecisionSettings precision;
    torch::Device device;

    explicit TrainStep(Model m, torch::Device d = torch::kCPU, typename Optimizer::Settings settings = {})
        : model(move_to(std::move(m), d)), optimizer(named(model), settings), device(d) {
        model->train();
    }

    static Model move_to(Model m, torch::Device d) {
        m->to(d);
        return m;
    }

    static train::NamedTensors named(Model& m) {
        train::NamedTensors out;
        for (const auto& item : m->named_parameters()) out.emplace_back(item.key(), item.value());
        return out;
    }

    void operator()(const torch::Tensor& inputs, const torch::Tensor& targets) {
        torch::Tensor loss;
        {
            auto guard = Precision::guard(precision, device);
            loss = model->forward(inputs, targets).loss;
        }
        loss.backward();
        optimizer.clip_gradients();
        optimizer.step_scaled(1.0);
        optimizer.zero_grad();
        if (device.is_cuda()) torch::cuda::synchronize();
    }
};

// Runs `step` once untimed to measure its peak memory (it also warms up), then times it; items are tokens.
template <class Step>
void run_steps(benchmark::State& state, Step& step, const torch::Tensor& inputs,
               const torch::Tensor& targets) {
    std::int64_t peak = 0;
    {
        PeakMemory memory;
        step(inputs, targets);
        peak = memory.peak();
    }
    for (auto _ : state) {
        step(inputs, targets);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * inputs.numel());
    state.counters["peak_bytes"] = bytes_counter(peak);
}

// The training step of Model (a Transformer holder) on random tokens: args batch, sequence length.
// FusedAdamW false: the foreach AdamW (PyTorch's default form), to measure what the fused pass buys.
// Optimizer: another optimizer policy (MuonAdamW), with its default settings. Kernels: the model's fused CPU
// kernels or the plain ops (Transformer::set_kernel), to measure what the fused ones buy.
template <class Model, model::LossKernel K = model::LossKernel::full, class Precision = train::FullPrecision,
          bool Cuda = false, bool FusedAdamW = true, class Optimizer = train::AdamW,
          model::Kernel Kernels = model::Kernel::fused>
void train_step(benchmark::State& state) {
    constexpr ModelSpec S = std::remove_reference_t<decltype(*std::declval<Model&>())>::spec;
    const torch::Device device = Cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    typename Optimizer::Settings settings{};
    if constexpr (std::is_same_v<Optimizer, train::AdamW>) settings.fused = FusedAdamW;
    TrainStep<Model, Precision, Optimizer> step(Model(InitSettings{.seed = 1}), device, settings);
    step.model->loss_kernel = K;
    step.model->set_kernel(Kernels);
    const auto ids = random_tokens(S.vocab_size, state.range(0), state.range(1) + 1).to(device);
    run_steps(state, step, ids.narrow(1, 0, state.range(1)), ids.narrow(1, 1, state.range(1)));
    // What MFU needs (train/efficiency.hpp): model FLOPs per token and the device's peak in the matmul dtype.
    const double per_token =
        train::training_flops_per_token(S, step.named(step.model), state.range(1)).total();
    const bool bf16 = !std::is_same_v<Precision, train::FullPrecision>;
    state.counters["flops_per_token"] = per_token;
    state.counters["peak_flops"] =
        train::device_peak(device, bf16 ? torch::kBFloat16 : torch::kFloat32).flops;
}

// Layer variants. A variant is a layer template generated from a spec, `template <ModelSpec S> class L`
// (usually an alias), whose L<S> is default-constructible and maps x [batch, seq, d_model] to a tensor with
// forward(x); one line registers it for the benchmark presets, forward and forward+backward:
//   LUMI_LAYER_VARIANT("mlp", "swiglu", SwiGLUMlp);
// Names read layer/variant/preset/pass/batch:B/seq:T. Items are tokens; bytes are the tensors at the layer's
// boundary (input, output, weights) once per pass, twice with backward (their gradients); peak_bytes is
// PeakMemory's figure for one pass.

enum class Pass { forward, forward_backward };

// Weights drawn once (a layer's own init() differs per layer; uninitialised memory may hold NaN or
// denormals, which change the timing).
template <class Module>
void init_weights(Module& m) {
    torch::NoGradGuard no_grad;
    auto gen = make_generator(1);
    for (auto& p : m->parameters()) {
        if (p.dim() >= 2)
            p.normal_(0.0, 0.02, gen);
        else
            p.fill_(1.0);
    }
}

template <template <ModelSpec> class L, ModelSpec S, Pass P>
void layer_pass(benchmark::State& state) {
    L<S> layer;
    init_weights(layer);
    auto x = torch::randn({state.range(0), state.range(1), S.d_model});
    if constexpr (P == Pass::forward_backward) x.requires_grad_();
    std::optional<torch::NoGradGuard> no_grad;
    if constexpr (P == Pass::forward) no_grad.emplace();
    auto run = [&] {
        auto y = layer->forward(x);
        if constexpr (P == Pass::forward_backward) y.backward(torch::ones_like(y));
        return y;
    };
    std::int64_t peak = 0, boundary = 0;
    {
        PeakMemory memory;
        const auto y = run();
        peak = memory.peak();
        boundary = tensor_bytes(x) + tensor_bytes(y) + parameter_bytes(layer);
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(run());
        benchmark::ClobberMemory();
    }
    const std::int64_t passes = P == Pass::forward ? 1 : 2;
    state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1));
    state.SetBytesProcessed(state.iterations() * boundary * passes);
    state.counters["peak_bytes"] = bytes_counter(peak);
}

// The presets layers are measured at, with their batch and sequence length.
struct LayerShape {
    const char* preset;
    std::int64_t batch, seq;
};

template <template <ModelSpec> class L, ModelSpec S>
void register_layer_at(const std::string& layer, const std::string& variant, const LayerShape& shape) {
    const std::string name = layer + "/" + variant + "/" + shape.preset + "/";
    benchmark::RegisterBenchmark((name + "forward").c_str(), layer_pass<L, S, Pass::forward>)
        ->ArgNames({"batch", "seq"})
        ->Args({shape.batch, shape.seq})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark((name + "forward_backward").c_str(),
                                 layer_pass<L, S, Pass::forward_backward>)
        ->ArgNames({"batch", "seq"})
        ->Args({shape.batch, shape.seq})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
}

template <template <ModelSpec> class L, ModelSpec... Specs>
bool register_layer(const std::string& layer, const std::string& variant,
                    std::initializer_list<LayerShape> shapes) {
    auto shape = shapes.begin();
    (register_layer_at<L, Specs>(layer, variant, *shape++), ...);
    return true;
}

}  // namespace lumi::bench

#define LUMI_BENCH_CONCAT_(a, b) a##b
#define LUMI_BENCH_CONCAT(a, b) LUMI_BENCH_CONCAT_(a, b)

// LUMI_LAYER_VARIANT(layer, variant, L): registers L<nano> and L<tiny> (see lumi::bench::layer_pass).
#define LUMI_LAYER_VARIANT(layer, variant, ...)                                                   \
    [[maybe_unused]] static const bool LUMI_BENCH_CONCAT(lumi_layer_variant_, __COUNTER__) =      \
        ::lumi::bench::register_layer<__VA_ARGS__, ::lumi::presets::nano, ::lumi::presets::tiny>( \
            layer, variant, {{"nano", 4, 256}, {"tiny", 2, 256}})
