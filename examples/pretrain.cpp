// Stage 05: pretrains one preset on a packed dataset, with checkpoints that resume exactly.
//   lumi_pretrain_nano --config presets/pretrain/nano.json --set data.dataset=runs/packed
// lumi_add_trainer(name PRESET p STAGE pretrain) compiles this file for preset p (LUMI_PRESET).
#include <cmath>
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/presets.hpp>
#include <lumi/train/pretrain.hpp>

#ifndef LUMI_PRESET
#define LUMI_PRESET nano
#endif
#define LUMI_STRINGIFY_(x) #x
#define LUMI_STRINGIFY(x) LUMI_STRINGIFY_(x)

namespace {

constexpr lumi::ModelSpec spec = lumi::presets::LUMI_PRESET;
constexpr const char* preset_name = LUMI_STRINGIFY(LUMI_PRESET);
using Settings = lumi::train::PretrainSettings<>;

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{std::string("Pretrain the '") + preset_name + "' preset"};
    std::optional<std::string> config;
    std::vector<std::string> sets;
    bool resume = false, print_config = false;
    app.add_option("--config", config, "JSON settings file");
    app.add_option("--set", sets, "override a setting: key=value (repeatable)");
    app.add_flag("--resume", resume, "continue from the newest checkpoint in run.output");
    app.add_flag("--print-config", print_config, "print the effective settings and exit");
    CLI11_PARSE(app, argc, argv);
    try {
        auto settings = lumi::config::load<Settings>(config, sets);
        if (resume) settings.run.resume = "latest";
        if (!settings.preset.empty() && settings.preset != preset_name)
            throw lumi::Error((config ? *config : std::string("--set")) + ": preset is '" + settings.preset +
                              "' but this binary was compiled for '" + preset_name +
                              "' (build lumi_pretrain_" + settings.preset + ")");
        if (print_config) {
            std::cout << lumi::config::format_json(lumi::config::to_json(settings));
            return 0;
        }
        const auto result = lumi::train::pretrain<spec>(settings);
        std::cout << (result.interrupted ? "interrupted" : "finished") << " after " << result.steps
                  << " steps, " << result.tokens << " tokens; training loss " << result.train_loss;
        if (!std::isnan(result.val_loss))
            std::cout << ", validation loss " << result.val_loss << " (perplexity "
                      << std::exp(result.val_loss) << ")";
        std::cout << "\ncheckpoint " << result.checkpoint.string() << "\n";
    } catch (const lumi::Error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 2;
    }
}
