#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../model/test_specs.hpp"
#include "lumi/config/config.hpp"
#include "lumi/data/packed.hpp"
#include "lumi/distributed/gradients.hpp"
#include "lumi/io/safetensors.hpp"
#include "lumi/lora/lora.hpp"
#include "lumi/train/trainer.hpp"

extern char** environ;

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// A packed dataset of learnable patterns: 48 training and 16 validation sequences of 17 tokens.
fs::path dataset() {
    static const fs::path dir = [] {
        const auto d = fs::temp_directory_path() / ("lumi_distributed_data_" + std::to_string(::getpid()));
        fs::remove_all(d);
        fs::create_directories(d);
        const lumi::data::ShardLayout layout{
            .sequence_length = 17, .vocab_size = 61, .tokenizer_sha256 = std::string(64, 'a')};
        for (auto [split, count] : {std::pair{"train", 48}, std::pair{"val", 16}}) {
            lumi::data::ShardWriter writer(d, split, layout, 1000);
            for (int i = 0; i < count; ++i) {
                std::vector<int> tokens(17);
                for (int t = 0; t < 17; ++t)
                    tokens[std::size_t(t)] = (i * 7 + t * 3 + (split[0] == 'v')) % 61;
                writer.add(tokens);
            }
            writer.finish();
        }
        return d;
    }();
    return dir;
}

// Preference pairs as prepare_dpo lays them out (pair i = rows 2i chosen, 2i + 1 rejected, the loss mask on
// the answer): 24 training and 8 validation pairs of 17-token rows, a 6-token prompt and answers of 5 to 11
// tokens.
fs::path preference_dataset() {
    static const fs::path dir = [] {
        const auto d = fs::temp_directory_path() / ("lumi_distributed_dpo_" + std::to_string(::getpid()));
        fs::remove_all(d);
        fs::create_directories(d);
        const lumi::data::ShardLayout layout{.sequence_length = 17,
                                             .vocab_size = 61,
                                             .tokenizer_sha256 = std::string(64, 'a'),
                                             .loss_mask = true};
        for (auto [split, count] : {std::pair{"train", 24}, std::pair{"val", 8}}) {
            lumi::data::ShardWriter writer(d, split, layout, 1000);
            for (int i = 0; i < count; ++i)
                for (int side = 0; side < 2; ++side) {
                    std::vector<int> tokens(17, 0);
                    std::vector<std::uint8_t> mask(17, 0);
                    const int answer = 5 + (i + side * 3) % 7;
                    for (int t = 0; t < 6 + answer; ++t) {
                        tokens[std::size_t(t)] = (i * 5 + t * (side ? 7 : 3) + (split[0] == 'v')) % 61;
                        mask[std::size_t(t)] = t >= 6;
                    }
                    writer.add(tokens, mask);
                }
            writer.finish();
        }
        lumi::config::write_json_file(boost::json::object{{"kind", "lumi.dpo"}}, d / "manifest.json");
        return d;
    }();
    return dir;
}

fs::path fresh(const std::string& name) {
    const auto dir =
        fs::temp_directory_path() / ("lumi_distributed_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t size = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
    ::close(fd);
    return ntohs(address.sin_port);
}

std::string read_text(const fs::path& file) {
    std::ifstream in(file);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A worker process with its own environment; stdout and stderr go to files in `logs`.
struct Worker {
    pid_t pid = -1;
    fs::path out, err;
    std::optional<int> status;

    // Waits up to `seconds`; a worker still running then is killed (the test fails rather than hangs).
    bool wait(double seconds) {
        const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
        while (!status) {
            int s = 0;
            if (::waitpid(pid, &s, WNOHANG) == pid) {
                status = s;
                break;
            }
            if (Clock::now() > deadline) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, &s, 0);
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return true;
    }
    bool exited_ok() const { return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0; }
    std::string stdout_text() const { return read_text(out); }
    std::string stderr_text() const { return read_text(err); }
};

Worker start(const std::vector<std::string>& args, const std::map<std::string, std::string>& variables,
             const fs::path& logs, const std::string& name) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        const std::string entry = *e;
        const std::string key = entry.substr(0, entry.find('='));
        if (!variables.contains(key) && key != "RANK" && key != "WORLD_SIZE" && key != "LOCAL_RANK" &&
            key != "MASTER_ADDR" && key != "MASTER_PORT" && key != "LUMI_DIST_TIMEOUT")
            env.push_back(entry);
    }
    for (const auto& [key, value] : variables) env.push_back(key + "=" + value);
    env.push_back("OMP_NUM_THREADS=1");
    std::vector<std::string> argv_text{LUMI_DISTRIBUTED_WORKER};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<char*> argv, envp;
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    Worker worker;
    worker.out = logs / (name + ".out");
    worker.err = logs / (name + ".err");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, worker.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, worker.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = posix_spawn(&worker.pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error(std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc));
    return worker;
}

