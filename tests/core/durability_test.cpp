// The order of fsync and rename calls behind atomic files and staged directories, observed by shims of
// fsync, rename and renameat2 defined in this binary (they win symbol lookup over libc's and forward to the
// system calls).
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "lumi/core/files.hpp"

namespace fs = std::filesystem;

namespace {

struct Journal {
    std::mutex mutex;
    bool recording = false;
    bool refuse_exchange = false;  // renameat2(RENAME_EXCHANGE) fails as on a filesystem without it
    std::vector<std::string> events;
};
Journal& journal() {
    static Journal j;
    return j;
}
void record(std::string event) {
    auto& j = journal();
    std::lock_guard lock(j.mutex);
    if (j.recording) j.events.push_back(std::move(event));
}
std::string path_of(int fd) {
    char buffer[4096];
    const auto n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buffer, sizeof buffer - 1);
    return n > 0 ? std::string(buffer, std::size_t(n)) : std::string("?");
}

}  // namespace

extern "C" int fsync(int fd) {
    record("fsync " + path_of(fd));
    return int(::syscall(SYS_fsync, fd));
}
extern "C" int rename(const char* from, const char* to) {
    record("rename " + std::string(from) + " " + to);
    return int(::syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 0));
}
extern "C" int renameat2(int from_dir, const char* from, int to_dir, const char* to, unsigned flags) {
    if (journal().refuse_exchange && (flags & RENAME_EXCHANGE)) {
        errno = EINVAL;
        return -1;
    }
    record(std::string(flags & RENAME_EXCHANGE ? "exchange " : "rename ") + from + " " + to);
    return int(::syscall(SYS_renameat2, from_dir, from, to_dir, to, flags));
}

