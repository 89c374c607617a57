#include <cmath>

#include "../test_errors.hpp"
#include "lumi/train/muon.hpp"
#include "lumi/train/optimizer.hpp"
#include "lumi/train/precision.hpp"
#include "lumi/train/recipe.hpp"
#include "lumi/train/schedule.hpp"

namespace {

using lumi::test::error_of;
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

TEST(Schedule, WarmupStableDecayRisesHoldsAndCoolsDown) {
    using lumi::train::WarmupStableDecay;
    const lumi::train::WsdSettings s{.warmup_steps = 10, .decay_ratio = 0.25, .min_lr_ratio = 0.0};
    EXPECT_DOUBLE_EQ(WarmupStableDecay::factor(s, 0, 100), 0.1);
    EXPECT_DOUBLE_EQ(WarmupStableDecay::factor(s, 9, 100), 1.0);
    EXPECT_DOUBLE_EQ(WarmupStableDecay::factor(s, 74, 100), 1.0);  // stable until the last quarter
    EXPECT_DOUBLE_EQ(WarmupStableDecay::factor(s, 75, 100), 1.0);  // the cool-down starts at the peak
    EXPECT_DOUBLE_EQ(WarmupStableDecay::factor(s, 87, 100), 0.52);
    EXPECT_NEAR(WarmupStableDecay::factor(s, 99, 100), 0.04, 1e-12);
    EXPECT_DOUBLE_EQ(WarmupStableDecay::factor(s, 100, 100), 0.0);
    auto cosine = s;
    cosine.decay = "cosine";
    cosine.min_lr_ratio = 0.1;
    EXPECT_NEAR(WarmupStableDecay::factor(cosine, 87, 100), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.48)),
                1e-12);
    // A run shorter than warm-up plus cool-down: the lower of the two ramps.
    const lumi::train::WsdSettings overlap{.warmup_steps = 8, .decay_ratio = 0.5};
    EXPECT_DOUBLE_EQ(WarmupStableDecay::factor(overlap, 5, 10), 0.75);   // warm-up 6/8, cool-down 1
    EXPECT_NEAR(WarmupStableDecay::factor(overlap, 6, 10), 0.8, 1e-12);  // warm-up 7/8, cool-down 4/5
    EXPECT_EQ(error_of([] { lumi::train::WsdSettings{.decay = "step"}.validate(); }),
              "decay: must be linear or cosine, found 'step'");
    EXPECT_EQ(error_of([] { lumi::train::WsdSettings{.decay_ratio = 1.5}.validate(); }),
              "decay_ratio: must be in [0, 1]");
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

using lumi::train::Muon;
using lumi::train::MuonAdamW;

TEST(Muon, NewtonSchulzOrthogonalisesTallAndWideMatrices) {
    torch::manual_seed(1);
    for (const auto& shape : {std::vector<std::int64_t>{40, 12}, std::vector<std::int64_t>{12, 40}}) {
        const auto g = torch::randn(shape, torch::kFloat64).to(torch::kFloat32);
        for (const char* dtype : {"float32", "bfloat16"}) {
            lumi::train::MuonSettings s;
            s.ns_dtype = dtype;
            const auto o = lumi::train::detail::newton_schulz(g, s).to(torch::kFloat32);
            EXPECT_EQ(o.sizes(), g.sizes());
            // Singular values near 1 (the quintic trades exactness for speed: about 0.7 to 1.2), same
            // subspace.
            const auto sv = std::get<1>(torch::svd(o));
            EXPECT_GT(sv.min().item<double>(), 0.6) << dtype;
            EXPECT_LT(sv.max().item<double>(), 1.3) << dtype;
            EXPECT_GT((g * o).sum().item<double>(), 0.0) << dtype;
        }
    }
}