std::vector<std::string> arguments(const std::string& output, std::vector<std::string> extra) {
    const bool dpo = std::find(extra.begin(), extra.end(), "mode=dpo") != extra.end();
    extra.push_back("data=" + (dpo ? preference_dataset() : dataset()).string());
    extra.push_back("output=" + output);
    return extra;
}

// One process, no distributed variables.
Worker run_alone(const fs::path& output, const std::vector<std::string>& args) {
    Worker w = start(arguments(output.string(), args), {}, output, "alone");
    EXPECT_TRUE(w.wait(120)) << "the single process did not finish";
    EXPECT_TRUE(w.exited_ok()) << w.stderr_text();
    return w;
}

// Two loopback ranks; `timeout` is LUMI_DIST_TIMEOUT.
std::pair<Worker, Worker> start_pair(const fs::path& output, const std::vector<std::string>& args,
                                     int timeout = 30, const std::string& tag = "") {
    const std::string port = std::to_string(free_port());
    auto variables = [&](int rank) {
        return std::map<std::string, std::string>{{"RANK", std::to_string(rank)},
                                                  {"WORLD_SIZE", "2"},
                                                  {"LOCAL_RANK", std::to_string(rank)},
                                                  {"MASTER_ADDR", "127.0.0.1"},
                                                  {"MASTER_PORT", port},
                                                  {"LUMI_DIST_TIMEOUT", std::to_string(timeout)}};
    };
    Worker rank0 = start(arguments(output.string(), args), variables(0), output, tag + "rank0");
    Worker rank1 = start(arguments(output.string(), args), variables(1), output, tag + "rank1");
    return {std::move(rank0), std::move(rank1)};
}

void run_pair(const fs::path& output, const std::vector<std::string>& args, const std::string& tag = "") {
    auto [rank0, rank1] = start_pair(output, args, 30, tag);
    EXPECT_TRUE(rank0.wait(120)) << "rank 0 did not finish";
    EXPECT_TRUE(rank1.wait(30)) << "rank 1 did not finish";
    EXPECT_TRUE(rank0.exited_ok()) << rank0.stderr_text();
    EXPECT_TRUE(rank1.exited_ok()) << rank1.stderr_text();
}

lumi::train::NamedTensors parameters(const fs::path& output, int rank) {
    return lumi::io::load_safetensors(output / ("params_rank" + std::to_string(rank) + ".safetensors"))
        .tensors;
}

// The largest absolute difference between two parameter sets with the same names.
double largest_difference(const lumi::train::NamedTensors& a, const lumi::train::NamedTensors& b) {
    EXPECT_EQ(a.size(), b.size());
    double worst = 0;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
        EXPECT_EQ(a[i].first, b[i].first);
        worst = std::max(worst, (a[i].second - b[i].second).abs().max().item<double>());
    }
    return worst;
}

// Equal to float32 tolerance, as in Trainer.AccumulatingMicroBatchesEqualsOneLargerBatch; a rank that saw the
// wrong data or a gradient that was not averaged moves parameters by about the learning rate (3e-3).
void expect_close(const lumi::train::NamedTensors& a, const lumi::train::NamedTensors& b) {
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
        EXPECT_TRUE(torch::allclose(a[i].second, b[i].second, 1e-4, 1e-5))
            << a[i].first << ": largest difference "
            << (a[i].second - b[i].second).abs().max().item<double>();
}

