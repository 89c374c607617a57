// The data stages at scale: a synthetic corpus of LUMI_DATA_BENCH_MB megabytes (default 64; set it to 2048 or
// more for the figures in docs/performance.md) of varied documents, a tenth of them exact repeats and a tenth
// near copies so deduplication has work, as JSON Lines shards and (where Arrow is built in) Parquet. Each
// stage runs on 1 and 2 threads; counters: bytes_per_second (of input text) and peak_rss_MiB, the process's
// peak resident memory during the stage (reset before it through /proc/self/clear_refs), which the streaming
// stages keep bounded whatever the input size.
//   LUMI_DATA_BENCH_MB=2048 lumi_data_bench --benchmark_format=json --benchmark_out=data.json
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/json.hpp>

#include <lumi/core/files.hpp>
#include <lumi/data/corpus.hpp>
#include <lumi/data/pack.hpp>
#include <lumi/data/sft.hpp>
#include <lumi/tokenizer/tokenizer.hpp>
#include <lumi/tokenizer/trainer.hpp>

#if LUMI_HAS_PARQUET
#include <arrow/builder.h>
#include <arrow/io/file.h>
#include <parquet/arrow/writer.h>
#endif

namespace {

namespace fs = std::filesystem;
namespace data = lumi::data;

std::uint64_t megabytes() {
    const char* value = std::getenv("LUMI_DATA_BENCH_MB");
    return value && *value ? std::strtoull(value, nullptr, 10) : 64;
}

fs::path root() {
    return fs::temp_directory_path() / ("lumi_data_bench_" + std::to_string(megabytes()) + "mb");
}

// This process's peak resident memory (VmHWM: per address space, so a child's own since its exec), in MiB.
double own_peak_rss_mib() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
    return 0;
}

// Runs this binary again as `--stage <name> <threads> <file>` and returns the peak resident memory the child
// wrote to the file, in MiB (wait4's ru_maxrss would carry the parent's over the child's exec).
double run_child(const std::string& stage, std::int64_t threads) {
    const std::string self = fs::read_symlink("/proc/self/exe").string(), count = std::to_string(threads);
    const std::string report = (root() / ("peak_" + stage + "_" + count)).string();
    std::vector<char*> argv{const_cast<char*>(self.c_str()),   const_cast<char*>("--stage"),
                            const_cast<char*>(stage.c_str()),  const_cast<char*>(count.c_str()),
                            const_cast<char*>(report.c_str()), nullptr};
    pid_t pid = 0;
    if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
        throw lumi::Error("cannot start " + self);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw lumi::Error("the " + stage + " stage failed in its own process");
    return std::stod(lumi::read_file(report));
}

// Documents of 80 to 1,500 words from a Zipf-like vocabulary of 30,000 made-up words; every tenth document
// repeats an earlier one and every tenth (offset 5) copies one with a few words changed.
class Generator {
  public:
    Generator() : random_(0) {
        std::uniform_int_distribution<int> letter('a', 'z'), length(2, 10);
        for (int w = 0; w < 30'000; ++w) {
            std::string word;
            for (int c = length(random_); c > 0; --c) word += static_cast<char>(letter(random_));
            words_.push_back(word);
        }
    }

    std::string next() {
        const std::uint64_t n = count_++;
        if (n % 10 == 0 && !recent_.empty()) return recent_[random_() % recent_.size()];
        std::string text;
        if (n % 10 == 5 && !recent_.empty()) {
            text = recent_[random_() % recent_.size()];
            for (int edits = 3; edits > 0; --edits) text[random_() % text.size()] = ' ';
        } else {
            std::uniform_int_distribution<int> length(80, 1500);
            for (int w = length(random_); w > 0; --w) {
                // A product of uniforms: frequent words are far more frequent, as in text.
                const double u = std::generate_canonical<double, 32>(random_);
                text += words_[static_cast<std::size_t>(u * u * u * words_.size())];
                text += (w % 17 == 0) ? ". " : " ";
            }
        }
        if (recent_.size() < 2000)
            recent_.push_back(text);
        else
            recent_[random_() % recent_.size()] = text;
        return text;
    }

