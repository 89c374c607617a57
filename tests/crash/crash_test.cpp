// Pretraining killed with SIGKILL at 20 random moments (while starting, while training, while a checkpoint
// or the final model is being written) and started again after each: the final weights and the metrics log
// equal those of a run that was never interrupted, bit for bit. LUMI_CRASH_SEED=<n> replays a sequence of
// moments (the seed is printed).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "lumi/core/files.hpp"
#include "lumi/core/sha256.hpp"
#include "lumi/data/packed.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Never reached by the 20 attempts (each gets at most 5 steps past the furthest one logged before it), so
// every kill finds a live run.
constexpr std::int64_t steps = 120;
constexpr int kills = 20;

std::string read_text(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// 96 sequences of 17 tokens, a learnable pattern over the test spec's 61 ids.
void write_dataset(const fs::path& dir) {
    lumi::data::ShardWriter writer(dir, "train",
                                   {.sequence_length = 17,
                                    .vocab_size = 61,
                                    .tokenizer_sha256 = lumi::sha256_hex("crash test tokenizer")},
                                   64);
    std::mt19937 random(5);
    std::vector<int> tokens(17);
    for (int s = 0; s < 96; ++s) {
        const int start = int(random() % 61);
        for (int t = 0; t < 17; ++t) tokens[std::size_t(t)] = (start + 3 * t + (random() % 4 == 0)) % 61;
        writer.add(tokens);
    }
    writer.finish();
}

class Worker {
  public:
    Worker(const fs::path& dataset, const fs::path& output, const fs::path& log) {
        std::vector<std::string> text{LUMI_CRASH_WORKER, dataset.string(), output.string(),
                                      std::to_string(steps)};
        std::vector<char*> argv;
        for (auto& a : text) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0)
            throw std::runtime_error(std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc));
    }
    // The wait status once the process has ended.
    std::optional<int> poll() {
        int status = 0;
        if (!ended_ && ::waitpid(pid_, &status, WNOHANG) == pid_) ended_ = status;
        return ended_;
    }
    int kill_and_wait() {
        if (!poll()) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
            ended_ = status;
        }
        return *ended_;
    }
    int wait(double seconds) {
        const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
        while (!poll() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return kill_and_wait();
    }
    ~Worker() {
        if (!ended_) kill_and_wait();
    }

  private:
    pid_t pid_ = -1;
    std::optional<int> ended_;
};

// The highest step metrics.jsonl has a whole line for (0 when none).
std::int64_t logged_step(const fs::path& output) {
    const std::string text = read_text(output / "metrics.jsonl");
    const std::size_t end = text.rfind('\n');
    if (end == std::string::npos) return 0;
    const std::size_t begin = text.rfind('\n', end == 0 ? 0 : end - 1);
    boost::json::error_code error;
    const auto record = boost::json::parse(
        std::string_view(text).substr(begin == std::string::npos ? 0 : begin + 1, end - begin - 1), error);
    if (error || !record.is_object() || !record.as_object().contains("step")) return 0;
    return record.at("step").to_number<std::int64_t>();
}

// The staged checkpoints and final models (and checkpoints being pruned) on disk right now.
std::set<std::string> staging(const fs::path& output) {
    std::set<std::string> found;
    for (const fs::path& dir : {output / "checkpoints", output}) {
        DIR* d = ::opendir(dir.c_str());
        if (!d) continue;
        while (const dirent* e = ::readdir(d)) {
            const std::string_view name = e->d_name;
            if ((name.starts_with(".step_") || name.starts_with(".final.")) && name.ends_with(".tmp"))
                found.emplace(name);
        }
        ::closedir(d);
    }
    return found;
}

// Whether `now` holds a staging name `before` did not: one the running worker made.
bool new_staging(const std::set<std::string>& before, const std::set<std::string>& now) {
    for (const auto& name : now)
        if (!before.contains(name)) return true;
    return false;
}