double value_after(const std::string& text, const std::string& key) {
    const auto at = text.find(key);
    if (at == std::string::npos) return NAN;
    return std::stod(text.substr(at + key.size()));
}

std::size_t lines(const std::string& text) {
    return std::size_t(std::count(text.begin(), text.end(), '\n'));
}

TEST(Distributed, TwoRanksWithMicroBatchBEqualOneProcessWithBatch2B) {
    const auto alone = fresh("alone"), pair = fresh("pair");
    const std::vector<std::string> common{"steps=4", "grad_accum=2"};
    auto single_args = common, pair_args = common;
    single_args.insert(single_args.end(), {"micro_batch=4", "eval_batches=2"});
    pair_args.insert(pair_args.end(), {"micro_batch=2", "eval_batches=4"});  // the same validation sequences
    const Worker single = run_alone(alone, single_args);
    run_pair(pair, pair_args);

    const auto reference = parameters(alone, 0), rank0 = parameters(pair, 0), rank1 = parameters(pair, 1);
    expect_close(reference, rank0);
    EXPECT_EQ(largest_difference(rank0, rank1), 0.0) << "the ranks' parameters drifted apart";
    const std::string out0 = read_text(pair / "rank0.out"), out1 = read_text(pair / "rank1.out");
    EXPECT_NE(out0.find("steps 4 tokens 544 "), std::string::npos) << out0;  // 4 x 2 ranks x 2 x 2 x 17
    EXPECT_NEAR(value_after(out0, "val_loss "), value_after(single.stdout_text(), "val_loss "), 1e-5);
    EXPECT_EQ(value_after(out0, "val_loss "), value_after(out1, "val_loss "));

    // Rank 0 alone wrote: one checkpoint, one metrics log (4 steps and 1 validation line), no progress from
    // rank 1.
    std::vector<std::string> checkpoints;
    for (const auto& entry : fs::directory_iterator(pair / "checkpoints"))
        checkpoints.push_back(entry.path().filename().string());
    EXPECT_EQ(checkpoints, std::vector<std::string>{"step_00000004"});
    EXPECT_EQ(lines(read_text(pair / "metrics.jsonl")), 5u);
    EXPECT_NE(read_text(pair / "metrics.jsonl").find("\"comm_s\""), std::string::npos);
    EXPECT_EQ(read_text(alone / "metrics.jsonl").find("\"comm_s\""), std::string::npos);
    EXPECT_NE(read_text(pair / "rank0.err").find("train 4/4"), std::string::npos);
    EXPECT_EQ(read_text(pair / "rank1.err"), "");
    EXPECT_TRUE(fs::exists(pair / "final" / "model.safetensors"));
}

// Muon orthogonalises the all-reduced gradient's momentum: the same update on every rank.
TEST(Distributed, MuonTwoRanksEqualOneProcess) {
    const auto alone = fresh("muon_alone"), pair = fresh("muon_pair");
    run_alone(alone, {"mode=muon", "steps=3", "micro_batch=4", "eval_batches=2"});
    run_pair(pair, {"mode=muon", "steps=3", "micro_batch=2", "eval_batches=4"});
    const auto rank0 = parameters(pair, 0);
    expect_close(parameters(alone, 0), rank0);
    EXPECT_EQ(largest_difference(rank0, parameters(pair, 1)), 0.0) << "the ranks' parameters drifted apart";
}

