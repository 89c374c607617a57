#include <unistd.h>

#include <filesystem>

#include <lumi/presets.hpp>

#include "../model/test_specs.hpp"
#include "lumi/lora/lora.hpp"

namespace fs = std::filesystem;

namespace {

using lumi::lora::Role;
constexpr lumi::ModelSpec spec = lumi::test::gqa;
constexpr lumi::LoraSpec adapter{.rank = 4, .alpha = 8, .dropout = 0.0, .targets = lumi::lora::all_roles};
constexpr lumi::LoraSpec qv_only{
    .rank = 2, .alpha = 4, .dropout = 0.0, .targets = lumi::lora::roles({Role::q, Role::v})};
using LoraModel = lumi::Transformer<spec, lumi::Lora<adapter>>;
using Dense = lumi::Transformer<spec>;

fs::path fresh(const std::string& name) {
    const auto dir =
        fs::temp_directory_path() / ("lumi_lora_test_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(dir);
    return dir;
}

std::int64_t trainable(const torch::nn::Module& m) {
    std::int64_t n = 0;
    for (const auto& p : m.parameters())
        if (p.requires_grad()) n += p.numel();
    return n;
}

// Moves B away from zero so the adapter matters.
template <class M>
void perturb_adapters(M& model, std::uint64_t seed) {
    torch::NoGradGuard no_grad;
    auto gen = lumi::make_generator(seed);
    for (auto& item : model->named_parameters())
        if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0.0, 0.05, gen);
}

TEST(Lora, TinyRank32AddsExactlyTheOriginalsTrainableParameters) {
    static_assert(lumi::lora::parameter_count(lumi::presets::tiny, lumi::presets::tiny_lora) == 1'130'496);
    lumi::Transformer<lumi::presets::tiny, lumi::Lora<lumi::presets::tiny_lora>> model;
    EXPECT_EQ(trainable(*model), 1'130'496);
    EXPECT_EQ(model->parameter_count() - trainable(*model), 23'072'000);
}

TEST(Lora, OnlyTargetedRolesGetAdapters) {
    lumi::Transformer<spec, lumi::Lora<qv_only>> model;
    EXPECT_EQ(trainable(*model), lumi::lora::parameter_count(spec, qv_only));
    std::set<std::string> adapted;
    for (const auto& item : model->named_parameters())
        if (item.key().find("lora_A") != std::string::npos) adapted.insert(item.key());
    EXPECT_TRUE(adapted.count("model.layers.0.self_attn.q_proj.lora_A.weight"));
    EXPECT_TRUE(adapted.count("model.layers.1.self_attn.v_proj.lora_A.weight"));
    EXPECT_EQ(adapted.size(), 4u);
    static_assert(
        std::is_same_v<lumi::model::AttentionImpl<spec, lumi::Lora<qv_only>>::KProj, lumi::model::Linear>);
}

TEST(Lora, WithZeroBTheModelEqualsTheBaseExactly) {
    Dense base(lumi::InitSettings{.seed = 3});
    LoraModel model;
    const auto dir = fresh("base");
    lumi::io::save_model(base, dir);
    lumi::lora::load_base(model, dir);
    const auto ids = torch::randint(spec.vocab_size, {2, 9}, lumi::make_generator(1), torch::kInt64);
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(model->forward(ids), base->forward(ids)));
}

TEST(Lora, MergedUnmergedAndMergedCopyGiveTheSameLogits) {
    LoraModel model(lumi::InitSettings{.seed = 5});
    perturb_adapters(model, 9);
    model->eval();
    torch::NoGradGuard no_grad;
    const auto ids = torch::randint(spec.vocab_size, {2, 9}, lumi::make_generator(1), torch::kInt64);
    const auto before = model->forward(ids);
    auto copy = lumi::lora::merged_copy(model);
    EXPECT_TRUE(torch::allclose(copy->forward(ids), before, 1e-5, 1e-5));
    const auto q_before = model->model->blocks[0]->self_attn->q_proj->weight.clone();
    lumi::lora::merge(model);
    EXPECT_FALSE(torch::equal(model->model->blocks[0]->self_attn->q_proj->weight, q_before));
    EXPECT_TRUE(torch::allclose(model->forward(ids), before, 1e-5, 1e-5));
    lumi::lora::unmerge(model);
    EXPECT_TRUE(torch::allclose(model->model->blocks[0]->self_attn->q_proj->weight, q_before, 1e-6, 1e-6));
    EXPECT_TRUE(torch::allclose(model->forward(ids), before, 1e-5, 1e-5));
}

