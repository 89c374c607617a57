// The GPU path against the CPU result (label cuda; scripts/gpu_check.sh runs these on a GPU machine). On a
// machine without CUDA the "device" is the CPU, so the same code keeps compiling and running in CI.
#include <unistd.h>

#include <filesystem>

#include "../model/test_specs.hpp"
#include "lumi/eval/generate.hpp"
#include "lumi/io/model_io.hpp"
#include "lumi/model/transformer.hpp"
#include "lumi/train/precision.hpp"
#include "lumi/train/trainer.hpp"

namespace fs = std::filesystem;

namespace {

constexpr lumi::ModelSpec spec = lumi::test::gqa;
using Model = lumi::Transformer<spec>;

torch::Device device() {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

double max_difference(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kCPU, torch::kFloat32) - b.to(torch::kCPU, torch::kFloat32))
        .abs()
        .max()
        .item<double>();
}

torch::Tensor tokens(std::int64_t batch, std::int64_t length, std::uint64_t seed) {
    return torch::randint(spec.vocab_size, {batch, length}, lumi::make_generator(seed), torch::kInt64);
}

TEST(Cuda, ForwardAndGradientsEqualTheCpu) {
    Model cpu(lumi::InitSettings{.seed = 3}), dev(lumi::InitSettings{.seed = 3});
    dev->to(device());
    const auto ids = tokens(3, 20, 1), targets = tokens(3, 20, 2);
    for (const auto kernel : {lumi::model::LossKernel::full, lumi::model::LossKernel::chunked}) {
        cpu->loss_kernel = dev->loss_kernel = kernel;
        cpu->zero_grad();
        dev->zero_grad();
        const auto a = cpu->forward(ids, targets).loss,
                   b = dev->forward(ids.to(device()), targets.to(device())).loss;
        EXPECT_NEAR(a.item<double>(), b.item<double>(), 1e-4);
        a.backward();
        b.backward();
        const auto pa = cpu->named_parameters(), pb = dev->named_parameters();
        for (const auto& item : pa)
            EXPECT_LE(max_difference(item.value().grad(), pb[item.key()].grad()), 1e-4) << item.key();
    }
}

TEST(Cuda, BFloat16AutocastStaysCloseToFloat32) {
    Model cpu(lumi::InitSettings{.seed = 4}), dev(lumi::InitSettings{.seed = 4});
    dev->to(device());
    const auto ids = tokens(2, 24, 3), targets = tokens(2, 24, 4);
    const double reference = cpu->forward(ids, targets).loss.item<double>();
    lumi::train::AutocastGuard guard(device().type(), torch::kBFloat16);
    const double mixed = dev->forward(ids.to(device()), targets.to(device())).loss.item<double>();
    EXPECT_NEAR(mixed, reference, 0.02 * reference);  // bfloat16 keeps 8 bits of mantissa
}

TEST(Cuda, GreedyGenerationEqualsTheCpu) {
    Model cpu(lumi::InitSettings{.seed = 7}), dev(lumi::InitSettings{.seed = 7});
    dev->to(device());
    const std::vector<std::vector<int>> prompts{{1, 5, 9, 13}, {1, 30}};
    const lumi::eval::SamplingSettings s{.max_new_tokens = 12, .stop_at_eos = false};
    const auto a = lumi::eval::generate_ids(cpu, prompts, s, 2),
               b = lumi::eval::generate_ids(dev, prompts, s, 2);
    for (std::size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(a[i].tokens, b[i].tokens) << "prompt " << i;
}

// A few optimizer steps on the device follow the CPU's losses; the checkpoint reads back on the CPU.
class PatternDataset {
  public:
    std::int64_t size() const { return 32; }
    std::int64_t sequence_length() const { return 17; }
    std::vector<std::int64_t> order(std::int64_t) const {
        std::vector<std::int64_t> all(32);
        for (std::int64_t i = 0; i < 32; ++i) all[std::size_t(i)] = i;
        return all;
    }
    lumi::train::Batch samples(std::span<const std::int64_t> indices) const {
        auto rows = torch::tensor(std::vector<std::int64_t>(indices.begin(), indices.end()), torch::kInt64);
        return {(rows.unsqueeze(1) * 7 + torch::arange(17, torch::kInt64) * 3).remainder(spec.vocab_size),
                {},
                {}};
    }
};

TEST(Cuda, TrainerStepsFollowTheCpuAndTheCheckpointRoundTrips) {
    using Trainer = lumi::Trainer<Model, lumi::AdamW, lumi::CosineWarmup, lumi::FullPrecision>;
    const fs::path root = fs::temp_directory_path() / ("lumi_cuda_test_" + std::to_string(::getpid()));
    std::vector<double> losses[2];
    for (int d = 0; d < 2; ++d) {
        Trainer::Settings s;
        s.run.output = (root / (d ? "device" : "cpu")).string();
        s.run.device = d ? device().str() : "cpu";
        s.run.micro_batch = 4;
        s.run.max_steps = 4;
        s.run.log_every = 1;
        s.run.eval_every = 0;
        s.run.checkpoint_every = 0;
        s.run.peak_tflops = 1;
        Trainer trainer(Model(lumi::InitSettings{.seed = 5}), s);
        trainer.add_callback([&, d](const lumi::train::StepReport& r) { losses[d].push_back(r.loss); });
        trainer.fit(PatternDataset());
    }
    ASSERT_EQ(losses[0].size(), 4u);
    ASSERT_EQ(losses[1].size(), 4u);
    for (std::size_t i = 0; i < 4; ++i) EXPECT_NEAR(losses[0][i], losses[1][i], 1e-3) << "step " << i + 1;
    Model a, b;
    lumi::io::load_model(a, root / "cpu" / "final");
    lumi::io::load_model(b, root / "device" / "final");
    for (const auto& item : a->named_parameters())
        EXPECT_LE(max_difference(item.value(), b->named_parameters()[item.key()]), 1e-3) << item.key();
    fs::remove_all(root);
}

}  // namespace