TEST(Distributed, LoraTwoRanksEqualOneProcessAndTheBaseStaysFrozen) {
    const auto alone = fresh("lora_alone"), pair = fresh("lora_pair");
    run_alone(alone, {"mode=lora", "steps=3", "micro_batch=4"});
    run_pair(pair, {"mode=lora", "steps=3", "micro_batch=2"});
    const auto reference = parameters(alone, 0), rank0 = parameters(pair, 0), rank1 = parameters(pair, 1);
    expect_close(reference, rank0);
    EXPECT_EQ(largest_difference(rank0, rank1), 0.0);
    // The adapters moved, the frozen base did not.
    constexpr lumi::LoraSpec adapter{.rank = 4, .alpha = 8, .dropout = 0.0};  // as in worker.cpp
    lumi::Transformer<lumi::test::gqa, lumi::Lora<adapter>> base;             // the same initialisation
    const auto original_parameters = base->named_parameters();
    std::size_t adapters = 0;
    for (const auto& [name, tensor] : rank0) {
        if (name.find(".lora_") != std::string::npos) {
            ++adapters;
            continue;
        }
        const auto* original = original_parameters.find(name);
        ASSERT_NE(original, nullptr) << name;
        EXPECT_TRUE(torch::equal(*original, tensor)) << name;
    }
    EXPECT_GT(adapters, 0u);
}

// DPO (LoRA, reference = adapters off) data-parallel: two ranks of 2 pairs equal one process of 4, and the
// objective's metrics are averaged over the ranks like the loss.
TEST(Distributed, DpoTwoRanksEqualOneProcess) {
    const auto alone = fresh("dpo_alone"), pair = fresh("dpo_pair");
    const Worker single = run_alone(alone, {"mode=dpo", "steps=3", "micro_batch=4", "eval_batches=2"});
    run_pair(pair, {"mode=dpo", "steps=3", "micro_batch=2", "eval_batches=4"});
    const auto reference = parameters(alone, 0), rank0 = parameters(pair, 0), rank1 = parameters(pair, 1);
    expect_close(reference, rank0);
    EXPECT_EQ(largest_difference(rank0, rank1), 0.0);
    const std::string out0 = read_text(pair / "rank0.out");
    EXPECT_NE(out0.find("steps 3 tokens 408 "), std::string::npos) << out0;  // 3 x 2 ranks x 2 pairs x 2 x 17
    EXPECT_NEAR(value_after(out0, "val_loss "), value_after(single.stdout_text(), "val_loss "), 1e-5);
    const std::string metrics = read_text(pair / "metrics.jsonl"),
                      alone_metrics = read_text(alone / "metrics.jsonl");
    // The last step's (the first is 0: the adapters start at zero), and the validation's.
    auto last = [](const std::string& text, const std::string& key) {
        const auto at = text.rfind(key);
        return at == std::string::npos ? NAN : std::stod(text.substr(at + key.size()));
    };
    const double margin = last(metrics, "\"rewards/margins\":");
    EXPECT_NE(margin, 0.0);
    EXPECT_NEAR(margin, last(alone_metrics, "\"rewards/margins\":"), 1e-6);
    EXPECT_NEAR(last(metrics, "\"val_rewards/accuracies\":"),
                last(alone_metrics, "\"val_rewards/accuracies\":"), 1e-9);
}

TEST(Distributed, KilledRankEndsTheOtherWithAnErrorAndTheRunResumesFromTheLastCheckpoint) {
    const std::vector<std::string> args{"steps=8", "micro_batch=2", "checkpoint_every=4"};
    const auto whole = fresh("whole"), broken = fresh("broken");
    run_pair(whole, args);

    auto killed_args = args;
    killed_args.push_back("die_at=6");
    auto [rank0, rank1] = start_pair(broken, killed_args, /*timeout=*/20);
    ASSERT_TRUE(rank1.wait(120));
    ASSERT_TRUE(WIFSIGNALED(*rank1.status) && WTERMSIG(*rank1.status) == SIGKILL) << rank1.stderr_text();
    const auto died = Clock::now();
    ASSERT_TRUE(rank0.wait(30)) << "rank 0 hung after rank 1 was killed";
    const double seconds = std::chrono::duration<double>(Clock::now() - died).count();
    EXPECT_LT(seconds, 20.0);
    EXPECT_TRUE(WIFEXITED(*rank0.status) && WEXITSTATUS(*rank0.status) != 0);
    EXPECT_NE(rank0.stderr_text().find("rank 0 of 2 lost contact with the other ranks"), std::string::npos)
        << rank0.stderr_text();
    EXPECT_TRUE(fs::exists(broken / "checkpoints" / "step_00000004" / "trainer_state.json"));
    EXPECT_FALSE(fs::exists(broken / "checkpoints" / "step_00000008"));
    EXPECT_FALSE(fs::exists(broken / "final"));

    auto resumed_args = args;
    resumed_args.push_back("resume=1");
    run_pair(broken, resumed_args, "resumed_");
    EXPECT_NE(read_text(broken / "resumed_rank0.err").find("resuming from"), std::string::npos);
    EXPECT_EQ(largest_difference(parameters(whole, 0), parameters(broken, 0)), 0.0);
    EXPECT_EQ(largest_difference(parameters(whole, 1), parameters(broken, 1)), 0.0);
}

