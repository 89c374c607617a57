// Builds a pretraining corpus: reads the configured sources, cleans and deduplicates them, samples them to
// their budgets and writes JSON Lines shards with a manifest, a data card and the effective settings.
//   lumi_prepare_corpus --config examples/configs/corpus_demo.json --set output=runs/demo/corpus
//   lumi_prepare_corpus --config corpus.json --set budget.tokens=600000000 --set dedup.threshold=0.85
// examples/configs/corpus_demo.json reads text every Debian system has: the licence texts in
// /usr/share/common-licenses (package base-files, which is Essential) and each installed package's
// /usr/share/doc/<package>/copyright (kept even by Debian's slim container images), split at blank lines and
// mixed 1:1. Both are full of repeated licence paragraphs, so the demo shows deduplication at work.
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/data/corpus.hpp>

#include "stage_cli.hpp"

int main(int argc, char** argv) {
    CLI::App app{"Prepare a cleaned, deduplicated, budgeted text corpus as JSON Lines shards"};
    lumi::stage::Cli cli(app, "lumi::CorpusSettings");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<lumi::CorpusSettings>()) return 0;
        const auto settings = cli.load<lumi::CorpusSettings>();
        if (cli.printed(settings)) return 0;
        // The effective settings land next to the shards, as corpus_config.json, inside the same atomic
        // commit.
        const lumi::CorpusReport report = lumi::prepare_corpus(settings, &std::cout);
        std::cout << lumi::data::summary(report);
        return 0;
    });
}
