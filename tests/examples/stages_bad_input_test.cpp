// The real stage executables (nano preset) fed truncated, empty, huge, wrong-type, directory-instead-of-file
// and corrupted inputs. Each must end with an exit status (never a signal), one `error: ...` line naming the
// file or field, and the outputs of earlier runs unchanged byte for byte. The inputs are built once per build
// tree by the stages themselves (a corpus, two tokenizers, packed data, a two-step pretraining, an
// instruction set).
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/sha256.hpp"
#include "lumi/io/safetensors.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const fs::path binaries = LUMI_STAGE_BINARY_DIR;
const fs::path fixture_root = LUMI_BAD_INPUT_DIR;

std::string read(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary | std::ios::trunc) << text;
}

struct Outcome {
    int status = -1;  // the exit status, when it exited
    int signal = 0;   // the signal that ended it, when one did
    bool timed_out = false;
    std::string out, err;
    std::string command;
};

// Runs a stage binary to its end (or `timeout`), with one thread and passive OpenMP (no re-exec); `during` is
// called with the child's pid and its stderr file while it runs.
Outcome run_stage(const std::string& binary, const std::vector<std::string>& args, const fs::path& logs,
                  double timeout = 120, const std::function<void(pid_t, const fs::path&)>& during = {}) {
    fs::create_directories(logs);
    static int counter = 0;
    const std::string stem = binary + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    const fs::path out = logs / (stem + ".out"), err = logs / (stem + ".err");
    std::vector<std::string> argv_text{(binaries / binary).string()};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    Outcome outcome;
    for (const auto& a : argv_text) outcome.command += a + " ";
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(o, 1);
        ::dup2(e, 2);
        ::setenv("OMP_WAIT_POLICY", "passive", 1);
        ::setenv("OMP_NUM_THREADS", "1", 1);
        ::setenv("LUMI_THREADS", "1", 1);
        std::vector<char*> argv;
        for (auto& a : argv_text) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    if (during) during(pid, err);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) != pid) {
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            outcome.timed_out = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (WIFEXITED(status)) outcome.status = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) outcome.signal = WTERMSIG(status);
    outcome.out = read(out);
    outcome.err = read(err);
    return outcome;
}

// Every regular file under `dir` with its SHA-256: what "left intact" compares.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
    std::map<std::string, std::string> files;
    if (!fs::exists(dir)) return files;
    for (const auto& entry : fs::recursive_directory_iterator(dir))
        if (entry.is_regular_file())
            files[fs::relative(entry.path(), dir).string()] = lumi::sha256_file(entry.path());
    return files;
}

// The inputs every case starts from, built once (under a lock, so parallel test processes share them).
struct Fixture {
    fs::path dir = fixture_root / "inputs";
    fs::path text() const { return dir / "text.txt"; }
    fs::path corpus() const { return dir / "corpus"; }
    fs::path tokenizer() const { return dir / "tokenizer"; }
    fs::path other_tokenizer() const { return dir / "tokenizer_other"; }
    fs::path packed() const { return dir / "packed"; }
    fs::path pretrain() const { return dir / "pretrain"; }
    fs::path final_model() const { return dir / "pretrain" / "final"; }
    fs::path alpaca() const { return dir / "alpaca.json"; }
    fs::path sft() const { return dir / "sft"; }
    fs::path prompts() const { return dir / "prompts.json"; }
};

std::vector<std::string> pretrain_args(const fs::path& dataset, const fs::path& output) {
    return {"--set", "data.dataset=" + dataset.string(),
            "--set", "run.output=" + output.string(),
            "--set", "run.max_steps=2",
            "--set", "run.micro_batch=2",
            "--set", "run.checkpoint_every=1",
            "--set", "run.eval_every=0",
            "--set", "run.eval_batches=1",
            "--set", "run.log_every=1",
            "--set", "run.device=cpu",
            "--set", "run.threads=1",
            "--set", "schedule.warmup_steps=1"};
}

