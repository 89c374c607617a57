// Parquet sources, on files pyarrow wrote (write_parquet.py, run by CTest before these tests): each reads as
// its JSON Lines twin through the corpus, instruction and preference stages, and damaged input is an error
// naming the file, row group and column.
#include <filesystem>
#include <string>
#include <vector>

#include "lumi/core/files.hpp"
#include "lumi/data/corpus.hpp"
#include "lumi/data/preference.hpp"
#include "lumi/data/sft.hpp"
#include "packing_test_util.hpp"
#include "test_errors.hpp"

namespace fs = std::filesystem;
using namespace lumi::data;
using lumi::test::error_of;

namespace {

fs::path written(const std::string& name) {
    return fs::path(LUMI_PARQUET_FIXTURES) / name;
}

std::vector<std::string> texts(const FileRecords& file) {
    std::vector<std::string> out;
    for (const Record& record : file.records) out.push_back(record.text);
    return out;
}

std::string describe(const Conversation& c) {
    std::string out = c.context;
    for (const Turn& t : c.turns) out += "|" + t.prompt + "=>" + t.response;
    return out;
}

std::vector<std::string> describe(const SftReadResult& result) {
    std::vector<std::string> out;
    for (const Conversation& c : result.conversations) out.push_back(describe(c));
    return out;
}

std::vector<std::string> describe(const PreferenceRead& result) {
    std::vector<std::string> out;
    for (const PreferencePair& p : result.pairs)
        out.push_back(describe(p.prompt) + "+" + p.chosen + "-" + p.rejected);
    return out;
}

}  // namespace

TEST(Parquet, TextColumnReadsAsItsJsonLinesTwinByRowGroup) {
    ReadOptions options;
    options.skip_malformed = true;
    const FileRecords parquet = read_records(written("corpus.parquet"), options);
    const FileRecords jsonl = read_records(written("corpus.jsonl"));
    ASSERT_EQ(parquet.records.size(), 49u);  // 50 rows in 4 row groups, one text null
    EXPECT_EQ(texts(parquet), texts(jsonl));
    EXPECT_EQ(parquet.missing_field, 1u);
    EXPECT_EQ(parquet.records[16].line, 17u);  // rows keep their numbers, from 1
    EXPECT_EQ(parquet.records[17].line, 19u);
    EXPECT_EQ(parquet.records[0].invalid_utf8, 0u);
    ASSERT_EQ(parquet.problems.size(), 1u);
    EXPECT_CONTAINS(parquet.problems[0], "corpus.parquet: row 18 (row group 1): the \"text\" cell is null");
}

TEST(Parquet, CorpusStageReadsAFolderOfShardsAsTheJsonLinesSource) {
    const fs::path dir = lumi::test::fresh_directory("parquet_corpus");
    auto run = [&](const std::string& name, CorpusSource source) {
        CorpusSettings settings;
        settings.output = dir / name;
        settings.sources = {std::move(source)};
        settings.clean.min_characters = 10;
        settings.dedup.near = false;
        settings.threads = 2;
        settings.validate();
        return prepare_corpus(settings);
    };
    const CorpusReport parquet = run("parquet", CorpusSource{.name = "shards",
                                                             .paths = {written("corpus_shards")},
                                                             .match = {"*.parquet"},
                                                             .format = SourceFormat::parquet,
                                                             .text_field = "content"});
    const CorpusReport jsonl =
        run("jsonl", CorpusSource{.name = "shards", .paths = {written("corpus.jsonl")}});
    EXPECT_EQ(parquet.sources[0].files, 2u);
    EXPECT_EQ(parquet.documents, 49u);
    EXPECT_EQ(parquet.documents, jsonl.documents);
    EXPECT_EQ(parquet.characters, jsonl.characters);
    EXPECT_EQ(lumi::read_file(dir / "parquet" / "shard_00000.jsonl"),
              lumi::read_file(dir / "jsonl" / "shard_00000.jsonl"));
}

