#pragma once
// A checkpoint on the device and in the dtype a stage's settings name: how the stages that run a model
// (generate, chat, serve) start.
#include <string>

#include <lumi/core/device.hpp>
#include <lumi/io/model_io.hpp>
#include <lumi/model/transformer.hpp>

namespace lumi::stage {

// The checkpoint's weights, checked against the tokenizer it was trained with (io::load_model_for), in eval
// mode.
template <ModelSpec S>
Transformer<S> load_model(const std::string& checkpoint, const tokenizer::Tokenizer& tokenizer,
                          const std::string& tokenizer_dir, const std::string& device, Dtype dtype) {
    Transformer<S> model;
    io::load_model_for(model, checkpoint, tokenizer, tokenizer_dir);
    model->to(resolve_device(device));
    if (dtype == Dtype::bfloat16) model->to(torch::kBFloat16);
    model->eval();
    return model;
}

}  // namespace lumi::stage