TEST(Lora, TrainingMovesOnlyTheAdapters) {
    LoraModel model(lumi::InitSettings{.seed = 5});
    std::map<std::string, torch::Tensor> before;
    for (const auto& item : model->named_parameters()) before[item.key()] = item.value().detach().clone();
    std::vector<torch::Tensor> params;
    for (auto& p : model->parameters())
        if (p.requires_grad()) params.push_back(p);
    torch::optim::SGD sgd(params, 0.1);
    const auto ids = torch::randint(spec.vocab_size, {2, 10}, lumi::make_generator(1), torch::kInt64);
    for (int step = 0; step < 3; ++step) {
        sgd.zero_grad();
        model->forward(ids.narrow(1, 0, 9), ids.narrow(1, 1, 9)).loss.backward();
        sgd.step();
    }
    int moved = 0;
    for (const auto& item : model->named_parameters()) {
        const bool adapter = item.key().find("lora_") != std::string::npos;
        if (adapter) {
            moved += !torch::equal(item.value(), before[item.key()]);
        } else {
            EXPECT_TRUE(torch::equal(item.value(), before[item.key()])) << item.key();
            EXPECT_FALSE(item.value().grad().defined()) << item.key();
        }
    }
    EXPECT_GT(moved, 0);
}

TEST(Lora, AdapterRoundTripUsesPeftNamesAndConfig) {
    LoraModel model(lumi::InitSettings{.seed = 5});
    perturb_adapters(model, 2);
    const auto dir = fresh("adapter");
    lumi::lora::save_adapter(model, dir, "lumi/gqa");
    const auto header = lumi::io::read_safetensors_header(dir / "adapter_model.safetensors");
    bool found = false;
    for (const auto& t : header.tensors)
        found |= t.name == "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight";
    EXPECT_TRUE(found);
    const auto config = lumi::config::read_json_file(dir / "adapter_config.json").as_object();
    EXPECT_EQ(config.at("peft_type").as_string(), "LORA");
    EXPECT_EQ(config.at("r").to_number<int>(), 4);
    EXPECT_EQ(config.at("target_modules").as_array().size(), 7u);

    LoraModel other(lumi::InitSettings{.seed = 5});
    lumi::lora::load_adapter(other, dir);
    for (const auto& item : model->named_parameters())
        EXPECT_TRUE(torch::equal(item.value(), other->named_parameters()[item.key()])) << item.key();

    lumi::Transformer<spec, lumi::Lora<qv_only>> mismatched;
    EXPECT_THROW(lumi::lora::load_adapter(mismatched, dir), lumi::Error);
    lumi::lora::merge(model);
    EXPECT_THROW(lumi::lora::save_adapter(model, fresh("merged")), lumi::Error);
}

TEST(Lora, DropoutOnlyInTraining) {
    constexpr lumi::LoraSpec dropped{.rank = 4, .alpha = 8, .dropout = 0.5};
    lumi::Transformer<spec, lumi::Lora<dropped>> model;
    perturb_adapters(model, 4);
    const auto ids = torch::randint(spec.vocab_size, {1, 6}, lumi::make_generator(1), torch::kInt64);
    torch::NoGradGuard no_grad;
    model->eval();
    EXPECT_TRUE(torch::equal(model->forward(ids), model->forward(ids)));
    model->train();
    EXPECT_FALSE(torch::equal(model->forward(ids), model->forward(ids)));
}

}  // namespace
