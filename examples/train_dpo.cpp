// Preference optimisation (DPO, or IPO with loss=ipo) of a fine-tuned preset on prepare_dpo pairs, with LoRA
// (the reference is the same weights with the adapters off) or every weight (a frozen copy); the trainer's
// checkpoints, resume, signals and metrics (TRL's names) as for SFT.
//   lumi_train_dpo_nano --config presets/dpo/nano.json --set data.base=runs/nano/sft_train/merged
#include <cmath>
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/presets.hpp>
#include <lumi/train/dpo.hpp>

#include "stage_cli.hpp"

namespace {

using lumi::stage::spec;
constexpr lumi::LoraSpec adapter = lumi::presets::LUMI_CONCAT(LUMI_PRESET, _lora);
using lumi::stage::preset_name;
using Settings = lumi::train::DpoStageSettings<>;

template <class Loss>
lumi::train::FinetuneResult train(const Settings& settings) {
    return settings.method == lumi::train::FinetuneMethod::lora
               ? lumi::train::train_dpo<spec, lumi::Lora<adapter>, Loss>(settings)
               : lumi::train::train_dpo<spec, lumi::Dense, Loss>(settings);
}

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{std::string("Preference-optimise the '") + preset_name + "' preset (DPO)"};
    lumi::stage::Cli cli(app, "lumi::train::DpoStageSettings<>");
    bool resume = false;
    app.add_flag("--resume", resume, "continue from the newest checkpoint in run.output");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<Settings>()) return 0;
        auto settings = cli.load<Settings>();
        if (resume) settings.run.resume = "latest";
        cli.check_preset(settings.preset, preset_name, "train_dpo");
        if (cli.printed(settings)) return 0;
        const auto result = settings.loss == lumi::train::DpoLoss::ipo ? train<lumi::IpoLoss>(settings)
                                                                       : train<lumi::SigmoidLoss>(settings);
        std::cout << (result.fit.interrupted ? "interrupted" : "finished") << " after " << result.fit.steps
                  << " steps; training loss " << result.fit.train_loss;
        if (!std::isnan(result.fit.val_loss)) std::cout << ", validation loss " << result.fit.val_loss;
        std::cout << "\n";
        for (const auto& [name, value] : result.fit.val_metrics)
            std::cout << "validation " << name << " " << value << "\n";
        if (!result.adapter.empty()) std::cout << "adapter " << result.adapter.string() << "\n";
        if (!result.merged.empty()) std::cout << "merged model " << result.merged.string() << "\n";
        return lumi::train::exit_status(result.fit.signal);
    });
}
