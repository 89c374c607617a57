#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include <lumi/core/vector_math.hpp>

namespace {

// Within 2 ulp of std::exp wherever e^x is a normal float, computed in a vectorised loop as the kernels do.
TEST(VectorMath, ExpIsWithinTwoUlpOfStdExp) {
    std::vector<float> x, y;
    for (float v = -87.3f; v < 88.37f; v += 0.00093f) x.push_back(v);
    y.resize(x.size());
    lumi::vectorised([&] {
        for (std::size_t i = 0; i < x.size(); ++i) y[i] = lumi::exp_approx(x[i]);
    });
    double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double exact = std::exp(double(x[i]));
        worst = std::max(worst, std::abs(y[i] - exact) / exact);
    }
    EXPECT_LE(worst, 2 * std::numeric_limits<float>::epsilon()) << "worst relative error " << worst;
}

TEST(VectorMath, ExpHandlesTheEdges) {
    EXPECT_EQ(lumi::exp_approx(0.0f), 1.0f);
    EXPECT_EQ(lumi::exp_approx(-100.0f), 0.0f);
    EXPECT_EQ(lumi::exp_approx(-std::numeric_limits<float>::infinity()), 0.0f);
    EXPECT_TRUE(std::isfinite(lumi::exp_approx(1000.0f)));
    EXPECT_TRUE(std::isnan(lumi::exp_approx(std::nanf(""))));
    EXPECT_NEAR(lumi::sigmoid_approx(0.0f), 0.5f, 1e-7);
    EXPECT_NEAR(lumi::sigmoid_approx(-200.0f), 0.0f, 1e-30);
    EXPECT_EQ(lumi::sigmoid_approx(200.0f), 1.0f);
}

}  // namespace