  private:
    std::mt19937_64 random_;
    std::vector<std::string> words_, recent_;
    std::uint64_t count_ = 0;
};

// The source corpus as JSON Lines shards of 64 MB (and Parquet where Arrow is built in), written once.
const fs::path& source() {
    static const fs::path dir = [] {
        const fs::path out = root() / "source";
        const fs::path done = out / "COMPLETE";
        if (fs::exists(done)) return out;
        fs::remove_all(out);
        fs::create_directories(out / "jsonl");
        Generator generator;
        const std::uint64_t target = megabytes() << 20;
        std::uint64_t written = 0;
        for (int shard = 0; written < target; ++shard) {
            std::string lines;
            std::vector<std::string> texts;
            while (lines.size() < (64u << 20) && written + lines.size() < target) {
                texts.push_back(generator.next());
                lines += boost::json::serialize(boost::json::object{{"text", texts.back()}}) + "\n";
            }
            char name[40];
            std::snprintf(name, sizeof(name), "part_%05d", shard);
            lumi::write_file_atomic(out / "jsonl" / (std::string(name) + ".jsonl"), lines);
            written += lines.size();
#if LUMI_HAS_PARQUET
            fs::create_directories(out / "parquet");
            arrow::StringBuilder builder;
            for (const std::string& text : texts) (void)builder.Append(text);
            std::shared_ptr<arrow::Array> column;
            (void)builder.Finish(&column);
            const auto table =
                arrow::Table::Make(arrow::schema({arrow::field("text", arrow::utf8())}), {column});
            auto file = arrow::io::FileOutputStream::Open(
                (out / "parquet" / (std::string(name) + ".parquet")).string());
            if (!file.ok() ||
                !parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), *file, 20'000).ok())
                throw lumi::Error("cannot write the Parquet source");
            (void)(*file)->Close();
#endif
        }
        lumi::write_file_atomic(done, "");
        return out;
    }();
    return dir;
}

std::uint64_t source_bytes(const std::string& format) {
    std::uint64_t bytes = 0;
    for (const auto& entry : fs::directory_iterator(source() / format)) bytes += entry.file_size();
    return bytes;
}

data::CorpusSettings corpus_settings(const std::string& format, std::uint32_t threads) {
    data::CorpusSettings settings;
    settings.output = root() / ("corpus_" + format + "_" + std::to_string(threads));
    data::CorpusSource corpus{.name = "synthetic", .paths = {source() / format}};
    corpus.license = "synthetic";
    settings.sources = {corpus};
    settings.threads = threads;
    settings.validate();
    return settings;
}

// The corpus stage's output on 2 threads, and a tokenizer trained on it: the packing stage's input.
const fs::path& corpus() {
    static const fs::path dir = [] {
        const auto settings = corpus_settings("jsonl", 2);
        if (!fs::exists(settings.output / "manifest.json")) data::prepare_corpus(settings);
        return settings.output;
    }();
    return dir;
}

const lumi::tokenizer::Tokenizer& tokenizer() {
    static const lumi::tokenizer::Tokenizer loaded = [] {
        lumi::tokenizer::TrainerSettings settings;
        settings.input = corpus();
        settings.output = root() / "tokenizer";
        settings.vocab_size = 4096;
        settings.input_sentence_size = 100'000;
        if (!fs::exists(settings.output / "tokenizer.model")) lumi::tokenizer::train_tokenizer(settings);
        return lumi::tokenizer::Tokenizer::load(settings.output);
    }();
    return loaded;
}

void report(benchmark::State& state, std::uint64_t bytes, double peak) {
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes * state.iterations()));
    state.counters["peak_rss_MiB"] = peak;
    state.counters["input_MiB"] = static_cast<double>(bytes) / (1 << 20);
}

std::uint64_t run_corpus(const std::string& format, std::uint32_t threads) {
    return data::prepare_corpus(corpus_settings(format, threads)).records;
}

