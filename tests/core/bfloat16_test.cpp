#include <gtest/gtest.h>

#include <limits>

#include <lumi/core/bfloat16.hpp>

namespace {

// The fused kernels' conversion rounds exactly as c10::BFloat16 (and so as LibTorch's .to(kBFloat16)).
TEST(BFloat16, ConversionRoundsAsLibTorch) {
    auto values = torch::randn({100000}) * torch::exp(torch::randn({100000}) * 20);
    values = torch::cat({values, torch::tensor({0.0f, -0.0f, 1e-40f, -1e-40f, 3.4e38f, -3.4e38f,
                                                std::numeric_limits<float>::infinity(),
                                                -std::numeric_limits<float>::infinity()})});
    const auto expected = values.to(torch::kBFloat16);
    const float* v = values.data_ptr<float>();
    const auto* e = expected.data_ptr<lumi::bfloat16>();
    for (std::int64_t i = 0; i < values.numel(); ++i) {
        ASSERT_EQ(lumi::from_float<lumi::bfloat16>(v[i]).x, e[i].x) << "at " << v[i];
        ASSERT_EQ(lumi::to_float(e[i]), float(e[i]));
    }
    EXPECT_TRUE(std::isnan(lumi::to_float(lumi::from_float<lumi::bfloat16>(std::nanf("")))));
}

TEST(BFloat16, VisitNamesAnUnsupportedType) {
    try {
        lumi::visit_float_type(torch::kFloat16, [](auto) {});
        FAIL() << "expected lumi::Error";
    } catch (const lumi::Error& e) {
        EXPECT_NE(std::string(e.what()).find("Half"), std::string::npos) << e.what();
    }
}

}  // namespace
