// Builds the instruction-tuning set: reads Alpaca / Dolly / OpenAssistant / ShareGPT files, applies the chat
// template, tokenises with a loss mask on the responses and packs several examples per sequence.
//   lumi_prepare_sft --set 'datasets=[{"path": "alpaca.json"}]' --set tokenizer=runs/x/tokenizer \
//                    --set output=runs/x/sft --set chat_template=instruct
#include <iomanip>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/data/sft.hpp>
#include <lumi/tokenizer/tokenizer.hpp>

#include "stage_cli.hpp"

namespace {

void print_split(const char* name, const lumi::data::SftSplitReport& report) {
    std::cout << std::left << std::setw(6) << name << std::right << std::setw(9) << report.split.documents
              << " examples " << std::setw(8) << report.split.sequences << " sequences " << std::setw(11)
              << report.split.tokens << " tokens (" << report.content_tokens << " not padding, "
              << report.loss_tokens << " trained on), packing efficiency " << std::fixed
              << std::setprecision(2) << 100.0 * report.efficiency << "%\n";
}

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{"Prepare a packed instruction-tuning set with loss masks"};
    lumi::stage::Cli cli(app, "lumi::data::SftSettings");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<lumi::data::SftSettings>()) return 0;
        const auto settings = cli.load<lumi::data::SftSettings>();
        if (cli.printed(settings)) return 0;
        const auto tokenizer = lumi::tokenizer::Tokenizer::load(settings.tokenizer);
        const auto encode = [&tokenizer](std::string_view text) { return tokenizer.encode(text); };
        // The effective settings are written inside the output directory (config.json), with the manifest.
        const auto report =
            lumi::data::prepare_sft(settings, encode, lumi::data::tokenizer_info(tokenizer), true);

        for (const auto& d : report.datasets)
            std::cout << d.path << " (" << lumi::config::enum_name(d.format) << "): " << d.records
                      << " records, " << d.conversations << " conversations, " << d.skipped << " malformed, "
                      << d.empty << " empty; " << d.train_examples << " train (" << d.train_tokens
                      << " tokens, " << d.over_budget << " over budget), " << d.val_examples << " val\n";
        print_split("train", report.train);
        print_split("val", report.val);
        std::cout << "template " << lumi::config::enum_name(settings.chat_template) << ", sequences of "
                  << settings.sequence_length << " tokens (" << lumi::config::enum_name(settings.packing)
                  << "), " << report.truncated << " examples truncated, " << report.dropped_no_loss
                  << " dropped\npacking efficiency " << std::setprecision(2) << 100.0 * report.efficiency()
                  << "%\n"
                  << std::setprecision(1) << report.megabytes_per_second() << " MB/s of text, "
                  << std::setprecision(2) << report.seconds << " s; written to " << settings.output.string()
                  << "\n";
        return 0;
    });
}
