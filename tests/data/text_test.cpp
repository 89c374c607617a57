#include <unistd.h>

// The corpus stage's parts: text cleaning, readers and deduplication.
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <zlib.h>
#include <zstd.h>

#include "lumi/core/files.hpp"
#include "lumi/data/dedup.hpp"
#include "lumi/data/sources.hpp"
#include "lumi/data/text.hpp"

namespace fs = std::filesystem;
using namespace lumi::data;

namespace {

fs::path fresh_directory(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("lumi_text_test_" + std::to_string(::getpid())) / name;
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

// `count` words drawn from a vocabulary of 5,000 made-up ones.
std::vector<std::string> random_words(std::size_t count, std::uint64_t seed) {
    std::mt19937_64 random(seed);
    std::vector<std::string> words;
    for (std::size_t i = 0; i < count; ++i) {
        std::uint64_t id = random() % 5000;
        std::string word = "w";
        for (; id > 0; id /= 26) word += static_cast<char>('a' + id % 26);
        words.push_back(word);
    }
    return words;
}

std::string join(const std::vector<std::string>& words) {
    std::string text;
    for (const auto& word : words) text += (text.empty() ? "" : " ") + word;
    return text;
}

TEST(CorpusText, RepairsEachIllFormedSubsequenceWithOneReplacementCharacter) {
    std::size_t replaced = 0;
    EXPECT_EQ(repair_utf8("a\xFF"
                          "b",
                          &replaced),
              "a\xEF\xBF\xBD"
              "b");
    EXPECT_EQ(replaced, 1u);
    // A truncated three-byte sequence is one maximal subpart; a surrogate's bytes are three.
    EXPECT_EQ(repair_utf8("x\xE2\x82", &replaced), "x\xEF\xBF\xBD");
    EXPECT_EQ(replaced, 1u);
    EXPECT_EQ(repair_utf8("\xED\xA0\x80", &replaced), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    EXPECT_EQ(replaced, 3u);
    EXPECT_EQ(count_invalid_utf8("\xC0\xAF ok \xF4\x90\x80\x80"), 2u + 4u);
    EXPECT_EQ(count_invalid_utf8("h\xC3\xA9llo \xF0\x9F\x98\x80"), 0u);
    EXPECT_EQ(repair_utf8("h\xC3\xA9llo", &replaced), "h\xC3\xA9llo");
    EXPECT_EQ(replaced, 0u);
}

TEST(CorpusText, NfkcFoldsFullWidthFormsLigaturesAndCompatibilityCharacters) {
    EXPECT_EQ(nfkc("\xEF\xBC\xA6\xEF\xBD\x95\xEF\xBD\x8C\xEF\xBD\x8C\xEF\xBC\x91"), "Full1");  // Ｆｕｌｌ１
    EXPECT_EQ(nfkc("\xEF\xAC\x81le \xEF\xAC\x82ow"), "file flow");                             // ﬁle ﬂow
    EXPECT_EQ(nfkc("x\xC2\xB2 \xE2\x91\xA0"), "x2 1");                                         // x² ①
    EXPECT_EQ(nfkc("e\xCC\x81"), "\xC3\xA9");  // e + acute -> é
    EXPECT_EQ(nfkc("plain ASCII stays"), "plain ASCII stays");
}

TEST(CorpusText, WhitespaceCollapsesRunsTrimsLinesAndKeepsParagraphs) {
    EXPECT_EQ(normalize_whitespace("  a \t b\r\n\r\n\r\n\n   c  \n"), "a b\n\nc");
    EXPECT_EQ(normalize_whitespace("one\xC2\xA0two\xE2\x80\x83three\xE2\x80\x8B!"), "one two three!");
    EXPECT_EQ(normalize_whitespace("x\x01y\xEF\xBB\xBFz\fw"), "xyz\nw");
    EXPECT_EQ(normalize_whitespace("a\n\nb \n c", Whitespace::single_line), "a b c");
    EXPECT_EQ(normalize_whitespace(" keep \n", Whitespace::keep), " keep \n");
}

TEST(CorpusText, CountsSentencesAndCodePoints) {
    EXPECT_EQ(count_sentences("Hello there. How are you? Fine!"), 3u);
    EXPECT_EQ(count_sentences("Version 1.2 is out"), 1u);
    EXPECT_EQ(count_sentences("Wait... what?! \"Yes.\" Then"), 4u);  // the trailing fragment counts
    EXPECT_EQ(count_sentences("  ...  "), 0u);
    EXPECT_EQ(count_sentences(""), 0u);
    EXPECT_EQ(count_code_points("h\xC3\xA9llo \xF0\x9F\x98\x80"), 7u);
}

TEST(CorpusSources, DetectsFormatAndCompressionFromNamesAndMagic) {
    EXPECT_EQ(detect_format("a/b.jsonl.gz"), SourceFormat::jsonl);
    EXPECT_EQ(detect_format("b.NDJSON"), SourceFormat::jsonl);
    EXPECT_EQ(detect_format("b.json"), SourceFormat::text);
    EXPECT_EQ(detect_compression("x.txt.zst", ""), Compression::zstd);
    EXPECT_EQ(detect_compression("x.txt", "\x1f\x8b\x08"), Compression::gzip);
    EXPECT_EQ(detect_compression("x", "\x28\xb5\x2f\xfd"), Compression::zstd);
    EXPECT_EQ(detect_compression("x.txt", "plain"), Compression::none);
}

TEST(CorpusSources, SplitsTextFilesIntoFilesParagraphsOrLines) {
    const fs::path dir = fresh_directory("units");
    lumi::write_file_atomic(dir / "a.txt", "\xEF\xBB\xBFOne\r\ntwo\n\n  \nthree\n");
    const auto whole = read_records(dir / "a.txt", {.unit = TextUnit::file});
    ASSERT_EQ(whole.records.size(), 1u);
    EXPECT_EQ(whole.records[0].text, "One\r\ntwo\n\n  \nthree\n");
    const auto paragraphs = read_records(dir / "a.txt", {.unit = TextUnit::paragraph});
    ASSERT_EQ(paragraphs.records.size(), 2u);
    EXPECT_EQ(paragraphs.records[0].text, "One\r\ntwo");
    EXPECT_EQ(paragraphs.records[1].text, "three");
    EXPECT_EQ(paragraphs.records[1].line, 5u);
    const auto lines = read_records(dir / "a.txt", {.unit = TextUnit::line});
    ASSERT_EQ(lines.records.size(), 3u);
    EXPECT_EQ(lines.records[1].text, "two");
}

TEST(CorpusSources, ReadsGzipIncludingConcatenatedMembersAndZstd) {
    const fs::path dir = fresh_directory("compressed");
    lumi::write_file_atomic(dir / "a.jsonl.gz",
                            gzip_bytes("{\"text\": \"first\"}\n") + gzip_bytes("{\"text\": \"second\"}\n"));
    const auto gz = read_records(dir / "a.jsonl.gz");
    ASSERT_EQ(gz.records.size(), 2u);
    EXPECT_EQ(gz.records[1].text, "second");
    EXPECT_EQ(gz.records[1].line, 2u);
    std::string big;
    for (int i = 0; i < 20000; ++i) big += "line " + std::to_string(i) + "\n";
    lumi::write_file_atomic(dir / "b.txt.zst", zstd_bytes(big));
    EXPECT_EQ(read_decompressed(dir / "b.txt.zst"), big);
    lumi::write_file_atomic(dir / "c.bin", gzip_bytes(big));  // no suffix: found by its magic number
    EXPECT_EQ(read_decompressed(dir / "c.bin"), big);
}

TEST(CorpusSources, JsonLinesUseTheConfiguredFieldAndRepairUtf8) {
    const fs::path dir = fresh_directory("jsonl");
    lumi::write_file_atomic(dir / "a.jsonl",
                            "{\"body\": \"caf\xC3\xA9\", \"text\": 1}\n\n{\"body\": \"bad \xFF byte\"}\n");
    const auto records = read_records(dir / "a.jsonl", {.text_field = "body"});
    ASSERT_EQ(records.records.size(), 2u);
    EXPECT_EQ(records.records[0].text, "caf\xC3\xA9");
    EXPECT_EQ(records.records[1].text, "bad \xEF\xBF\xBD byte");
    EXPECT_EQ(records.records[1].invalid_utf8, 1u);
    EXPECT_EQ(records.records[1].line, 3u);
}

TEST(CorpusSources, ListsFolderFilesSortedAndFilteredByGlob) {
    const fs::path dir = fresh_directory("list");
    for (const char* name : {"b/copyright", "a/copyright", "a/changelog", "c.txt"})
        lumi::write_file_atomic(dir / name, "x");
    const auto all = list_files(dir);
    ASSERT_EQ(all.size(), 4u);
    EXPECT_EQ(all[0], dir / "a/changelog");
    const auto matched = list_files(dir, {"copyright", "*.txt"});
    ASSERT_EQ(matched.size(), 3u);
    EXPECT_EQ(matched[0], dir / "a/copyright");
    EXPECT_EQ(matched[2], dir / "c.txt");
    EXPECT_EQ(list_files(dir, {"*.txt"}, false).size(), 1u);
}

TEST(CorpusDedup, OneChangedWordInTwoHundredIsANearDuplicateAndAnUnrelatedTextIsNot) {
    auto words = random_words(200, 1);
    const std::string original = join(words);
    words[100] = "changed";
    const std::string edited = join(words);
    const std::string unrelated = join(random_words(200, 2));
    EXPECT_GT(jaccard(original, edited, Shingle::words, 5), 0.9);
    EXPECT_LT(jaccard(original, unrelated, Shingle::words, 5), 0.05);

    const MinHash minhash(128, 1);
    const auto a = minhash.signature(original, Shingle::words, 5);
    EXPECT_GT(estimated_jaccard(a, minhash.signature(edited, Shingle::words, 5)), 0.8);
    EXPECT_LT(estimated_jaccard(a, minhash.signature(unrelated, Shingle::words, 5)), 0.2);

    NearDuplicateIndex index(128, 0.8);
    EXPECT_EQ(index.find_or_insert(7, a), std::nullopt);
    EXPECT_EQ(index.find_or_insert(8, minhash.signature(edited, Shingle::words, 5)), 7u);
    EXPECT_EQ(index.find_or_insert(9, minhash.signature(unrelated, Shingle::words, 5)), std::nullopt);
    EXPECT_EQ(index.size(), 2u);
}

TEST(CorpusDedup, WordShinglesIgnoreCaseAndPunctuation) {
    EXPECT_EQ(shingle_hashes("Hello, World! again", Shingle::words, 2),
              shingle_hashes("hello world again", Shingle::words, 2));
    EXPECT_EQ(shingle_hashes("ab", Shingle::characters, 5).size(), 1u);
    EXPECT_EQ(shingle_hashes("abcdef", Shingle::characters, 5).size(), 2u);
    EXPECT_TRUE(shingle_hashes("... !!", Shingle::words, 5).empty());
}

TEST(CorpusDedup, BandingSeparatesTheThreshold) {
    const Banding banding = optimal_banding(0.8, 128);
    EXPECT_LE(banding.bands * banding.rows, 128u);
    auto candidate = [&](double s) { return 1.0 - std::pow(1.0 - std::pow(s, banding.rows), banding.bands); };
    EXPECT_GT(candidate(0.95), 0.99);
    EXPECT_LT(candidate(0.5), 0.05);
}

TEST(CorpusDedup, ExactIndexComparesTextsOnAHashMatch) {
    ExactDuplicateIndex index;
    std::vector<std::string> kept;
    auto insert = [&](std::uint64_t hash, const std::string& text) {
        const bool added =
            index.insert(hash, text, kept.size(), [&](std::uint64_t id) { return kept.at(id); });
        if (added) kept.push_back(text);
        return added;
    };
    EXPECT_TRUE(insert(1, "a"));
    EXPECT_TRUE(insert(1, "b"));  // a collision, not a duplicate
    EXPECT_FALSE(insert(1, "a"));
    EXPECT_TRUE(insert(2, "a"));  // only texts of the same hash are compared
    EXPECT_NE(hash_bytes("abc"), hash_bytes("abd"));
    EXPECT_EQ(hash_bytes("a longer text of several words"), hash_bytes("a longer text of several words"));
}

}  // namespace
