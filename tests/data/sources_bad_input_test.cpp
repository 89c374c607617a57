// Compressed sources that would exhaust the memory (decompression bombs), and files of the wrong kind: errors
// naming the file, within the configured bound.
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "lumi/core/files.hpp"
#include "lumi/data/corpus.hpp"
#include "lumi/data/sources.hpp"

namespace {

namespace fs = std::filesystem;
namespace data = lumi::data;

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const lumi::Error& e) {
        return e.what();
    }
    return "";
}

fs::path fresh_directory() {
    const fs::path dir =
        fs::temp_directory_path() / ("lumi_sources_bad_input_" + std::to_string(::getpid()) + "_" +
                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::string gzip_bytes(std::string_view text) {
    z_stream z{};
    EXPECT_EQ(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
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
    out.resize(size);
    return out;
}

// 64 MiB of spaces: a few kilobytes compressed.
const std::string& bomb() {
    static const std::string text(64u << 20, ' ');
    return text;
}

TEST(BadInputSources, AGzipBombStopsAtTheLimitNamingTheFile) {
    const fs::path dir = fresh_directory();
    lumi::write_file_atomic(dir / "bomb.txt.gz", gzip_bytes(bomb()));
    EXPECT_LT(fs::file_size(dir / "bomb.txt.gz"), 1u << 20);
    EXPECT_CONTAINS(
        error_of([&] { data::read_decompressed(dir / "bomb.txt.gz", data::Compression::detect, 8u << 20); }),
        "bomb.txt.gz: the gzip data decompresses to more than 8388608 bytes, the limit for one file "
        "(max_file_bytes)");
    EXPECT_EQ(data::read_decompressed(dir / "bomb.txt.gz").size(), bomb().size());  // within the default
    fs::remove_all(dir);
}

TEST(BadInputSources, AZstdBombStopsAtTheLimitNamingTheFile) {
    const fs::path dir = fresh_directory();
    lumi::write_file_atomic(dir / "bomb.jsonl.zst", zstd_bytes(bomb()));
    EXPECT_CONTAINS(error_of([&] { data::read_records(dir / "bomb.jsonl.zst", {.max_bytes = 1u << 20}); }),
                    "bomb.jsonl.zst: the zstd data decompresses to more than 1048576 bytes");
    fs::remove_all(dir);
}

TEST(BadInputSources, TheCorpusSettingBoundsEveryFile) {
    const fs::path dir = fresh_directory();
    lumi::write_file_atomic(dir / "in" / "big.txt", std::string(5000, 'a') + "\n");
    data::CorpusSettings settings;
    settings.output = dir / "corpus";
    settings.sources = {{.paths = {dir / "in"}}};
    settings.max_file_bytes = 4096;
    EXPECT_CONTAINS(error_of([&] { data::prepare_corpus(settings); }),
                    "big.txt: 5001 bytes or more, larger than the limit of 4096");
    EXPECT_FALSE(fs::exists(dir / "corpus"));
    EXPECT_CONTAINS(error_of([] {
                        lumi::config::load<data::CorpusSettings>(
                            std::nullopt, {"sources=[{\"paths\": [\"x\"]}]", "max_file_bytes=0"});
                    }),
                    "--set max_file_bytes: must be at least 1");
    fs::remove_all(dir);
}

TEST(BadInputSources, ATruncatedZstdFileIsNamed) {
    const fs::path dir = fresh_directory();
    const std::string z = zstd_bytes(std::string(100000, 'x') + "y");
    lumi::write_file_atomic(dir / "cut.txt.zst", z.substr(0, z.size() / 2));
    EXPECT_CONTAINS(error_of([&] { data::read_decompressed(dir / "cut.txt.zst"); }),
                    "cut.txt.zst: truncated zstd data");
    fs::remove_all(dir);
}

TEST(BadInputSources, GarbageWithACompressionSuffixIsCorruptData) {
    const fs::path dir = fresh_directory();
    lumi::write_file_atomic(dir / "noise.txt.gz", "this is not gzip at all");
    EXPECT_CONTAINS(error_of([&] { data::read_decompressed(dir / "noise.txt.gz"); }),
                    "noise.txt.gz: corrupt gzip data");
    lumi::write_file_atomic(dir / "noise.txt.zst", "this is not zstd at all");
    EXPECT_CONTAINS(error_of([&] { data::read_decompressed(dir / "noise.txt.zst"); }),
                    "noise.txt.zst: corrupt zstd data");
    fs::remove_all(dir);
}

TEST(BadInputSources, AnEmptyCompressedFileIsTruncated) {
    const fs::path dir = fresh_directory();
    lumi::write_file_atomic(dir / "empty.txt.gz", "");
    EXPECT_CONTAINS(error_of([&] { data::read_decompressed(dir / "empty.txt.gz"); }),
                    "empty.txt.gz: truncated gzip data");
    fs::remove_all(dir);
}

}  // namespace
