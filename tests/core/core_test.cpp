#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "lumi/core/files.hpp"
#include "lumi/core/parallel.hpp"
#include "lumi/core/sha256.hpp"

namespace fs = std::filesystem;

namespace {

fs::path fresh_directory(const std::string& name) {
    const fs::path dir =
        fs::temp_directory_path() / ("lumi_core_test_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

TEST(Sha256, MatchesPublishedTestVectors) {
    EXPECT_EQ(lumi::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(lumi::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(lumi::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(lumi::sha256_hex(std::string(1'000'000, 'a')),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalUpdatesEqualOneShot) {
    std::string text;
    for (int i = 0; i < 1000; ++i) text += static_cast<char>(i * 7);
    lumi::Sha256 hasher;
    for (std::size_t at = 0; at < text.size(); at += 37) hasher.update(text.substr(at, 37));
    EXPECT_EQ(hasher.hex_digest(), lumi::sha256_hex(text));
}

TEST(Sha256, HashesAFile) {
    const fs::path dir = fresh_directory("hash");
    lumi::write_file_atomic(dir / "a.txt", "abc");
    EXPECT_EQ(lumi::sha256_file(dir / "a.txt"), lumi::sha256_hex("abc"));
    EXPECT_THROW(lumi::sha256_file(dir / "missing"), lumi::Error);
}

TEST(Files, AtomicWriteReplacesTheWholeFileAndLeavesNoTemporary) {
    const fs::path dir = fresh_directory("atomic");
    lumi::write_file_atomic(dir / "sub" / "f.bin", "first");
    lumi::write_file_atomic(dir / "sub" / "f.bin", "second");
    EXPECT_EQ(lumi::read_file(dir / "sub" / "f.bin"), "second");
    EXPECT_EQ(std::distance(fs::directory_iterator(dir / "sub"), fs::directory_iterator{}), 1);
}

TEST(Files, ReadingAMissingFileNamesIt) {
    try {
        lumi::read_file("/nonexistent/lumi.txt");
        FAIL();
    } catch (const lumi::Error& error) {
        EXPECT_NE(std::string(error.what()).find("/nonexistent/lumi.txt"), std::string::npos);
    }
}

TEST(Files, StagedDirectoryAppearsOnlyWhenCommitted) {
    const fs::path dir = fresh_directory("staged");
    {
        lumi::StagedDirectory staged(dir / "out");
        lumi::write_file_atomic(staged.path() / "x", "1");
        EXPECT_FALSE(fs::exists(dir / "out"));
    }  // abandoned
    EXPECT_FALSE(fs::exists(dir / "out"));
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}), 0);
    {
        lumi::StagedDirectory staged(dir / "out");
        lumi::write_file_atomic(staged.path() / "x", "1");
        staged.commit();
    }
    EXPECT_EQ(lumi::read_file(dir / "out" / "x"), "1");
    {
        lumi::StagedDirectory staged(dir / "out");
        lumi::write_file_atomic(staged.path() / "y", "2");
        staged.commit();
    }
    EXPECT_FALSE(fs::exists(dir / "out" / "x"));
    EXPECT_EQ(lumi::read_file(dir / "out" / "y"), "2");
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}), 1);
}

TEST(Parallel, CoversEveryIndexOnceAndRethrows) {
    std::vector<std::atomic<int>> seen(1001);
    lumi::parallel_for(seen.size(), 3, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) ++seen[i];
    });
    for (auto& count : seen) EXPECT_EQ(count.load(), 1);
    EXPECT_THROW(lumi::parallel_for(10, 2,
                                    [](std::size_t begin, std::size_t) {
                                        if (begin > 0) throw lumi::Error("worker failed");
                                    }),
                 lumi::Error);
}

}  // namespace