// (step, loss) of every training record of metrics.jsonl, in order.
std::vector<std::pair<std::int64_t, double>> losses(const fs::path& output) {
    std::vector<std::pair<std::int64_t, double>> out;
    std::ifstream in(output / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
        const auto record = boost::json::parse(line).as_object();
        out.emplace_back(record.at("step").to_number<std::int64_t>(), record.at("loss").to_number<double>());
    }
    return out;
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(Crash, PretrainingKilledTwentyTimesEndsWithTheUninterruptedWeightsBitForBit) {
    const fs::path dir = fs::temp_directory_path() / ("lumi_crash_test_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "packed");
    write_dataset(dir / "packed");
    const fs::path log = dir / "worker.log";

    auto start = Clock::now();
    double first_step = 0;  // how long a start takes, up to the first step logged
    {
        Worker whole(dir / "packed", dir / "whole", log);
        while (!whole.poll() && seconds_since(start) < 300) {
            if (first_step == 0 && logged_step(dir / "whole") >= 1) first_step = seconds_since(start);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        const int status = whole.kill_and_wait();
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_text(log);
    }
    const double uninterrupted = seconds_since(start);

    const char* seed_text = std::getenv("LUMI_CRASH_SEED");
    const std::uint64_t seed = seed_text ? std::stoull(seed_text) : std::random_device{}();
    std::printf("LUMI_CRASH_SEED=%llu\n", (unsigned long long)seed);
    RecordProperty("seed", std::to_string(seed));
    std::mt19937_64 random(seed);
    auto uniform = [&](double low, double high) {
        return std::uniform_real_distribution<>(low, high)(random);
    };

    const fs::path output = dir / "crashed";
    int killed = 0, while_staging = 0;
    start = Clock::now();
    for (int attempt = 0; attempt < kills; ++attempt) {
        const std::int64_t before = logged_step(output);
        const auto leftovers = staging(output);  // the worker removes these when it starts
        Worker worker(dir / "packed", output, log);
        const double moment = uniform(0, 1);
        const auto deadline = Clock::now() + std::chrono::seconds(120);
        bool ready = false;
        if (moment < 0.15) {  // while starting: cleaning up, restoring, rewriting the metrics log
            std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0, first_step)));
            ready = true;
        } else if (moment < 0.55) {  // while a checkpoint is staged (or pruned): a random instant within it
            // A loaded machine can deschedule this poll past a whole checkpoint write: after two missed
            // checkpoints (every 2 steps) it kills while training instead, so no attempt runs to the end.
            bool missed = false;
            while (!worker.poll() && Clock::now() < deadline &&
                   !(ready = new_staging(leftovers, staging(output))) &&
                   !(missed = logged_step(output) >= before + 4))
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            ready = ready || missed;
            std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0, 0.003)));
        } else {  // while training: some steps after the last logged one, at a random point of a step
            const std::int64_t target = before + 1 + std::int64_t(random() % 5);
            while (!worker.poll() && Clock::now() < deadline && !(ready = logged_step(output) >= target))
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0, 0.01)));
        }
        const int status = worker.kill_and_wait();
        ASSERT_TRUE(ready && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            << "attempt " << attempt << " ended before it was killed (status " << status << ")\n"
            << read_text(log);
        ++killed;
        while_staging += new_staging(leftovers, staging(output));
    }
    const double crashing = seconds_since(start);
    start = Clock::now();
    {
        Worker last(dir / "packed", output, log);
        const int status = last.wait(300);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_text(log);
    }
    std::printf(
        "uninterrupted run %.1f s; %d kills (%d with a staged checkpoint on disk) in %.1f s; "
        "the last run %.1f s\n",
        uninterrupted, killed, while_staging, crashing, seconds_since(start));

    EXPECT_EQ(killed, kills);
    EXPECT_GE(while_staging, 1);  // some kills did land inside a checkpoint write
    const std::string weights = read_text(dir / "whole" / "final" / "model.safetensors");
    ASSERT_GT(weights.size(), 1000u);
    EXPECT_TRUE(read_text(output / "final" / "model.safetensors") == weights)
        << "the final weights differ from the uninterrupted run's";
    const auto expected = losses(dir / "whole");
    ASSERT_EQ(expected.size(), std::size_t(steps));
    EXPECT_EQ(losses(output), expected);  // every step once, each with the same loss
    for (const auto& entry : fs::directory_iterator(output / "checkpoints"))
        EXPECT_FALSE(entry.path().filename().string().starts_with(".")) << entry.path();
    fs::remove_all(dir);
}

}  // namespace
