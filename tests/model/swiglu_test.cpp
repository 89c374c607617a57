#include <gtest/gtest.h>

#include <lumi/model/swiglu.hpp>

#include "test_specs.hpp"

namespace {

using lumi::model::Kernel;
using lumi::model::silu_mul;

// The fused silu(g) * u against the plain ops: values and both gradients in float32, on more elements than
// one parallel grain.
TEST(SwiGLU, FusedSiluMulEqualsThePlainOpsAndTheirGradients) {
    const auto g0 = torch::randn({3, 7000}) * 4, u0 = torch::randn({3, 7000});
    const auto upstream = torch::randn({3, 7000});
    auto g1 = g0.clone().requires_grad_(), u1 = u0.clone().requires_grad_();
    auto g2 = g0.clone().requires_grad_(), u2 = u0.clone().requires_grad_();
    const auto y1 = silu_mul(g1, u1, Kernel::fused), y2 = silu_mul(g2, u2, Kernel::plain);
    EXPECT_LE((y1 - y2).abs().max().item<double>(), 1e-5);
    y1.backward(upstream);
    y2.backward(upstream);
    EXPECT_LE((g1.grad() - g2.grad()).abs().max().item<double>(), 1e-5);
    EXPECT_LE((u1.grad() - u2.grad()).abs().max().item<double>(), 1e-5);
}

// bfloat16 (what autocast's projections give): the float32 result rounded once, gradients too.
TEST(SwiGLU, FusedSiluMulOnBFloat16RoundsTheFloat32ResultOnce) {
    const auto g0 = (torch::randn({64, 96}) * 3).to(torch::kBFloat16);
    const auto u0 = torch::randn({64, 96}).to(torch::kBFloat16);
    const auto upstream = torch::randn({64, 96}).to(torch::kBFloat16);
    auto g1 = g0.clone().requires_grad_(), u1 = u0.clone().requires_grad_();
    auto g2 = g0.to(torch::kFloat32).requires_grad_(), u2 = u0.to(torch::kFloat32).requires_grad_();
    const auto y1 = silu_mul(g1, u1, Kernel::fused);
    const auto y2 = silu_mul(g2, u2, Kernel::plain);
    ASSERT_EQ(y1.scalar_type(), torch::kBFloat16);
    // One rounding of values computed in float32 (exp differs in its last bits between the two paths).
    EXPECT_TRUE(
        torch::allclose(y1.to(torch::kFloat32), y2.to(torch::kBFloat16).to(torch::kFloat32), 8e-3, 1e-6));
    y1.backward(upstream);
    y2.backward(upstream.to(torch::kFloat32));
    EXPECT_TRUE(torch::allclose(g1.grad().to(torch::kFloat32), g2.grad(), 8e-3, 1e-6));
    EXPECT_TRUE(torch::allclose(u1.grad().to(torch::kFloat32), u2.grad(), 8e-3, 1e-6));
}

// The MLP with the fused kernel equals the plain one: the same module, kernel switched.
TEST(SwiGLU, MlpWithTheFusedKernelEqualsThePlainOne) {
    lumi::model::SwiGLU<lumi::test::mha> mlp;
    auto gen = lumi::make_generator(1);
    mlp->init(gen, 0.02, 0.02);
    const auto x = torch::randn({2, 5, 32});
    const auto fused = mlp(x);
    mlp->kernel = Kernel::plain;
    EXPECT_LE((fused - mlp(x)).abs().max().item<double>(), 1e-6);
    // A non-contiguous operand takes the plain path.
    const auto g = torch::randn({8, 4}).t(), u = torch::randn({4, 8});
    EXPECT_TRUE(torch::allclose(silu_mul(g, u, Kernel::fused), torch::silu(g) * u));
}

}  // namespace
