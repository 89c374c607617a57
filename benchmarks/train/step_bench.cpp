// One training step as the Trainer takes it (forward, backward, gradient clipping, AdamW), per preset, for
// each loss kernel; with the plain ops in place of the fused CPU kernels (`chunked_plain`, what those buy);
// with MuonAdamW instead (`chunked_muon`, what the muon_wsd recipe's step costs), in
// float32 and (nano, tiny) under bfloat16 autocast with float32 weights (MixedPrecision, forced on so the
// figure exists on CPUs without native bfloat16 too). Items are tokens; peak_bytes is the step's peak CPU
// tensor memory above the model and optimizer state (bench.hpp: PeakMemory). scripts/peer_bench.py runs the
// float32 ones against PyTorch in Python.
//   lumi_train_bench --benchmark_filter='^train_step/tiny/'
#include "../bench.hpp"

#include <lumi/train/muon.hpp>

namespace {

using lumi::ModelSpec;
using lumi::model::LossKernel;

// MixedPrecision even where the CPU lacks native bfloat16 (there the figure shows what emulation costs).
struct ForcedBFloat16 {
    static std::optional<lumi::train::AutocastGuard> guard(const lumi::train::PrecisionSettings&,
                                                           torch::Device device) {
        return std::optional<lumi::train::AutocastGuard>(std::in_place, device.type(), torch::kBFloat16);
    }
};

// One training-step benchmark at batch x seq, in milliseconds of wall time.
template <class Function>
void register_step(const std::string& name, std::int64_t batch, std::int64_t seq, Function* function) {
    benchmark::RegisterBenchmark(name.c_str(), function)
        ->ArgNames({"batch", "seq"})
        ->Args({batch, seq})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
}

template <ModelSpec S>
void add(const char* preset, std::int64_t batch, std::int64_t seq, bool bfloat16) {
    using Model = lumi::Transformer<S>;
    using lumi::bench::train_step;
    const std::string name = std::string("train_step/") + preset;
    auto add_one = [&](const std::string& variant, auto* function) {
        register_step(name + "/" + variant, batch, seq, function);
    };
    add_one("full/float32", train_step<Model, LossKernel::full>);
    add_one("chunked/float32", train_step<Model, LossKernel::chunked>);
    add_one("chunked_foreach_adamw/float32",
            train_step<Model, LossKernel::chunked, lumi::train::FullPrecision, false, false>);
    add_one("chunked_muon/float32", train_step<Model, LossKernel::chunked, lumi::train::FullPrecision, false,
                                               true, lumi::train::MuonAdamW>);
    using lumi::train::AdamW;
    using lumi::train::FullPrecision;
    constexpr auto plain = lumi::model::Kernel::plain;
    add_one("chunked_plain/float32",
            train_step<Model, LossKernel::chunked, FullPrecision, false, true, AdamW, plain>);
    if (!bfloat16) return;
    add_one("full/bfloat16", train_step<Model, LossKernel::full, ForcedBFloat16>);
    add_one("chunked/bfloat16", train_step<Model, LossKernel::chunked, ForcedBFloat16>);
    add_one("chunked_plain/bfloat16",
            train_step<Model, LossKernel::chunked, ForcedBFloat16, false, true, AdamW, plain>);
}

// On a GPU: tiny at the batch the original trained with on one GPU (scripts/gpu_check.sh reads these).
template <ModelSpec S>
void add_cuda(const char* preset, std::int64_t batch, std::int64_t seq) {
    using Model = lumi::Transformer<S>;
    using lumi::bench::train_step;
    const std::string name = std::string("train_step_cuda/") + preset;
    auto add_one = [&](const std::string& variant, auto* function) {
        register_step(name + "/" + variant, batch, seq, function);
    };
    add_one("chunked/bfloat16", train_step<Model, LossKernel::chunked, ForcedBFloat16, true>);
    add_one("full/bfloat16", train_step<Model, LossKernel::full, ForcedBFloat16, true>);
}

[[maybe_unused]] const bool registered = [] {
    using namespace lumi::presets;
    // Small enough that the smoke run (every benchmark once) stays short on 2 cores.
    add<nano>("nano", 4, 256, true);
    add<micro>("micro", 2, 256, false);
    add<tiny>("tiny", 2, 256, true);
    add<small>("small", 1, 256, false);
    if (torch::cuda::is_available()) add_cuda<tiny>("tiny", 32, 1024);
    return true;
}();

}  // namespace
