#include <gtest/gtest.h>

#include <lumi/model/transformer.hpp>
#include <lumi/presets.hpp>

namespace {

TEST(Presets, TinyHasTheOriginalsParameterCount) {
    static_assert(lumi::parameter_count(lumi::presets::tiny) == 23'072'000);
    EXPECT_EQ(lumi::Transformer<lumi::presets::tiny>()->parameter_count(), 23'072'000);
}

TEST(Presets, RuntimeParameterCountEqualsCompileTimeCountForEveryPreset) {
    for (const auto& p : lumi::presets::all) {
        const bool found = lumi::presets::visit(p.name, [&]<lumi::ModelSpec S>() {
            lumi::Transformer<S> model;
            EXPECT_EQ(model->parameter_count(), lumi::parameter_count(S)) << p.name;
            EXPECT_EQ(model->trainable_parameter_count(), lumi::parameter_count(S)) << p.name;
        });
        EXPECT_TRUE(found) << p.name;
    }
}

TEST(Presets, FollowTheOriginalsTemplate) {
    for (const auto& p : lumi::presets::all) {
        EXPECT_EQ(p.spec.head_dim(), 64) << p.name;
        EXPECT_EQ(p.spec.ffn_hidden, 4 * p.spec.d_model) << p.name;
        EXPECT_FALSE(p.spec.tie_embeddings) << p.name;
        if (p.name != "nano") {
            EXPECT_EQ(p.spec.vocab_size, 32768) << p.name;
            EXPECT_EQ(p.spec.context, 1024) << p.name;
        }
    }
    EXPECT_EQ(lumi::parameter_count(lumi::presets::micro), 9'438'336);
}

TEST(Presets, FindByNameAndUnknownName) {
    ASSERT_TRUE(lumi::presets::find("small").has_value());
    EXPECT_EQ(lumi::presets::find("small")->n_layer, 7);
    EXPECT_FALSE(lumi::presets::find("huge").has_value());
    EXPECT_FALSE(lumi::presets::visit("huge", []<lumi::ModelSpec>() {}));
}

TEST(Presets, DescribeStatesShapeAndCounts) {
    const auto text = lumi::model::describe<lumi::presets::tiny>();
    EXPECT_NE(text.find("layers 6, d_model 256, heads 4"), std::string::npos) << text;
    EXPECT_NE(text.find("parameters 23072000"), std::string::npos) << text;
}

}  // namespace
