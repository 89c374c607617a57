#include <cmath>

#include "lumi/train/optimizer.hpp"
#include "lumi/train/precision.hpp"
#include "lumi/train/schedule.hpp"

namespace {

using lumi::train::AdamW;
using lumi::train::NamedTensors;
using lumi::train::ScheduleSettings;

TEST(Schedule, CosineWarmupAtChosenSteps) {
    const ScheduleSettings s{.warmup_steps = 10, .warmup_ratio = 0, .min_lr_ratio = 0.1};
    using lumi::train::CosineWarmup;
    EXPECT_DOUBLE_EQ(CosineWarmup::factor(s, 0, 110), 0.1);  // 1/10 of the way up
    EXPECT_DOUBLE_EQ(CosineWarmup::factor(s, 4, 110), 0.5);
    EXPECT_DOUBLE_EQ(CosineWarmup::factor(s, 9, 110), 1.0);                 // peak at the last warm-up step
    EXPECT_DOUBLE_EQ(CosineWarmup::factor(s, 10, 110), 1.0);                // decay starts from the peak
    EXPECT_NEAR(CosineWarmup::factor(s, 60, 110), 0.1 + 0.9 * 0.5, 1e-12);  // half way: cos(pi/2) = 0
    EXPECT_NEAR(CosineWarmup::factor(s, 35, 110), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
    EXPECT_NEAR(CosineWarmup::factor(s, 110, 110), 0.1, 1e-12);  // the floor
}

TEST(Schedule, WarmupRatioAndAlternatives) {
    const ScheduleSettings s{.warmup_steps = 0, .warmup_ratio = 0.1, .min_lr_ratio = 0.0};
    EXPECT_EQ(s.warmup(30000), 3000);
    EXPECT_DOUBLE_EQ(lumi::train::LinearWarmup::factor(s, 3000 + 13500, 30000), 0.5);
    EXPECT_DOUBLE_EQ(lumi::train::ConstantWarmup::factor(s, 1499, 30000), 0.5);
    EXPECT_DOUBLE_EQ(lumi::train::ConstantWarmup::factor(s, 29999, 30000), 1.0);
    EXPECT_THROW((ScheduleSettings{.warmup_ratio = 1.5}.validate()), lumi::config::FieldError);
}

NamedTensors two_parameters() {
    torch::manual_seed(3);
    return {{"weight", torch::randn({4, 3}).requires_grad_()},
            {"norm.weight", torch::randn({3}).requires_grad_()}};
}

void fake_gradients(const NamedTensors& params, int step) {
    for (const auto& [name, p] : params) p.mutable_grad() = torch::sin(p.detach() * double(step + 1));
}

TEST(AdamW, MatchesLibTorchAdamWStepByStep) {
    auto ours = two_parameters();
    auto theirs = two_parameters();
    AdamW::Settings s{
        .lr = 0.01, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .grad_clip = 0};
    AdamW optimizer(ours, s);
    // LibTorch applies decay to every tensor of a group: two groups reproduce "matrices only".
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(std::vector<torch::Tensor>{theirs[0].second},
                        std::make_unique<torch::optim::AdamWOptions>(
                            torch::optim::AdamWOptions(0.01).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1)));
    groups.emplace_back(std::vector<torch::Tensor>{theirs[1].second},
                        std::make_unique<torch::optim::AdamWOptions>(
                            torch::optim::AdamWOptions(0.01).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.0)));
    torch::optim::AdamW reference(groups);
    for (int step = 0; step < 5; ++step) {
        fake_gradients(ours, step);
        fake_gradients(theirs, step);
        optimizer.step(0.01);
        reference.step();
    }
    for (std::size_t i = 0; i < ours.size(); ++i)
        EXPECT_TRUE(torch::allclose(ours[i].second, theirs[i].second, 1e-6, 1e-7)) << ours[i].first;
}

TEST(AdamW, WeightDecaySkipsNormsAndVectors) {
    auto params = two_parameters();
    const auto before_matrix = params[0].second.detach().clone();
    const auto before_norm = params[1].second.detach().clone();
    AdamW optimizer(params, {.lr = 0.5, .weight_decay = 0.5, .grad_clip = 0});
    for (auto& [name, p] : params) p.mutable_grad() = torch::zeros_like(p);  // no gradient: only decay moves
    optimizer.step(0.5);
    EXPECT_TRUE(torch::allclose(params[0].second, before_matrix * 0.75));
    EXPECT_TRUE(torch::equal(params[1].second, before_norm));
    EXPECT_TRUE(optimizer.decays(0));
    EXPECT_FALSE(optimizer.decays(1));
}

