// Tokenisation throughput (MB/s of UTF-8 text) of Tokenizer::encode_batch on WikiText-2's validation split,
// with 1 and 2 threads. A tokenizer (unigram, 2000 pieces) is trained once at start-up on 2 MB of Shakespeare
// and WikiText-2's test split. Data: $LUMI_SHARED_DATA, else ../shared/data next to the source tree, else the
// test fixtures (tests/data/fixtures: slices of both, WikiText-2's test slice also encoded).
#include <benchmark/benchmark.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <lumi/tokenizer/tokenizer.hpp>
#include <lumi/tokenizer/trainer.hpp>

namespace {

namespace fs = std::filesystem;

fs::path data_dir() {
    if (const char* dir = std::getenv("LUMI_SHARED_DATA")) return dir;
    return LUMI_SHARED_DATA_DEFAULT;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(line);
    return lines;
}

// A tokenizer trained in a temporary directory, removed at exit, and the text to encode.
struct Fixture {
    std::optional<lumi::Tokenizer> tokenizer;
    std::vector<std::string> lines;
    std::size_t bytes = 0;
    std::string error;
    fs::path root;

    Fixture() {
        const fs::path data = data_dir();
        // Without the whole data sets, the slices committed as test fixtures (a smaller corpus).
        const bool shared =
            fs::exists(data / "wikitext-2/valid.txt") && fs::exists(data / "shakespeare/input.txt");
        const fs::path fixtures = LUMI_FIXTURES_DIR;
        const fs::path corpus_a = shared ? data / "shakespeare/input.txt" : fixtures / "shakespeare.txt";
        const fs::path corpus_b = shared ? data / "wikitext-2/test.txt" : fixtures / "wikitext-2-test.txt";
        const fs::path encoded = shared ? data / "wikitext-2/valid.txt" : fixtures / "wikitext-2-test.txt";
        if (!fs::exists(corpus_a) || !fs::exists(corpus_b)) {
            error = "no shared data in " + data.string() + " (set LUMI_SHARED_DATA) and no fixtures in " +
                    fixtures.string();
            return;
        }
        root = fs::temp_directory_path() / ("lumi_tokenizer_bench_" + std::to_string(::getpid()));
        std::string text = lumi::read_file(corpus_a) + lumi::read_file(corpus_b);
        lumi::write_file_atomic(root / "corpus/train.txt", text.substr(0, text.rfind('\n', 2'000'000) + 1));

        lumi::tokenizer::TrainerSettings settings;
        settings.input = root / "corpus";
        settings.output = root / "tokenizer";
        settings.vocab_size = 2000;
        tokenizer = lumi::Tokenizer::load(lumi::tokenizer::train_tokenizer(settings).directory);
        lines = lines_of(lumi::read_file(encoded));
        for (const auto& line : lines) bytes += line.size();
    }
    ~Fixture() {
        std::error_code ignored;
        if (!root.empty()) fs::remove_all(root, ignored);
    }
};

const Fixture& fixture() {
    static const Fixture instance;
    return instance;
}

void BM_EncodeBatch(benchmark::State& state) {
    const Fixture& f = fixture();
    if (!f.tokenizer) {
        state.SkipWithError(f.error.c_str());
        return;
    }
    const auto threads = static_cast<std::size_t>(state.range(0));
    std::size_t tokens = 0;
    for (auto _ : state) {
        const auto ids = f.tokenizer->encode_batch(f.lines, threads);
        tokens = 0;
        for (const auto& line : ids) tokens += line.size();
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.bytes));
    state.counters["tokens/s"] =
        benchmark::Counter(double(tokens) * double(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["bytes/token"] = double(f.bytes) / double(tokens);
}
BENCHMARK(BM_EncodeBatch)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Decode(benchmark::State& state) {
    const Fixture& f = fixture();
    if (!f.tokenizer) {
        state.SkipWithError(f.error.c_str());
        return;
    }
    const auto ids = f.tokenizer->encode_batch(f.lines);
    for (auto _ : state)
        for (const auto& line : ids) benchmark::DoNotOptimize(f.tokenizer->decode(line));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.bytes));
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