TEST(Parquet, TheCorpusIsTheSameForAnyBatchSize) {
    const fs::path dir = lumi::test::fresh_directory("parquet_batches");
    auto run = [&](const std::string& name, std::uint64_t batch_bytes) {
        CorpusSettings settings;
        settings.output = dir / name;
        settings.sources = {CorpusSource{.name = "duplicates", .paths = {written("duplicates.parquet")}}};
        settings.batch_bytes = batch_bytes;
        settings.threads = 2;
        settings.validate();
        return prepare_corpus(settings);
    };
    const CorpusReport whole = run("whole", 1 << 28);
    const CorpusReport batched = run("batched", 1000);  // a few rows at a time
    EXPECT_EQ(whole.records, 300u);
    EXPECT_GT(whole.sources[0].exact_duplicates, 100u);
    EXPECT_GT(whole.sources[0].near_duplicates, 10u);
    EXPECT_EQ(batched.sources[0].exact_duplicates, whole.sources[0].exact_duplicates);
    EXPECT_EQ(batched.sources[0].near_duplicates, whole.sources[0].near_duplicates);
    EXPECT_EQ(batched.documents, whole.documents);
    ASSERT_EQ(batched.shards.size(), whole.shards.size());
    EXPECT_EQ(batched.shards[0].sha256, whole.shards[0].sha256);
    EXPECT_FALSE(fs::exists(dir / "batched" / ".kept_texts"));  // the scratch file stays out of the output
}

TEST(Parquet, InstructionDatasetsReadAsTheirJsonLinesTwins) {
    for (const std::string name : {"orca", "sharegpt", "oasst"}) {
        const SftReadResult parquet = read_sft_dataset({.path = written(name + ".parquet")});
        const SftReadResult jsonl = read_sft_dataset({.path = written(name + ".jsonl")});
        EXPECT_EQ(parquet.format, jsonl.format) << name;
        EXPECT_EQ(parquet.records, jsonl.records) << name;
        EXPECT_FALSE(parquet.conversations.empty()) << name;
        EXPECT_EQ(describe(parquet), describe(jsonl)) << name;
        EXPECT_CONTAINS(parquet.conversations.front().origin, name + ".parquet: row 1 (row group 0)");
    }
    const SftReadResult orca = read_sft_dataset({.path = written("orca.parquet")});
    EXPECT_EQ(orca.format, SftFormat::orca);
    EXPECT_EQ(describe(orca.conversations[1]),
              "You are a helpful assistant.|What is 1 plus 1?=>1 plus 1 is 2.");
    const SftReadResult sharegpt = read_sft_dataset({.path = written("sharegpt.parquet")});
    ASSERT_EQ(sharegpt.conversations[3].turns.size(), 2u);  // nested list<struct> columns
    EXPECT_EQ(sharegpt.conversations[3].turns[1].response, "Red 3.");
}

TEST(Parquet, PreferenceDatasetsReadAsTheirJsonLinesTwins) {
    for (const std::string name : {"pairs", "messages"}) {
        const PreferenceRead parquet = read_preference_dataset({.path = written(name + ".parquet")});
        const PreferenceRead jsonl = read_preference_dataset({.path = written(name + ".jsonl")});
        EXPECT_EQ(parquet.format, jsonl.format) << name;
        EXPECT_FALSE(parquet.pairs.empty()) << name;
        EXPECT_EQ(describe(parquet), describe(jsonl)) << name;
    }
}

