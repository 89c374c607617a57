#include <gtest/gtest.h>

#include <lumi/core/autocast.hpp>
#include <lumi/model/rmsnorm.hpp>

#include "test_specs.hpp"

namespace {

// a (bfloat16) is b (float32) rounded to bfloat16, give or take the last bit of b's float32 arithmetic.
bool within_one_rounding(const torch::Tensor& a, const torch::Tensor& b) {
    return torch::allclose(a.to(torch::kFloat32), b.to(torch::kBFloat16).to(torch::kFloat32), 1.0 / 128,
                           1e-30);
}

constexpr lumi::ModelSpec four{.vocab_size = 8,
                               .n_layer = 1,
                               .d_model = 4,
                               .n_head = 2,
                               .n_kv_head = 2,
                               .ffn_hidden = 8,
                               .context = 4,
                               .norm_eps = 1e-6};

TEST(RMSNorm, MatchesHandComputedValues) {
    lumi::model::RMSNorm<four> norm;
    // x = (1, 2, 3, 4): mean of squares 7.5, so y = x / sqrt(7.5 + 1e-6) * weight.
    {
        torch::NoGradGuard no_grad;
        norm->weight.copy_(torch::tensor({1.0f, 0.5f, 2.0f, -1.0f}));
    }
    const auto y = norm(torch::tensor({{1.0f, 2.0f, 3.0f, 4.0f}}));
    const double r = 1.0 / std::sqrt(7.5 + 1e-6);
    const std::vector<double> expected{1 * r * 1.0, 2 * r * 0.5, 3 * r * 2.0, 4 * r * -1.0};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[0][i].item<double>(), expected[i], 1e-6);
}

TEST(RMSNorm, KeepsBFloat16InputsInBFloat16AndComputesInFloat32) {
    lumi::model::RMSNorm<four> norm;
    norm->to(torch::kBFloat16);
    const auto x = torch::tensor({{1e3f, 2e3f, 3e3f, 4e3f}}).to(torch::kBFloat16);
    const auto y = norm(x);
    EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    // Squares of 4e3 overflow nothing in float32; the result is the same unit-RMS vector as for (1, 2, 3, 4).
    EXPECT_NEAR(y[0][3].item<float>(), 4.0 / std::sqrt(7.5), 1e-2);
}

TEST(RMSNorm, HasOneWeightPerChannelInitialisedToOne) {
    lumi::model::RMSNorm<lumi::test::mha> norm;
    const auto params = norm->named_parameters();
    ASSERT_EQ(params.size(), 1u);
    EXPECT_TRUE(params.contains("weight"));
    EXPECT_TRUE(torch::equal(norm->weight, torch::ones({32})));
}

// The fused kernel against the plain ops it replaces: outputs and both gradients, on a non-contiguous input
// of more rows than one backward block (32), with a last dimension that is not a multiple of 8.
TEST(RMSNorm, FusedKernelEqualsThePlainOpsAndTheirGradients) {
    constexpr lumi::ModelSpec wide{.vocab_size = 8,
                                   .n_layer = 1,
                                   .d_model = 36,
                                   .n_head = 2,
                                   .n_kv_head = 2,
                                   .ffn_hidden = 8,
                                   .context = 4};
    lumi::model::RMSNorm<wide> fused, plain;
    plain->kernel = lumi::model::Kernel::plain;
    {
        torch::NoGradGuard no_grad;
        fused->weight.copy_(torch::randn({36}));
        plain->weight.copy_(fused->weight);
    }
    const auto base = torch::randn({7, 11, 36}).transpose(0, 1);  // 77 rows, not contiguous
    const auto upstream = torch::randn({11, 7, 36});
    auto x1 = base.clone().requires_grad_(), x2 = base.clone().requires_grad_();
    const auto y1 = fused(x1), y2 = plain(x2);
    EXPECT_LE((y1 - y2).abs().max().item<double>(), 1e-5);
    (y1 * upstream).sum().backward();
    (y2 * upstream).sum().backward();
    EXPECT_LE((x1.grad() - x2.grad()).abs().max().item<double>(), 1e-5);
    EXPECT_LE((fused->weight.grad() - plain->weight.grad()).abs().max().item<double>(), 1e-4);
}

TEST(RMSNorm, FusedWeightGradientIsTheSameOnOneOrTwoThreads) {
    lumi::model::RMSNorm<lumi::test::mha> norm;
    const auto x = torch::randn({300, 32});
    const int threads = at::get_num_threads();
    std::vector<torch::Tensor> grads;
    for (int n : {1, 2}) {
        at::set_num_threads(n);
        norm->weight.mutable_grad() = torch::Tensor();
        norm(x).pow(2).sum().backward();
        grads.push_back(norm->weight.grad().clone());
    }
    at::set_num_threads(threads);
    EXPECT_TRUE(torch::equal(grads[0], grads[1]));
}

// Under CPU autocast to bfloat16 the fused kernel writes bfloat16, the very values the next matmul's cast of
// the float32 output gives; its gradients, from a bfloat16 upstream, equal the float32 ones to bf16 rounding.
TEST(RMSNorm, UnderAutocastTheFusedKernelWritesTheBFloat16TheMatmulWouldCastTo) {
    lumi::model::RMSNorm<lumi::test::mha> fused, plain;
    plain->kernel = lumi::model::Kernel::plain;
    {
        torch::NoGradGuard no_grad;
        fused->weight.copy_(torch::randn({32}));
        plain->weight.copy_(fused->weight);
    }
    const auto base = torch::randn({70, 32});
    const auto upstream = torch::randn({70, 32}).to(torch::kBFloat16);
    auto x1 = base.clone().requires_grad_(), x2 = base.clone().requires_grad_();
    torch::Tensor y1;
    {
        lumi::AutocastGuard guard(torch::kCPU, torch::kBFloat16);
        y1 = fused(x1);
    }
    const auto y2 = plain(x2);
    ASSERT_EQ(y1.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(within_one_rounding(y1, y2));
    (y1.to(torch::kFloat32) * upstream.to(torch::kFloat32)).sum().backward();
    (y2 * upstream.to(torch::kFloat32)).sum().backward();
    EXPECT_EQ(x1.grad().scalar_type(), torch::kFloat32);
    EXPECT_LE((x1.grad() - x2.grad()).abs().max().item<double>(), 1e-5);
    EXPECT_LE((fused->weight.grad() - plain->weight.grad()).abs().max().item<double>(), 1e-4);
}

// bfloat16 in, bfloat16 out: computed in float32 and rounded once, so within one bf16 rounding of the float32
// result; dx comes back in bfloat16.
TEST(RMSNorm, FusedKernelOnBFloat16InputRoundsOnceFromFloat32) {
    lumi::model::RMSNorm<lumi::test::mha> fused, plain;
    plain->kernel = lumi::model::Kernel::plain;
    const auto base = torch::randn({40, 32}).to(torch::kBFloat16);
    const auto upstream = torch::randn({40, 32}).to(torch::kBFloat16);
    auto x1 = base.clone().requires_grad_();
    auto x2 = base.to(torch::kFloat32).requires_grad_();
    const auto y1 = fused(x1), y2 = plain(x2);
    ASSERT_EQ(y1.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(within_one_rounding(y1, y2));
    (y1 * upstream).sum().backward();
    (y2 * upstream.to(torch::kFloat32)).sum().backward();
    ASSERT_EQ(x1.grad().scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::allclose(x1.grad().to(torch::kFloat32), x2.grad(), 1e-2, 1e-2));
}

}  // namespace