TEST(Muon, AutoIteratesInFloat32OnTheCpu) {
    torch::manual_seed(2);
    const auto g = torch::randn({16, 24});
    lumi::train::MuonSettings automatic, exact, half;
    exact.ns_dtype = "float32";
    half.ns_dtype = "bfloat16";
    const auto a = lumi::train::detail::newton_schulz(g, automatic);
    EXPECT_EQ(a.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(a, lumi::train::detail::newton_schulz(g, exact)));
    EXPECT_EQ(lumi::train::detail::newton_schulz(g, half).scalar_type(), torch::kBFloat16);
    EXPECT_EQ(error_of([] { lumi::train::MuonSettings{.ns_dtype = "fp8"}.validate(); }),
              "ns_dtype: must be auto, bfloat16 or float32, found 'fp8'");
}

TEST(Muon, StepFollowsTheMomentumLearningRateAdjustmentAndDecay) {
    // One step from a zero buffer with Nesterov: update = NS((1 - m^2) g); with m = 0 it is NS(g).
    torch::manual_seed(2);
    NamedTensors params{{"proj.weight", torch::randn({8, 4}).requires_grad_()}};
    const auto before = params[0].second.detach().clone();
    const auto grad = torch::randn({8, 4});
    params[0].second.mutable_grad() = grad.clone();
    lumi::train::MuonSettings s{.lr = 0.1, .momentum = 0.0, .weight_decay = 0.5, .ns_dtype = "float32"};
    Muon muon(params, s);
    muon.step(0.1);
    const auto expected =
        before * (1 - 0.1 * 0.5) - 0.1 * std::sqrt(2.0) * lumi::train::detail::newton_schulz(grad, s);
    EXPECT_TRUE(torch::allclose(params[0].second, expected, 1e-6, 1e-7));
    EXPECT_DOUBLE_EQ(s.adjusted(0.1, 8, 4), 0.1 * std::sqrt(2.0));
    EXPECT_DOUBLE_EQ(s.adjusted(0.1, 4, 8), 0.1);
    s.adjust_lr = "match_rms_adamw";
    EXPECT_DOUBLE_EQ(s.adjusted(0.1, 4, 8), 0.1 * 0.2 * std::sqrt(8.0));
    const lumi::train::MuonSettings warm{
        .momentum = 0.95, .momentum_warmup_steps = 10, .momentum_start = 0.85};
    EXPECT_DOUBLE_EQ(warm.momentum_at(0), 0.85);
    EXPECT_NEAR(warm.momentum_at(5), 0.90, 1e-12);
    EXPECT_DOUBLE_EQ(warm.momentum_at(10), 0.95);
    EXPECT_DOUBLE_EQ(warm.momentum_at(500), 0.95);
}

TEST(Muon, RefusesVectorsAndBadSettingsNamingThem) {
    NamedTensors params{{"norm.weight", torch::ones({4}).requires_grad_()}};
    EXPECT_CONTAINS(error_of([&] { Muon(params, {}); }),
                    "'norm.weight' has shape [4]; Muon trains 2-D matrices only");
    EXPECT_EQ(error_of([] { lumi::train::MuonSettings{.adjust_lr = "rms"}.validate(); }),
              "adjust_lr: must be original or match_rms_adamw, found 'rms'");
    EXPECT_EQ(error_of([] { lumi::train::MuonSettings{.ns_steps = 0}.validate(); }),
              "ns_steps: must be in [1, 99]");
    EXPECT_EQ(error_of([] { lumi::train::MuonSettings{.momentum = 1.0}.validate(); }),
              "momentum: must be in [0, 1)");
}

NamedTensors model_like_parameters() {
    torch::manual_seed(4);
    return {{"model.embed_tokens.weight", torch::randn({20, 8}).requires_grad_()},
            {"model.layers.0.self_attn.q_proj.weight", torch::randn({8, 8}).requires_grad_()},
            {"model.layers.0.mlp.up_proj.weight", torch::randn({16, 8}).requires_grad_()},
            {"model.layers.0.input_layernorm.weight", torch::randn({8}).requires_grad_()},
            {"lm_head.weight", torch::randn({20, 8}).requires_grad_()}};
}

