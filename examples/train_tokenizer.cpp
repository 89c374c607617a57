// Trains a SentencePiece tokenizer on a corpus directory (shard_*.jsonl) or text files, into a directory that
// lumi and Hugging Face's LlamaTokenizer both load.
//   lumi_train_tokenizer --config tokenizer.json
//   lumi_train_tokenizer --set input=runs/x/corpus --set output=runs/x/tokenizer --set vocab_size=32768
#include <algorithm>
#include <iomanip>
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/tokenizer/tokenizer.hpp>
#include <lumi/tokenizer/trainer.hpp>

#include "stage_cli.hpp"

namespace {

void print_summary(const lumi::tokenizer::TrainerSettings& settings,
                   const lumi::tokenizer::TrainingReport& report, const lumi::Tokenizer& tokenizer) {
    const auto& input = report.input;
    std::cout << "input: " << input.files << " files, " << input.documents << " documents, " << input.lines
              << " lines (" << input.skipped_long << " too long); trained on " << input.sentences
              << " lines, " << std::fixed << std::setprecision(1) << double(input.bytes) / 1e6 << " MB\n"
              << "vocab size " << tokenizer.vocab_size() << ": unk " << tokenizer.unk_id() << ", bos "
              << tokenizer.bos_id() << ", eos " << tokenizer.eos_id() << ", pad " << tokenizer.pad_id()
              << "\n";

    // Skip the special, byte and user-defined pieces that open the vocabulary: show what was learned.
    const auto& processor = tokenizer.processor();
    const auto& symbols = settings.user_defined_symbols;
    std::vector<std::string> learned;
    int bytes = 0;
    for (int id = 0; id < tokenizer.vocab_size(); ++id) {
        bytes += processor.IsByte(id);
        const std::string piece = tokenizer.id_to_piece(id);
        if (processor.IsControl(id) || processor.IsUnknown(id) || processor.IsByte(id) ||
            std::find(symbols.begin(), symbols.end(), piece) != symbols.end())
            continue;
        learned.push_back(piece);
    }
    std::cout << "pieces: " << symbols.size() << " user-defined, " << bytes << " bytes, " << learned.size()
              << " learned:";
    for (std::size_t i = 0; i < std::min<std::size_t>(learned.size(), 16); ++i)
        std::cout << " " << learned[i];
    std::cout << (learned.empty() ? "" : " ... " + learned.back()) << "\n";

    const std::string sample = "The quick brown fox jumps over the lazy dog in 2024.";
    std::cout << "\"" << sample << "\" ->";
    for (const int id : tokenizer.encode(sample)) std::cout << " " << tokenizer.id_to_piece(id);
    std::cout << "\nspm.model SHA-256 " << tokenizer.sha256() << "\nwritten to " << report.directory.string()
              << " in " << std::setprecision(2) << report.seconds << " s\n";
}

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{"Train a SentencePiece tokenizer (unigram or BPE) for lumi and transformers"};
    lumi::stage::Cli cli(app, "lumi::tokenizer::TrainerSettings");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<lumi::tokenizer::TrainerSettings>()) return 0;
        const auto settings = cli.load<lumi::tokenizer::TrainerSettings>();
        if (cli.printed(settings)) return 0;
        const auto report = lumi::tokenizer::train_tokenizer(settings);
        lumi::config::save(settings, report.directory / "train_tokenizer.json");
        print_summary(settings, report, lumi::Tokenizer::load(report.directory, report.sha256));
        return 0;
    });
}
