#include <gtest/gtest.h>

#include <cmath>
#include <optional>

#include <lumi/lora/lora.hpp>
#include <lumi/model/loss.hpp>
#include <lumi/model/transformer.hpp>
#include <lumi/train/precision.hpp>

#include "test_specs.hpp"

namespace {

using lumi::model::chunked_head_loss;
using lumi::model::cross_entropy;
using lumi::model::ignore_index;
using lumi::model::LossKernel;

double max_difference(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().max().item<double>();
}

// Hidden states [2, 13, 32], a head [61, 32] and targets with ignored positions, as the trainer masks them.
struct Problem {
    torch::Tensor hidden, weight, targets;
    explicit Problem(std::uint64_t seed) {
        auto gen = lumi::make_generator(seed);
        hidden = torch::randn({2, 13, 32}, gen).requires_grad_();
        weight = (torch::randn({61, 32}, gen) * 0.3).requires_grad_();
        targets = torch::randint(61, {2, 13}, gen, torch::kLong);
        targets.index_put_({0, torch::indexing::Slice(0, 4)}, ignore_index);
        targets.index_put_({1, 7}, ignore_index);
    }
    void zero_grad() {
        hidden.mutable_grad() = torch::Tensor();
        weight.mutable_grad() = torch::Tensor();
    }
};

TEST(ChunkedHeadLoss, EqualsFullCrossEntropyAndItsGradientsForEveryChunkSize) {
    Problem p(1);
    const auto full = cross_entropy(torch::linear(p.hidden, p.weight), p.targets);
    full.backward();
    const auto grad_hidden = p.hidden.grad().clone(), grad_weight = p.weight.grad().clone();
    for (std::int64_t chunk : {1, 5, 7, 13, 26, 40}) {  // 5 and 7 do not divide the 26 tokens
        p.zero_grad();
        const auto chunked = chunked_head_loss(p.hidden, p.weight, p.targets, chunk);
        EXPECT_NEAR(chunked.item<double>(), full.item<double>(), 1e-5) << "chunk " << chunk;
        chunked.backward();
        EXPECT_LE(max_difference(p.hidden.grad(), grad_hidden), 1e-5) << "chunk " << chunk;
        EXPECT_LE(max_difference(p.weight.grad(), grad_weight), 1e-5) << "chunk " << chunk;
    }
}

TEST(ChunkedHeadLoss, IgnoredTargetsGetNoGradientAndDoNotCount) {
    Problem p(2);
    const auto loss = chunked_head_loss(p.hidden, p.weight, p.targets, 4);
    loss.backward();
    EXPECT_EQ(p.hidden.grad()[0].narrow(0, 0, 4).abs().max().item<double>(), 0.0);
    EXPECT_EQ(p.hidden.grad()[1][7].abs().max().item<double>(), 0.0);
    // The mean is over the 21 counted targets only.
    const auto kept = p.targets != ignore_index;
    const auto per_token = torch::nn::functional::cross_entropy(
        torch::linear(p.hidden, p.weight).reshape({-1, 61}).index({kept.reshape({-1})}),
        p.targets.reshape({-1}).index({kept.reshape({-1})}));
    EXPECT_NEAR(loss.item<double>(), per_token.item<double>(), 1e-5);
}

TEST(ChunkedHeadLoss, ScalesItsGradientsByTheIncomingGradient) {
    Problem p(3);
    chunked_head_loss(p.hidden, p.weight, p.targets, 6).backward();
    const auto once = p.hidden.grad().clone();
    p.zero_grad();
    (chunked_head_loss(p.hidden, p.weight, p.targets, 6) * 0.25).backward();
    EXPECT_LE(max_difference(p.hidden.grad(), once * 0.25), 1e-7);
}

TEST(ChunkedHeadLoss, AFrozenHeadGetsNoGradientAndNoGradModeBuildsNoGraph) {
    Problem p(4);
    p.weight.requires_grad_(false);
    chunked_head_loss(p.hidden, p.weight, p.targets, 5).backward();
    EXPECT_FALSE(p.weight.grad().defined());
    EXPECT_TRUE(p.hidden.grad().defined());
    torch::NoGradGuard no_grad;
    const auto loss = chunked_head_loss(p.hidden, p.weight, p.targets, 5);
    EXPECT_FALSE(loss.requires_grad());
    EXPECT_NEAR(loss.item<double>(),
                cross_entropy(torch::linear(p.hidden, p.weight), p.targets).item<double>(), 1e-5);
}

TEST(ChunkedHeadLoss, AllTargetsIgnoredGivesNaNLikeCrossEntropyAndZeroGradients) {
    Problem p(5);
    p.targets.fill_(ignore_index);
    EXPECT_TRUE(std::isnan(cross_entropy(torch::linear(p.hidden, p.weight), p.targets).item<double>()));
    const auto loss = chunked_head_loss(p.hidden, p.weight, p.targets, 5);
    EXPECT_TRUE(std::isnan(loss.item<double>()));
    loss.backward();
    EXPECT_EQ(p.hidden.grad().abs().max().item<double>(), 0.0);
}

TEST(ChunkedHeadLoss, UnderBFloat16AutocastStaysCloseToTheFullPath) {
    Problem p(6);
    torch::Tensor full, chunked;
    {
        lumi::train::AutocastGuard guard(torch::kCPU, torch::kBFloat16);
        full = cross_entropy(torch::linear(p.hidden, p.weight), p.targets);
        chunked = chunked_head_loss(p.hidden, p.weight, p.targets, 5);
    }
    full.backward();
    const auto grad_hidden = p.hidden.grad().clone();
    p.zero_grad();
    chunked.backward();
    EXPECT_EQ(p.hidden.grad().scalar_type(), torch::kFloat32);
    EXPECT_EQ(p.weight.grad().scalar_type(), torch::kFloat32);
    EXPECT_NEAR(chunked.item<double>(), full.item<double>(), 1e-2);
    EXPECT_LE(max_difference(p.hidden.grad(), grad_hidden), 2e-3);
}

// The CPU kernel (one pass per row over the logits) against the composed LibTorch ops GPUs run, in float32
// and under bfloat16 autocast, with logits in the hundreds (the max is subtracted before exp) and a
// vocabulary that is no multiple of the vector width.
TEST(ChunkedHeadLoss, CpuRowKernelEqualsTheComposedOps) {
    auto gen = lumi::make_generator(11);
    const auto hidden = torch::randn({37, 24}, gen) * 30;
    const auto weight = torch::randn({1003, 24}, gen);
    auto targets = torch::randint(1003, {37}, gen, torch::kLong);
    targets.index_put_({torch::indexing::Slice(3, 9)}, ignore_index);
    for (bool bf16 : {false, true}) {
        std::optional<lumi::train::AutocastGuard> guard;
        if (bf16) guard.emplace(torch::kCPU, torch::kBFloat16);
        const auto fused = lumi::model::detail::head_loss_chunks(hidden, weight, targets, 10, true, true);
        const auto composed =
            lumi::model::detail::head_loss_chunks_composed(hidden, weight, targets, 10, true, true);
        const double tolerance = bf16 ? 2e-2 : 1e-5;
        SCOPED_TRACE(bf16 ? "bfloat16" : "float32");
        EXPECT_NEAR(fused.loss.item<double>(), composed.loss.item<double>(),
                    tolerance * std::abs(composed.loss.item<double>()));
        EXPECT_LE(max_difference(fused.grad_hidden, composed.grad_hidden), tolerance);
        EXPECT_LE(max_difference(fused.grad_weight, composed.grad_weight), tolerance);
        EXPECT_EQ(max_difference(fused.grad_hidden.narrow(0, 3, 6), torch::zeros({6, 24})), 0.0);
    }
}

// The whole model: the chunked kernel gives the loss and every parameter's gradient of the full one.
template <lumi::ModelSpec S, class Adapt = lumi::Dense>
void expect_same_loss_and_gradients() {
    lumi::Transformer<S, Adapt> model(lumi::InitSettings{.seed = 7});
    model->eval();  // no LoRA dropout, so both passes see the same function
    auto gen = lumi::make_generator(8);
    const auto ids = torch::randint(S.vocab_size, {3, 9}, gen, torch::kLong);
    auto targets = torch::randint(S.vocab_size, {3, 9}, gen, torch::kLong);
    targets.index_put_({1, torch::indexing::Slice(2, 6)}, ignore_index);

    const torch::Tensor full = model->forward(ids, targets).loss;
    full.backward();
    std::vector<torch::Tensor> expected;
    for (auto& p : model->parameters()) {
        expected.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
        p.mutable_grad() = torch::Tensor();
    }
    model->loss_kernel = LossKernel::chunked;
    model->loss_chunk = 4;  // 27 tokens: the last chunk is partial
    const lumi::model::Output out = model->forward(ids, targets);
    EXPECT_FALSE(out.logits.defined());
    EXPECT_NEAR(out.loss.item<double>(), full.item<double>(), 1e-5);
    out.loss.backward();
    const std::vector<torch::Tensor> params = model->parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
        ASSERT_EQ(params[i].grad().defined(), expected[i].defined());
        if (expected[i].defined()) {
            EXPECT_LE(max_difference(params[i].grad(), expected[i]), 1e-5);
        }
    }
}

TEST(ChunkedHeadLoss, TransformerGivesTheFullLossAndGradientsUntiedTiedAndWithLora) {
    expect_same_loss_and_gradients<lumi::test::gqa>();
    expect_same_loss_and_gradients<lumi::test::tied>();
    constexpr lumi::LoraSpec lora{.rank = 4, .alpha = 8, .dropout = 0.0};
    expect_same_loss_and_gradients<lumi::test::mha, lumi::Lora<lora>>();
}

}  // namespace
