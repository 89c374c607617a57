#include <gtest/gtest.h>

#include <lumi/model/transformer.hpp>

#include "test_specs.hpp"

namespace {

using lumi::test::gqa;
using lumi::test::mha;
using lumi::test::tied;

torch::Tensor random_ids(std::int64_t b, std::int64_t t, std::int64_t vocab, std::uint64_t seed) {
    auto gen = lumi::make_generator(seed);
    return torch::randint(vocab, {b, t}, gen, torch::kLong);
}

TEST(Transformer, LogitsHaveShapeBatchTimeVocab) {
    lumi::Transformer<mha> model;
    EXPECT_EQ(model->forward(random_ids(3, 11, 61, 0)).sizes(), (std::vector<std::int64_t>{3, 11, 61}));
    lumi::Transformer<gqa> grouped;
    EXPECT_EQ(grouped->forward(random_ids(2, 48, 61, 0)).sizes(), (std::vector<std::int64_t>{2, 48, 61}));
}

TEST(Transformer, ParameterNamesAreHuggingFaceLlamaNames) {
    lumi::Transformer<gqa> model;
    const auto params = model->named_parameters();
    for (const char* name :
         {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
          "model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight",
          "model.layers.1.self_attn.o_proj.weight", "model.layers.0.mlp.gate_proj.weight",
          "model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.down_proj.weight",
          "model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
          "model.norm.weight", "lm_head.weight"})
        EXPECT_TRUE(params.contains(name)) << name;
    EXPECT_EQ(params.size(), 2u + 2u * 9u + 1u);
    EXPECT_EQ(params["model.layers.0.self_attn.k_proj.weight"].sizes(), (std::vector<std::int64_t>{16, 32}));
    EXPECT_EQ(params["model.layers.0.mlp.down_proj.weight"].sizes(), (std::vector<std::int64_t>{32, 64}));
}

TEST(Transformer, TiedEmbeddingsShareTheMatrixAndCountItOnce) {
    lumi::Transformer<tied> model;
    EXPECT_FALSE(model->named_parameters().contains("lm_head.weight"));
    EXPECT_EQ(model->parameter_count(), lumi::parameter_count(tied));
    const auto ids = random_ids(1, 5, 61, 2);
    const auto hidden = model->model->forward(ids);
    EXPECT_TRUE(
        torch::allclose(model->forward(ids), torch::matmul(hidden, model->model->embed_tokens->weight.t())));
}

TEST(Transformer, IsCausal) {
    lumi::Transformer<gqa> model;
    torch::NoGradGuard no_grad;
    auto ids = random_ids(1, 20, 61, 3);
    const auto before = model->forward(ids);
    const std::int64_t t = 12;
    ids[0][t] = (ids[0][t].item<std::int64_t>() + 1) % 61;
    const auto after = model->forward(ids);
    EXPECT_TRUE(torch::equal(before.narrow(1, 0, t), after.narrow(1, 0, t)));
    EXPECT_GT((before.narrow(1, t, 20 - t) - after.narrow(1, t, 20 - t)).abs().max().item<double>(), 1e-6);
}

TEST(Transformer, SameSeedSameWeightsOtherSeedOtherWeights) {
    lumi::Transformer<mha> a(lumi::InitSettings{.seed = 5}), b(lumi::InitSettings{.seed = 5}),
        c(lumi::InitSettings{.seed = 6});
    torch::manual_seed(123);  // the global generator plays no part
    lumi::Transformer<mha> d(lumi::InitSettings{.seed = 5});
    const auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters(),
               pd = d->named_parameters();
    for (const auto& item : pa) {
        EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
        EXPECT_TRUE(torch::equal(item.value(), pd[item.key()])) << item.key();
        if (item.key().find("norm") == std::string::npos) {
            EXPECT_FALSE(torch::equal(item.value(), pc[item.key()])) << item.key();
        }
    }
}

TEST(Transformer, InitialisationScalesResidualProjections) {
    constexpr lumi::ModelSpec wide{.vocab_size = 512,
                                   .n_layer = 8,
                                   .d_model = 128,
                                   .n_head = 2,
                                   .n_kv_head = 2,
                                   .ffn_hidden = 512,
                                   .context = 8};
    lumi::Transformer<wide> model;
    const auto p = model->named_parameters();
    EXPECT_NEAR(p["model.embed_tokens.weight"].std().item<double>(), 0.02, 0.001);
    EXPECT_NEAR(p["model.layers.3.self_attn.q_proj.weight"].std().item<double>(), 0.02, 0.001);
    EXPECT_NEAR(p["model.layers.3.self_attn.o_proj.weight"].std().item<double>(), 0.02 / 4.0, 0.0005);
    EXPECT_NEAR(p["model.layers.5.mlp.down_proj.weight"].std().item<double>(), 0.02 / 4.0, 0.0005);
    EXPECT_TRUE(torch::equal(p["model.norm.weight"], torch::ones({128})));
}

TEST(Transformer, LossIsCrossEntropyOfTheLogitsAndSkipsIgnoredTargets) {
    lumi::Transformer<mha> model;
    const auto ids = random_ids(2, 6, 61, 4);
    auto targets = random_ids(2, 6, 61, 5);
    const auto out = model->forward(ids, targets);
    const auto log_probs = out.logits.log_softmax(-1);
    const auto expected = -log_probs.gather(-1, targets.unsqueeze(-1)).mean();
    EXPECT_NEAR(out.loss.item<double>(), expected.item<double>(), 1e-5);
    // At initialisation the model is close to uniform: loss near ln(vocab).
    EXPECT_NEAR(out.loss.item<double>(), std::log(61.0), 0.2);

    targets.narrow(1, 3, 3).fill_(lumi::model::ignore_index);
    const auto partial = model->forward(ids, targets);
    const auto kept = -log_probs.narrow(1, 0, 3).gather(-1, targets.narrow(1, 0, 3).unsqueeze(-1)).mean();
    EXPECT_NEAR(partial.loss.item<double>(), kept.item<double>(), 1e-5);
}

TEST(Transformer, EveryParameterReceivesAGradient) {
    lumi::Transformer<gqa> model;
    model->forward(random_ids(2, 16, 61, 6), random_ids(2, 16, 61, 7)).loss.backward();
    for (const auto& item : model->named_parameters()) {
        ASSERT_TRUE(item.value().grad().defined()) << item.key();
        EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
    }
}

TEST(Transformer, AFewOptimiserStepsOnAFixedBatchDriveTheLossNearZero) {
    lumi::Transformer<gqa> model;
    torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.0));
    const auto ids = random_ids(4, 16, 61, 8);
    const auto targets = random_ids(4, 16, 61, 9);
    double first = 0, last = 0;
    for (int step = 0; step < 150; ++step) {
        opt.zero_grad();
        auto loss = model->forward(ids, targets).loss;
        loss.backward();
        opt.step();
        (step == 0 ? first : last) = loss.item<double>();
    }
    EXPECT_GT(first, 3.5);
    EXPECT_LT(last, 0.05);
}

TEST(Transformer, RunsInBFloat16) {
    lumi::Transformer<gqa> model;
    const auto ids = random_ids(2, 10, 61, 10);
    const auto reference = model->forward(ids);
    model->to(torch::kBFloat16);
    const auto out = model->forward(ids, random_ids(2, 10, 61, 11));
    EXPECT_EQ(out.logits.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(out.loss.scalar_type(), torch::kFloat32);
    EXPECT_LE((out.logits.to(torch::kFloat32) - reference).abs().max().item<double>(), 0.05);
    out.loss.backward();
    EXPECT_EQ(model->model->embed_tokens->weight.grad().scalar_type(), torch::kBFloat16);
}

TEST(Transformer, ShiftingEveryPositionLeavesLogitsUnchangedBecauseRoPEIsRelative) {
    lumi::Transformer<mha> model;
    torch::NoGradGuard no_grad;
    const auto ids = random_ids(1, 8, 61, 12);
    EXPECT_LE((model->forward(ids, 5) - model->forward(ids, 0)).abs().max().item<double>(), 1e-5);
    EXPECT_THROW(model->forward(ids, 41), lumi::Error);  // positions 41..48 pass the context of 48
}

}  // namespace