TEST(Parquet, ADatasetFolderReadsEveryFileInNameOrder) {
    const fs::path dir = lumi::test::fresh_directory("parquet_folder") / "orca";
    fs::create_directories(dir / "data");
    fs::copy_file(written("orca.parquet"), dir / "data" / "train-00000-of-00002.parquet");
    fs::copy_file(written("orca.jsonl"), dir / "data" / "train-00001-of-00002.jsonl");
    lumi::write_file_atomic(dir / "README.md", "# not data\n");
    const SftReadResult result = read_sft_dataset({.path = dir});
    ASSERT_EQ(result.conversations.size(), 60u);
    EXPECT_CONTAINS(result.conversations.front().origin, "train-00000-of-00002.parquet: row 1");
    EXPECT_CONTAINS(result.conversations.back().origin, "train-00001-of-00002.jsonl:30");
    EXPECT_CONTAINS(error_of([&] { read_sft_dataset({.path = dir / "data" / "none"}); }), "none");
    fs::create_directories(dir / "empty");
    EXPECT_CONTAINS(error_of([&] { read_sft_dataset({.path = dir / "empty"}); }),
                    "empty: the folder has no dataset files");
}

TEST(Parquet, InstructionAndPreferenceStagesPackParquetInput) {
    const fs::path dir = lumi::test::fresh_directory("parquet_stages");
    SftSettings sft;
    sft.datasets = {{.path = written("orca.parquet")}, {.path = written("sharegpt.parquet")}};
    sft.output = dir / "sft";
    sft.sequence_length = 128;
    sft.validation_fraction = 0.1;
    const auto sft_report = prepare_sft(sft, lumi::test::byte_encode, lumi::test::byte_tokenizer());
    EXPECT_EQ(sft_report.train.split.documents + sft_report.val.split.documents, 42u);
    EXPECT_TRUE(fs::exists(dir / "sft" / "manifest.json"));

    PreferenceSettings dpo;
    dpo.datasets = {{.path = written("pairs.parquet")}};
    dpo.output = dir / "dpo";
    dpo.sequence_length = 64;
    dpo.max_prompt_tokens = 32;
    const auto dpo_report = prepare_preferences(dpo, lumi::test::byte_encode, lumi::test::byte_tokenizer());
    EXPECT_EQ(dpo_report.manifest.train.pairs + dpo_report.manifest.val.pairs, 20u);
}

TEST(BadInputParquet, ErrorsNameTheFileRowGroupAndColumn) {
    EXPECT_CONTAINS(error_of([] { read_records(written("numbers.parquet")); }),
                    "numbers.parquet: row group 0, column 'text': expected strings, found int64");
    ReadOptions body;
    body.text_field = "body";
    EXPECT_CONTAINS(error_of([&] { read_records(written("corpus.parquet"), body); }),
                    "corpus.parquet: no column 'body' (its columns: id, text, score)");
    EXPECT_CONTAINS(error_of([] { read_records(written("corpus.parquet")); }),
                    "corpus.parquet: row 18 (row group 1): the \"text\" cell is null");
    EXPECT_CONTAINS(error_of([] { read_records(written("corrupt.parquet")); }),
                    "corrupt.parquet: row group 1, column 'text': cannot read");
    EXPECT_CONTAINS(error_of([] { read_records(written("truncated.parquet")); }),
                    "truncated.parquet: not a readable Parquet file");
    EXPECT_CONTAINS(
        error_of([] { read_sft_dataset({.path = written("orca.parquet"), .format = SftFormat::alpaca}); }),
        "orca.parquet: row 1 (row group 0): missing field 'instruction'");
    ReadOptions small;
    small.max_bytes = 1000;
    small.skip_malformed = true;
    EXPECT_CONTAINS(error_of([&] { read_records(written("corpus.parquet"), small); }),
                    "corpus.parquet: the text column holds more than 1000 bytes");
}

TEST(BadInputParquet, ABadRecordIsSkippedAndCountedWhenAsked) {
    const SftReadResult result = read_sft_dataset(
        {.path = written("orca.parquet"), .format = SftFormat::alpaca}, /*skip_malformed=*/true);
    EXPECT_EQ(result.records, 30u);
    EXPECT_EQ(result.skipped, 30u);
    EXPECT_TRUE(result.conversations.empty());
}
