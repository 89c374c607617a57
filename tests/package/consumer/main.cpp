#include <iostream>

#include <lumi/lumi.hpp>
#include <lumi/presets/nano.hpp>

int main() {
    constexpr lumi::ModelSpec toy{.vocab_size = 32,
                                  .n_layer = 1,
                                  .d_model = 16,
                                  .n_head = 2,
                                  .n_kv_head = 1,
                                  .ffn_hidden = 32,
                                  .context = 8};
    lumi::Transformer<toy> model;
    const auto logits = model->forward(torch::zeros({1, 4}, torch::kLong));
    std::cout << "nano parameters " << lumi::parameter_count(lumi::presets::nano) << ", toy parameters "
              << model->parameter_count() << ", logits " << logits.sizes() << "\n";
    return model->parameter_count() == lumi::parameter_count(toy) ? 0 : 1;
}
