// Builds a preference set for DPO: reads HH-RLHF transcripts, prompt/chosen/rejected pairs or TRL's message
// lists (JSON or JSON lines, gzip or zstd), renders them with the SFT chat template, tokenises, truncates,
// drops identical and duplicate pairs and writes train/val shards with a manifest.
//   lumi_prepare_dpo --set 'datasets=[{"path": "harmless-base-test.jsonl.gz"}]' --set
//   tokenizer=runs/x/tokenizer \
//                    --set output=runs/x/dpo --set chat_template=instruct
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/data/preference.hpp>
#include <lumi/tokenizer/tokenizer.hpp>

#include "stage_cli.hpp"

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{"Prepare preference pairs for DPO"};
    lumi::stage::Cli cli(app, "lumi::data::PreferenceSettings");
    return lumi::stage::main(app, argc, argv, [&] {
        using Settings = lumi::data::PreferenceSettings;
        if (cli.described<Settings>()) return 0;
        const auto settings = cli.load<Settings>();
        if (cli.printed(settings)) return 0;
        if (settings.datasets.empty())
            throw lumi::config::FieldError("datasets", "must list at least one dataset");
        const auto tokenizer = lumi::tokenizer::Tokenizer::load(settings.tokenizer);
        const auto encode = [&tokenizer](std::string_view text) { return tokenizer.encode(text); };
        const auto report =
            lumi::data::prepare_preferences(settings, encode, lumi::data::tokenizer_info(tokenizer), true);
        const auto& m = report.manifest;
        for (const auto& d : m.datasets)
            std::cout << d.path << " (" << lumi::config::enum_name(d.format) << "): " << d.records
                      << " records, " << d.pairs << " pairs, " << d.skipped_malformed << " malformed, "
                      << d.empty << " empty; " << d.train_pairs << " train, " << d.val_pairs << " val\n";
        for (const auto* split : {&m.train, &m.val})
            std::cout << (split == &m.train ? "train " : "val   ") << split->pairs << " pairs: prompts "
                      << split->prompt_tokens << " tokens, chosen " << split->chosen_tokens << ", rejected "
                      << split->rejected_tokens << "\n";
        std::cout << "dropped " << m.dropped.identical << " identical and " << m.dropped.duplicate
                  << " duplicate pairs; truncated " << m.dropped.truncated_prompts << " prompts and "
                  << m.dropped.truncated_responses << " responses (rows of " << settings.sequence_length
                  << " tokens, prompts of at most " << settings.max_prompt_tokens << ")\n"
                  << "written to " << settings.output.string() << " in " << report.seconds << " s\n";
        return 0;
    });
}
