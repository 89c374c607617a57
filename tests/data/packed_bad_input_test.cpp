// Corrupted packed shards: every header field checked with overflow-safe sizes, shards that disagree, token
// ids outside the vocabulary; each an error naming the file and the field.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>

#include "lumi/data/packed.hpp"
#include "packing_test_util.hpp"

namespace {

namespace fs = std::filesystem;
namespace data = lumi::data;
using lumi::test::error_of;

constexpr std::uint64_t two_to_63 = std::uint64_t{1} << 63;

// A dataset of `shards` train shards of 3 sequences of 8 tokens each (vocabulary `vocab`), and a val shard.
fs::path write_dataset(const std::string& name, std::uint32_t vocab = 300, int shards = 2) {
    const fs::path dir = lumi::test::fresh_directory("bad_" + name);
    const data::ShardLayout layout{
        .sequence_length = 8, .vocab_size = vocab, .tokenizer_sha256 = lumi::test::byte_tokenizer_sha()};
    std::vector<int> tokens(8);
    for (const char* split : {"train", "val"}) {
        data::ShardWriter writer(dir, split, layout, 3);
        for (int s = 0; s < (split == std::string("train") ? 3 * shards : 3); ++s) {
            std::iota(tokens.begin(), tokens.end(), s);
            writer.add(tokens);
        }
        writer.finish();
    }
    return dir;
}

template <class T>
void patch(const fs::path& file, std::size_t offset, T value) {
    std::fstream out(file, std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(static_cast<std::streamoff>(offset));
    out.write(reinterpret_cast<const char*>(&value), sizeof(T));
}

std::string open_error(const fs::path& dir, data::PackedOptions options = {}) {
    return error_of([&] { data::PackedDataset(dir, options); });
}

// Header offsets (packed.hpp).
constexpr std::size_t token_bytes_at = 12, arrays_at = 16, vocab_at = 20, length_at = 24, count_at = 32;

TEST(BadInputPackedShard, ASequenceLengthPlusTwoTo63IsAnErrorNamingTheField) {
    const fs::path dir = write_dataset("length");
    patch(dir / "train_00001.bin", length_at, std::uint64_t{8} + two_to_63);
    EXPECT_CONTAINS(
        open_error(dir),
        "train_00001.bin: corrupted header: sequence_length is 9223372036854775816, expected 1 to 2^63 - 1");
}

TEST(BadInputPackedShard, ACountPlusTwoTo63IsAnErrorNamingTheField) {
    const fs::path dir = write_dataset("count");
    patch(dir / "train_00000.bin", count_at, std::uint64_t{3} + two_to_63);
    EXPECT_CONTAINS(open_error(dir), "train_00000.bin: corrupted header: count is 9223372036854775811");
}

TEST(BadInputPackedShard, ASizeProductThatWouldWrapIsAnError) {
    const fs::path dir = write_dataset("wrap");
    // 2^33 * 2^30 * 2 wraps 64 bits to 0 (and a 32-bit multiply would wrap further): both factors fit alone.
    patch(dir / "train_00000.bin", count_at, std::uint64_t{1} << 33);
    patch(dir / "train_00000.bin", length_at, std::uint64_t{1} << 30);
    EXPECT_CONTAINS(open_error(dir),
                    "train_00000.bin: corrupted header: count 8589934592 x sequence_length 1073741824 x 2 "
                    "bytes per token does not fit");
}

TEST(BadInputPackedShard, ACountThatDisagreesWithTheFileSizeIsASizeMismatch) {
    const fs::path dir = write_dataset("size");
    patch(dir / "train_00000.bin", count_at, std::uint64_t{4});
    EXPECT_CONTAINS(open_error(dir),
                    "train_00000.bin: size mismatch: the header says 4 sequences of 8 tokens");
}

TEST(BadInputPackedShard, AZeroSequenceLengthIsAnError) {
    const fs::path dir = write_dataset("zero_length");
    patch(dir / "train_00000.bin", length_at, std::uint64_t{0});
    EXPECT_CONTAINS(open_error(dir), "corrupted header: sequence_length is 0");
}

TEST(BadInputPackedShard, AnUnknownTokenWidthIsAnError) {
    const fs::path dir = write_dataset("width");
    patch(dir / "train_00000.bin", token_bytes_at, std::uint32_t{3});
    EXPECT_CONTAINS(open_error(dir), "train_00000.bin: corrupted header: token_bytes is 3, expected 2 or 4");
}

TEST(BadInputPackedShard, UnknownArraysAreAnError) {
    const fs::path dir = write_dataset("arrays");
    patch(dir / "train_00000.bin", arrays_at, std::uint32_t{9});
    EXPECT_CONTAINS(open_error(dir), "corrupted header: arrays is 9");
    patch(dir / "train_00000.bin", arrays_at, std::uint32_t{2});  // no tokens
    EXPECT_CONTAINS(open_error(dir), "corrupted header: arrays is 2");
}

TEST(BadInputPackedShard, AVocabularyTooLargeForTheTokenWidthIsAnError) {
    const fs::path dir = write_dataset("vocab_width");
    patch(dir / "train_00000.bin", vocab_at, std::uint32_t{70000});
    EXPECT_CONTAINS(open_error(dir),
                    "corrupted header: vocab_size is 70000, expected at most 65536 with 2-byte tokens");
    patch(dir / "train_00000.bin", vocab_at, std::uint32_t{0});
    EXPECT_CONTAINS(open_error(dir), "corrupted header: vocab_size is 0");
}

TEST(BadInputPackedShard, ShardsThatDisagreeOnTheVocabularyAreAnErrorNamingBoth) {
    const fs::path dir = write_dataset("disagree_vocab");
    patch(dir / "train_00001.bin", vocab_at, std::uint32_t{400});
    const std::string message = open_error(dir);
    EXPECT_CONTAINS(message, "train_00001.bin: vocab_size is 400 but 300 in ");
    EXPECT_CONTAINS(message, "train_00000.bin");
}

TEST(BadInputPackedShard, ShardsThatDisagreeOnTheSequenceLengthAreAnError) {
    const fs::path dir = write_dataset("disagree_length");
    const fs::path other = lumi::test::fresh_directory("bad_disagree_length_other");
    data::ShardWriter writer(
        other, "train",
        {.sequence_length = 6, .vocab_size = 300, .tokenizer_sha256 = lumi::test::byte_tokenizer_sha()}, 4);
    writer.add(std::vector<int>(6, 1));
    writer.add(std::vector<int>(6, 1));
    writer.finish();
    fs::copy_file(other / "train_00000.bin", dir / "train_00002.bin");
    EXPECT_CONTAINS(open_error(dir), "train_00002.bin: sequence_length is 6 but 8 in ");
}

TEST(BadInputPackedShard, ShardsThatDisagreeOnTheTokenWidthAreAnError) {
    const fs::path dir = write_dataset("disagree_width");
    const fs::path wide = write_dataset("disagree_width_wide", 70000, 1);
    fs::copy_file(wide / "train_00000.bin", dir / "train_00002.bin");
    // The vocabulary differs too; the first difference found is named.
    EXPECT_CONTAINS(open_error(dir), "train_00002.bin: vocab_size is 70000 but 300 in");
    patch(dir / "train_00002.bin", vocab_at, std::uint32_t{300});
    EXPECT_CONTAINS(open_error(dir), "train_00002.bin: token_bytes is 4 but 2 in");
}

TEST(BadInputPackedShard, ATokenIdOutsideTheVocabularyIsFoundAtOpen) {
    const fs::path dir = write_dataset("token_id");
    // Sequence 1 of shard 1, token 5 (the ids are 2 bytes after the 128-byte header).
    patch(dir / "train_00001.bin", 128 + 2 * (8 + 5), std::uint16_t{300});
    EXPECT_CONTAINS(open_error(dir),
                    "train_00001.bin: token 13 (sequence 1) has id 300, outside the vocabulary of 300");
}

TEST(BadInputPackedShard, AFourByteTokenIdOutsideTheVocabularyIsFoundAtOpen) {
    const fs::path dir = write_dataset("token_id_wide", 70000, 1);
    patch(dir / "train_00000.bin", 128 + 4 * 2, std::uint32_t{0xFFFFFFFF});
    EXPECT_CONTAINS(
        open_error(dir),
        "train_00000.bin: token 2 (sequence 0) has id 4294967295, outside the vocabulary of 70000");
}

TEST(BadInputPackedShard, ATruncatedOrEmptyShardIsAnError) {
    const fs::path dir = write_dataset("truncated");
    fs::resize_file(dir / "train_00000.bin", 100);
    EXPECT_CONTAINS(open_error(dir),
                    "train_00000.bin: truncated: 100 bytes, shorter than the 128-byte header");
    fs::resize_file(dir / "train_00000.bin", 0);
    EXPECT_CONTAINS(open_error(dir), "train_00000.bin: truncated: 0 bytes");
}

TEST(BadInputPackedShard, ADirectoryNamedLikeAShardIsAnError) {
    const fs::path dir = write_dataset("directory");
    fs::remove(dir / "train_00001.bin");
    fs::create_directories(dir / "train_00001.bin");
    EXPECT_CONTAINS(open_error(dir), "train_00001.bin: is a directory, expected a file");
}

TEST(BadInputPackedShard, AFileGivenAsTheDatasetIsAnError) {
    const fs::path dir = write_dataset("file_as_dataset");
    EXPECT_CONTAINS(open_error(dir / "train_00000.bin"),
                    "train_00000.bin: not a packed dataset directory (it is a file)");
}

TEST(BadInputPackedShard, AValidationSplitThatDisagreesWithTrainIsAnError) {
    const fs::path dir = write_dataset("val");
    patch(dir / "val_00000.bin", vocab_at, std::uint32_t{280});
    const data::PackedDataset train(dir);
    const data::PackedDataset val(dir, {.split = "val"});
    EXPECT_CONTAINS(error_of([&] { train.check_matches(val); }),
                    "val_00000.bin: vocab_size is 280 but 300 in ");
    EXPECT_TRUE(data::PackedDataset::has_split(dir, "val"));
    EXPECT_FALSE(data::PackedDataset::has_split(dir, "test"));
}

TEST(BadInputPackedShard, TheIdentityChangesWithTheDataNotWithTheDirectory) {
    const fs::path dir = write_dataset("identity");
    const std::string before = data::PackedDataset(dir).identity();
    const fs::path moved = dir.string() + "_moved";
    fs::remove_all(moved);
    fs::rename(dir, moved);
    EXPECT_EQ(data::PackedDataset(moved).identity(), before);
    const fs::path other = write_dataset("identity_other", 301);
    EXPECT_NE(data::PackedDataset(other).identity(), before);
}

}  // namespace