TEST(MuonAdamW, GivesHiddenMatricesToMuonAndTheRestToAdamW) {
    auto params = model_like_parameters();
    MuonAdamW optimizer(params, {});
    EXPECT_EQ(optimizer.muon()->names(), (std::vector<std::string>{"model.layers.0.self_attn.q_proj.weight",
                                                                   "model.layers.0.mlp.up_proj.weight"}));
    EXPECT_EQ(optimizer.adamw()->names(),
              (std::vector<std::string>{"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                                        "lm_head.weight"}));
    EXPECT_EQ(optimizer.peak_lr(), optimizer.settings().muon.lr);
    // Only vectors trainable (LoRA-like cases aside): AdamW alone, no Muon.
    NamedTensors vectors{{"norm.weight", torch::ones({4}).requires_grad_()}};
    EXPECT_EQ(MuonAdamW(vectors, {}).muon(), nullptr);
}

TEST(MuonAdamW, ClipsOverBothOptimizersAndStateRoundTripContinuesIdentically) {
    auto a = model_like_parameters();
    auto b = model_like_parameters();
    const MuonAdamW::Settings s{.muon = {.momentum_warmup_steps = 4},
                                .adamw = {.lr = 1e-2, .grad_clip = 1.0}};
    MuonAdamW first(a, s);
    fake_gradients(a, 0);
    double squares = 0;
    for (const auto& [name, p] : a) squares += p.grad().square().sum().item<double>();
    EXPECT_NEAR(first.clip_gradients(), std::sqrt(squares), 1e-4);
    first.step_scaled(1.0);
    for (int step = 1; step < 3; ++step) {
        fake_gradients(a, step);
        first.clip_gradients();
        first.step_scaled(0.5);
    }
    {
        torch::NoGradGuard no_grad;
        for (std::size_t i = 0; i < a.size(); ++i) b[i].second.copy_(a[i].second);
    }
    MuonAdamW second(b, s);
    second.load_state(first.state(), "test");
    EXPECT_EQ(second.steps_taken(), 3);
    EXPECT_EQ(second.muon()->steps_taken(), 3);  // the momentum warm-up goes on where it was
    fake_gradients(a, 3);
    fake_gradients(b, 3);
    first.clip_gradients();
    second.clip_gradients();
    first.step_scaled(0.5);
    second.step_scaled(0.5);
    for (std::size_t i = 0; i < a.size(); ++i)
        EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
    NamedTensors missing;
    for (const auto& item : first.state())
        if (!item.first.starts_with("muon.momentum_buffer.model.layers.0.mlp")) missing.push_back(item);
    EXPECT_EQ(error_of([&] { second.load_state(missing, "opt.safetensors"); }),
              "opt.safetensors: optimizer state lacks 'momentum_buffer.model.layers.0.mlp.up_proj.weight'");
}

// lumi/train/recipe.hpp: names to policy types, both ways.
TEST(Recipe, NamesPickTheirOptimizerAndSchedule) {
    using lumi::train::CosineWarmup;
    using lumi::train::recipe_name;
    using lumi::train::WarmupStableDecay;
    EXPECT_EQ((recipe_name<AdamW, CosineWarmup>()), "adamw_cosine");
    EXPECT_EQ((recipe_name<MuonAdamW, WarmupStableDecay>()), "muon_wsd");
    EXPECT_EQ((recipe_name<AdamW, WarmupStableDecay>()), "");  // composed in code only
    EXPECT_EQ(lumi::train::recipe_names(), "adamw_cosine, muon_wsd");
    std::string picked;
    EXPECT_TRUE(lumi::train::visit_recipe("muon_wsd", [&]<class Optimizer, class Schedule>() {
        picked = std::string(recipe_name<Optimizer, Schedule>());
    }));
    EXPECT_EQ(picked, "muon_wsd");
    EXPECT_FALSE(lumi::train::visit_recipe("sgd", [&]<class, class>() { picked = "called"; }));
    EXPECT_EQ(picked, "muon_wsd");
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