std::uint64_t run_pack(std::uint32_t threads) {
    const auto& tok = tokenizer();
    data::PackSettings settings;
    settings.corpus = corpus();
    settings.output = root() / ("packed_" + std::to_string(threads));
    settings.sequence_length = 1025;
    settings.threads = threads;
    return data::pack_dataset(
               settings, [&](std::string_view text) { return tok.encode(text); }, data::tokenizer_info(tok))
        .text_bytes;
}

void corpus_stage(benchmark::State& state, const std::string& format) {
    const std::uint64_t bytes = source_bytes(format);
    double peak = 0;
    for (auto _ : state) peak = std::max(peak, run_child("corpus_" + format, state.range(0)));
    report(state, bytes, peak);
}

void pack_stage(benchmark::State& state) {
    tokenizer();  // made here, not timed
    std::uint64_t bytes = 0;
    for (const auto& entry : fs::directory_iterator(corpus()))
        if (entry.path().extension() == ".jsonl") bytes += entry.file_size();
    double peak = 0;
    for (auto _ : state) peak = std::max(peak, run_child("pack", state.range(0)));
    report(state, bytes, peak);
}

// Instructions made from the corpus's documents: an eighth of its size, Alpaca's format.
const fs::path& instructions() {
    static const fs::path file = [] {
        const fs::path out = root() / "instructions.jsonl";
        if (fs::exists(out)) return out;
        Generator generator;
        std::string lines;
        for (std::uint64_t target = megabytes() << 17; lines.size() < target;) {
            const std::string text = generator.next();
            const std::size_t cut = text.find(' ', text.size() / 4);
            lines +=
                boost::json::serialize(boost::json::object{
                    {"instruction", text.substr(0, cut)}, {"input", ""}, {"output", text.substr(cut + 1)}}) +
                "\n";
        }
        lumi::write_file_atomic(out, lines);
        return out;
    }();
    return file;
}

std::uint64_t run_sft(std::uint32_t threads) {
    const auto& tok = tokenizer();
    data::SftSettings settings;
    settings.datasets = {{.path = instructions()}};
    settings.output = root() / ("sft_" + std::to_string(threads));
    settings.sequence_length = 1024;
    settings.threads = threads;
    return data::prepare_sft(
               settings, [&](std::string_view text) { return tok.encode(text); }, data::tokenizer_info(tok))
        .text_bytes;
}

void sft_stage(benchmark::State& state) {
    tokenizer();
    const std::uint64_t bytes = fs::file_size(instructions());
    double peak = 0;
    for (auto _ : state) peak = std::max(peak, run_child("sft", state.range(0)));
    report(state, bytes, peak);
}

}  // namespace

// The resident memory of this binary doing nothing (its libraries, LibTorch's the most): the floor of every
// stage's peak_rss_MiB.
void process_baseline(benchmark::State& state) {
    double peak = 0;
    for (auto _ : state) peak = std::max(peak, run_child("none", 1));
    state.counters["peak_rss_MiB"] = peak;
}
BENCHMARK(process_baseline)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK_CAPTURE(corpus_stage, jsonl, std::string("jsonl"))
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();
#if LUMI_HAS_PARQUET
BENCHMARK_CAPTURE(corpus_stage, parquet, std::string("parquet"))
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();
#endif
BENCHMARK(pack_stage)->Arg(1)->Arg(2)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(sft_stage)->Arg(1)->Arg(2)->Unit(benchmark::kSecond)->UseRealTime();

// `--stage <none|corpus_jsonl|corpus_parquet|pack|sft> <threads> <file>`: one stage, in this process
// (run_child's).
int main(int argc, char** argv) {
    if (argc == 5 && std::string(argv[1]) == "--stage") {
        const std::string stage = argv[2];
        const auto threads = static_cast<std::uint32_t>(std::stoul(argv[3]));
        try {
            if (stage == "pack")
                run_pack(threads);
            else if (stage == "sft")
                run_sft(threads);
            else if (stage != "none")
                run_corpus(stage.substr(stage.find('_') + 1), threads);
            lumi::write_file_atomic(argv[4], std::to_string(own_peak_rss_mib()));
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s\n", e.what());
            return 1;
        }
        return 0;
    }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
