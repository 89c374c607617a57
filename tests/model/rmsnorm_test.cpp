#include <gtest/gtest.h>

#include <lumi/model/rmsnorm.hpp>

#include "test_specs.hpp"

namespace {

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

}  // namespace
