// The whole pipeline in one command: corpus, tokenizer, packing, pretraining, evaluation, instruction corpus,
// LoRA fine-tuning, evaluation and generations into one run directory, then report.md.
//   lumi_pipeline_nano                                   # the embedded default: presets/pipeline/nano.json
//   lumi_pipeline_nano --config presets/pipeline/smoke.json --run runs/smoke   # every stage, in seconds
//   lumi_pipeline_nano --set pretrain.run.max_steps=900  # re-runs pretraining and what follows
// lumi_add_trainer(name PRESET p STAGE pipeline) compiles this file for preset p (LUMI_PRESET).
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/pipeline/pipeline.hpp>
#include <lumi/presets.hpp>

#include "stage_cli.hpp"

namespace {

using lumi::stage::spec;
constexpr lumi::LoraSpec adapter = lumi::presets::LUMI_CONCAT(LUMI_PRESET, _lora);
using lumi::stage::preset_name;

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    namespace pipeline = lumi::pipeline;
    CLI::App app{std::string("Run lumi's whole pipeline for the '") + preset_name + "' preset"};
    lumi::stage::Cli cli(app, "lumi::pipeline::PipelineSettings; default: the embedded nano settings");
    std::optional<std::string> run;
    std::string from, only;
    bool list = false;
    app.add_option("--run", run, std::string("run directory (default runs/") + preset_name + ")");
    app.add_option("--from", from, "re-run this stage and every later one");
    app.add_option("--only", only, "run this stage alone");
    app.add_flag("--list", list, "print the stages and exit");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<pipeline::PipelineSettings>()) return 0;
        if (list) {
            for (const auto& s : pipeline::stages)
                std::cout << s.directory << "  " << s.name << ": " << s.description << "\n";
            return 0;
        }
        const auto settings = cli.load<pipeline::PipelineSettings>();
        if (cli.printed(settings)) return 0;
        const auto result = pipeline::run_pipeline<spec, adapter>(
            settings, {.run = run ? *run : std::string("runs/") + preset_name,
                       .from = from,
                       .only = only,
                       .preset = preset_name,
                       .presets_dir = LUMI_PRESETS_DIR,
                       .binary = std::string("lumi_pipeline_") + preset_name,
                       .arguments = std::vector<std::string>(argv + 1, argv + argc)});
        std::cout << "done: " << result.report.string() << "\n";
        return 0;
    });
}
