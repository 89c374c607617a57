#include <gtest/gtest.h>

#include <lumi/model/rotary.hpp>

#include "test_specs.hpp"

namespace {

// a (bfloat16) is b (float32) rounded to bfloat16, give or take the last bit of b's float32 arithmetic.
bool within_one_rounding(const torch::Tensor& a, const torch::Tensor& b) {
    return torch::allclose(a.to(torch::kFloat32), b.to(torch::kBFloat16).to(torch::kFloat32), 1.0 / 128,
                           1e-30);
}

using lumi::test::mha;  // head_dim 8, context 48

TEST(RotaryEmbedding, DotProductDependsOnlyOnRelativePosition) {
    lumi::model::RotaryEmbedding<mha> rope;
    torch::manual_seed(3);
    const auto q = torch::randn({1, 1, 1, 8}, torch::kFloat64).to(torch::kFloat32);
    const auto k = torch::randn({1, 1, 1, 8}, torch::kFloat64).to(torch::kFloat32);
    auto dot = [&](std::int64_t m, std::int64_t n) { return (rope(q, m) * rope(k, n)).sum().item<double>(); };
    for (std::int64_t offset : {1, 5, 17}) {
        EXPECT_NEAR(dot(3, 3 + offset), dot(20, 20 + offset), 1e-5) << "offset " << offset;
        EXPECT_NEAR(dot(0, offset), dot(30, 30 + offset), 1e-5) << "offset " << offset;
    }
    EXPECT_GT(std::abs(dot(0, 1) - dot(0, 9)), 1e-3) << "different offsets should give different products";
}

TEST(RotaryEmbedding, PositionZeroIsIdentityAndNormIsPreserved) {
    lumi::model::RotaryEmbedding<mha> rope;
    const auto x = torch::randn({2, 4, 10, 8});
    EXPECT_TRUE(torch::allclose(rope(x, 0).select(2, 0), x.select(2, 0)));
    EXPECT_TRUE(torch::allclose(rope(x, 5).norm(2, -1), x.norm(2, -1), 1e-5, 1e-5));
}

TEST(RotaryEmbedding, FollowsRotateHalfConvention) {
    lumi::model::RotaryEmbedding<mha> rope;
    // Dimension i pairs with i + head_dim / 2 and rotates by angle pos * theta^(-2i / head_dim).
    auto x = torch::zeros({1, 1, 1, 8});
    x[0][0][0][1] = 1.0;
    const auto y = rope(x.expand({1, 1, 3, 8}).contiguous(), 0).select(2, 2).flatten();
    const double angle = 2.0 * std::pow(10000.0, -2.0 / 8.0);
    EXPECT_NEAR(y[1].item<double>(), std::cos(angle), 1e-6);
    EXPECT_NEAR(y[5].item<double>(), std::sin(angle), 1e-6);
    EXPECT_NEAR(y.abs().sum().item<double>(), std::abs(std::cos(angle)) + std::abs(std::sin(angle)), 1e-6);
}

TEST(RotaryEmbedding, RejectsPositionsBeyondTheContext) {
    lumi::model::RotaryEmbedding<mha> rope;
    try {
        rope(torch::zeros({1, 1, 4, 8}), 46);
        FAIL() << "expected lumi::Error";
    } catch (const lumi::Error& e) {
        EXPECT_NE(std::string(e.what()).find("exceed the context of 48"), std::string::npos) << e.what();
    }
}

// The fused kernel against the plain ops (x cos + rotate_half(x) sin): values and gradient, on q laid out as
// the attention layer makes it (a transposed view) at an offset position.
TEST(RotaryEmbedding, FusedKernelEqualsThePlainOpsAndTheirGradient) {
    lumi::model::RotaryEmbedding<mha> fused, plain;
    plain->kernel = lumi::model::Kernel::plain;
    const auto base = torch::randn({2, 10, 4, 8}).transpose(1, 2);  // [B, H, T, D], T strided
    const auto upstream = torch::randn({2, 4, 10, 8});
    auto x1 = base.clone().requires_grad_(), x2 = base.clone().requires_grad_();
    const auto y1 = fused(x1, 7), y2 = plain(x2, 7);
    EXPECT_LE((y1 - y2).abs().max().item<double>(), 1e-6);
    (y1 * upstream).sum().backward();
    (y2 * upstream).sum().backward();
    EXPECT_LE((x1.grad() - x2.grad()).abs().max().item<double>(), 1e-6);
    torch::NoGradGuard no_grad;  // and in inference, on a strided view as given
    EXPECT_LE((fused(base, 3) - plain(base, 3)).abs().max().item<double>(), 1e-6);
}

// bfloat16 q as autocast's projections give it: computed in float32 and rounded once, so equal to the float32
// result rounded; the gradient likewise.
TEST(RotaryEmbedding, FusedKernelOnBFloat16RoundsTheFloat32ResultOnce) {
    lumi::model::RotaryEmbedding<mha> fused, plain;
    plain->kernel = lumi::model::Kernel::plain;
    const auto base = torch::randn({2, 10, 4, 8}).to(torch::kBFloat16).transpose(1, 2);
    const auto upstream = torch::randn({2, 4, 10, 8}).to(torch::kBFloat16);
    auto x1 = base.clone().requires_grad_();
    auto x2 = base.to(torch::kFloat32).requires_grad_();
    const auto y1 = fused(x1, 5), y2 = plain(x2, 5);
    ASSERT_EQ(y1.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(within_one_rounding(y1, y2));
    y1.backward(upstream);
    y2.backward(upstream.to(torch::kFloat32));
    EXPECT_TRUE(within_one_rounding(x1.grad(), x2.grad()));
}

}  // namespace
