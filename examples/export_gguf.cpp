// Exports a lumi checkpoint and its tokenizer as one GGUF file that llama.cpp, ollama and LM Studio run.
//   lumi_export_gguf --set checkpoint=runs/x/sft/merged --set tokenizer=runs/x/tokenizer \
//                    --set output=runs/x/model-q8_0.gguf --set type=q8_0
//   llama-cli -m runs/x/model-q8_0.gguf -p "To be, or not to be"
#include <iomanip>
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/core/threads.hpp>
#include <lumi/io/gguf_export.hpp>

#include "stage_cli.hpp"

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{"Export a lumi checkpoint and its tokenizer as GGUF (llama.cpp's format)"};
    lumi::stage::Cli cli(app, "lumi::io::GgufExportSettings");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<lumi::io::GgufExportSettings>()) return 0;
        const auto settings = cli.load<lumi::io::GgufExportSettings>();
        if (cli.printed(settings)) return 0;
        const auto report = lumi::io::export_gguf(settings);
        const auto& s = report.spec;
        std::cout << "model " << s.n_layer << " layers, d_model " << s.d_model << ", " << s.n_head
                  << " heads (" << s.n_kv_head << " key/value), vocabulary " << s.vocab_size << ", context "
                  << s.context << "\ntokenizer as llama.cpp's '" << report.tokenizer_model
                  << "' vocabulary\n";
        for (const auto& name : report.kept_f16)
            std::cout << "kept as F16 (rows not whole Q8_0 blocks): " << name << "\n";
        std::cout << "wrote " << settings.output << ": " << report.tensors << " tensors, " << std::fixed
                  << std::setprecision(1) << double(report.bytes) / 1e6 << " MB ("
                  << lumi::config::enum_name(settings.type) << ")\n";
        return 0;
    });
}