void build_fixture(const Fixture& f) {
    const fs::path logs = fixture_root / "build_logs";
    auto must = [&](const std::string& binary, const std::vector<std::string>& args) {
        const Outcome o = run_stage(binary, args, logs, 600);
        if (o.status != 0) throw std::runtime_error(o.command + "\n" + o.out + o.err);
    };
    fs::remove_all(f.dir);
    // Varied text of made-up words (two to four syllables): enough for 400-piece tokenizers.
    const char* syllables[] = {"ka",  "lo",  "mi",  "ne",  "ru",  "sa",  "ti",  "vo",  "de",  "pa",
                               "qui", "zen", "bor", "ext", "ful", "gha", "ion", "jup", "wes", "yst"};
    std::uint64_t state = 7;
    auto next = [&state] {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return state >> 33;
    };
    std::vector<std::string> words(600);
    for (auto& word : words)
        for (std::uint64_t n = 2 + next() % 3; n > 0; --n) word += syllables[next() % 20];
    std::string text;
    for (int p = 0; p < 400; ++p) {
        for (int w = 0; w < 40; ++w) text += words[next() % words.size()] + (next() % 9 == 0 ? ". " : " ");
        text += "\n\n";
    }
    write(f.text(), text);
    must("lumi_prepare_corpus",
         {"--set", "output=" + f.corpus().string(), "--set", "clean.min_characters=10",
          "--set=sources=[{\"paths\": [\"" + f.text().string() + "\"], \"unit\": \"paragraph\"}]"});
    for (const auto& [out, vocab] : {std::pair(f.tokenizer(), "400"), std::pair(f.other_tokenizer(), "420")})
        must("lumi_train_tokenizer", {"--set", "input=" + f.corpus().string(), "--set",
                                      "output=" + out.string(), "--set", std::string("vocab_size=") + vocab});
    must(
        "lumi_pack_dataset",
        {"--set", "corpus=" + f.corpus().string(), "--set", "tokenizer=" + f.tokenizer().string(), "--set",
         "output=" + f.packed().string(), "--set", "sequence_length=32", "--set", "validation_fraction=0.1"});
    must("lumi_pretrain_nano", pretrain_args(f.packed(), f.pretrain()));
    std::string alpaca = "[";
    for (int i = 0; i < 30; ++i)
        alpaca += std::string(i ? "," : "") + "{\"instruction\": \"Name a word (" + std::to_string(i) +
                  ").\", \"input\": \"\", \"output\": \"The word " + words[std::size_t(i)] + ".\"}";
    write(f.alpaca(), alpaca + "]");
    must("lumi_prepare_sft", {"--set=datasets=[{\"path\": \"" + f.alpaca().string() + "\"}]", "--set",
                              "tokenizer=" + f.tokenizer().string(), "--set", "output=" + f.sft().string(),
                              "--set", "sequence_length=64"});
    write(f.prompts(), R"({"prompts": [{"id": "a", "category": "basic_knowledge", "prompt": "A river",
                                         "rule": {"any": ["stone"]}}]})");
    write(f.dir / "complete", "");
}

const Fixture& fixture() {
    static const Fixture f = [] {
        Fixture f;
        fs::create_directories(fixture_root);
        const int lock = ::open((fixture_root / "lock").c_str(), O_RDWR | O_CREAT, 0644);
        ::flock(lock, LOCK_EX);
        try {
            if (!fs::exists(f.dir / "complete")) build_fixture(f);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "building the stage fixture failed: " << e.what();
        }
        ::flock(lock, LOCK_UN);
        ::close(lock);
        return f;
    }();
    if (!fs::exists(f.dir / "complete")) ADD_FAILURE() << "the stage fixture could not be built";
    return f;
}

// A scratch directory for one case.
fs::path scratch() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (char& c : name)
        if (c == '/') c = '_';
    const fs::path dir = fixture_root / "cases" / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

fs::path copy_of(const fs::path& from, const fs::path& to) {
    fs::copy(from, to, fs::copy_options::recursive);
    return to;
}

// The one `error: ` line of stderr (empty when there is none).
std::string error_line(const std::string& err) {
    std::size_t at = err.rfind("\nerror: ");
    at = err.starts_with("error: ") && at == std::string::npos ? 0 : (at == std::string::npos ? at : at + 1);
    if (at == std::string::npos) return "";
    return err.substr(at, err.find('\n', at) - at);
}

::testing::AssertionResult refused(const Outcome& o, const std::vector<std::string>& parts) {
    auto failure = [&]() {
        return ::testing::AssertionFailure()
               << o.command << "\nstatus " << o.status << ", signal " << o.signal << "\nstdout: " << o.out
               << "\nstderr: " << o.err << "\n";
    };
    if (o.timed_out) return failure() << "timed out";
    if (o.signal != 0)
        return failure() << "ended by signal " << o.signal << " (" << strsignal(o.signal) << ")";
    if (o.status != 2) return failure() << "expected exit status 2";
    const std::string line = error_line(o.err);
    if (line.empty()) return failure() << "no `error: ` line";
    if (o.err.find("Exception raised from") != std::string::npos)
        return failure() << "a C++ backtrace was printed";
    for (const auto& part : parts)
        if (line.find(part) == std::string::npos)
            return failure() << "the error line does not contain \"" << part << "\"";
    return ::testing::AssertionSuccess();
}

