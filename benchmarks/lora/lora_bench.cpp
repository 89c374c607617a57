// LoRA against dense: one block forward+backward (dense: every weight trains; LoRA: base frozen, adapters on
// every projection) and the whole training step, with the presets' LoRA specs (nano_lora rank 16, tiny_lora
// rank 32). The adapters should cost little: compare lora/ with dense/ (scripts/bench_compare.py --pair).
//   lumi_lora_bench --benchmark_format=json --benchmark_out=lora.json
#include "../bench.hpp"

#include <lumi/lora/lora.hpp>

namespace {

using lumi::LoraSpec;
using lumi::ModelSpec;

template <ModelSpec S>
constexpr LoraSpec lora_for = lumi::presets::nano_lora;
template <>
constexpr LoraSpec lora_for<lumi::presets::tiny> = lumi::presets::tiny_lora;

template <ModelSpec S, class Adapt>
class BlockLayerImpl : public torch::nn::Module {
  public:
    BlockLayerImpl()
        : block(register_module("block", lumi::model::Block<S, Adapt>())),
          rope(register_module("rope", lumi::model::RotaryEmbedding<S>())) {
        if constexpr (requires(torch::nn::Module & m) { Adapt::prepare(m); }) Adapt::prepare(*this);
    }
    torch::Tensor forward(const torch::Tensor& x) { return block->forward(x, rope); }
    lumi::model::Block<S, Adapt> block;
    lumi::model::RotaryEmbedding<S> rope;
};

template <ModelSpec S>
using DenseBlock = torch::nn::ModuleHolder<BlockLayerImpl<S, lumi::Dense>>;
template <ModelSpec S>
using LoraBlock = torch::nn::ModuleHolder<BlockLayerImpl<S, lumi::Lora<lora_for<S>>>>;
LUMI_LAYER_VARIANT("block", "dense", DenseBlock);
LUMI_LAYER_VARIANT("block", "lora", LoraBlock);

template <ModelSpec S>
void add(const char* preset, std::int64_t batch, std::int64_t seq) {
    using lumi::bench::train_step;
    using lumi::model::LossKernel;
    const std::string name = std::string("train_step/");
    benchmark::RegisterBenchmark((name + "dense/" + preset).c_str(), train_step<lumi::Transformer<S>>)
        ->ArgNames({"batch", "seq"})
        ->Args({batch, seq})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark((name + "lora/" + preset).c_str(),
                                 train_step<lumi::Transformer<S, lumi::Lora<lora_for<S>>>>)
        ->ArgNames({"batch", "seq"})
        ->Args({batch, seq})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
}

[[maybe_unused]] const bool registered = [] {
    add<lumi::presets::nano>("nano", 4, 256);
    add<lumi::presets::tiny>("tiny", 2, 256);
    return true;
}();

}  // namespace
