#pragma once

#include <cstdio>
#include <string>

#include "lumi/data/packed.hpp"
#include "lumi/lora/lora.hpp"
#include "lumi/tokenizer/tokenizer.hpp"
#include "lumi/train/pretrain.hpp"
#include "lumi/train/trainer.hpp"

namespace lumi::train {

enum class FinetuneMethod { lora, full };

struct FinetuneData {
    std::string dataset = "runs/sft";          // the prepare_sft output (tokens, loss mask, example ids)
    std::string base = "runs/pretrain/final";  // the pretrained checkpoint to start from
    std::string tokenizer;                     // when set, the packed data must have been made with it
    bool verify = false;
};

// Stage 07b's settings file. The loss counts only response tokens (the corpus's loss mask), and packed
// examples do not attend to each other.
template <class Optimizer = AdamW, class Schedule = CosineWarmup, class Precision = MixedPrecision>
struct FinetuneSettings {
    std::string preset;
    FinetuneMethod method = FinetuneMethod::lora;  // lora: the preset's LoraSpec; full: every weight trains
    FinetuneData data;
    RunSettings run;
    typename Optimizer::Settings optimizer;
    typename Schedule::Settings schedule;
    typename Precision::Settings precision;

    TrainerSettings<Optimizer, Schedule, Precision> trainer() const {
        return {run, optimizer, schedule, precision, {}};
    }
};

struct FinetuneResult {
    FitResult fit;
    std::filesystem::path adapter;  // LoRA only: adapter_model.safetensors + adapter_config.json (PEFT)
    std::filesystem::path merged;   // a plain checkpoint with the adapters merged (or the fully tuned model)
};

namespace detail {

// What every fine-tuning stage checks of its data (made by `maker`: "packed", "prepared") against the model
// and the base checkpoint: rows fit the context (+1 for targets), the base was trained with the data's
// tokenizer, the vocabulary fits.
template <ModelSpec S, class Dataset>
void check_data_fits(const Dataset& data, const std::string& dataset, const std::string& base,
                     const std::string& maker) {
    if (data.sequence_length() - 1 > S.context)
        throw Error(dataset + ": sequences of " + std::to_string(data.sequence_length()) +
                    " tokens exceed the model's context of " + std::to_string(S.context) +
                    " (+1 for targets)");
    io::check_tokenizer(base, {data.tokenizer_sha256(), data.vocab_size()},
                        dataset + " (" + maker + " with it)");
    if (std::int64_t(data.vocab_size()) > S.vocab_size)
        throw Error(dataset + ": " + maker + " with a vocabulary of " + std::to_string(data.vocab_size()) +
                    " tokens, more than the model's " + std::to_string(S.vocab_size));
}

// The model a fine-tuning starts from: every weight of the base checkpoint, or (LoRA) its base weights with
// fresh adapters.
template <ModelSpec S, class Adapt>
Transformer<S, Adapt> load_start(const std::string& base) {
    Transformer<S, Adapt> model;
    if constexpr (std::is_same_v<Adapt, Dense>)
        io::load_model(model, base);
    else
        lora::load_base(model, base);
    return model;
}

// After a fine-tuning run that was not interrupted: for LoRA the adapter (PEFT's layout) and a merged copy
// beside final/, written by rank 0.
template <class Trainer>
FinetuneResult finish_finetune(Trainer& trainer, FitResult fit, const std::string& base) {
    FinetuneResult result{std::move(fit), {}, {}};
    if (result.fit.interrupted) return result;
    const std::filesystem::path output(trainer.settings().run.output);
    auto& model = trainer.model();
    using Adapt = typename std::remove_cvref_t<decltype(model)>::ContainedType::Adaptation;
    if constexpr (!std::is_same_v<Adapt, Dense>) {
        result.adapter = output / "adapter";
        result.merged = output / "merged";
        if (trainer.group().rank() == 0) {
            StagedDirectory adapter(result.adapter);
            lora::save_adapter(model, adapter.path(), std::filesystem::absolute(base).string());
            adapter.commit();
            StagedDirectory merged(result.merged);
            io::save_model(lora::merged_copy(model), merged.path(), trainer.save_settings());
            merged.commit();
        }
        distributed::world().barrier("the barrier after writing the adapter");
    } else {
        result.merged = output / "final";
    }
    return result;
}

}  // namespace detail

// Fine-tunes Transformer<S, Adapt> (Dense for full fine-tuning, Lora<spec> for LoRA) from data.base.
template <ModelSpec S, class Adapt, class Optimizer = AdamW, class Schedule = CosineWarmup,
          class Precision = MixedPrecision>
FinetuneResult finetune(const FinetuneSettings<Optimizer, Schedule, Precision>& settings,
                        std::FILE* out = stdout) {
    if (distributed::environment().rank != 0) out = nullptr;  // rank 0 alone reports and writes
    data::PackedOptions options{.split = "train", .verify = settings.data.verify, .seed = settings.run.seed};
    if (!settings.data.tokenizer.empty())
        options.tokenizer_sha256 = tokenizer::Tokenizer::load(settings.data.tokenizer).sha256();
    const data::PackedDataset train(settings.data.dataset, options);
    if (!train.has_loss_mask())
        throw Error(settings.data.dataset + ": has no loss mask (pack instruction data with prepare_sft)");
    const auto validation = open_validation(settings.data.dataset, options, train, out);
    detail::check_data_fits<S>(train, settings.data.dataset, settings.data.base, "packed");

    using Model = Transformer<S, Adapt>;
    Model model = detail::load_start<S, Adapt>(settings.data.base);
    const std::int64_t trainable = model->trainable_parameter_count();
    Trainer<Model, Optimizer, Schedule, Precision> trainer(model, settings.trainer());
    if (out)
        std::fprintf(
            out,
            "%s\nbase %s; trainable parameters %lld of %lld (%.2f%%)\n"
            "data %s: %lld sequences of %lld tokens (%lld validation)\ndevice %s, %d threads, %s\n",
            model::describe<S>().c_str(), settings.data.base.c_str(), (long long)trainable,
            (long long)model->parameter_count(), 100.0 * double(trainable) / double(model->parameter_count()),
            settings.data.dataset.c_str(), (long long)train.size(), (long long)train.sequence_length(),
            (long long)(validation ? validation->size() : 0), trainer.device().str().c_str(),
            torch::get_num_threads(), Precision::describe(settings.precision, trainer.device()));
    if (out) std::fflush(out);
    return detail::finish_finetune(trainer, trainer.fit(train, validation ? &*validation : nullptr),
                                   settings.data.base);
}

}  // namespace lumi::train
