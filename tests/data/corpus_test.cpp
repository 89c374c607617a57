#include <unistd.h>

// prepare_corpus end to end: budgets, cleaning, deduplication, determinism, compressed sources, bad input.
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <zlib.h>
#include <zstd.h>
#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/sha256.hpp"
#include "lumi/data/corpus.hpp"
#include "test_data.hpp"

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace lumi::data;

namespace {

const fs::path shakespeare = lumi::test::fixture("shakespeare.txt");
const fs::path wikitext = lumi::test::fixture("wikitext-2-test.txt");

fs::path fresh_directory(const std::string& name) {
    const fs::path dir =
        fs::temp_directory_path() / ("lumi_corpus_test_" + std::to_string(::getpid())) / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::string gzip_bytes(std::string_view text) {
    z_stream z{};
    EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&z, text.size()) + 32, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    z.avail_in = static_cast<uInt>(text.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

std::string zstd_bytes(std::string_view text) {
    std::string out(ZSTD_compressBound(text.size()), '\0');
    const std::size_t size = ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3);
    EXPECT_FALSE(ZSTD_isError(size));
    out.resize(size);
    return out;
}

// `count` made-up words from a vocabulary of 5,000, one sentence per ten words.
std::vector<std::string> random_words(std::size_t count, std::uint64_t seed) {
    std::mt19937_64 random(seed);
    std::vector<std::string> words;
    for (std::size_t i = 0; i < count; ++i) {
        std::string word = "w";
        for (std::uint64_t id = random() % 5000; id > 0; id /= 26) word += static_cast<char>('a' + id % 26);
        words.push_back(word + (i % 10 == 9 ? "." : ""));
    }
    return words;
}

std::string join(const std::vector<std::string>& words) {
    std::string text;
    for (const auto& word : words) text += (text.empty() ? "" : " ") + word;
    return text;
}

std::string random_text(std::size_t words, std::uint64_t seed) {
    return join(random_words(words, seed));
}

CorpusSource source(std::string name, std::vector<fs::path> paths, TextUnit unit = TextUnit::paragraph) {
    return CorpusSource{.name = std::move(name), .paths = std::move(paths), .unit = unit};
}

CorpusSettings settings_for(const fs::path& output, std::vector<CorpusSource> sources) {
    CorpusSettings settings;
    settings.output = output;
    settings.sources = std::move(sources);
    settings.threads = 2;
    settings.validate();
    return settings;
}

json::object read_manifest(const fs::path& dir) {
    return lumi::config::read_json_file(dir / "manifest.json").as_object();
}

std::uint64_t number(const json::value& value) {
    return value.to_number<std::uint64_t>();
}

std::string all_shard_bytes(const fs::path& dir) {
    std::string bytes;
    const json::object manifest = read_manifest(dir);
    for (const auto& shard : manifest.at("shards").as_array())
        bytes += lumi::read_file(dir / std::string(shard.at("file").as_string()));
    return bytes;
}

// Every document's text, in shard order; each line must be exactly {"text": string}.
std::vector<std::string> shard_texts(const fs::path& dir) {
    std::vector<std::string> texts;
    const std::string bytes = all_shard_bytes(dir);
    for (std::size_t begin = 0; begin < bytes.size();) {
        const std::size_t end = bytes.find('\n', begin);
        const json::object line = json::parse(bytes.substr(begin, end - begin)).as_object();
        EXPECT_EQ(line.size(), 1u);
        texts.emplace_back(line.at("text").as_string());
        begin = end + 1;
    }
    return texts;
}

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const lumi::Error& error) {
        return error.what();
    }
    return "no error";
}

bool contains(const std::vector<std::string>& texts, const std::string& text) {
    return std::find(texts.begin(), texts.end(), text) != texts.end();
}

void expect_within(double value, double target, double tolerance) {
    EXPECT_LE(std::abs(value - target), tolerance * target) << value << " vs " << target;
}

// Weighted 70/30 mix of Shakespeare and WikiText paragraphs.
CorpusSettings fixture_mix(const fs::path& output, std::uint64_t characters) {
    CorpusSource plays = source("shakespeare", {shakespeare});
    CorpusSource wiki = source("wikitext", {wikitext});
    plays.weight = 0.7;
    wiki.weight = 0.3;
    CorpusSettings settings = settings_for(output, {plays, wiki});
    settings.budget.characters = characters;
    settings.shards.max_documents = 200;
    return settings;
}