TEST(Distributed, AStopAskedOfOneRankStopsEveryRankAfterTheSameStep) {
    const auto out = fresh("stop");
    run_pair(out, {"steps=8", "micro_batch=2", "stop_at=3"});
    EXPECT_NE(read_text(out / "rank0.out").find("rank 0: steps 3 tokens 204 val_loss nan interrupted"),
              std::string::npos)
        << read_text(out / "rank0.out");
    EXPECT_NE(read_text(out / "rank1.out").find("rank 1: steps 3 "), std::string::npos);
    EXPECT_TRUE(fs::exists(out / "checkpoints" / "step_00000003" / "trainer_state.json"));
    EXPECT_NE(read_text(out / "rank0.err").find("another rank was asked to stop"), std::string::npos);
}

TEST(Distributed, HungRankEndsTheOtherWithinTheTimeout) {
    const auto out = fresh("hung");
    auto [rank0, rank1] = start_pair(out, {"steps=6", "micro_batch=2", "hang_at=2"}, /*timeout=*/3);
    const auto begin = Clock::now();
    const bool ended = rank0.wait(60);
    ::kill(rank1.pid, SIGKILL);  // stopped, it would never exit
    rank1.wait(10);
    ASSERT_TRUE(ended) << "rank 0 hung";
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - begin).count(), 30.0);
    EXPECT_TRUE(WIFEXITED(*rank0.status) && WEXITSTATUS(*rank0.status) != 0);
    EXPECT_NE(rank0.stderr_text().find("lost contact with the other ranks"), std::string::npos)
        << rank0.stderr_text();
    EXPECT_NE(rank0.stderr_text().find("LUMI_DIST_TIMEOUT = 3 s"), std::string::npos);
}

TEST(Distributed, AMissingRankFailsTheRendezvousWithinTheTimeout) {
    const auto out = fresh("missing");
    const std::map<std::string, std::string> variables{{"RANK", "1"},
                                                       {"WORLD_SIZE", "2"},
                                                       {"MASTER_ADDR", "127.0.0.1"},
                                                       {"MASTER_PORT", std::to_string(free_port())},
                                                       {"LUMI_DIST_TIMEOUT", "2"}};
    Worker alone = start(arguments(out.string(), {"steps=2"}), variables, out, "rank1");
    ASSERT_TRUE(alone.wait(60));
    EXPECT_TRUE(WIFEXITED(*alone.status) && WEXITSTATUS(*alone.status) == 2);
    EXPECT_NE(alone.stderr_text().find("rank 1 of 2: no rendezvous with the other ranks at "
                                       "MASTER_ADDR:MASTER_PORT = 127.0.0.1:"),
              std::string::npos)
        << alone.stderr_text();
}