template <class T>
void patch(const fs::path& file, std::size_t offset, T value) {
    std::fstream out(file, std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(static_cast<std::streamoff>(offset));
    out.write(reinterpret_cast<const char*>(&value), sizeof(T));
}

// Overwrites element 0 of a float32 tensor in a safetensors file.
void poison(const fs::path& file, const std::string& tensor, float value) {
    const auto header = lumi::io::read_safetensors_header(file);
    const auto* entry = header.find(tensor);
    ASSERT_NE(entry, nullptr) << tensor;
    patch(file, header.data_start + entry->begin, value);
}

// ---- The shared command line: every stage binary
// ------------------------------------------------------------

const std::vector<std::string> stage_binaries{
    "lumi_prepare_corpus", "lumi_train_tokenizer", "lumi_pack_dataset",
    "lumi_prepare_sft",    "lumi_pretrain_nano",   "lumi_train_sft_nano",
    "lumi_evaluate_nano",  "lumi_generate_nano",   "lumi_pipeline_nano"};

class BadInputStageCli : public ::testing::TestWithParam<std::string> {
  protected:
    fs::path dir = scratch();
    Outcome run(const std::vector<std::string>& args) { return run_stage(GetParam(), args, dir / "logs"); }
};

TEST_P(BadInputStageCli, AnUnknownOptionIsOneErrorLine) {
    EXPECT_TRUE(refused(run({"--no-such-option"}), {"error: ", "--no-such-option", "run with --help"}));
}

TEST_P(BadInputStageCli, AMissingSettingsFileIsNamed) {
    EXPECT_TRUE(
        refused(run({"--config", (dir / "missing.json").string()}), {"missing.json: cannot open the file"}));
}

TEST_P(BadInputStageCli, ADirectoryAsTheSettingsFileIsNamed) {
    EXPECT_TRUE(
        refused(run({"--config", dir.string()}), {dir.string() + ": is a directory, expected a file"}));
}

TEST_P(BadInputStageCli, AnEmptySettingsFileIsInvalidJsonAtLineOne) {
    write(dir / "empty.json", "");
    EXPECT_TRUE(refused(run({"--config", (dir / "empty.json").string()}), {"empty.json:1:1: invalid JSON"}));
}

TEST_P(BadInputStageCli, ATruncatedSettingsFileNamesItsLine) {
    write(dir / "cut.json", "{\n  \"output\": \"x\",\n  \"outp");
    EXPECT_TRUE(refused(run({"--config", (dir / "cut.json").string()}), {"cut.json:3:", "invalid JSON"}));
}

TEST_P(BadInputStageCli, ADuplicateKeyNamesBothLines) {
    write(dir / "twice.json", "{\n  \"preset\": \"nano\",\n  \"preset\": \"nano\"\n}\n");
    EXPECT_TRUE(refused(run({"--config", (dir / "twice.json").string()}),
                        {"twice.json:3: duplicate key \"preset\" (first at line 2)"}));
}

TEST_P(BadInputStageCli, AHugeSettingsFileIsRefusedUnread) {
    const fs::path huge = dir / "huge.json";
    write(huge, "");
    fs::resize_file(huge, std::uintmax_t{2} << 30);  // sparse
    EXPECT_TRUE(refused(run({"--config", huge.string()}), {"huge.json: ", "larger than the limit"}));
}

TEST_P(BadInputStageCli, ASettingsFileOfTheWrongTypeIsNamed) {
    write(dir / "array.json", "[1, 2, 3]");
    EXPECT_TRUE(refused(run({"--config", (dir / "array.json").string()}),
                        {"array.json: expected an object, found an array"}));
}

INSTANTIATE_TEST_SUITE_P(Stages, BadInputStageCli, ::testing::ValuesIn(stage_binaries),
                         [](const auto& info) { return info.param; });

// ---- Settings with values of the wrong type or out of range
// ---------------------------------------------------

struct SetCase {
    std::string binary, set, expected;
};

class BadInputStageSet : public ::testing::TestWithParam<SetCase> {};

TEST_P(BadInputStageSet, IsAnErrorNamingTheField) {
    const fs::path dir = scratch();
    const auto& c = GetParam();
    EXPECT_TRUE(refused(run_stage(c.binary, {"--set", c.set}, dir / "logs"), {c.expected}));
}

INSTANTIATE_TEST_SUITE_P(
    Stages, BadInputStageSet,
    ::testing::Values(
        SetCase{"lumi_pretrain_nano", "optimizer.lr=1e999",
                "--set optimizer.lr: expected a finite number (double)"},
        SetCase{"lumi_pretrain_nano", "optimizer.lr=NaN",
                "--set optimizer.lr: expected a number (double), found a string \"NaN\""},
        SetCase{"lumi_pretrain_nano", "run.max_steps=1.5",
                "--set run.max_steps: expected an integer (int64), found a number 1.5"},
        SetCase{"lumi_pretrain_nano", "run.micro_batch=\"8\"",
                "--set run.micro_batch: expected an integer (int64), found a string"},
        SetCase{"lumi_pretrain_nano", "run.stpes=3", "--set run.stpes: unknown key"},
        SetCase{"lumi_train_sft_nano", "optimizer.lr=-1e999", "--set optimizer.lr: expected a finite number"},
        SetCase{"lumi_train_sft_nano", "method=qlora", "--set method: unknown value 'qlora'"},
        SetCase{"lumi_prepare_corpus", "clean.min_characters=-3",
                "--set clean.min_characters: expected a non-negative integer"},
        SetCase{"lumi_train_tokenizer", "vocab_size=1e999", "--set vocab_size: expected an integer (int32)"},
        SetCase{"lumi_pack_dataset", "validation_fraction=1e999",
                "--set validation_fraction: expected a finite number"},
        SetCase{"lumi_prepare_sft", "sequence_length=[1]", "--set sequence_length: expected an integer"},
        SetCase{"lumi_evaluate_nano", "tasks=[\"perplexity\", 3]",
                "--set tasks: tasks[1]: expected a string"},
        SetCase{"lumi_generate_nano", "sampling.temperature=1e999",
                "--set sampling.temperature: expected a finite number"},
        SetCase{"lumi_pipeline_nano", "pretrain.optimizer.adamw.lr=1e999",
                "--set pretrain.optimizer.adamw.lr: expected a finite number"}),
    [](const auto& info) { return std::to_string(info.index) + "_" + info.param.binary; });

// ---- Data stages
// ------------------------------------------------------------------------------------------------

class BadInputDataStages : public ::testing::Test {
  protected:
    const Fixture& f = fixture();
    fs::path dir = scratch();
    Outcome run(const std::string& binary, const std::vector<std::string>& args) {
        return run_stage(binary, args, dir / "logs");
    }
};

TEST_F(BadInputDataStages, ACorruptGzipSourceIsNamedAndTheEarlierCorpusKept) {
    const fs::path corpus = copy_of(f.corpus(), dir / "corpus");
    const auto before = snapshot(corpus);
    // A gzip header with compression method 9 (only 8, deflate, exists), then text.
    write(dir / "in" / "broken.txt.gz",
          std::string("\x1f\x8b\x09\x00\x00\x00\x00\x00\x00\x03", 10) + "not deflate");
    const auto o =
        run("lumi_prepare_corpus", {"--set", "output=" + corpus.string(),
                                    "--set=sources=[{\"paths\": [\"" + (dir / "in").string() + "\"]}]"});
    EXPECT_TRUE(refused(o, {"broken.txt.gz: corrupt gzip data at compressed byte"}));
    EXPECT_EQ(snapshot(corpus), before);
}

TEST_F(BadInputDataStages, AGzipBombIsBoundedByMaxFileBytes) {
    // 8 MiB of zeros, compressed by the system's gzip to a few kilobytes.
    write(dir / "zeros.bin", std::string(8u << 20, '\0'));
    ASSERT_EQ(
        std::system(
            ("gzip -n -9 -c " + (dir / "zeros.bin").string() + " > " + (dir / "in.txt.gz").string()).c_str()),
        0);
    fs::remove(dir / "zeros.bin");
    const auto o = run("lumi_prepare_corpus",
                       {"--set", "output=" + (dir / "corpus").string(), "--set", "max_file_bytes=1000000",
                        "--set=sources=[{\"paths\": [\"" + (dir / "in.txt.gz").string() + "\"]}]"});
    EXPECT_TRUE(refused(o, {"in.txt.gz: the gzip data decompresses to more than 1000000 bytes"}));
    EXPECT_FALSE(fs::exists(dir / "corpus"));
}

TEST_F(BadInputDataStages, AMissingSourceIsNamed) {
    const auto o = run("lumi_prepare_corpus",
                       {"--set", "output=" + (dir / "corpus").string(),
                        "--set=sources=[{\"paths\": [\"" + (dir / "nowhere.txt").string() + "\"]}]"});
    EXPECT_TRUE(refused(o, {"nowhere.txt: cannot read the source"}));
}

TEST_F(BadInputDataStages, AMalformedJsonLineNamesTheFileAndLine) {
    write(dir / "in.jsonl", "{\"text\": \"fine text for a corpus line\"}\n{\"text\": \"cut\n");
    const auto o = run("lumi_prepare_corpus",
                       {"--set", "output=" + (dir / "corpus").string(),
                        "--set=sources=[{\"paths\": [\"" + (dir / "in.jsonl").string() + "\"]}]"});
    EXPECT_TRUE(refused(o, {"in.jsonl:2: invalid JSON"}));
}

TEST_F(BadInputDataStages, AMissingTokenizerInputKeepsTheEarlierTokenizer) {
    const fs::path tokenizer = copy_of(f.tokenizer(), dir / "tokenizer");
    const auto before = snapshot(tokenizer);
    const auto o = run("lumi_train_tokenizer", {"--set", "input=" + (dir / "none").string(), "--set",
                                                "output=" + tokenizer.string(), "--set", "vocab_size=400"});
    EXPECT_TRUE(refused(o, {(dir / "none").string()}));
    EXPECT_EQ(snapshot(tokenizer), before);
}

TEST_F(BadInputDataStages, ATokenizerInputThatIsEmptyIsAnError) {
    write(dir / "empty.txt", "");
    const auto o =
        run("lumi_train_tokenizer", {"--set", "input=" + (dir / "empty.txt").string(), "--set",
                                     "output=" + (dir / "tok").string(), "--set", "vocab_size=400"});
    EXPECT_TRUE(refused(o, {}));
    EXPECT_FALSE(fs::exists(dir / "tok"));
}

class BadInputPack : public BadInputDataStages {
  protected:
    fs::path tokenizer, packed;
    std::map<std::string, std::string> before;
    void SetUp() override {
        tokenizer = copy_of(f.tokenizer(), dir / "tokenizer");
        packed = copy_of(f.packed(), dir / "packed");
        before = snapshot(packed);
    }
    Outcome pack(const fs::path& corpus = {}) {
        return run("lumi_pack_dataset", {"--set", "corpus=" + (corpus.empty() ? f.corpus() : corpus).string(),
                                         "--set", "tokenizer=" + tokenizer.string(), "--set",
                                         "output=" + packed.string(), "--set", "sequence_length=32"});
    }
    void TearDown() override { EXPECT_EQ(snapshot(packed), before) << "the earlier packed output changed"; }
};

TEST_F(BadInputPack, AModelPathLeavingTheTokenizerDirectoryIsRefused) {
    auto config = lumi::config::read_json_file(tokenizer / "tokenizer_config.json").as_object();
    config["lumi"].as_object()["spm_model"] = "../../inputs/tokenizer/spm.model";
    lumi::config::write_json_file(config, tokenizer / "tokenizer_config.json");
    EXPECT_TRUE(refused(pack(), {"tokenizer_config.json: lumi.spm_model: expected the name of a file in"}));
}

TEST_F(BadInputPack, AReplacedModelFileIsRefused) {
    write(tokenizer / "spm.model", "garbage");
    EXPECT_TRUE(refused(pack(), {"spm.model: SHA-256 ", "modified or replaced"}));
}

TEST_F(BadInputPack, AMissingTokenizerIsNamed) {
    fs::remove_all(tokenizer);
    EXPECT_TRUE(refused(pack(), {"tokenizer_config.json: not found"}));
}

TEST_F(BadInputPack, ATruncatedTokenizerConfigNamesItsLine) {
    const std::string text = read(tokenizer / "tokenizer_config.json");
    write(tokenizer / "tokenizer_config.json", text.substr(0, text.size() / 2));
    EXPECT_TRUE(refused(pack(), {"tokenizer_config.json:", "invalid JSON"}));
}

TEST_F(BadInputPack, ATokenizerConfigThatIsADirectoryIsNamed) {
    fs::remove(tokenizer / "tokenizer_config.json");
    fs::create_directories(tokenizer / "tokenizer_config.json");
    EXPECT_TRUE(refused(pack(), {"tokenizer_config.json: is a directory, expected a file"}));
}

TEST_F(BadInputPack, ATruncatedCorpusShardNamesTheLine) {
    const fs::path corpus = copy_of(f.corpus(), dir / "corpus");
    const std::string shard = read(corpus / "shard_00000.jsonl");
    write(corpus / "shard_00000.jsonl", shard.substr(0, shard.size() - 7));
    EXPECT_TRUE(refused(pack(corpus), {"shard_00000.jsonl:", "invalid JSON"}));
}

TEST_F(BadInputPack, ACorpusShardThatIsADirectoryIsNamed) {
    const fs::path corpus = copy_of(f.corpus(), dir / "corpus");
    fs::remove(corpus / "shard_00000.jsonl");
    fs::create_directories(corpus / "shard_00000.jsonl");
    EXPECT_TRUE(refused(pack(corpus), {"shard_00000.jsonl: is not a regular file, expected a corpus shard"}));
}

class BadInputSft : public BadInputDataStages {
  protected:
    Outcome prepare(const fs::path& dataset) {
        return run("lumi_prepare_sft", {"--set=datasets=[{\"path\": \"" + dataset.string() + "\"}]", "--set",
                                        "tokenizer=" + f.tokenizer().string(), "--set",
                                        "output=" + (dir / "sft").string(), "--set", "sequence_length=64"});
    }
    void TearDown() override { EXPECT_FALSE(fs::exists(dir / "sft")); }
};

TEST_F(BadInputSft, ADatasetFolderWithoutDatasetFilesIsNamed) {
    write(dir / "notes.txt", "not a dataset");
    EXPECT_TRUE(refused(prepare(dir), {dir.string() + ": the folder has no dataset files"}));
}

TEST_F(BadInputSft, AnEmptyDatasetIsNamed) {
    write(dir / "empty.json", "");
    EXPECT_TRUE(refused(prepare(dir / "empty.json"), {"empty.json: empty file"}));
}

TEST_F(BadInputSft, ATruncatedDatasetIsNamed) {
    const std::string text = read(f.alpaca());
    write(dir / "cut.json", text.substr(0, text.size() / 2));
    EXPECT_TRUE(refused(prepare(dir / "cut.json"), {"cut.json"}));
}

TEST_F(BadInputSft, RecordsOfTheWrongTypeAreNamed) {
    write(dir / "numbers.json", "[1, 2, 3]");
    EXPECT_TRUE(refused(prepare(dir / "numbers.json"), {"numbers.json"}));
}

TEST_F(BadInputSft, AFieldOfTheWrongTypeIsNamed) {
    write(dir / "typed.json", R"([{"instruction": 5, "input": "", "output": "x"}])");
    EXPECT_TRUE(refused(prepare(dir / "typed.json"), {"typed.json", "instruction"}));
}

// ---- Pretraining: packed shards and resume state
// -----------------------------------------------------------------

class BadInputPretrain : public BadInputDataStages {
  protected:
    fs::path packed;
    void SetUp() override { packed = copy_of(f.packed(), dir / "packed"); }
    Outcome train(const std::vector<std::string>& extra = {}, const fs::path& output = {}) {
        auto args = pretrain_args(packed, output.empty() ? dir / "run" : output);
        args.insert(args.end(), extra.begin(), extra.end());
        return run("lumi_pretrain_nano", args);
    }
};

TEST_F(BadInputPretrain, ASequenceLengthPlusTwoTo63IsNamed) {
    patch(packed / "train_00000.bin", 24, std::uint64_t{32} + (std::uint64_t{1} << 63));
    EXPECT_TRUE(
        refused(train(), {"train_00000.bin: corrupted header: sequence_length is 9223372036854775840"}));
    EXPECT_FALSE(fs::exists(dir / "run"));
}

TEST_F(BadInputPretrain, ACountPlusTwoTo63IsNamed) {
    patch(packed / "train_00000.bin", 32, std::uint64_t{1} << 63);
    EXPECT_TRUE(refused(train(), {"train_00000.bin: corrupted header: count is 9223372036854775808"}));
}

TEST_F(BadInputPretrain, ATokenIdOutsideTheVocabularyIsFoundAtOpen) {
    patch(packed / "train_00000.bin", 128 + 2 * 5, std::uint16_t{400});
    EXPECT_TRUE(refused(train(),
                        {"train_00000.bin: token 5 (sequence 0) has id 400, outside the vocabulary of 400"}));
}

TEST_F(BadInputPretrain, AShardOfAnotherVocabularyIsNamed) {
    patch(packed / "val_00000.bin", 20, std::uint32_t{401});
    EXPECT_TRUE(refused(train(), {"val_00000.bin: vocab_size is 401 but 400 in", "train_00000.bin"}));
}

TEST_F(BadInputPretrain, ATruncatedShardIsNamed) {
    fs::resize_file(packed / "train_00000.bin", fs::file_size(packed / "train_00000.bin") - 2);
    EXPECT_TRUE(refused(train(), {"train_00000.bin: size mismatch"}));
}

TEST_F(BadInputPretrain, AnEmptyShardIsNamed) {
    fs::resize_file(packed / "val_00000.bin", 0);
    EXPECT_TRUE(refused(train(), {"val_00000.bin: truncated: 0 bytes"}));
}

TEST_F(BadInputPretrain, AFileAsTheDatasetIsNamed) {
    EXPECT_TRUE(refused(run("lumi_pretrain_nano", pretrain_args(packed / "manifest.json", dir / "run")),
                        {"manifest.json: not a packed dataset directory (it is a file)"}));
}

TEST_F(BadInputPretrain, AnotherTokenizerThanTheDataWasPackedWithIsNamed) {
    EXPECT_TRUE(refused(train({"--set", "data.tokenizer=" + f.other_tokenizer().string()}),
                        {"train_00000.bin: packed with tokenizer", "re-pack the data with this tokenizer"}));
}

TEST_F(BadInputPretrain, TheRecipePicksTheSettingsTypesAndAnUnknownOneIsNamed) {
    const Outcome muon = train({"--set", "recipe=muon_wsd", "--set", "optimizer.muon.lr=0.01"});
    EXPECT_EQ(muon.status, 0) << muon.command << "\n" << muon.out << muon.err;
    EXPECT_NE(muon.out.find("recipe muon_wsd"), std::string::npos) << muon.out;
    EXPECT_TRUE(refused(train({"--set", "recipe=sgd"}),
                        {"--set recipe: must be one of adamw_cosine, muon_wsd, found 'sgd'"}));
    // AdamW's section does not fit Muon's recipe.
    EXPECT_TRUE(refused(train({"--set", "recipe=muon_wsd", "--set", "optimizer.lr=1e-3"}),
                        {"--set optimizer.lr: unknown key"}));
}

class BadInputResumeStage : public BadInputPretrain {
  protected:
    fs::path run_dir, state_file;
    std::map<std::string, std::string> before;
    void SetUp() override {
        BadInputPretrain::SetUp();
        run_dir = copy_of(f.pretrain(), dir / "run");
        state_file = run_dir / "checkpoints" / "step_00000002" / "trainer_state.json";
        before = snapshot(run_dir / "checkpoints");
    }
    json::object state() { return lumi::config::read_json_file(state_file).as_object(); }
    void set_state(const json::object& s) {
        write(state_file, lumi::config::format_json(s));
        before = snapshot(run_dir / "checkpoints");
    }
    // The damaged checkpoint itself: `--resume` (latest) would skip it for step 1 with a warning.
    Outcome resume(const std::vector<std::string>& extra = {}) {
        auto args = extra;
        args.insert(args.end(), {"--set", "run.resume=" + state_file.parent_path().string()});
        return train(args, run_dir);
    }
    void TearDown() override {
        EXPECT_EQ(snapshot(run_dir / "checkpoints"), before) << "a failed resume changed a checkpoint";
    }
};

TEST_F(BadInputResumeStage, AStepOfTheWrongTypeIsNamed) {
    auto s = state();
    s["step"] = "two";
    set_state(s);
    EXPECT_TRUE(
        refused(resume(), {"trainer_state.json: step: expected an integer (int64), found a string \"two\""}));
}

TEST_F(BadInputResumeStage, AFractionalStepIsNamed) {
    auto s = state();
    s["step"] = 1.5;
    set_state(s);
    EXPECT_TRUE(
        refused(resume(), {"trainer_state.json: step: expected an integer (int64), found a number 1.5"}));
}

TEST_F(BadInputResumeStage, ANegativeOffsetIsNamed) {
    auto s = state();
    s["data"].as_object()["offset"] = -2;
    set_state(s);
    EXPECT_TRUE(refused(resume(), {"trainer_state.json: data.offset: must be >= 0, found -2"}));
}

TEST_F(BadInputResumeStage, AnOffsetBeyondTheDataIsNamed) {
    auto s = state();
    s["data"].as_object()["offset"] = 1'000'000;
    set_state(s);
    EXPECT_TRUE(
        refused(resume(), {"trainer_state.json: data.offset: 1000000 is not a position in this dataset"}));
}

TEST_F(BadInputResumeStage, AMissingRngFileIsNamed) {
    fs::remove(state_file.parent_path() / "rng.safetensors");
    before = snapshot(run_dir / "checkpoints");
    EXPECT_TRUE(refused(resume(), {"rng.safetensors: missing"}));
}

TEST_F(BadInputResumeStage, AnotherLearningRateIsRefused) {
    EXPECT_TRUE(refused(resume({"--set", "optimizer.lr=0.5"}),
                        {"optimizer.lr: checkpoint", "now 0.5", "run.allow_changed_settings=true"}));
}

TEST_F(BadInputResumeStage, MoreStepsAreRefused) {
    EXPECT_TRUE(refused(resume({"--set", "run.max_steps=5"}), {"max_steps: checkpoint 2, now 5"}));
}

TEST_F(BadInputResumeStage, AStateThatIsADirectoryIsNamed) {
    fs::remove(state_file);
    fs::create_directories(state_file);
    before = snapshot(run_dir / "checkpoints");
    EXPECT_TRUE(refused(resume(), {"trainer_state.json: is a directory, expected a file"}));
}

TEST_F(BadInputResumeStage, AnEmptyStateIsNamed) {
    write(state_file, "");
    before = snapshot(run_dir / "checkpoints");
    EXPECT_TRUE(refused(resume(), {"trainer_state.json:1:1: invalid JSON"}));
}

TEST_F(BadInputResumeStage, NanWeightsInTheCheckpointAreNamed) {
    poison(state_file.parent_path() / "model.safetensors", "model.norm.weight",
           std::numeric_limits<float>::quiet_NaN());
    before = snapshot(run_dir / "checkpoints");
    EXPECT_TRUE(refused(resume(), {"model.safetensors: tensor 'model.norm.weight' holds 1 NaN"}));
}

TEST_F(BadInputResumeStage, ATruncatedOptimizerStateIsNamed) {
    const fs::path file = state_file.parent_path() / "optimizer.safetensors";
    fs::resize_file(file, fs::file_size(file) / 2);
    before = snapshot(run_dir / "checkpoints");
    EXPECT_TRUE(refused(resume(), {"optimizer.safetensors: truncated"}));
}

// ---- Model stages: checkpoints and tokenizers
// ---------------------------------------------------------------------

class BadInputModelStages : public BadInputDataStages {
  protected:
    fs::path model;
    void SetUp() override { model = copy_of(f.final_model(), dir / "model"); }
    Outcome evaluate(const std::vector<std::string>& extra = {}, const fs::path& tokenizer = {}) {
        std::vector<std::string> args{
            "--set", "checkpoint=" + model.string(),
            "--set", "tokenizer=" + (tokenizer.empty() ? f.tokenizer() : tokenizer).string(),
            "--set", "output=" + (dir / "eval").string(),
            "--set", "tasks=[\"smoke\"]",
            "--set", "smoke.prompts=" + f.prompts().string(),
            "--set", "smoke.sampling.max_new_tokens=2",
            "--set", "device=cpu"};
        args.insert(args.end(), extra.begin(), extra.end());
        return run("lumi_evaluate_nano", args);
    }
    Outcome generate(const std::vector<std::string>& extra = {}, const fs::path& tokenizer = {}) {
        std::vector<std::string> args{
            "--set", "checkpoint=" + model.string(),
            "--set", "tokenizer=" + (tokenizer.empty() ? f.tokenizer() : tokenizer).string(),
            "--set", "sampling.max_new_tokens=2",
            "--set", "device=cpu"};
        args.insert(args.end(), extra.begin(), extra.end());
        return run("lumi_generate_nano", args);
    }
    Outcome finetune(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args{"--set", "data.dataset=" + f.sft().string(),
                                      "--set", "data.base=" + model.string(),
                                      "--set", "run.output=" + (dir / "sft").string(),
                                      "--set", "run.max_steps=1",
                                      "--set", "run.micro_batch=2",
                                      "--set", "run.device=cpu"};
        args.insert(args.end(), extra.begin(), extra.end());
        return run("lumi_train_sft_nano", args);
    }
};

TEST_F(BadInputModelStages, TheStagesRunOnTheIntactFixture) {
    const auto o = evaluate();
    EXPECT_EQ(o.status, 0) << o.err;
    const auto g = generate({"--set=prompts=[\"A\"]"});
    EXPECT_EQ(g.status, 0) << g.err;
}

TEST_F(BadInputModelStages, EvaluateRefusesAnotherTokenizer) {
    EXPECT_TRUE(refused(evaluate({}, f.other_tokenizer()),
                        {"is not the one checkpoint " + model.string() + " was trained with"}));
}

TEST_F(BadInputModelStages, GenerateRefusesAnotherTokenizer) {
    EXPECT_TRUE(
        refused(generate({"--set=prompts=[\"A\"]"}, f.other_tokenizer()), {"is not the one checkpoint"}));
}

TEST_F(BadInputModelStages, FinetuneRefusesABaseOfAnotherTokenizer) {
    auto config = lumi::config::read_json_file(model / "config.json").as_object();
    config["lumi_tokenizer"].as_object()["sha256"] = std::string(64, 'f');
    lumi::config::write_json_file(config, model / "config.json");
    EXPECT_TRUE(
        refused(finetune(), {"is not the one checkpoint " + model.string() + " was trained with: ffff"}));
    EXPECT_FALSE(fs::exists(dir / "sft"));
}

TEST_F(BadInputModelStages, FinetuneRefusesPretrainingDataWithoutALossMask) {
    EXPECT_TRUE(refused(finetune({"--set", "data.dataset=" + f.packed().string()}), {"has no loss mask"}));
}

TEST_F(BadInputModelStages, ACheckpointWithoutConfigJsonIsRefusedByEveryStage) {
    fs::remove(model / "config.json");
    EXPECT_TRUE(refused(evaluate(), {"config.json: missing"}));
    EXPECT_TRUE(refused(generate({"--set=prompts=[\"A\"]"}), {"config.json: missing"}));
    EXPECT_TRUE(refused(finetune(), {"config.json: missing"}));
}

TEST_F(BadInputModelStages, NanWeightsAreNamedByEveryStage) {
    poison(model / "model.safetensors", "model.embed_tokens.weight", std::numeric_limits<float>::infinity());
    EXPECT_TRUE(
        refused(evaluate(), {"tensor 'model.embed_tokens.weight' holds 0 NaN and 1 infinite values"}));
    EXPECT_TRUE(refused(generate({"--set=prompts=[\"A\"]"}), {"tensor 'model.embed_tokens.weight'"}));
    EXPECT_TRUE(refused(finetune(), {"tensor 'model.embed_tokens.weight'"}));
}

TEST_F(BadInputModelStages, ATruncatedWeightsFileIsNamed) {
    fs::resize_file(model / "model.safetensors", 1000);
    EXPECT_TRUE(refused(evaluate(), {"model.safetensors: "}));
}

TEST_F(BadInputModelStages, AMissingCheckpointIsNamed) {
    fs::remove_all(model);
    EXPECT_TRUE(refused(evaluate(), {model.string() + ": no such checkpoint"}));
}

TEST_F(BadInputModelStages, AFailedEvaluationLeavesTheEarlierResultsIntact) {
    ASSERT_EQ(evaluate().status, 0);
    const auto before = snapshot(dir / "eval");
    EXPECT_TRUE(
        refused(evaluate({"--set", "smoke.prompts=" + (dir / "nowhere.json").string()}), {"nowhere.json"}));
    EXPECT_EQ(snapshot(dir / "eval"), before);
}

TEST_F(BadInputModelStages, APerplexityFileThatIsADirectoryIsNamed) {
    EXPECT_TRUE(
        refused(evaluate({"--set=tasks=[\"perplexity\"]", "--set", "perplexity.file=" + dir.string()}),
                {dir.string() + ": is a directory"}));
}

TEST_F(BadInputModelStages, ATruncatedBoolqFileIsNamed) {
    write(dir / "boolq.json", "{\"question\": \"is it\", \"passage\": \"p");
    EXPECT_TRUE(
        refused(evaluate({"--set=tasks=[\"boolq\"]", "--set", "boolq.file=" + (dir / "boolq.json").string()}),
                {"boolq.json"}));
}

TEST_F(BadInputModelStages, SmokePromptsOfTheWrongTypeAreNamed) {
    write(dir / "prompts.json", R"({"prompts": 3})");
    EXPECT_TRUE(
        refused(evaluate({"--set", "smoke.prompts=" + (dir / "prompts.json").string()}), {"prompts.json"}));
}

TEST_F(BadInputModelStages, APromptFileThatIsADirectoryIsNamed) {
    EXPECT_TRUE(refused(generate({"--set", "prompt_file=" + dir.string()}),
                        {dir.string() + ": is a directory, expected a file"}));
}

TEST_F(BadInputModelStages, ALibTorchErrorIsOneLineWithoutItsBacktrace) {
    // torch::Device("abacus") throws c10::Error, whose what() carries a backtrace.
    EXPECT_TRUE(refused(evaluate({"--set", "device=abacus"}), {"error: ", "abacus"}));
}

TEST_F(BadInputModelStages, NoPromptsIsAnError) {
    EXPECT_TRUE(refused(generate(), {"no prompts"}));
}

// ---- Signals: a graceful stop writes its checkpoint and exits 128 + signal; a second signal stops at once
// -------

class StageSignals : public BadInputDataStages {
  protected:
    // Pretraining that would run for a long time, signalled by `send` once it has taken a step.
    Outcome stopped(const std::function<void(pid_t)>& send) {
        auto args = pretrain_args(f.packed(), dir / "run");
        args.insert(args.end(), {"--set", "run.max_steps=1000000", "--set", "run.checkpoint_every=0"});
        return run_stage("lumi_pretrain_nano", args, dir / "logs", 120, [&](pid_t pid, const fs::path& err) {
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
            while (read(err).find("train 1/") == std::string::npos &&
                   std::chrono::steady_clock::now() < deadline)
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            send(pid);
        });
    }
    std::int64_t checkpoint_step() {
        std::int64_t step = -1;
        for (const auto& entry : fs::directory_iterator(dir / "run" / "checkpoints"))
            step = std::max(step, lumi::config::read_json_file(entry.path() / "trainer_state.json")
                                      .at("step")
                                      .to_number<std::int64_t>());
        return step;
    }
};

TEST_F(StageSignals, SigtermWritesACheckpointAndExits143) {
    const auto o = stopped([](pid_t pid) { ::kill(pid, SIGTERM); });
    EXPECT_EQ(o.signal, 0);
    EXPECT_EQ(o.status, 143) << o.err;
    EXPECT_NE(o.out.find("interrupted after"), std::string::npos) << o.out;
    EXPECT_NE(o.err.find("stopped by signal 15"), std::string::npos) << o.err;
    EXPECT_GE(checkpoint_step(), 1);
    EXPECT_FALSE(fs::exists(dir / "run" / "final"));
}

TEST_F(StageSignals, SigintWritesACheckpointAndExits130) {
    const auto o = stopped([](pid_t pid) { ::kill(pid, SIGINT); });
    EXPECT_EQ(o.status, 130) << o.err;
    EXPECT_GE(checkpoint_step(), 1);
}

TEST_F(StageSignals, ASecondSignalStopsAtOnce) {
    const auto o = stopped([](pid_t pid) {
        ::kill(pid, SIGINT);
        ::kill(pid, SIGTERM);
    });
    // Which of the two the process handles second depends on the threads that take them.
    EXPECT_TRUE(o.signal == SIGTERM || o.signal == SIGINT) << "status " << o.status << "\n" << o.err;
    EXPECT_NE(o.err.find("second signal: stopping at once"), std::string::npos) << o.err;
}

}  // namespace