TEST(AdamW, ClipsTheGlobalNormAndReportsItBeforeClipping) {
    auto params = two_parameters();
    auto reference = two_parameters();
    params[0].second.mutable_grad() = torch::full({4, 3}, 1.0);  // norm sqrt(12)
    params[1].second.mutable_grad() = torch::full({3}, 2.0);     // norm sqrt(12)
    AdamW optimizer(params, {.grad_clip = 1.0});
    EXPECT_NEAR(optimizer.clip_gradients(), std::sqrt(24.0), 1e-5);
    optimizer.step(0.01);
    // The same step on gradients clipped beforehand (PyTorch's clip_grad_norm_ factor).
    const double factor = 1.0 / (std::sqrt(24.0) + 1e-6);
    reference[0].second.mutable_grad() = torch::full({4, 3}, 1.0) * factor;
    reference[1].second.mutable_grad() = torch::full({3}, 2.0) * factor;
    AdamW unclipped(reference, {.grad_clip = 0});
    unclipped.step(0.01);
    for (std::size_t i = 0; i < params.size(); ++i)
        EXPECT_TRUE(torch::allclose(params[i].second, reference[i].second, 1e-6, 1e-7)) << params[i].first;
    EXPECT_TRUE(torch::equal(params[0].second.grad(), torch::full({4, 3}, 1.0)));  // read, not rewritten
}

// Large enough for several slices per tensor and a tail that is not a multiple of the vector width.
NamedTensors large_parameters(torch::ScalarType dtype) {
    torch::manual_seed(5);
    return {{"embed.weight", torch::randn({300, 700}).to(dtype).requires_grad_()},
            {"norm.weight", torch::randn({701}).to(dtype).requires_grad_()},
            {"proj.weight", torch::randn({3, 5}).to(dtype).requires_grad_()}};
}

TEST(AdamW, FusedFloat32PassEqualsTheForeachPassInFloat64) {
    auto fused = large_parameters(torch::kFloat32);
    auto reference = large_parameters(torch::kFloat64);  // float64 takes the foreach path
    const AdamW::Settings s{.lr = 1e-2, .weight_decay = 0.1, .grad_clip = 0.5};
    AdamW a(fused, s), b(reference, s);
    for (int step = 0; step < 4; ++step) {
        fake_gradients(fused, step);
        fake_gradients(reference, step);
        const double na = a.clip_gradients(), nb = b.clip_gradients();
        EXPECT_NEAR(na, nb, 1e-4 * nb);
        a.step(1e-2);
        b.step(1e-2);
    }
    for (std::size_t i = 0; i < fused.size(); ++i) {
        EXPECT_EQ(fused[i].second.scalar_type(), torch::kFloat32);
        EXPECT_TRUE(torch::allclose(fused[i].second.to(torch::kFloat64), reference[i].second, 1e-5, 1e-6))
            << fused[i].first << ": max difference "
            << (fused[i].second.to(torch::kFloat64) - reference[i].second).abs().max().item<double>();
    }
    const auto state_a = a.state(), state_b = b.state();
    for (std::size_t i = 1; i < state_a.size(); ++i)
        EXPECT_TRUE(torch::allclose(state_a[i].second.to(torch::kFloat64), state_b[i].second, 1e-5, 1e-9))
            << state_a[i].first;
}

TEST(AdamW, FusedPassIsTheSameOnOneOrTwoThreads) {
    const int threads = at::get_num_threads();
    std::vector<torch::Tensor> results;
    for (int n : {1, 2}) {
        at::set_num_threads(n);
        auto params = large_parameters(torch::kFloat32);
        AdamW optimizer(params, {.lr = 1e-2, .grad_clip = 0});  // the norm's rounding may depend on threads
        for (int step = 0; step < 3; ++step) {
            fake_gradients(params, step);
            optimizer.clip_gradients();
            optimizer.step(1e-2);
        }
        results.push_back(params[0].second.detach().clone());
    }
    at::set_num_threads(threads);
    EXPECT_TRUE(torch::equal(results[0], results[1]));
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
    auto a = two_parameters();
    auto b = two_parameters();
    AdamW first(a, {.lr = 0.01});
    for (int step = 0; step < 3; ++step) {
        fake_gradients(a, step);
        first.step(0.01);
    }
    {
        torch::NoGradGuard no_grad;
        for (std::size_t i = 0; i < a.size(); ++i) b[i].second.copy_(a[i].second);
    }
    AdamW second(b, {.lr = 0.01});
    second.load_state(first.state(), "test");
    EXPECT_EQ(second.steps_taken(), 3);
    fake_gradients(a, 3);
    fake_gradients(b, 3);
    first.step(0.01);
    second.step(0.01);
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second));
    NamedTensors missing = first.state();
    missing.pop_back();
    EXPECT_THROW(second.load_state(missing, "test"), lumi::Error);
}

TEST(AdamW, FrozenParametersAreNotTrained) {
    auto params = two_parameters();
    params[1].second.requires_grad_(false);
    AdamW optimizer(params, {});
    EXPECT_EQ(optimizer.names(), std::vector<std::string>{"weight"});
}

TEST(Precision, AutocastGuardRunsMatmulsInBFloat16AndRestores) {
    const auto a = torch::randn({4, 4});
    {
        lumi::train::AutocastGuard guard(torch::kCPU, torch::kBFloat16);
        EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(torch::mm(a, a).scalar_type(), torch::kFloat32);
    lumi::train::PrecisionSettings full{.dtype = lumi::train::Dtype::float32};
    EXPECT_FALSE(lumi::train::MixedPrecision::guard(full, torch::kCPU).has_value());
}

}  // namespace
