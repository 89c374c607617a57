// Whole-file reads of the wrong thing: a directory, a missing file, a file over the limit.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "lumi/core/files.hpp"
#include "lumi/core/sha256.hpp"

namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const lumi::Error& e) {
        return e.what();
    }
    return "";
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

fs::path fresh_directory() {
    const fs::path dir =
        fs::temp_directory_path() / ("lumi_files_bad_input_" + std::to_string(::getpid()) + "_" +
                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

TEST(BadInputFiles, ReadingADirectoryIsAnErrorNamingIt) {
    const fs::path dir = fresh_directory();
    EXPECT_CONTAINS(error_of([&] { lumi::read_file(dir); }),
                    dir.string() + ": is a directory, expected a file");
    EXPECT_CONTAINS(error_of([&] { lumi::open_file(dir); }),
                    dir.string() + ": is a directory, expected a file");
    EXPECT_CONTAINS(error_of([&] { lumi::sha256_file(dir); }), dir.string() + ": is a directory");
    fs::remove_all(dir);
}

TEST(BadInputFiles, AMissingFileIsNamedWithTheReason) {
    const fs::path dir = fresh_directory();
    EXPECT_CONTAINS(error_of([&] { lumi::read_file(dir / "nothing"); }),
                    "nothing: cannot open the file: No such file or directory");
    fs::remove_all(dir);
}

TEST(BadInputFiles, AFileOverTheLimitIsRefusedAndOneAtItIsRead) {
    const fs::path dir = fresh_directory();
    std::ofstream(dir / "ten") << "0123456789";
    EXPECT_CONTAINS(error_of([&] { lumi::read_file(dir / "ten", 9); }),
                    "ten: 10 bytes or more, larger than the limit of 9 bytes");
    EXPECT_EQ(lumi::read_file(dir / "ten", 10), "0123456789");
    fs::remove_all(dir);
}

TEST(BadInputFiles, AStreamWithoutASizeStopsAtTheLimit) {
    // /dev/zero never ends: the read must stop at the limit, not exhaust the memory.
    EXPECT_CONTAINS(error_of([] { lumi::read_file("/dev/zero", 3u << 20); }), "/dev/zero: ");
    EXPECT_CONTAINS(error_of([] { lumi::read_file("/dev/zero", 3u << 20); }),
                    "larger than the limit of 3145728");
}

TEST(BadInputFiles, AnEmptyFileReadsAsNoBytes) {
    const fs::path dir = fresh_directory();
    std::ofstream(dir / "empty").close();
    EXPECT_EQ(lumi::read_file(dir / "empty"), "");
    fs::remove_all(dir);
}

}  // namespace
