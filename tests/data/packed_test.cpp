#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "lumi/config/config.hpp"
#include "lumi/data/pack.hpp"
#include "lumi/data/packed.hpp"
#include "packing_test_util.hpp"

namespace {

namespace fs = std::filesystem;
namespace data = lumi::data;
using lumi::test::byte_encode;
using lumi::test::error_of;

// The token stream the packer should see: each document's ids, then EOS.
std::vector<int> document_stream(const std::vector<std::string>& docs) {
    std::vector<int> stream;
    for (const std::string& doc : docs) {
        const auto ids = byte_encode(doc);
        stream.insert(stream.end(), ids.begin(), ids.end());
        stream.push_back(lumi::test::eos_id);
    }
    return stream;
}

std::vector<int> read_stream(const data::PackedDataset& dataset) {
    std::vector<int> stream;
    for (std::int64_t i = 0; i < dataset.size(); ++i) {
        const auto sequence = dataset.sequence(i);
        EXPECT_EQ(sequence.dtype(), torch::kLong);
        const auto* ids = sequence.data_ptr<std::int64_t>();
        stream.insert(stream.end(), ids, ids + sequence.numel());
    }
    return stream;
}

data::PackSettings settings_for(const fs::path& dir) {
    data::PackSettings settings;
    settings.corpus = dir / "corpus";
    settings.output = dir / "packed";
    settings.sequence_length = 16;
    settings.validation_fraction = 0;
    settings.sequences_per_shard = 7;
    settings.threads = 2;
    settings.batch_documents = 5;
    return settings;
}

// A small packed directory: 60 documents over two corpus shards.
fs::path packed_fixture(const std::string& name, double validation_fraction = 0) {
    const fs::path dir = lumi::test::fresh_directory(name);
    const auto docs = lumi::test::make_documents(60);
    lumi::test::write_jsonl(dir / "corpus" / "shard_00000.jsonl", {docs.begin(), docs.begin() + 25});
    lumi::test::write_jsonl(dir / "corpus" / "shard_00001.jsonl", {docs.begin() + 25, docs.end()});
    auto settings = settings_for(dir);
    settings.validation_fraction = validation_fraction;
    data::pack_dataset(settings, byte_encode, lumi::test::byte_tokenizer());
    return dir / "packed";
}

TEST(Xxh64, MatchesTheReferenceVectors) {
    EXPECT_EQ(data::xxh64(""), 0xEF46DB3751D8E999ull);
    EXPECT_EQ(data::xxh64("a"), 0xD24EC4F1A98C6E5Bull);
    EXPECT_EQ(data::xxh64("abc"), 0x44BC2CF5AD770999ull);
    EXPECT_EQ(data::xxh64("Nobody inspects the spammish repetition"), 0xFBCEA83C8A378BF1ull);
    EXPECT_EQ(data::hex64(0xEF46DB3751D8E999ull), "ef46db3751d8e999");
}

TEST(Xxh64, StreamingEqualsOneShot) {
    std::string text;
    for (int i = 0; i < 1000; ++i) text += static_cast<char>(i * 13);
    for (std::size_t piece : {1, 5, 31, 32, 33, 100}) {
        data::Xxh64 hasher;
        for (std::size_t at = 0; at < text.size(); at += piece) hasher.update(text.substr(at, piece));
        EXPECT_EQ(hasher.digest(), data::xxh64(text)) << piece;
    }
}

TEST(PackDataset, RoundTripRestoresTheTokenStreamMinusTheTail) {
    const fs::path dir = lumi::test::fresh_directory("round_trip");
    const auto docs = lumi::test::make_documents(60);
    lumi::test::write_jsonl(dir / "corpus" / "shard_00000.jsonl", {docs.begin(), docs.begin() + 25});
    lumi::test::write_jsonl(dir / "corpus" / "shard_00001.jsonl", {docs.begin() + 25, docs.end()});
    const auto report = data::pack_dataset(settings_for(dir), byte_encode, lumi::test::byte_tokenizer());

    const auto expected = document_stream(docs);
    const std::size_t kept = expected.size() / 16 * 16;
    const data::PackedDataset train(dir / "packed", {.verify = true});
    EXPECT_EQ(train.sequence_length(), 16);
    EXPECT_EQ(train.token_bytes(), 2u);
    EXPECT_EQ(train.size(), static_cast<std::int64_t>(expected.size() / 16));
    EXPECT_GT(train.shard_count(), 1u);
    EXPECT_EQ(read_stream(train), std::vector<int>(expected.begin(), expected.begin() + kept));

    EXPECT_EQ(report.train.documents, 60u);
    EXPECT_EQ(report.train.dropped_tail_tokens, expected.size() - kept);
    const auto manifest = lumi::config::read_json_file(dir / "packed" / "manifest.json").as_object();
    EXPECT_EQ(manifest.at("train").at("dropped_tail_tokens").to_number<std::uint64_t>(),
              expected.size() - kept);
    EXPECT_EQ(manifest.at("train").at("sequences").to_number<std::uint64_t>(), kept / 16);
    EXPECT_EQ(manifest.at("tokenizer").at("sha256").as_string(), lumi::test::byte_tokenizer_sha());
    const auto& shards = manifest.at("train").at("shards").as_array();
    ASSERT_EQ(shards.size(), train.shard_count());
    const fs::path first = dir / "packed" / std::string(shards[0].at("file").as_string());
    EXPECT_EQ(shards[0].at("bytes").to_number<std::uint64_t>(), fs::file_size(first));
    EXPECT_TRUE(fs::exists(dir / "packed" / "config.json"));
    EXPECT_EQ(data::PackedDataset(dir / "packed", {.split = "val"}).size(), 0);
}

TEST(PackDataset, SplitsByDocumentWithNoDocumentInBoth) {
    const fs::path dir = lumi::test::fresh_directory("split");
    const auto docs = lumi::test::make_documents(300);
    lumi::test::write_jsonl(dir / "corpus" / "shard_00000.jsonl", docs);
    auto settings = settings_for(dir);
    settings.validation_fraction = 0.3;
    data::pack_dataset(settings, byte_encode, lumi::test::byte_tokenizer());

    std::vector<std::string> expected_train, expected_val;
    for (const std::string& doc : docs)
        (data::in_validation(doc, 0.3, settings.seed) ? expected_val : expected_train).push_back(doc);
    EXPECT_GT(expected_val.size(), 60u);
    EXPECT_LT(expected_val.size(), 120u);

    std::set<std::string> seen[2];
    int split_index = 0;
    for (const auto& [split, expected] :
         {std::pair{"train", &expected_train}, std::pair{"val", &expected_val}}) {
        const data::PackedDataset dataset(dir / "packed", {.split = split});
        const std::string text = lumi::test::byte_decode(read_stream(dataset));
        // Every complete document in the split's stream is the next of that split's documents.
        std::size_t begin = 0, index = 0;
        for (std::size_t end; (end = text.find('|', begin)) != std::string::npos; begin = end + 1, ++index) {
            ASSERT_LT(index, expected->size());
            EXPECT_EQ(text.substr(begin, end - begin), (*expected)[index]);
            seen[split_index].insert(text.substr(begin, end - begin));
        }
        EXPECT_GE(index + 2,
                  expected->size());  // all but those cut by the dropped tail (at most two short ones)
        ++split_index;
    }
    for (const std::string& doc : seen[0]) EXPECT_EQ(seen[1].count(doc), 0u) << doc;
}

TEST(PackDataset, OutputIsDeterministicAndIndependentOfThreads) {
    const fs::path dir = lumi::test::fresh_directory("determinism");
    lumi::test::write_jsonl(dir / "corpus" / "shard_00000.jsonl", lumi::test::make_documents(200));
    auto settings = settings_for(dir);
    settings.validation_fraction = 0.2;
    settings.threads = 1;
    settings.output = dir / "one";
    data::pack_dataset(settings, byte_encode, lumi::test::byte_tokenizer());
    settings.threads = 2;
    settings.batch_documents = 64;
    settings.output = dir / "two";
    data::pack_dataset(settings, byte_encode, lumi::test::byte_tokenizer());
    std::size_t compared = 0;
    for (const auto& entry : fs::directory_iterator(dir / "one")) {
        if (entry.path().extension() != ".bin") continue;
        EXPECT_EQ(lumi::read_file(entry.path()), lumi::read_file(dir / "two" / entry.path().filename()));
        ++compared;
    }
    EXPECT_GT(compared, 4u);
}

TEST(PackDataset, UsesFourByteTokensAboveA65536Vocabulary) {
    const fs::path dir = lumi::test::fresh_directory("wide");
    lumi::test::write_jsonl(dir / "corpus" / "c.jsonl", lumi::test::make_documents(20));
    auto settings = settings_for(dir);
    settings.corpus = dir / "corpus" / "c.jsonl";  // a single file works too
    auto wide = [](std::string_view text) {
        auto ids = byte_encode(text);
        for (int& id : ids) id += 70000;
        return ids;
    };
    data::pack_dataset(settings, wide, {lumi::test::byte_tokenizer_sha(), 70300, 2, 0});
    const data::PackedDataset train(dir / "packed", {.verify = true});
    EXPECT_EQ(train.token_bytes(), 4u);
    EXPECT_EQ(train.vocab_size(), 70300u);
    std::vector<int> expected;
    for (const std::string& doc : lumi::test::make_documents(20)) {
        for (int id : wide(doc)) expected.push_back(id);
        expected.push_back(2);
    }
    expected.resize(expected.size() / 16 * 16);
    EXPECT_EQ(read_stream(train), expected);
}

TEST(PackedDataset, OrderIsASeededPermutationThatChangesEachEpoch) {
    const fs::path packed = packed_fixture("order");
    const data::PackedDataset dataset(packed, {.seed = 7});
    const auto epoch0 = dataset.order(0), epoch1 = dataset.order(1);
    std::vector<std::int64_t> sorted = epoch0, identity(static_cast<std::size_t>(dataset.size()));
    std::sort(sorted.begin(), sorted.end());
    std::iota(identity.begin(), identity.end(), 0);
    EXPECT_EQ(sorted, identity);
    EXPECT_NE(epoch0, epoch1);
    EXPECT_NE(epoch0, identity);
    EXPECT_EQ(epoch0, data::PackedDataset(packed, {.seed = 7}).order(0));
    EXPECT_NE(epoch0, data::PackedDataset(packed, {.seed = 8}).order(0));
    EXPECT_EQ(data::shuffled_order(5, 1, 0), data::shuffled_order(5, 1, 0));
    EXPECT_TRUE(data::shuffled_order(0, 1, 0).empty());
}

TEST(PackedDataset, RankShardsAreDisjointEqualAndCoverAllButTheRemainder) {
    const auto order = data::shuffled_order(103, 3, 2);
    std::set<std::int64_t> covered;
    for (std::int64_t rank = 0; rank < 4; ++rank) {
        const auto slice = data::rank_slice(order, rank, 4);
        EXPECT_EQ(slice.size(), 25u);
        for (std::int64_t i : slice)
            EXPECT_TRUE(covered.insert(i).second) << "sequence " << i << " on two ranks";
    }
    for (std::size_t i = 100; i < 103; ++i) EXPECT_TRUE(covered.insert(order[i]).second);  // the dropped few
    EXPECT_EQ(covered.size(), 103u);
    EXPECT_CONTAINS(error_of([&] { data::rank_slice(order, 4, 4); }), "rank 4 of world size 4");

    const data::PackedDataset dataset(packed_fixture("ranks"));
    const auto r0 = dataset.order(3, 0, 2), r1 = dataset.order(3, 1, 2);
    EXPECT_EQ(r0.size(), r1.size());
    EXPECT_EQ(r0.size(), static_cast<std::size_t>(dataset.size() / 2));
}

TEST(PackedDataset, BatchStacksSequences) {
    const data::PackedDataset dataset(packed_fixture("batch"));
    const std::vector<std::int64_t> indices{3, 0, 5};
    const auto batch = dataset.batch(indices);
    EXPECT_EQ(batch.sizes(), (std::vector<std::int64_t>{3, 16}));
    for (std::size_t b = 0; b < indices.size(); ++b)
        EXPECT_TRUE(torch::equal(batch[static_cast<std::int64_t>(b)], dataset.sequence(indices[b])));
    const auto sample = dataset.sample(2);
    EXPECT_TRUE(torch::equal(sample.tokens, dataset.sequence(2)));
    EXPECT_FALSE(sample.loss_mask.defined());
    EXPECT_FALSE(dataset.has_loss_mask());
    EXPECT_CONTAINS(error_of([&] { dataset.sequence(dataset.size()); }), "out of range");
}

TEST(PackedDataset, AnotherTokenizerIsAnErrorNamingTheFileAndBothHashes) {
    const fs::path packed = packed_fixture("tokenizer_mismatch");
    const std::string other = lumi::sha256_hex("another tokenizer");
    const std::string message = error_of([&] { data::PackedDataset(packed, {.tokenizer_sha256 = other}); });
    EXPECT_CONTAINS(message, "train_00000.bin");
    EXPECT_CONTAINS(message, lumi::test::byte_tokenizer_sha());
    EXPECT_CONTAINS(message, other);
    EXPECT_NO_THROW(data::PackedDataset(packed, {.tokenizer_sha256 = lumi::test::byte_tokenizer_sha()}));
}

void patch(const fs::path& file, std::size_t offset, std::string_view bytes) {
    std::fstream out(file, std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(static_cast<std::streamoff>(offset));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(PackedDataset, CorruptedShardsAreNamedWithWhatIsWrong) {
    const fs::path packed = packed_fixture("corrupt");
    const fs::path shard = packed / "train_00001.bin";
    const std::string original = lumi::read_file(shard);
    auto open_error = [&](bool verify) {
        return error_of([&] { data::PackedDataset(packed, {.verify = verify}); });
    };

    lumi::write_file_atomic(shard, original.substr(0, original.size() - 3));
    EXPECT_CONTAINS(open_error(false), "train_00001.bin: size mismatch");
    lumi::write_file_atomic(shard, original.substr(0, 40));
    EXPECT_CONTAINS(open_error(false), "train_00001.bin: truncated");

    lumi::write_file_atomic(shard, original);
    std::string flipped(1, static_cast<char>(original[200] ^ 0x01));
    patch(shard, 200, flipped);
    EXPECT_EQ(open_error(false), "");  // without verify only the header is checked
    EXPECT_CONTAINS(open_error(true), "train_00001.bin: checksum mismatch");
    EXPECT_CONTAINS(error_of([&] { data::PackedDataset(packed).verify(); }), "checksum mismatch");

    lumi::write_file_atomic(shard, original);
    patch(shard, 0, "LUMIPACX");
    EXPECT_CONTAINS(open_error(false), "train_00001.bin: not a lumi packed shard (bad magic");

    lumi::write_file_atomic(shard, original);
    const std::uint32_t version = 99;
    patch(shard, 8, std::string_view(reinterpret_cast<const char*>(&version), 4));
    EXPECT_CONTAINS(open_error(false), "train_00001.bin: unsupported shard version 99");

    lumi::write_file_atomic(shard, original);
    EXPECT_EQ(open_error(true), "");
    EXPECT_CONTAINS(error_of([&] { data::PackedDataset(packed.parent_path() / "missing"); }), "missing");
}

TEST(PackedDataset, SizesThatWrapAround64BitsAreACorruptedHeader) {
    // 2 sequences of 2^62 + 4 two-byte tokens "need" 2^64 + 16 bytes: 16 after wrapping, what this file has.
    const fs::path dir = lumi::test::fresh_directory("wrap");
    data::ShardHeader header;
    header.vocab_size = 61;
    header.sequence_length = (std::uint64_t(1) << 62) + 4;
    header.count = 2;
    std::string bytes(reinterpret_cast<const char*>(&header), sizeof header);
    bytes += std::string(16, '\1');
    lumi::write_file_atomic(dir / "train_00000.bin", bytes);
    EXPECT_CONTAINS(error_of([&] { data::PackedDataset opened(dir); }),
                    "train_00000.bin: corrupted header: count 2 x sequence_length 4611686018427387908 x 2 "
                    "bytes per token does not fit");
}

TEST(PackDataset, AMalformedLineNamesTheFileAndLineOrIsSkippedAndCounted) {
    const fs::path dir = lumi::test::fresh_directory("malformed");
    lumi::write_file_atomic(
        dir / "corpus" / "shard_00000.jsonl",
        "{\"text\": \"one\"}\n\n{\"text\": \"two\"\n{\"body\": \"three\"}\n{\"text\": 4}\n");
    auto settings = settings_for(dir);
    EXPECT_CONTAINS(
        error_of([&] { data::pack_dataset(settings, byte_encode, lumi::test::byte_tokenizer()); }),
        "shard_00000.jsonl:3:15: invalid JSON");
    EXPECT_FALSE(fs::exists(settings.output));  // nothing half-written

    settings.skip_malformed = true;
    const auto report = data::pack_dataset(settings, byte_encode, lumi::test::byte_tokenizer());
    EXPECT_EQ(report.skipped_lines, 3u);
    EXPECT_EQ(report.train.documents, 1u);

    lumi::write_file_atomic(dir / "corpus" / "shard_00000.jsonl",
                            "{\"text\": \"one\"}\n{\"body\": \"three\"}\n");
    settings.skip_malformed = false;
    EXPECT_CONTAINS(
        error_of([&] { data::pack_dataset(settings, byte_encode, lumi::test::byte_tokenizer()); }),
        "shard_00000.jsonl:2: missing field 'text'");
}

TEST(PackDataset, AFailedRunLeavesThePreviousOutputIntact) {
    const fs::path packed = packed_fixture("atomic");
    const std::string before = lumi::read_file(packed / "manifest.json");
    auto settings = settings_for(packed.parent_path());
    lumi::write_file_atomic(settings.corpus / "shard_00002.jsonl", "{\"text\": \"x\"}\nnot json\n");
    EXPECT_THROW(data::pack_dataset(settings, byte_encode, lumi::test::byte_tokenizer()), lumi::Error);
    EXPECT_EQ(lumi::read_file(packed / "manifest.json"), before);
}

TEST(PackDataset, BadInputsAndSettingsAreNamed) {
    const fs::path dir = lumi::test::fresh_directory("bad_inputs");
    fs::create_directories(dir / "corpus");
    auto settings = settings_for(dir);
    EXPECT_CONTAINS(
        error_of([&] { data::pack_dataset(settings, byte_encode, lumi::test::byte_tokenizer()); }),
        "has no .jsonl shards");
    lumi::test::write_jsonl(dir / "corpus" / "shard_00000.jsonl", {"abc"});
    auto out_of_vocabulary = [](std::string_view) { return std::vector<int>{5, 999}; };
    EXPECT_CONTAINS(
        error_of([&] { data::pack_dataset(settings, out_of_vocabulary, lumi::test::byte_tokenizer()); }),
        "shard_00000.jsonl:1: the encoder returned id 999");
    EXPECT_CONTAINS(error_of([&] {
                        data::pack_dataset(settings, byte_encode, {"not-a-hash", 259, 2, 0});
                    }),
                    "64 lower-case hexadecimal");
    EXPECT_CONTAINS(
        error_of([] { lumi::config::load<data::PackSettings>(std::nullopt, {"sequence_length=1"}); }),
        "sequence_length: must be at least 2");
    EXPECT_CONTAINS(
        error_of([] { lumi::config::load<data::PackSettings>(std::nullopt, {"validation_fraction=1.5"}); }),
        "validation_fraction");
}

}  // namespace