namespace {

fs::path fresh_directory(const std::string& name) {
    const fs::path dir = fs::canonical(fs::temp_directory_path()) /
                         ("lumi_durability_test_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// Records the calls `body` makes.
template <class F>
std::vector<std::string> journal_of(F&& body, bool refuse_exchange = false) {
    auto& j = journal();
    {
        std::lock_guard lock(j.mutex);
        j.events.clear();
        j.recording = true;
        j.refuse_exchange = refuse_exchange;
    }
    body();
    std::lock_guard lock(j.mutex);
    j.recording = false;
    j.refuse_exchange = false;
    return j.events;
}

std::ptrdiff_t index_of(const std::vector<std::string>& events, const std::string& prefix) {
    for (std::size_t i = 0; i < events.size(); ++i)
        if (events[i].starts_with(prefix)) return std::ptrdiff_t(i);
    return -1;
}

std::string joined(const std::vector<std::string>& events) {
    std::string out;
    for (const auto& e : events) out += e + "\n";
    return out;
}

std::size_t entries(const fs::path& dir) {
    return std::size_t(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}));
}

TEST(Durability, AnAtomicFileIsSyncedBeforeItsRenameAndItsDirectoryAfter) {
    const fs::path dir = fresh_directory("file");
    const auto events = journal_of([&] { lumi::write_file_atomic(dir / "f.json", "{}"); });
    ASSERT_EQ(events.size(), 3u) << joined(events);
    EXPECT_TRUE(events[0].starts_with("fsync " + (dir / ".f.json.").string())) << joined(events);
    EXPECT_TRUE(events[1].starts_with("rename " + (dir / ".f.json.").string())) << joined(events);
    EXPECT_TRUE(events[1].ends_with(" " + (dir / "f.json").string())) << joined(events);
    EXPECT_EQ(events[2], "fsync " + dir.string());
    EXPECT_EQ(lumi::read_file(dir / "f.json"), "{}");
}

TEST(Durability, AStagedDirectoryIsSyncedWholeThenSwappedInWithOneRename) {
    const fs::path dir = fresh_directory("staged");
    {
        lumi::StagedDirectory first(dir / "out");
        lumi::write_file_atomic(first.path() / "old", "1");
        first.commit();
    }
    const auto events = journal_of([&] {
        lumi::StagedDirectory staged(dir / "out");
        fs::create_directories(staged.path() / "sub");
        std::FILE* plain = std::fopen((staged.path() / "sub" / "plain.bin").c_str(), "wb");  // not synced
        std::fputs("x", plain);
        std::fclose(plain);
        staged.commit();
    });
    const auto exchange = index_of(events, "exchange ");
    ASSERT_GE(exchange, 0) << joined(events);
    EXPECT_TRUE(events[std::size_t(exchange)].ends_with(" " + (dir / "out").string())) << joined(events);
    // The file no one synced, its directory and the staging directory, all before the exchange.
    for (const char* synced : {"/sub/plain.bin", "/sub"}) {
        const auto at = std::find_if(events.begin(), events.end(), [&](const std::string& e) {
            return e.starts_with("fsync " + (dir / ".out.").string()) && e.ends_with(synced);
        });
        ASSERT_NE(at, events.end()) << synced << "\n" << joined(events);
        EXPECT_LT(at - events.begin(), exchange) << joined(events);
    }
    EXPECT_EQ(events.back(), "fsync " + dir.string()) << joined(events);
    EXPECT_EQ(std::count_if(
                  events.begin(), events.end(),
                  [](const std::string& e) { return e.starts_with("rename") || e.starts_with("exchange"); }),
              1)
        << joined(events);
    EXPECT_TRUE(fs::exists(dir / "out" / "sub" / "plain.bin"));
    EXPECT_FALSE(fs::exists(dir / "out" / "old"));
    EXPECT_EQ(entries(dir), 1u);  // the old directory went away
}

TEST(Durability, WithoutAnAtomicExchangeTheOldDirectoryComesBackFromTheTwoRenameWindow) {
    const fs::path dir = fresh_directory("fallback");
    {
        lumi::StagedDirectory first(dir / "out");
        lumi::write_file_atomic(first.path() / "v", "old");
        first.commit();
    }
    const auto events = journal_of(
        [&] {
            lumi::StagedDirectory second(dir / "out");
            lumi::write_file_atomic(second.path() / "v", "new");
            second.commit();
        },
        /*refuse_exchange=*/true);
    const auto aside =
        index_of(events, "rename " + (dir / "out").string() + " " + (dir / ".out.old.tmp").string());
    const auto in = std::find_if(events.begin(), events.end(),
                                 [&](const std::string& e) {
                                     return e.starts_with("rename " + (dir / ".out.").string()) &&
                                            e.ends_with(" " + (dir / "out").string());
                                 }) -
                    events.begin();
    ASSERT_GE(aside, 0) << joined(events);
    EXPECT_GT(in, aside) << joined(events);
    EXPECT_EQ(lumi::read_file(dir / "out" / "v"), "new");
    EXPECT_EQ(entries(dir), 1u);

    // Killed between the two renames: the old directory aside, the new one still staged.
    fs::rename(dir / "out", dir / ".out.old.tmp");
    fs::create_directories(dir / ".out.12345.tmp");
    lumi::write_file_atomic(dir / ".out.12345.tmp" / "v", "unfinished");
    lumi::remove_leftovers(dir);
    EXPECT_EQ(lumi::read_file(dir / "out" / "v"), "new");
    EXPECT_EQ(entries(dir), 1u);
    // Killed after both: the new directory in place, the old one still aside.
    fs::create_directories(dir / ".out.old.tmp");
    {
        lumi::StagedDirectory third(dir / "out");  // a commit of the same target recovers first
        EXPECT_FALSE(fs::exists(dir / ".out.old.tmp"));
        EXPECT_EQ(lumi::read_file(dir / "out" / "v"), "new");
    }
    EXPECT_EQ(entries(dir), 1u);
}

TEST(Durability, LeftoversOfInterruptedWritesAreRemovedAndNothingElse) {
    const fs::path dir = fresh_directory("leftovers");
    lumi::write_file_atomic(dir / "keep.json", "{}");
    lumi::write_file_atomic(dir / ".hidden", "mine");
    lumi::write_file_atomic(dir / "data.tmp", "a user's file");
    fs::create_directories(dir / ".step_00000010.271828.tmp");  // a checkpoint killed while written
    lumi::write_file_atomic(dir / ".step_00000010.271828.tmp" / "model.safetensors", "partial");
    lumi::write_file_atomic(dir / ".metrics.jsonl.31415.tmp", "partial");  // a file killed before its rename
    lumi::remove_leftovers(dir);
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{".hidden", "data.tmp", "keep.json"}));
}

TEST(Durability, AFailedWriteLeavesTheOldFileAndNoTemporary) {
    const fs::path dir = fresh_directory("failed");
    lumi::write_file_atomic(dir / "f", "old");
    {
        lumi::AtomicFile out(dir / "f");
        out.write("half of the new");
    }  // never committed: an exception on the way
    EXPECT_EQ(lumi::read_file(dir / "f"), "old");
    EXPECT_EQ(entries(dir), 1u);
    fs::create_directories(dir / "a_directory");
    try {
        lumi::write_file_atomic(dir / "a_directory", "x");
        FAIL() << "expected an error";
    } catch (const lumi::Error& e) {
        EXPECT_NE(std::string(e.what()).find((dir / "a_directory").string() + ": cannot write the file"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_EQ(entries(dir), 2u);
}

}  // namespace
