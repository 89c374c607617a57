#include <gtest/gtest.h>

#include <lumi/model/attention.hpp>

#include "test_specs.hpp"

namespace {

using lumi::model::AttentionKernel;

TEST(Attention, MathKernelMatchesHandComputedCausalSoftmax) {
    // One head, head dim 2, three positions.
    const auto q = torch::tensor({1.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f}).view({1, 1, 3, 2});
    const auto k = torch::tensor({1.0f, 0.0f, 0.0f, 2.0f, 1.0f, 1.0f}).view({1, 1, 3, 2});
    const auto v = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}).view({1, 1, 3, 2});
    const auto y = lumi::model::attention_math(q, k, v).view({3, 2});
    // Position 0 sees only itself.
    EXPECT_NEAR(y[0][0].item<double>(), 1.0, 1e-6);
    // Position 1: scores (0, 2) / sqrt(2), softmax weights w0, w1.
    const double s = 1.0 / std::sqrt(2.0);
    const double w1 = std::exp(2 * s) / (1 + std::exp(2 * s));
    EXPECT_NEAR(y[1][0].item<double>(), (1 - w1) * 1 + w1 * 3, 1e-5);
    EXPECT_NEAR(y[1][1].item<double>(), (1 - w1) * 2 + w1 * 4, 1e-5);
    // Position 2: scores (1, 2, 2) / sqrt(2).
    const double e0 = std::exp(1 * s), e1 = std::exp(2 * s), z = e0 + 2 * e1;
    EXPECT_NEAR(y[2][0].item<double>(), (e0 * 1 + e1 * 3 + e1 * 5) / z, 1e-5);
}

TEST(Attention, CausalMaskAlignsQueriesWithTheLastKeys) {
    const auto m = lumi::model::causal_mask(2, 4, torch::kCPU);
    const auto expected = torch::tensor({1, 1, 1, 0, 1, 1, 1, 1}).view({2, 4}).to(torch::kBool);
    EXPECT_TRUE(torch::equal(m, expected));
}

TEST(Attention, FusedAndMathKernelsAgreeInFloat32) {
#if LUMI_HAS_SDPA
    torch::manual_seed(0);
    const auto q = torch::randn({2, 4, 17, 16}), k = torch::randn({2, 4, 17, 16}),
               v = torch::randn({2, 4, 17, 16});
    const auto fused = lumi::model::attention(q, k, v, AttentionKernel::fused);
    const auto math = lumi::model::attention(q, k, v, AttentionKernel::math);
    EXPECT_LE((fused - math).abs().max().item<double>(), 1e-5);
    // Decoding shape: fewer queries than keys.
    const auto q1 = q.narrow(2, 12, 5);
    EXPECT_LE((lumi::model::attention(q1, k, v, AttentionKernel::fused) -
               lumi::model::attention(q1, k, v, AttentionKernel::math))
                  .abs()
                  .max()
                  .item<double>(),
              1e-5);
#else
    GTEST_SKIP() << "LibTorch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR
                 << " has no scaled_dot_product_attention; the 2.x build runs this test";
#endif
}

TEST(Attention, FusedKernelIsAClearErrorWithoutLibTorch2) {
    if (lumi::has_fused_attention) GTEST_SKIP() << "this LibTorch has the fused kernel";
    const auto x = torch::zeros({1, 1, 2, 2});
    EXPECT_THROW(lumi::model::attention(x, x, x, AttentionKernel::fused), lumi::Error);
}

TEST(Attention, GroupedQueryEqualsMultiHeadWithSharedKeyValueHeads) {
    using lumi::test::gqa;
    using lumi::test::mha;
    torch::manual_seed(1);
    lumi::model::Attention<gqa> grouped;
    lumi::model::Attention<mha> multi;
    lumi::model::RotaryEmbedding<gqa> rope_g;
    lumi::model::RotaryEmbedding<mha> rope_m;
    auto gen = lumi::make_generator(7);
    grouped->init(gen, 0.2, 0.2);
    {
        torch::NoGradGuard no_grad;
        multi->q_proj->weight.copy_(grouped->q_proj->weight);
        multi->o_proj->weight.copy_(grouped->o_proj->weight);
        // Query heads 0,1 share kv head 0; 2,3 share kv head 1 (8 rows of weight per head).
        const auto k = grouped->k_proj->weight.view({2, 1, 8, 32}).expand({2, 2, 8, 32}).reshape({32, 32});
        const auto v = grouped->v_proj->weight.view({2, 1, 8, 32}).expand({2, 2, 8, 32}).reshape({32, 32});
        multi->k_proj->weight.copy_(k);
        multi->v_proj->weight.copy_(v);
    }
    EXPECT_EQ(grouped->k_proj->weight.size(0), 16);
    const auto x = torch::randn({2, 9, 32});
    for (auto kernel : {AttentionKernel::math, lumi::model::default_attention_kernel}) {
        grouped->kernel = multi->kernel = kernel;
        EXPECT_LE((grouped->forward(x, rope_g) - multi->forward(x, rope_m)).abs().max().item<double>(), 1e-6);
    }
}

}  // namespace