TEST(PrepareCorpus, HonoursWeightsOfACharacterBudgetWithinOnePercent) {
    const fs::path out = fresh_directory("weights") / "corpus";
    const CorpusReport report = prepare_corpus(fixture_mix(out, 100'000));
    expect_within(static_cast<double>(report.characters), 100'000, 0.01);
    expect_within(static_cast<double>(report.sources[0].characters), 70'000, 0.01);
    expect_within(static_cast<double>(report.sources[1].characters), 30'000, 0.01);
    EXPECT_EQ(report.sources[0].target_characters, 70'000u);
    EXPECT_GT(report.sources[0].not_sampled, 0u);
    EXPECT_EQ(report.shards.size(), (report.documents + 199) / 200);
    EXPECT_GT(report.sentences, report.documents);
    EXPECT_EQ(report.estimated_tokens, static_cast<std::uint64_t>(std::llround(report.characters / 4.0)));
}

TEST(PrepareCorpus, TokenBudgetsCountCharactersPerToken) {
    const fs::path out = fresh_directory("tokens") / "corpus";
    CorpusSource wiki = source("wikitext", {wikitext});
    wiki.tokens = 25'000;
    CorpusSettings settings = settings_for(out, {wiki});
    settings.budget.chars_per_token = 3.5;
    const CorpusReport report = prepare_corpus(settings);
    expect_within(static_cast<double>(report.estimated_tokens), 25'000, 0.01);
    expect_within(static_cast<double>(report.characters), 25'000 * 3.5, 0.01);
    EXPECT_EQ(read_manifest(out).at("token_estimate").at("chars_per_token").as_double(), 3.5);
}

TEST(PrepareCorpus, WeightsWithoutABudgetGiveTheLargestMixInThoseProportions) {
    const fs::path dir = fresh_directory("proportional");
    std::string small;
    for (int i = 0; i < 40; ++i) small += random_text(150, 100 + i) + "\n\n";
    lumi::write_file_atomic(dir / "small.txt", small);
    CorpusSource plays = source("shakespeare", {shakespeare});
    CorpusSource generated = source("generated", {dir / "small.txt"});
    plays.weight = 2.0;
    generated.weight = 1.0;
    const CorpusReport report = prepare_corpus(settings_for(dir / "corpus", {plays, generated}));
    EXPECT_EQ(report.sources[1].documents, 40u);  // the scarcer source is used whole
    expect_within(static_cast<double>(report.sources[0].characters), 2.0 * report.sources[1].characters,
                  0.01);
}

TEST(PrepareCorpus, DropsExactAndNearDuplicatesAcrossFilesAndSources) {
    const fs::path dir = fresh_directory("dedup");
    auto words = random_words(200, 1);
    const std::string original = join(words);
    words[120] = "different";
    const std::string one_word_changed = join(words);
    const std::string unrelated = random_text(200, 2);
    lumi::write_file_atomic(dir / "a" / "1.txt", original + "\n\n" + unrelated + "\n");
    lumi::write_file_atomic(dir / "a" / "2.txt", one_word_changed + "\n\n" + original + "\n");
    lumi::write_file_atomic(dir / "b.txt", original + "\n");
    CorpusSettings settings =
        settings_for(dir / "corpus", {source("a", {dir / "a"}), source("b", {dir / "b.txt"})});
    const CorpusReport report = prepare_corpus(settings);
    EXPECT_EQ(report.sources[0].documents, 2u);
    EXPECT_EQ(report.sources[0].exact_duplicates, 1u);
    EXPECT_EQ(report.sources[0].near_duplicates, 1u);
    EXPECT_EQ(report.sources[1].exact_duplicates, 1u);
    EXPECT_EQ(report.sources[1].documents, 0u);
    const auto texts = shard_texts(settings.output);
    EXPECT_TRUE(contains(texts, original));
    EXPECT_TRUE(contains(texts, unrelated));
    EXPECT_FALSE(contains(texts, one_word_changed));

    // A file per batch: the indexes carry over, so the same documents are duplicates.
    settings.output = dir / "batched";
    settings.batch_bytes = 1;
    const CorpusReport batched = prepare_corpus(settings);
    EXPECT_EQ(batched.sources[0].exact_duplicates, 1u);
    EXPECT_EQ(batched.sources[0].near_duplicates, 1u);
    EXPECT_EQ(batched.sources[1].exact_duplicates, 1u);
    EXPECT_EQ(all_shard_bytes(dir / "batched"), all_shard_bytes(dir / "corpus"));

    // A near-duplicate index with room for one document still compares with it, and says it is full.
    settings.output = dir / "bounded";
    settings.dedup.exact = false;
    const NearDuplicateIndex empty(128, 0.8);
    settings.dedup.max_index_bytes = empty.bytes() + empty.bytes_per_document();
    const CorpusReport bounded = prepare_corpus(settings);
    EXPECT_EQ(bounded.sources[0].near_duplicates, 2u);  // the edit and the repeat, of the first document
    ASSERT_EQ(bounded.warnings.size(), 1u);
    EXPECT_NE(bounded.warnings[0].find("the near-duplicate index reached dedup.max_index_bytes"),
              std::string::npos);
    EXPECT_EQ(bounded.sources[1].near_duplicates, 1u);
    settings.dedup.exact = true;
    settings.dedup.max_index_bytes = 1ULL << 30;
    settings.output = dir / "corpus";

    settings.dedup.threshold = 0.99;  // the edit (Jaccard about 0.95) no longer counts as a duplicate
    EXPECT_EQ(prepare_corpus(settings).sources[0].near_duplicates, 0u);
    settings.dedup.exact = false;
    settings.dedup.near = false;
    EXPECT_EQ(prepare_corpus(settings).documents, 5u);
}

TEST(PrepareCorpus, AppliesNfkcAndWhitespaceNormalisation) {
    const fs::path dir = fresh_directory("nfkc");
    lumi::write_file_atomic(
        dir / "a.txt",
        "  \xEF\xBC\xA6\xEF\xBD\x95\xEF\xBD\x8C\xEF\xBD\x8C\xEF\xBC\x8D\xEF\xBD\x97\xEF\xBD\x89"
        "\xEF\xBD\x84\xEF\xBD\x94\xEF\xBD\x88  letters\t and the \xEF\xAC\x81 ligature,\r\n\r\n\r\n"
        "then   more words for the length filter.  \n");
    const CorpusSettings settings =
        settings_for(dir / "corpus", {source("a", {dir / "a.txt"}, TextUnit::file)});
    prepare_corpus(settings);
    EXPECT_EQ(shard_texts(settings.output),
              std::vector<std::string>{
                  "Full-width letters and the fi ligature,\n\nthen more words for the length filter."});
}

TEST(PrepareCorpus, RepairsAndCountsInvalidUtf8OrDropsIt) {
    const fs::path dir = fresh_directory("utf8");
    lumi::write_file_atomic(dir / "bad.txt",
                            "This document has a bad byte \xFF here and a cut sequence \xE2\x82 there.");
    lumi::write_file_atomic(dir / "good.jsonl", "{\"text\": \"" + random_text(20, 3) + "\"}\n");
    CorpusSettings settings = settings_for(dir / "corpus", {source("bad", {dir / "bad.txt"}, TextUnit::file),
                                                            source("good", {dir / "good.jsonl"})});
    CorpusReport report = prepare_corpus(settings);
    EXPECT_EQ(report.sources[0].repaired_documents, 1u);
    EXPECT_EQ(report.sources[0].replaced_sequences, 2u);
    EXPECT_TRUE(
        contains(shard_texts(settings.output),
                 "This document has a bad byte \xEF\xBF\xBD here and a cut sequence \xEF\xBF\xBD there."));
    EXPECT_EQ(number(read_manifest(settings.output).at("sources").at(0).at("replaced_sequences")), 2u);

    settings.clean.invalid_utf8 = InvalidUtf8::drop;
    report = prepare_corpus(settings);
    EXPECT_EQ(report.sources[0].dropped.invalid_utf8, 1u);
    EXPECT_EQ(report.sources[0].documents, 0u);
    EXPECT_EQ(report.documents, 1u);
}

TEST(PrepareCorpus, FiltersByLengthInCodePoints) {
    const fs::path dir = fresh_directory("length");
    std::string text = "short one\n\n" + random_text(30, 4) + "\n\n" + random_text(3000, 5) + "\n\n";
    text += "\xC3\xA9" + std::string(48, 'e') + "\n";  // 49 characters in 50 bytes: too short
    lumi::write_file_atomic(dir / "a.txt", text);
    CorpusSettings settings = settings_for(dir / "corpus", {source("a", {dir / "a.txt"})});
    CorpusReport report = prepare_corpus(settings);
    EXPECT_EQ(report.sources[0].dropped.too_short, 2u);
    EXPECT_EQ(report.sources[0].dropped.too_long, 1u);
    EXPECT_EQ(report.documents, 1u);
    settings.clean.min_characters = 5;
    settings.clean.max_characters = 100'000;
    report = prepare_corpus(settings);
    EXPECT_EQ(report.documents, 4u);
}

TEST(PrepareCorpus, SameSeedSameShardsOnOneOrTwoThreads) {
    const fs::path dir = fresh_directory("determinism");
    CorpusSettings settings = fixture_mix(dir / "one", 100'000);
    settings.threads = 1;
    prepare_corpus(settings);
    settings.output = dir / "two";
    settings.threads = 2;
    prepare_corpus(settings);
    settings.output = dir / "again";
    prepare_corpus(settings);
    const std::string bytes = all_shard_bytes(dir / "one");
    EXPECT_GT(bytes.size(), 100'000u);
    EXPECT_EQ(bytes, all_shard_bytes(dir / "two"));
    EXPECT_EQ(bytes, all_shard_bytes(dir / "again"));
    EXPECT_EQ(read_manifest(dir / "one").at("shards"), read_manifest(dir / "two").at("shards"));
    settings.output = dir / "other_seed";
    settings.seed = 1;
    prepare_corpus(settings);
    EXPECT_NE(bytes, all_shard_bytes(dir / "other_seed"));
}

TEST(PrepareCorpus, ReadsGzipAndZstdSources) {
    const fs::path dir = fresh_directory("compressed");
    std::vector<std::string> texts;
    for (int i = 0; i < 6; ++i) texts.push_back(random_text(25, 10 + i));
    auto line = [&](int i) {
        return "{\"id\": " + std::to_string(i) + ", \"text\": \"" + texts[i] + "\"}\n";
    };
    lumi::write_file_atomic(dir / "json" / "a.jsonl", line(0));
    lumi::write_file_atomic(dir / "json" / "b.jsonl.gz", gzip_bytes(line(1) + line(2)));
    lumi::write_file_atomic(dir / "json" / "c.jsonl.zst", zstd_bytes(line(3)));
    lumi::write_file_atomic(dir / "d.txt.gz", gzip_bytes(texts[4] + "\n"));
    lumi::write_file_atomic(dir / "e.txt.zst", zstd_bytes(texts[5] + "\n"));
    CorpusSettings settings =
        settings_for(dir / "corpus",
                     {source("json", {dir / "json"}), source("text", {dir / "d.txt.gz", dir / "e.txt.zst"})});
    settings.shuffle = false;
    prepare_corpus(settings);
    EXPECT_EQ(shard_texts(settings.output), texts);
}

TEST(PrepareCorpus, WritesShardsOfTheConfiguredSize) {
    const fs::path dir = fresh_directory("shards");
    std::string text;
    for (int i = 0; i < 20; ++i) text += random_text(20, 200 + i) + "\n\n";
    lumi::write_file_atomic(dir / "a.txt", text);
    CorpusSettings settings = settings_for(dir / "corpus", {source("a", {dir / "a.txt"})});
    settings.shards.max_documents = 7;
    CorpusReport report = prepare_corpus(settings);
    ASSERT_EQ(report.shards.size(), 3u);
    EXPECT_EQ(report.shards[2].file, "shard_00002.jsonl");
    EXPECT_EQ(report.shards[0].documents + report.shards[1].documents, 14u);
    EXPECT_EQ(report.shards[2].documents, 6u);
    settings.shards = {.max_documents = 0, .max_bytes = 500};
    report = prepare_corpus(settings);
    EXPECT_GT(report.shards.size(), 3u);
    for (const auto& shard : report.shards) EXPECT_LE(fs::file_size(settings.output / shard.file), 500u);
}

TEST(PrepareCorpus, ManifestCountsAddUpAndShardHashesMatch) {
    const fs::path dir = fresh_directory("manifest");
    const std::string repeated = random_text(60, 7);
    std::string jsonl;
    for (int i = 0; i < 30; ++i) jsonl += "{\"text\": \"" + random_text(40, 300 + i) + "\"}\n";
    jsonl += "{\"text\": \"" + repeated + "\"}\n{\"text\": \"" + repeated + "\"}\n{\"text\": \"tiny\"}\n";
    jsonl += "{\"text\": 5}\n{broken\n{\"text\": \"bad \xFF " + random_text(20, 8) + "\"}\n";
    lumi::write_file_atomic(dir / "a.jsonl", jsonl);
    CorpusSource a = source("a", {dir / "a.jsonl"});
    a.characters = 3'000;
    a.license = "CC0-1.0";
    CorpusSettings settings = settings_for(dir / "corpus", {a, source("plays", {shakespeare})});
    settings.errors.malformed_records = OnError::skip;
    settings.clean.max_characters = 2'000;
    prepare_corpus(settings);

    const json::object manifest = read_manifest(settings.output);
    std::uint64_t documents = 0, characters = 0;
    for (const auto& value : manifest.at("sources").as_array()) {
        const json::object& s = value.as_object();
        std::uint64_t dropped = 0;
        for (const auto& [reason, count] : s.at("dropped").as_object()) dropped += number(count);
        const std::uint64_t duplicates =
            number(s.at("duplicates").at("exact")) + number(s.at("duplicates").at("near"));
        EXPECT_EQ(number(s.at("records")),
                  number(s.at("documents")) + dropped + duplicates + number(s.at("not_sampled")))
            << s.at("name");
        EXPECT_EQ(number(s.at("available_documents")),
                  number(s.at("documents")) + number(s.at("not_sampled")));
        documents += number(s.at("documents"));
        characters += number(s.at("characters"));
    }
    const json::object& a_stats = manifest.at("sources").at(0).as_object();
    EXPECT_EQ(number(a_stats.at("records")), 36u);
    EXPECT_EQ(number(a_stats.at("dropped").at("malformed_record")), 1u);
    EXPECT_EQ(number(a_stats.at("dropped").at("missing_field")), 1u);
    EXPECT_EQ(number(a_stats.at("dropped").at("too_short")), 1u);
    EXPECT_EQ(number(a_stats.at("duplicates").at("exact")), 1u);
    EXPECT_EQ(number(a_stats.at("repaired_documents")), 1u);
    EXPECT_EQ(a_stats.at("license").as_string(), "CC0-1.0");
    EXPECT_EQ(a_stats.at("problems").as_array().size(), 2u);
    EXPECT_LE(number(a_stats.at("characters")), 3'000u);
    EXPECT_EQ(number(manifest.at("documents")), documents);
    EXPECT_EQ(number(manifest.at("characters")), characters);

    std::uint64_t shard_documents = 0;
    for (const auto& shard : manifest.at("shards").as_array()) {
        const fs::path file = settings.output / std::string(shard.at("file").as_string());
        EXPECT_EQ(shard.at("sha256").as_string(), lumi::sha256_file(file));
        EXPECT_EQ(number(shard.at("bytes")), fs::file_size(file));
        shard_documents += number(shard.at("documents"));
    }
    EXPECT_EQ(shard_documents, documents);
    EXPECT_EQ(shard_texts(settings.output).size(), documents);

    const std::string card = lumi::read_file(settings.output / "DATA_CARD.md");
    EXPECT_NE(card.find("| a | CC0-1.0 |"), std::string::npos);
    EXPECT_NE(card.find("NFKC"), std::string::npos);
    const auto reloaded = lumi::config::load<CorpusSettings>(settings.output / "corpus_config.json");
    EXPECT_EQ(lumi::config::to_json(reloaded), lumi::config::to_json(settings));
    EXPECT_EQ(manifest.at("settings"), lumi::config::to_json(settings));
}

TEST(PrepareCorpus, BadJsonLinesNameTheFileAndLineOrAreCountedWhenSkipped) {
    const fs::path dir = fresh_directory("bad_json");
    const std::string good = "{\"text\": \"" + random_text(20, 9) + "\"}\n";
    lumi::write_file_atomic(dir / "malformed.jsonl", good + good + "{\"text\": \"no end\n");
    lumi::write_file_atomic(dir / "missing.jsonl", good + "{\"body\": \"x\"}\n");
    CorpusSettings settings = settings_for(dir / "corpus", {source("malformed", {dir / "malformed.jsonl"})});
    std::string message = error_of([&] { prepare_corpus(settings); });
    EXPECT_NE(message.find("source 'malformed': "), std::string::npos) << message;
    EXPECT_NE(message.find("malformed.jsonl:3: invalid JSON"), std::string::npos) << message;

    settings.sources = {source("missing", {dir / "missing.jsonl"})};
    message = error_of([&] { prepare_corpus(settings); });
    EXPECT_NE(message.find("missing.jsonl:2: no \"text\" field"), std::string::npos) << message;
    EXPECT_FALSE(fs::exists(settings.output));
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}), 2);  // no staging left

    settings.sources[0].text_field = "body";
    message = error_of([&] { prepare_corpus(settings); });
    EXPECT_NE(message.find("missing.jsonl:1: no \"body\" field"), std::string::npos) << message;

    settings.sources = {source("malformed", {dir / "malformed.jsonl"}),
                        source("missing", {dir / "missing.jsonl"})};
    settings.errors.malformed_records = OnError::skip;
    const CorpusReport report = prepare_corpus(settings);
    EXPECT_EQ(report.sources[0].dropped.malformed_record, 1u);
    EXPECT_EQ(report.sources[1].dropped.missing_field, 1u);
    EXPECT_EQ(report.sources[1].problems.size(), 1u);
}

TEST(PrepareCorpus, CorruptCompressedFilesNameTheFileAndOffsetOrAreSkipped) {
    const fs::path dir = fresh_directory("corrupt");
    const std::string text = random_text(50, 11) + "\n";
    std::string gz = gzip_bytes(text), zst = zstd_bytes(text);
    lumi::write_file_atomic(dir / "ok.txt", random_text(30, 12));
    std::string bad_method = gz;
    bad_method[2] = 7;  // deflate is method 8
    lumi::write_file_atomic(dir / "method.txt.gz", bad_method);
    lumi::write_file_atomic(dir / "cut.txt.gz", gz.substr(0, gz.size() - 12));
    lumi::write_file_atomic(dir / "magic.txt.zst", "\x01" + zst.substr(1));
    lumi::write_file_atomic(dir / "cut.txt.zst", zst.substr(0, zst.size() - 5));
    auto run = [&](const std::string& name) {
        return error_of([&] { prepare_corpus(settings_for(dir / "corpus", {source("s", {dir / name})})); });
    };
    std::string message = run("method.txt.gz");
    EXPECT_NE(message.find("method.txt.gz: corrupt gzip data at compressed byte"), std::string::npos)
        << message;
    message = run("cut.txt.gz");
    EXPECT_NE(message.find("cut.txt.gz: truncated gzip data"), std::string::npos) << message;
    message = run("magic.txt.zst");
    EXPECT_NE(message.find("magic.txt.zst: corrupt zstd data at compressed byte 0"), std::string::npos)
        << message;
    message = run("cut.txt.zst");
    EXPECT_NE(message.find("cut.txt.zst: truncated zstd data"), std::string::npos) << message;
    EXPECT_FALSE(fs::exists(dir / "corpus"));

    CorpusSettings settings = settings_for(dir / "corpus", {source("s", {dir})});
    settings.sources[0].match = {"*.gz", "*.zst", "ok.txt"};
    settings.errors.bad_files = OnError::skip;
    const CorpusReport report = prepare_corpus(settings);
    EXPECT_EQ(report.sources[0].skipped_files, 4u);
    EXPECT_EQ(report.sources[0].files, 1u);
    EXPECT_EQ(report.documents, 1u);
}

TEST(PrepareCorpus, MissingAndEmptySourcesAreErrorsUnlessSkipped) {
    const fs::path dir = fresh_directory("empty");
    fs::create_directories(dir / "nothing");
    lumi::write_file_atomic(dir / "ok.txt", random_text(30, 13));
    CorpusSettings settings = settings_for(
        dir / "corpus", {source("ok", {dir / "ok.txt"}), source("gone", {dir / "no_such_file.txt"})});
    std::string message = error_of([&] { prepare_corpus(settings); });
    EXPECT_NE(
        message.find("source 'gone': " + (dir / "no_such_file.txt").string() + ": cannot read the source"),
        std::string::npos)
        << message;
    settings.errors.bad_files = OnError::skip;
    message = error_of([&] { prepare_corpus(settings); });
    EXPECT_NE(message.find("source 'gone': no documents in"), std::string::npos) << message;
    settings.errors.empty_sources = OnError::skip;
    EXPECT_EQ(prepare_corpus(settings).sources[1].skipped_files, 1u);

    settings.sources[1] = source("nothing", {dir / "nothing"});
    settings.errors.empty_sources = OnError::fail;
    message = error_of([&] { prepare_corpus(settings); });
    EXPECT_NE(message.find("source 'nothing': no documents in " + (dir / "nothing").string()),
              std::string::npos)
        << message;
}

TEST(PrepareCorpus, AnUnreachableBudgetFailsOrWarnsAndKeepsTheOldOutput) {
    const fs::path dir = fresh_directory("budget");
    lumi::write_file_atomic(dir / "a.txt", random_text(100, 14) + "\n\n" + random_text(100, 15));
    CorpusSource a = source("small", {dir / "a.txt"});
    CorpusSettings settings = settings_for(dir / "corpus", {a});
    prepare_corpus(settings);
    const std::string before = lumi::read_file(dir / "corpus" / "manifest.json");

    settings.sources[0].characters = 1'000'000;
    const std::string message = error_of([&] { prepare_corpus(settings); });
    EXPECT_NE(
        message.find(
            "source 'small': cannot meet its budget of 1,000,000 characters (250,000 estimated tokens)"),
        std::string::npos)
        << message;
    EXPECT_EQ(lumi::read_file(dir / "corpus" / "manifest.json"), before);

    settings.budget.on_shortfall = Shortfall::warn;
    const CorpusReport report = prepare_corpus(settings);
    EXPECT_EQ(report.documents, 2u);
    const json::object manifest = read_manifest(settings.output);
    EXPECT_EQ(number(manifest.at("sources").at(0).at("shortfall_characters")), 1'000'000 - report.characters);
    EXPECT_NE(std::string(manifest.at("warnings").at(0).as_string()).find("cannot meet"), std::string::npos);
}

TEST(CorpusSettingsFile, ValidationNamesTheField) {
    const fs::path dir = fresh_directory("settings");
    auto load_error = [&](const std::string& text) {
        lumi::write_file_atomic(dir / "c.json", text);
        return error_of([&] { lumi::config::load<CorpusSettings>(dir / "c.json"); });
    };
    EXPECT_NE(load_error(R"({"sources": []})").find("sources: list at least one source"), std::string::npos);
    EXPECT_NE(load_error(R"({"sources": [{"paths": ["x"], "weight": -1}]})")
                  .find("sources[0].weight: must be a finite number >= 0"),
              std::string::npos);
    EXPECT_NE(
        load_error(
            R"({"sources": [{"paths": ["x"]}], "clean": {"min_characters": 500, "max_characters": 100}})")
            .find("clean.min_characters: must not exceed max_characters (100)"),
        std::string::npos);
    EXPECT_NE(load_error(R"({"sources": [{"paths": ["x"]}], "budget": {"tokens": 1000}})")
                  .find("budget: a corpus budget is shared by the sources with a weight"),
              std::string::npos);
    EXPECT_NE(
        load_error(R"({"sources": [{"paths": ["x"], "unit": "sentence"}]})").find("unknown value 'sentence'"),
        std::string::npos);
    EXPECT_NE(
        load_error(R"({"sources": [{"paths": ["x"], "weight": 1, "tokens": 5}]})").find("sources[0].weight"),
        std::string::npos);
    EXPECT_NE(load_error(R"({"sources": [{"paths": ["x"]}], "dedup": {"threshold": 1.5}})")
                  .find("dedup.threshold: must be in (0, 1]"),
              std::string::npos);

    const auto demo =
        lumi::config::load<CorpusSettings>(fs::path(LUMI_SOURCE_DIR) / "examples/configs/corpus_demo.json");
    ASSERT_EQ(demo.sources.size(), 2u);
    EXPECT_EQ(demo.sources[0].unit, TextUnit::paragraph);
}

}  // namespace
