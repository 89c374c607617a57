// Stage 05: pretrains one preset on a packed dataset, with checkpoints that resume exactly.
//   lumi_pretrain_nano --config presets/pretrain/nano.json --set data.dataset=runs/packed
//   lumi_pretrain_nano --config presets/pretrain/nano-muon.json     (recipe muon_wsd)
// lumi_add_trainer(name PRESET p STAGE pretrain) compiles this file for preset p (LUMI_PRESET).
#include <cmath>
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/presets.hpp>
#include <lumi/train/pretrain.hpp>

#include "stage_cli.hpp"

namespace {

using lumi::stage::preset_name;
using lumi::stage::spec;

template <class Optimizer, class Schedule>
int run(const lumi::stage::Cli& cli, bool resume) {
    using Settings = lumi::train::PretrainSettings<Optimizer, Schedule>;
    if (cli.described<Settings>()) return 0;
    auto settings = cli.load<Settings>();
    if (resume) settings.run.resume = "latest";
    cli.check_preset(settings.preset, preset_name, "pretrain");
    if (cli.printed(settings)) return 0;
    const auto result = lumi::train::pretrain<spec>(settings);
    std::cout << (result.interrupted ? "interrupted" : "finished") << " after " << result.steps << " steps, "
              << result.tokens << " tokens; training loss " << result.train_loss;
    if (!std::isnan(result.val_loss))
        std::cout << ", validation loss " << result.val_loss << " (perplexity " << std::exp(result.val_loss)
                  << ")";
    std::cout << "\ncheckpoint " << result.checkpoint.string() << "\n";
    return lumi::train::exit_status(result.signal);
}

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{std::string("Pretrain the '") + preset_name + "' preset"};
    lumi::stage::Cli cli(app, "lumi::train::PretrainSettings<Optimizer, Schedule> of its recipe");
    bool resume = false;
    app.add_flag("--resume", resume, "continue from the newest checkpoint in run.output");
    return lumi::stage::main(app, argc, argv, [&] {
        // The recipe (lumi::train::recipes) types the optimizer and schedule sections: read it first.
        const auto recipe = cli.peek("recipe", "adamw_cosine");
        int status = 2;
        const bool known = lumi::train::visit_recipe(recipe.value, [&]<class Optimizer, class Schedule>() {
            status = run<Optimizer, Schedule>(cli, resume);
        });
        if (!known)
            throw lumi::config::ConfigError(recipe.origin, "recipe",
                                            lumi::train::unknown_recipe(recipe.value));
        return status;
    });
}
