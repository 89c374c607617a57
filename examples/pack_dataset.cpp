// Tokenises a corpus (shard_*.jsonl) and packs it into fixed-length train/val token sequences, binary shards
// read back through lumi::data::PackedDataset.
//   lumi_pack_dataset --set corpus=runs/x/corpus --set tokenizer=runs/x/tokenizer --set output=runs/x/packed
//   lumi_pack_dataset --config pack.json --set sequence_length=512
#include <iomanip>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/data/pack.hpp>
#include <lumi/tokenizer/tokenizer.hpp>

#include "stage_cli.hpp"

namespace {

void print_split(const char* name, const lumi::data::SplitReport& split) {
    std::uint64_t bytes = 0;
    for (const auto& shard : split.shards) bytes += shard.bytes;
    std::cout << std::left << std::setw(6) << name << std::right << std::setw(10) << split.documents
              << " documents " << std::setw(9) << split.sequences << " sequences " << std::setw(12)
              << split.tokens << " tokens " << std::setw(8) << split.dropped_tail_tokens << " dropped (tail) "
              << split.shards.size() << " shards, " << std::fixed << std::setprecision(1)
              << double(bytes) / 1e6 << " MB\n";
}

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{"Pack a tokenised corpus into fixed-length sequences (train/val binary shards)"};
    lumi::stage::Cli cli(app, "lumi::data::PackSettings");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<lumi::data::PackSettings>()) return 0;
        const auto settings = cli.load<lumi::data::PackSettings>();
        if (cli.printed(settings)) return 0;
        const auto tokenizer = lumi::tokenizer::Tokenizer::load(settings.tokenizer);
        const auto encode = [&tokenizer](std::string_view text) { return tokenizer.encode(text); };
        // The effective settings are written inside the output directory (config.json), with the manifest.
        const auto report =
            lumi::data::pack_dataset(settings, encode, lumi::data::tokenizer_info(tokenizer), true);

        std::cout << "tokenizer " << tokenizer.sha256() << " (vocabulary " << tokenizer.vocab_size() << ")\n"
                  << "corpus " << report.files << " files, " << std::fixed << std::setprecision(1)
                  << double(report.text_bytes) / 1e6 << " MB of text, " << report.skipped_lines
                  << " malformed lines skipped, " << report.empty_documents << " empty documents\n";
        print_split("train", report.train);
        print_split("val", report.val);
        const std::uint64_t tokens = report.train.tokens + report.val.tokens;
        const std::uint64_t kept_and_dropped =
            tokens + report.train.dropped_tail_tokens + report.val.dropped_tail_tokens;
        std::cout << "sequences of " << settings.sequence_length << " tokens, "
                  << (report.train.sequences + report.val.sequences) << " in all; efficiency "
                  << std::setprecision(2)
                  << (kept_and_dropped ? 100.0 * double(tokens) / double(kept_and_dropped) : 0.0)
                  << "% of the tokens kept\n"
                  << std::setprecision(1) << report.megabytes_per_second() << " MB/s of text, "
                  << std::setprecision(0) << double(tokens) / report.seconds << " tokens/s, "
                  << std::setprecision(2) << report.seconds << " s; written to " << settings.output.string()
                  << "\n";
        return 0;
    });
}
