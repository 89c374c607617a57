// Stage 07b: supervised fine-tuning of a pretrained preset on packed instruction data, with LoRA (the
// preset's LoraSpec) or every weight (method=full); same checkpoints, resume and signals as pretraining.
//   lumi_train_sft_nano --config presets/sft/nano.json --set data.base=runs/nano/pretrain/final
#include <cmath>
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/presets.hpp>
#include <lumi/train/finetune.hpp>

#include "stage_cli.hpp"

namespace {

using lumi::stage::spec;
constexpr lumi::LoraSpec adapter = lumi::presets::LUMI_CONCAT(LUMI_PRESET, _lora);
using lumi::stage::preset_name;
using Settings = lumi::train::FinetuneSettings<>;

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{std::string("Fine-tune the '") + preset_name + "' preset on instruction data"};
    lumi::stage::Cli cli(app, "lumi::train::FinetuneSettings<>");
    bool resume = false;
    app.add_flag("--resume", resume, "continue from the newest checkpoint in run.output");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<Settings>()) return 0;
        auto settings = cli.load<Settings>();
        if (resume) settings.run.resume = "latest";
        cli.check_preset(settings.preset, preset_name, "train_sft");
        if (cli.printed(settings)) return 0;
        const auto result = settings.method == lumi::train::FinetuneMethod::lora
                                ? lumi::train::finetune<spec, lumi::Lora<adapter>>(settings)
                                : lumi::train::finetune<spec, lumi::Dense>(settings);
        std::cout << (result.fit.interrupted ? "interrupted" : "finished") << " after " << result.fit.steps
                  << " steps; training loss " << result.fit.train_loss;
        if (!std::isnan(result.fit.val_loss)) std::cout << ", validation loss " << result.fit.val_loss;
        std::cout << "\n";
        if (!result.adapter.empty()) std::cout << "adapter " << result.adapter.string() << "\n";
        if (!result.merged.empty()) std::cout << "merged model " << result.merged.string() << "\n";
        return lumi::train::exit_status(result.fit.signal);
    });
}
