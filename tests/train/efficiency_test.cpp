// Model FLOPs per token and the device peak behind the MFU the trainer reports.
#include "lumi/train/efficiency.hpp"
#include "lumi/lora/lora.hpp"
#include "lumi/model/transformer.hpp"
#include "lumi/presets/nano.hpp"
#include "lumi/presets/tiny.hpp"

namespace {

template <class Model>
std::vector<std::pair<std::string, torch::Tensor>> named(Model& model) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : model->named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
}

TEST(Efficiency, TinyCostsSixFlopsPerMatmulWeightPlusAttention) {
    lumi::Transformer<lumi::presets::tiny> model;
    const auto f = lumi::train::training_flops_per_token(lumi::presets::tiny, named(model), 256);
    // 23,072,000 parameters less the embedding lookup (32768 x 256) and the 13 norms (256 each).
    EXPECT_EQ(f.matmul_parameters, 23'072'000 - 32768 * 256 - 13 * 256);
    EXPECT_EQ(f.trained_matmul_parameters, f.matmul_parameters);
    EXPECT_DOUBLE_EQ(f.attention, 12.0 * 6 * 256 * 256);
    EXPECT_DOUBLE_EQ(f.total(), 6.0 * 14'680'064 + 4'718'592);
}

TEST(Efficiency, FrozenWeightsCostFourAndTiedEmbeddingsAreMatmuls) {
    constexpr lumi::ModelSpec tied = [] {
        lumi::ModelSpec s = lumi::presets::nano;
        s.tie_embeddings = true;
        return s;
    }();
    lumi::Transformer<tied> model;
    const auto f = lumi::train::training_flops_per_token(tied, named(model), 128);
    EXPECT_EQ(f.matmul_parameters, lumi::parameter_count_of(tied) - (2 * tied.n_layer + 1) * tied.d_model);

    using Lora = lumi::Transformer<lumi::presets::nano, lumi::Lora<lumi::presets::nano_lora>>;
    Lora adapted;
    const auto g = lumi::train::training_flops_per_token(lumi::presets::nano, named(adapted), 128);
    EXPECT_EQ(g.trained_matmul_parameters, adapted->trainable_parameter_count());
    EXPECT_DOUBLE_EQ(g.total(), 4.0 * double(g.matmul_parameters) +
                                    2.0 * double(g.trained_matmul_parameters) + 12.0 * 4 * 192 * 128);
}

TEST(Efficiency, PeakComesFromTheSettingsOrIsMeasuredOnce) {
    EXPECT_EQ(lumi::train::device_peak(torch::kCPU, torch::kFloat32, 2e12).flops, 2e12);
    const auto measured = lumi::train::device_peak(torch::kCPU, torch::kFloat32);
    EXPECT_GT(measured.flops, 1e8);  // any CPU of this century
    EXPECT_NE(measured.source.find("measured"), std::string::npos);
    EXPECT_EQ(lumi::train::device_peak(torch::kCPU, torch::kFloat32).flops, measured.flops);  // cached
}

TEST(Efficiency, MeasuringThePeakDrawsNoRandomNumbers) {
    // A run measures the peak at its start: it must not move the generator a resumed run is compared with.
    torch::manual_seed(7);
    const auto expected = torch::rand({4});
    torch::manual_seed(7);
    lumi::train::detail::measured_matmul_flops(torch::kCPU, torch::kFloat32);
    EXPECT_TRUE(torch::equal(torch::rand({4}), expected));
}

}  // namespace