// The environment, read in this process: set, checked, restored.
class Variables {
  public:
    explicit Variables(const std::map<std::string, std::string>& values) {
        for (const char* key :
             {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LUMI_DIST_TIMEOUT"}) {
            if (const char* old = std::getenv(key)) saved_[key] = old;
            ::unsetenv(key);
        }
        for (const auto& [key, value] : values) ::setenv(key.c_str(), value.c_str(), 1);
    }
    ~Variables() {
        for (const char* key :
             {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LUMI_DIST_TIMEOUT"})
            ::unsetenv(key);
        for (const auto& [key, value] : saved_) ::setenv(key.c_str(), value.c_str(), 1);
    }

  private:
    std::map<std::string, std::string> saved_;
};

std::string environment_error(const std::map<std::string, std::string>& values) {
    Variables set(values);
    try {
        lumi::distributed::environment();
    } catch (const lumi::Error& error) {
        return error.what();
    }
    return "";
}

TEST(Distributed, EnvironmentErrorsNameTheVariable) {
    const std::map<std::string, std::string> good{
        {"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}};
    {
        Variables set(good);
        const auto env = lumi::distributed::environment();
        EXPECT_EQ(env.rank, 1);
        EXPECT_EQ(env.world_size, 2);
        EXPECT_EQ(env.master_port, 29500);
        EXPECT_EQ(env.timeout.count(), 300);
    }
    {
        Variables set(std::map<std::string, std::string>{});
        EXPECT_FALSE(lumi::distributed::environment().distributed());
    }
    {
        Variables set(
            std::map<std::string, std::string>{{"WORLD_SIZE", "1"}});  // one process needs nothing else
        EXPECT_FALSE(lumi::distributed::environment().distributed());
    }
    auto with = [&](const std::string& key, const std::string& value) {
        auto v = good;
        if (value.empty())
            v.erase(key);
        else
            v[key] = value;
        return environment_error(v);
    };
    EXPECT_EQ(with("WORLD_SIZE", "two"), "WORLD_SIZE='two': expected a positive integer");
    EXPECT_EQ(with("RANK", "2"), "RANK='2': expected an integer from 0 to WORLD_SIZE-1 = 1");
    EXPECT_NE(with("RANK", "").find("RANK is not set"), std::string::npos);
    EXPECT_NE(with("MASTER_ADDR", "").find("MASTER_ADDR is not set"), std::string::npos);
    EXPECT_EQ(with("MASTER_PORT", "70000"), "MASTER_PORT='70000': expected a TCP port from 1 to 65535");
    EXPECT_EQ(with("LUMI_DIST_TIMEOUT", "0"), "LUMI_DIST_TIMEOUT='0': expected a number of seconds >= 1");
}

TEST(Distributed, ReducerHooksOnlyTrainableParametersAndStartsBucketsDuringBackward) {
    lumi::distributed::ProcessGroup alone;
    auto a = torch::zeros({1000}, torch::requires_grad()), frozen = torch::zeros({10}),
         b = torch::zeros({1000}, torch::requires_grad()), c = torch::zeros({10}, torch::requires_grad());
    lumi::distributed::GradientReducer reducer(alone, {a, frozen, b, c}, /*bucket_bytes=*/4000);
    EXPECT_EQ(reducer.parameter_count(), 3u);
    EXPECT_EQ(reducer.bucket_count(), 2u);  // {c, b} reach 4000 bytes; {a}
    // Every gradient arrives in backward: both buckets start there. Alone, the mean is the gradient itself.
    reducer.arm();
    ((a * 2).sum() + (b * 3).sum() + (c * 4).sum()).backward();
    EXPECT_EQ(reducer.started_in_backward(), 2u);
    reducer.finish();
    EXPECT_TRUE(torch::equal(a.grad(), torch::full({1000}, 2.0f)));
    EXPECT_TRUE(torch::equal(c.grad(), torch::full({10}, 4.0f)));
    // An unused parameter holds back its bucket, and the ones after it, until finish(); it counts as zero.
    for (auto* p : {&a, &b, &c}) p->mutable_grad() = torch::Tensor();
    reducer.arm();
    ((a * 2).sum() + (b * 3).sum()).backward();
    EXPECT_EQ(reducer.started_in_backward(), 0u);
    reducer.finish();
    EXPECT_TRUE(torch::equal(b.grad(), torch::full({1000}, 3.0f)));
    EXPECT_TRUE(torch::equal(c.grad(), torch::zeros({10})));
    // Not armed (an earlier micro-batch of an accumulation): nothing starts.
    (a * 2).sum().backward();
    EXPECT_EQ(reducer.started_in_backward(), 0u);
}

}  // namespace
