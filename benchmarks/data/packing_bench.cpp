// Packing throughput with a trivial byte encoder (the tokenizer's own speed is in lumi_tokenizer_bench), so
// the figure is the packer's: reading JSON lines, splitting, cutting and writing shards. Then the reader:
// PackedDataset batches, the shard checksum and SFT best-fit packing.
//   lumi_packing_bench --benchmark_format=json --benchmark_out=packing.json
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/json.hpp>

#include <lumi/core/files.hpp>
#include <lumi/core/sha256.hpp>
#include <lumi/data/pack.hpp>
#include <lumi/data/packed.hpp>
#include <lumi/data/sft.hpp>

namespace {

namespace fs = std::filesystem;
namespace data = lumi::data;

std::vector<int> byte_encode(std::string_view text) {
    std::vector<int> ids(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]) + 3;
    return ids;
}

const data::TokenizerInfo byte_tokenizer{lumi::sha256_hex("byte tokenizer"), 259, 2, 0};

fs::path bench_directory() {
    return fs::temp_directory_path() / "lumi_packing_bench";
}

// About 8 MB of text in 4,000 documents over 4 shards, written once.
const fs::path& corpus() {
    static const fs::path dir = [] {
        const fs::path out = bench_directory() / "corpus";
        fs::remove_all(out);
        std::mt19937 random(0);
        std::uniform_int_distribution<int> letter('a', 'z'), word(2, 9), words(100, 700);
        for (int shard = 0; shard < 4; ++shard) {
            std::string lines;
            for (int d = 0; d < 1000; ++d) {
                std::string text;
                for (int w = words(random); w > 0; --w) {
                    for (int c = word(random); c > 0; --c) text += static_cast<char>(letter(random));
                    text += ' ';
                }
                lines += boost::json::serialize(boost::json::object{{"text", text}}) + "\n";
            }
            char name[32];
            std::snprintf(name, sizeof(name), "shard_%05d.jsonl", shard);
            lumi::write_file_atomic(out / name, lines);
        }
        return out;
    }();
    return dir;
}

data::PackSettings pack_settings(std::uint32_t threads) {
    data::PackSettings settings;
    settings.corpus = corpus();
    settings.output = bench_directory() / ("packed_" + std::to_string(threads));
    settings.sequence_length = 512;
    settings.threads = threads;
    return settings;
}

void pack_dataset_byte_encoder(benchmark::State& state) {
    const auto settings = pack_settings(static_cast<std::uint32_t>(state.range(0)));
    std::uint64_t bytes = 0, tokens = 0;
    for (auto _ : state) {
        const auto report = data::pack_dataset(settings, byte_encode, byte_tokenizer);
        bytes += report.text_bytes;
        tokens += report.train.tokens + report.val.tokens;
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    state.SetItemsProcessed(static_cast<std::int64_t>(tokens));
}
BENCHMARK(pack_dataset_byte_encoder)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Random batches of [B, 512] int64 tokens from the memory-mapped shards.
void packed_dataset_batch(benchmark::State& state) {
    static const fs::path packed = [] {
        const auto settings = pack_settings(2);
        data::pack_dataset(settings, byte_encode, byte_tokenizer);
        return settings.output;
    }();
    const data::PackedDataset dataset(packed);
    const auto order = dataset.order(0);
    const auto batch = static_cast<std::size_t>(state.range(0));
    std::size_t at = 0;
    for (auto _ : state) {
        if (at + batch > order.size()) at = 0;
        benchmark::DoNotOptimize(dataset.batch(std::span(order).subspan(at, batch)));
        at += batch;
    }
    const auto tokens = static_cast<std::int64_t>(state.iterations() * batch) * dataset.sequence_length();
    state.SetItemsProcessed(tokens);
    state.SetBytesProcessed(tokens * dataset.token_bytes());
}
BENCHMARK(packed_dataset_batch)->ArgName("batch")->Arg(8)->Arg(64);

// The payload checksum that verify reads every shard with.
void shard_checksum(benchmark::State& state) {
    const std::string payload(16 << 20, 'x');
    for (auto _ : state) benchmark::DoNotOptimize(data::xxh64(payload));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * payload.size()));
}
BENCHMARK(shard_checksum)->Unit(benchmark::kMillisecond);

// The token-id bound check every PackedDataset runs at open: one pass over the ids (16 Mi 2-byte ids).
void token_id_check(benchmark::State& state) {
    std::vector<std::uint16_t> ids(16u << 20);
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::uint16_t>((i * 2654435761u) % 4096);
    const auto* bytes = reinterpret_cast<const unsigned char*>(ids.data());
    for (auto _ : state) benchmark::DoNotOptimize(data::max_token_id<std::uint16_t>(bytes, ids.size()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * ids.size()));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * ids.size() * 2));
}
BENCHMARK(token_id_check)->Unit(benchmark::kMillisecond);

// Opening the packed benchmark dataset: headers, then the token-id check over every shard.
void packed_dataset_open(benchmark::State& state) {
    static const fs::path packed = [] {
        const auto settings = pack_settings(2);
        data::pack_dataset(settings, byte_encode, byte_tokenizer);
        return settings.output;
    }();
    std::int64_t tokens = 0;
    for (auto _ : state) {
        const data::PackedDataset dataset(packed);
        tokens += dataset.size() * dataset.sequence_length();
    }
    state.SetItemsProcessed(tokens);
}
BENCHMARK(packed_dataset_open)->Unit(benchmark::kMillisecond);

// Best-fit decreasing over instruction-sized examples (lengths 20..600) into sequences of 1024.
void sft_best_fit(benchmark::State& state) {
    std::mt19937 random(1);
    std::uniform_int_distribution<std::size_t> length(20, 600);
    std::vector<std::size_t> lengths(static_cast<std::size_t>(state.range(0)));
    for (auto& l : lengths) l = length(random);
    double efficiency = 0;
    for (auto _ : state) {
        const auto bins = data::pack_examples(lengths, 1024, data::PackingAlgorithm::best_fit_decreasing);
        efficiency = data::packing_efficiency(lengths, bins, 1024);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * lengths.size()));
    state.counters["efficiency"] = efficiency;
}
BENCHMARK(sft_best_fit)->ArgName("examples")->Arg(50'000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
