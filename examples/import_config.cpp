// Lumi-Lab's configuration files as a lumi pipeline settings file, every key accounted for:
//   lumi_import_config --config presets/import/lumi-lab.json --set original=Lumi-Lab/config --set recipe=tiny
//   \
//       --set output=presets/pipeline/tiny-lumi-lab.json --set mapping=tiny-mapping.md
//   lumi_pipeline_tiny --config presets/pipeline/tiny-lumi-lab.json
// Each key is mapped to a lumi field, checked against what lumi does, ignored (with the reason) or
// documentation; a key lumi cannot reproduce is an error unless `accept` lists it
// (docs/reproducing-lumi-lab.md).
#include <algorithm>
#include <iostream>
#include <map>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/files.hpp>
#include <lumi/pipeline/lumi_lab.hpp>

#include "stage_cli.hpp"

int main(int argc, char** argv) {
    namespace pipeline = lumi::pipeline;
    CLI::App app{"Import Lumi-Lab's configuration files as lumi pipeline settings"};
    lumi::stage::Cli cli(app, "lumi::pipeline::LumiLabImportSettings");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<pipeline::LumiLabImportSettings>()) return 0;
        const auto settings = cli.load<pipeline::LumiLabImportSettings>();
        if (cli.printed(settings)) return 0;
        if (settings.output.empty())
            throw lumi::Error("--set output=<file>: where to write the pipeline settings");
        const auto imported = pipeline::import_lumi_lab(settings);
        const std::string table = pipeline::mapping_markdown(imported.keys);
        if (settings.mapping.empty())
            std::cout << table << "\n";
        else
            lumi::write_file_atomic(settings.mapping, table);
        lumi::config::save(imported.settings, settings.output);

        std::map<pipeline::KeyUse, std::size_t> uses;
        for (const auto& key : imported.keys) ++uses[key.use];
        std::cout << imported.keys.size() << " keys:";
        for (const auto& [use, count] : uses)
            std::cout << " " << count << " " << lumi::config::enum_name(use);
        std::cout << "\n";
        const auto& s = imported.settings;
        std::cout << "preset " << imported.preset << ": " << s.corpus.sources.size() << " corpus sources, "
                  << s.sft_corpus.datasets.size() << " instruction datasets, " << s.dpo_corpus.datasets.size()
                  << " preference datasets\n"
                  << "pretraining " << s.pretrain.run.max_steps << " steps x " << s.pretrain.run.micro_batch
                  << " x " << s.pretrain.run.grad_accum << " x " << s.pack.sequence_length << " tokens\n";
        if (!settings.mapping.empty()) std::cout << "mapping " << settings.mapping.string() << "\n";
        std::cout << "wrote " << settings.output.string() << " (run it with lumi_pipeline_" << imported.preset
                  << " --config " << settings.output.string() << ")\n";
        if (settings.data == "{data}")
            std::cout
                << "the data paths start with {data}: replace it with your download folder, or import again "
                   "with --set data=<folder>\n";
        return 0;
    });
}
