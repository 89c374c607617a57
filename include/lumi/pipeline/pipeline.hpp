#pragma once

// One command from text files to a fine-tuned, evaluated model (and, with preference data, a DPO-tuned one):
// the stages run in order into one run directory, each with its own log, and a report.md at the end
// (report.hpp).
//
//   auto settings = lumi::config::load<lumi::pipeline::PipelineSettings>("presets/pipeline/nano.json");
//   lumi::pipeline::run_pipeline<lumi::presets::nano, lumi::presets::nano_lora>(
//       settings, {.run = "runs/nano", .preset = "nano", .presets_dir = "presets"});
//
// Run directory:
//   01_corpus .. 11_dpo           one folder per stage (stages[] below says what each holds); the DPO
//                                 stages are off (status "off") unless dpo_corpus.datasets lists data
//   logs/<NN_stage>.log           everything the stage printed (its stdout and stderr)
//   configs/<NN_stage>.json       the stage's effective settings, in the format of its own binary
//   sources/                      text derived from Debian packages (fortunes, WordNet instructions)
//   pipeline.json                 the pipeline's effective settings; stages.json: status and timings
//   report.md, figures/*.svg      the report
//
// A stage is complete when its marker file exists (every stage writes its outputs atomically, so the
// marker means the whole output) and stages.json records it complete with the same fingerprint: the
// SHA-256 of its settings (paths inside the run directory taken relative to it, so a moved run directory
// stays complete) and of the fingerprints of the stages it reads. A complete stage is skipped; a changed
// one runs again, and so does every stage that reads it. A stage's output is replaced only by a whole new
// one: the data stages stage theirs, and a trainer stage trains in `<NN_stage>.partial/`, which becomes
// `<NN_stage>` when it completes. An interrupted trainer stage resumes from its newest checkpoint there,
// unless its inputs were just remade. `from` re-runs a stage and every later one; `only` one stage.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/sha256.hpp"
#include "lumi/data/corpus.hpp"
#include "lumi/data/pack.hpp"
#include "lumi/data/preference.hpp"
#include "lumi/data/sft.hpp"
#include "lumi/eval/boolq.hpp"
#include "lumi/eval/generate.hpp"
#include "lumi/eval/perplexity.hpp"
#include "lumi/eval/preference.hpp"
#include "lumi/eval/prompt.hpp"
#include "lumi/eval/results.hpp"
#include "lumi/eval/smoke.hpp"
#include "lumi/io/model_io.hpp"
#include "lumi/lora/lora.hpp"
#include "lumi/pipeline/derive.hpp"
#include "lumi/pipeline/report.hpp"
#include "lumi/tokenizer/tokenizer.hpp"
#include "lumi/tokenizer/trainer.hpp"
#include "lumi/train/dpo.hpp"
#include "lumi/train/finetune.hpp"
#include "lumi/train/pretrain.hpp"

namespace lumi::pipeline {

namespace fs = std::filesystem;

enum class Stage {
    corpus,
    tokenizer,
    packed,
    pretrain,
    eval_pretrain,
    sft_corpus,
    sft,
    eval_sft,
    generations,
    dpo_corpus,
    dpo
};

constexpr std::uint32_t bit(Stage s) {
    return 1u << static_cast<unsigned>(s);
}

struct StageInfo {
    Stage stage;
    std::string_view name, directory;
    std::string_view marker;  // in the directory: present once the stage has finished
    std::string_view description;
    std::uint32_t reads;  // the stages whose outputs it reads (bits)
};

inline constexpr StageInfo stages[] = {
    {Stage::corpus, "corpus", "01_corpus", "manifest.json",
     "read, clean, deduplicate and mix the text sources", 0},
    {Stage::tokenizer, "tokenizer", "02_tokenizer", "manifest.json",
     "train a SentencePiece tokenizer on the corpus", bit(Stage::corpus)},
    {Stage::packed, "packed", "03_packed", "manifest.json", "tokenise the corpus into train/val sequences",
     bit(Stage::corpus) | bit(Stage::tokenizer)},
    {Stage::pretrain, "pretrain", "04_pretrain", "result.json", "pretrain the model (checkpoints, final/)",
     bit(Stage::tokenizer) | bit(Stage::packed)},
    {Stage::eval_pretrain, "eval_pretrain", "05_eval_pretrain", "results.json",
     "evaluate the pretrained model (results.json)",
     bit(Stage::corpus) | bit(Stage::tokenizer) | bit(Stage::packed) | bit(Stage::pretrain)},
    {Stage::sft_corpus, "sft_corpus", "06_sft_corpus", "manifest.json",
     "template, tokenise and pack the instruction data", bit(Stage::tokenizer)},
    {Stage::sft, "sft", "07_sft", "result.json", "fine-tune on the instructions (adapter/, merged/)",
     bit(Stage::pretrain) | bit(Stage::sft_corpus)},
    {Stage::eval_sft, "eval_sft", "08_eval_sft", "results.json",
     "evaluate the fine-tuned model (results.json)",
     bit(Stage::corpus) | bit(Stage::tokenizer) | bit(Stage::packed) | bit(Stage::sft)},
    {Stage::generations, "generations", "09_generations", "generations.jsonl",
     "answer the sample prompts (generations.jsonl)", bit(Stage::tokenizer) | bit(Stage::sft)},
    {Stage::dpo_corpus, "dpo_corpus", "10_dpo_corpus", "manifest.json",
     "template and tokenise the preference pairs (off without dpo_corpus.datasets)", bit(Stage::tokenizer)},
    {Stage::dpo, "dpo", "11_dpo", "result.json",
     "preference-optimise the fine-tuned model, held-out pairs before and after (adapter/, merged/)",
     bit(Stage::sft) | bit(Stage::dpo_corpus)},
};
inline constexpr std::size_t stage_count = std::size(stages);

inline const StageInfo& info(Stage s) {
    return stages[static_cast<std::size_t>(s)];
}

// By name (`pretrain`), number (`4`, `04`) or directory (`04_pretrain`).
inline std::optional<Stage> find_stage(std::string_view key) {
    for (const auto& s : stages) {
        const auto number = s.directory.substr(0, 2);
        if (key == s.name || key == s.directory || key == number ||
            (number[0] == '0' && key == number.substr(1)))
            return s.stage;
    }
    return std::nullopt;
}

inline std::string stage_names() {
    std::string out;
    for (const auto& s : stages) out += (out.empty() ? "" : ", ") + std::string(s.name);
    return out;
}

// `datasets`: sft_corpus.datasets (missing files are an error); `wordnet`: instructions derived from
// WordNet; `available`: the datasets when all their files exist, else WordNet.
enum class InstructionSource { available, datasets, wordnet };

struct InstructionSettings {
    InstructionSource source = InstructionSource::available;
    WordnetSettings wordnet;
};

// What an evaluation does when a task's file is absent (no ../shared/data on this machine).
enum class MissingData { skip, fail };

// Perplexity on the documents the packing stage put in its validation split (never trained on).
struct HeldoutSettings {
    std::int64_t limit = 200;  // documents; 0 = all of the split
    std::int64_t window = 0;   // 0 = the model's context
    std::int64_t stride = 0;   // 0 = half the window
    std::int64_t batch = 8;
    eval::Prefix prefix = eval::Prefix::eos;

    void validate() const {
        if (limit < 0) throw config::FieldError("limit", "must be >= 0 (0: the whole split)");
        if (window < 0 || stride < 0) throw config::FieldError("window", "window and stride must be >= 0");
        if (batch < 1) throw config::FieldError("batch", "must be at least 1");
    }
};

inline eval::SamplingSettings answer_sampling(std::int64_t tokens) {
    eval::SamplingSettings s;
    s.max_new_tokens = tokens;
    s.repetition_penalty = 1.1;
    return s;
}

struct SmokeSettings {
    std::string prompts = "{presets}/eval/smoke_prompts.json";
    eval::SamplingSettings sampling = answer_sampling(64);  // the evaluate binary's
};

inline eval::PerplexitySettings default_wikitext() {
    eval::PerplexitySettings s;
    s.file = "{shared}/wikitext-2/test.txt";
    s.limit = 8;  // articles
    return s;
}

inline eval::BoolqSettings default_boolq() {
    eval::BoolqSettings s;
    s.file = "{shared}/boolq/validation.json";
    s.limit = 200;
    return s;
}

inline std::vector<std::string> default_tasks() {
    return {"heldout", "wikitext", "boolq", "smoke"};
}

// The same settings evaluate the pretrained and the fine-tuned model, so the two compare; only the smoke
// prompts change: raw for the pretrained model, in the instruction template for the fine-tuned one.
struct EvaluationSettings {
    std::vector<std::string> tasks = default_tasks();
    MissingData missing = MissingData::skip;
    std::string device = "auto";
    HeldoutSettings heldout;
    eval::PerplexitySettings wikitext = default_wikitext();
    eval::BoolqSettings boolq = default_boolq();
    SmokeSettings smoke;

    void validate() const {
        for (std::size_t i = 0; i < tasks.size(); ++i)
            if (tasks[i] != "heldout" && tasks[i] != "wikitext" && tasks[i] != "boolq" && tasks[i] != "smoke")
                throw config::FieldError("tasks[" + std::to_string(i) + "]",
                                         "unknown task '" + tasks[i] + "' (heldout, wikitext, boolq, smoke)");
    }
};

inline std::vector<std::string> default_prompts() {
    return {"What does the word \"hacker\" mean?",
            "Define \"kernel\".",
            "Use the word \"river\" in a sentence.",
            "Give a synonym for \"happy\".",
            "What is a package manager?",
            "Explain what a file system is.",
            "Write a short sentence about the sea.",
            "Give three tips for staying healthy."};
}

// Shown to the fine-tuned model in its instruction template (sft_corpus.chat_template).
struct GenerationSettings {
    std::vector<std::string> prompts = default_prompts();
    eval::SamplingSettings sampling = answer_sampling(64);
    std::int64_t batch = 8;
    std::string device = "auto";

    void validate() const {
        if (prompts.empty()) throw config::FieldError("prompts", "list at least one prompt");
        if (batch < 1) throw config::FieldError("batch", "must be at least 1");
    }
};

// The embedded default (presets/pipeline/nano.json holds the same values): English text from Debian's
// packages, mixed by weight, for a nano model on 2 CPU cores in about 10 minutes.
inline data::CorpusSettings default_corpus() {
    using data::TextUnit;
    data::CorpusSettings s;
    s.output = "01_corpus";
    s.sources = {
        {.name = "jargon",
         .paths = {"/usr/share/doc/jargon-text/jargon.txt.gz"},
         .unit = TextUnit::paragraph,
         .weight = 0.35,
         .license = "public domain: The Jargon File 4.4.7, Eric S. Raymond (package jargon-text)"},
        {.name = "fortunes",
         .paths = {"{sources}/fortunes.jsonl"},
         .weight = 0.4,
         .license = "fortune(6) data files, redistributable as distributed by Debian (package fortunes; "
                    "/usr/share/doc/fortunes/copyright)"},
        {.name = "debian-reference",
         .paths = {"/usr/share/debian-reference/debian-reference.en.txt.gz"},
         .unit = TextUnit::paragraph,
         .weight = 0.2,
         .license = "GPL-2+: Debian Reference, Osamu Aoki (package debian-reference-en)"},
        {.name = "common-licenses",
         .paths = {"/usr/share/common-licenses"},
         .unit = TextUnit::paragraph,
         .weight = 0.05,
         .license = "verbatim copies of the licence texts, redistribution permitted (package base-files)"},
    };
    s.budget.on_shortfall = data::Shortfall::warn;
    return s;
}

inline tokenizer::TrainerSettings default_tokenizer() {
    tokenizer::TrainerSettings s;
    s.input = "01_corpus";
    s.output = "02_tokenizer";
    s.vocab_size = 4096;
    s.normalization = "nfkc";  // keeps newlines, which the instruction template needs
    s.input_sentence_size = 200'000;
    s.model_max_length = 256;
    return s;
}

inline data::PackSettings default_pack() {
    data::PackSettings s;
    s.corpus = "01_corpus";
    s.tokenizer = "02_tokenizer";
    s.output = "03_packed";
    s.sequence_length = 257;  // the model's context of 256 inputs, and their targets
    s.validation_fraction = 0.02;
    return s;
}

// Muon + warmup-stable-decay: on the nano corpus it ends 0.2 nats below AdamW + cosine at equal tokens
// (docs/training.md#token-efficiency-of-the-recipes).
inline train::RecipePretrainSettings default_pretrain() {
    train::RecipePretrainSettings s;
    s.recipe = "muon_wsd";
    s.data = {.dataset = "03_packed", .tokenizer = "02_tokenizer"};
    s.run.output = "04_pretrain";
    s.run.micro_batch = 8;
    s.run.max_steps = 600;
    s.run.log_every = 10;
    s.run.eval_every = 100;
    s.run.eval_batches = 10;
    s.run.checkpoint_every = 100;
    s.run.keep_checkpoints = 2;
    s.optimizer = config::to_json(train::MuonAdamWSettings{
        .muon = {.lr = 0.01},
        .adamw = {.lr = 2e-3, .beta1 = 0.9, .beta2 = 0.95, .weight_decay = 0.1, .grad_clip = 1.0}});
    s.schedule = config::to_json(train::WsdSettings{.warmup_steps = 60, .decay_ratio = 0.2});
    return s;
}

inline data::SftSettings default_sft_corpus() {
    data::SftSettings s;
    s.datasets = {{.path = "{shared}/alpaca/alpaca_5000.json"}};
    s.tokenizer = "02_tokenizer";
    s.output = "06_sft_corpus";
    s.sequence_length = 256;
    return s;
}

inline train::FinetuneSettings<> default_sft() {
    train::FinetuneSettings<> s;
    s.data = {.dataset = "06_sft_corpus", .base = "04_pretrain/final", .tokenizer = "02_tokenizer"};
    s.run.output = "07_sft";
    s.run.micro_batch = 8;
    s.run.max_steps = 250;
    s.run.log_every = 10;
    s.run.eval_every = 50;
    s.run.eval_batches = 10;
    s.run.checkpoint_every = 50;
    s.run.keep_checkpoints = 2;
    s.optimizer = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .weight_decay = 0.0, .grad_clip = 1.0};
    s.schedule = {.warmup_ratio = 0.1, .min_lr_ratio = 0.1};
    return s;
}

// Off by default: no preference data ships with a clone (presets/pipeline/*.json or --set turn it on, e.g.
// with {shared}/hh-rlhf/harmless-base-test.jsonl.gz).
inline data::PreferenceSettings default_dpo_corpus() {
    data::PreferenceSettings s;
    s.tokenizer = "02_tokenizer";
    s.output = "10_dpo_corpus";
    s.sequence_length = 256;
    s.max_prompt_tokens = 128;
    return s;
}

inline train::DpoStageSettings<> default_dpo() {
    train::DpoStageSettings<> s;
    s.data = {.dataset = "10_dpo_corpus", .base = "07_sft/merged", .tokenizer = "02_tokenizer"};
    s.run.output = "11_dpo";
    s.run.micro_batch = 4;
    s.run.grad_accum = 2;
    s.run.max_steps = 100;
    s.run.log_every = 10;
    s.run.eval_every = 50;
    s.run.eval_batches = 16;
    s.run.checkpoint_every = 50;
    s.run.keep_checkpoints = 2;
    s.optimizer = {.lr = 5e-5, .beta1 = 0.9, .beta2 = 0.999, .weight_decay = 0.0, .grad_clip = 1.0};
    s.schedule = {.warmup_ratio = 0.1, .min_lr_ratio = 0.1};
    return s;
}

// One section per stage, each the stage's own settings. Paths that connect the stages are fixed by the run
// directory's layout (relative to it); data paths may start with `{presets}` (lumi's presets folder),
// `{shared}` (../shared/data beside lumi's source tree) or `{sources}` (<run>/sources).
struct PipelineSettings {
    std::string preset;        // when set, must be the preset the binary was compiled for
    FortuneSettings fortunes;  // derived into {sources}/fortunes.jsonl when a corpus source reads it
    data::CorpusSettings corpus = default_corpus();
    tokenizer::TrainerSettings tokenizer = default_tokenizer();
    data::PackSettings pack = default_pack();
    train::RecipePretrainSettings pretrain = default_pretrain();
    EvaluationSettings evaluation;
    InstructionSettings instructions;
    data::SftSettings sft_corpus = default_sft_corpus();
    train::FinetuneSettings<> sft = default_sft();
    GenerationSettings generations;
    data::PreferenceSettings dpo_corpus = default_dpo_corpus();  // its chat_template is sft_corpus's
    train::DpoStageSettings<> dpo = default_dpo();

    bool dpo_enabled() const { return !dpo_corpus.datasets.empty(); }

    void validate() const {
        auto fixed = [](const std::string& field, const fs::path& value, std::string_view expected) {
            if (value != fs::path(expected))
                throw config::FieldError(field, "is fixed by the run directory's layout: must be '" +
                                                    std::string(expected) + "' (found '" + value.string() +
                                                    "')");
        };
        fixed("corpus.output", corpus.output, "01_corpus");
        fixed("tokenizer.input", tokenizer.input, "01_corpus");
        fixed("tokenizer.output", tokenizer.output, "02_tokenizer");
        fixed("pack.corpus", pack.corpus, "01_corpus");
        fixed("pack.tokenizer", pack.tokenizer, "02_tokenizer");
        fixed("pack.output", pack.output, "03_packed");
        fixed("pretrain.data.dataset", pretrain.data.dataset, "03_packed");
        fixed("pretrain.data.tokenizer", pretrain.data.tokenizer, "02_tokenizer");
        fixed("pretrain.run.output", pretrain.run.output, "04_pretrain");
        fixed("sft_corpus.tokenizer", sft_corpus.tokenizer, "02_tokenizer");
        fixed("sft_corpus.output", sft_corpus.output, "06_sft_corpus");
        fixed("sft.data.dataset", sft.data.dataset, "06_sft_corpus");
        fixed("sft.data.base", sft.data.base, "04_pretrain/final");
        fixed("sft.data.tokenizer", sft.data.tokenizer, "02_tokenizer");
        fixed("sft.run.output", sft.run.output, "07_sft");
        fixed("dpo_corpus.tokenizer", dpo_corpus.tokenizer, "02_tokenizer");
        fixed("dpo_corpus.output", dpo_corpus.output, "10_dpo_corpus");
        fixed("dpo.data.dataset", dpo.data.dataset, "10_dpo_corpus");
        fixed("dpo.data.base", dpo.data.base, "07_sft/merged");
        fixed("dpo.data.tokenizer", dpo.data.tokenizer, "02_tokenizer");
        fixed("dpo.run.output", dpo.run.output, "11_dpo");
        if (dpo_corpus.chat_template != sft_corpus.chat_template)
            throw config::FieldError("dpo_corpus.chat_template",
                                     "must be sft_corpus.chat_template ('" +
                                         std::string(config::enum_name(sft_corpus.chat_template)) +
                                         "'): the fine-tuned model knows that template");
        if (!pretrain.run.resume.empty() || !sft.run.resume.empty() || !dpo.run.resume.empty())
            throw config::FieldError(
                "pretrain.run.resume",
                "is decided by the pipeline (an interrupted stage resumes); leave it empty");
    }
};

// What stages.json records about each stage.
struct StageRecord {
    std::string name, directory;
    std::string status = "pending";  // this invocation: ran, resumed, skipped, failed, interrupted, pending
    bool complete = false;           // its outputs are those of `fingerprint`
    std::string fingerprint;
    double seconds = 0;  // of the run that made the outputs
    std::string started, finished;
    std::string log;      // relative to the run directory
    std::string summary;  // one line
    std::string config;   // configs/<NN_stage>.json, relative to the run directory
    std::string command;  // the stage binary that reproduces it, when one does
    std::string rerun;    // the pipeline command that runs this stage alone
};

struct StagesFile {
    std::vector<StageRecord> stages;
};

struct RunOptions {
    fs::path run = "runs/nano";
    std::string from;  // re-run this stage and every later one
    std::string only;  // run this stage alone (forced)
    std::string preset = "nano";
    fs::path presets_dir = "presets";  // lumi's presets folder (smoke prompts, ../../shared/data)
    std::string binary = "lumi_pipeline_nano";
    std::vector<std::string> arguments;  // as given on the command line, for the report
    std::FILE* terminal = stdout;        // the one-line summaries
};

struct PipelineResult {
    fs::path run, report;
    std::vector<StageRecord> stages;
};

namespace detail {

inline std::string utc_now() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buffer;
}

inline std::string shell_quote(const std::string& word) {
    if (!word.empty() &&
        word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "_-./=:,+@%") == std::string::npos)
        return word;
    std::string out = "'";
    for (const char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Redirects file descriptors 1 and 2 (std::cout, printf, LibTorch's warnings) to a log file for its
// lifetime: the stages print through all of them, so only the descriptors catch everything.
class CaptureOutput {
  public:
    CaptureOutput(const fs::path& log, bool append) {
        flush();
        const int fd =
            ::open(log.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
        if (fd < 0) throw lumi::Error(log.string() + ": cannot open the log: " + std::strerror(errno));
        saved_out_ = ::dup(1);
        saved_err_ = ::dup(2);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
    }
    CaptureOutput(const CaptureOutput&) = delete;
    CaptureOutput& operator=(const CaptureOutput&) = delete;
    ~CaptureOutput() {
        flush();
        ::dup2(saved_out_, 1);
        ::dup2(saved_err_, 2);
        ::close(saved_out_);
        ::close(saved_err_);
    }

  private:
    static void flush() {
        std::cout.flush();
        std::cerr.flush();
        std::fflush(stdout);
        std::fflush(stderr);
    }
    int saved_out_ = -1, saved_err_ = -1;
};

inline std::string replace_placeholders(std::string text,
                                        const std::vector<std::pair<std::string, std::string>>& map) {
    for (const auto& [key, value] : map)
        if (text.starts_with(key)) text = value + text.substr(key.size());
    return text;
}

inline eval::PromptTemplate prompt_template(data::ChatTemplate t) {
    switch (t) {
        case data::ChatTemplate::chatml:
            return eval::PromptTemplate::chatml;
        case data::ChatTemplate::chat:
            return eval::PromptTemplate::chat;
        case data::ChatTemplate::instruct:
            break;
    }
    return eval::PromptTemplate::instruct;
}

inline std::string fixed(double value, int decimals) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
    return buffer;
}

inline std::string duration(double seconds) {
    if (seconds < 60) return fixed(seconds, 1) + " s";
    const long s = std::lround(seconds);
    return std::to_string(s / 60) + " min " + std::to_string(s % 60) + " s";
}

}  // namespace detail

// The documents of a corpus that pack_dataset puts in its validation split (same rule, same seed), in
// shard order, the first `limit` (0 = all).
inline std::vector<std::string> heldout_documents(const fs::path& corpus, const data::PackSettings& pack,
                                                  std::int64_t limit) {
    std::vector<std::string> out;
    for (const auto& file : data::jsonl_files(corpus)) {
        data::for_each_jsonl(file, pack.skip_malformed, [&](const boost::json::value& record, std::uint64_t) {
            if (limit > 0 && std::int64_t(out.size()) >= limit) return;
            const auto& text = data::string_field(record, pack.text_field);
            if (!text.empty() && data::in_validation(text, pack.validation_fraction, pack.seed))
                out.emplace_back(text);
        });
    }
    return out;
}

// Evaluates a checkpoint on the tasks whose inputs were found; `skipped` names the others and why.
template <ModelSpec S>
eval::Results evaluate_checkpoint(const fs::path& checkpoint, const fs::path& tokenizer_dir,
                                  const EvaluationSettings& settings, const std::vector<std::string>& tasks,
                                  const std::vector<std::string>& heldout, const std::string& heldout_origin,
                                  eval::PromptTemplate smoke_template,
                                  const std::vector<std::string>& skipped) {
    const auto tokenizer = tokenizer::Tokenizer::load(tokenizer_dir);
    Transformer<S> model;
    io::load_model_for(model, checkpoint, tokenizer, tokenizer_dir.string());
    const auto device = resolve_device(settings.device);
    model->to(device);
    model->eval();
    eval::Results results;
    boost::json::array skipped_json;
    for (const auto& s : skipped) skipped_json.emplace_back(s);
    results.info = {{"checkpoint", checkpoint.string()},
                    {"tokenizer", tokenizer_dir.string()},
                    {"tokenizer_sha256", tokenizer.sha256()},
                    {"device", device.str()},
                    {"threads", torch::get_num_threads()},
                    {"smoke_template", std::string(config::enum_name(smoke_template))},
                    {"skipped", skipped_json}};
    auto wants = [&](std::string_view task) {
        return std::find(tasks.begin(), tasks.end(), task) != tasks.end();
    };
    if (wants("heldout")) {
        eval::PerplexitySettings ps{.file = heldout_origin,
                                    .documents = eval::Documents::whole_file,
                                    .detokenize = eval::Detokenizer::none,
                                    .prefix = settings.heldout.prefix,
                                    .window = settings.heldout.window,
                                    .stride = settings.heldout.stride,
                                    .batch = settings.heldout.batch};
        const auto r = eval::perplexity(model, tokenizer, heldout, ps);
        std::printf("heldout: %lld documents, %lld tokens, token perplexity %.4g (%.1f s)\n",
                    (long long)r.documents, (long long)r.tokens, r.token_perplexity, r.seconds);
        auto metrics = eval::metrics(r, "heldout");
        for (auto& m : metrics) {
            const std::string from = "the file scored as one document";
            if (const auto at = m.definition.find(from); at != std::string::npos)
                m.definition.replace(at, from.size(), "each held-out document scored on its own");
        }
        results.add(std::move(metrics));
    }
    if (wants("wikitext")) {
        const auto r = eval::perplexity(model, tokenizer, settings.wikitext);
        std::printf("wikitext: %lld documents, token perplexity %.4g, word perplexity %.4g (%.1f s)\n",
                    (long long)r.documents, r.token_perplexity, r.word_perplexity, r.seconds);
        results.add(eval::metrics(r, "wikitext"));
    }
    if (wants("boolq")) {
        const auto r = eval::boolq(model, tokenizer, settings.boolq);
        std::printf("boolq: %lld examples, accuracy %.4f (majority %.4f) (%.1f s)\n", (long long)r.n,
                    r.accuracy, r.majority_baseline, r.seconds);
        results.add(eval::metrics(r));
    }
    if (wants("smoke")) {
        const auto set = eval::load_smoke_prompts(settings.smoke.prompts);
        auto sampling = settings.smoke.sampling;
        for (auto& stop : eval::template_stops(smoke_template)) sampling.stop.push_back(stop);
        const auto r = eval::run_smoke(set, [&](const std::vector<std::string>& prompts) {
            std::vector<std::string> shown, outputs;
            for (const auto& p : prompts) shown.push_back(eval::apply_template(smoke_template, p));
            for (const auto& g : eval::generate(model, tokenizer, shown, sampling)) outputs.push_back(g.text);
            return outputs;
        });
        std::printf("smoke: %lld prompts, score %.4f (%.1f s)\n", (long long)r.overall.n, r.overall.mean,
                    r.seconds);
        results.add(eval::metrics(r));
        results.details["smoke"] = eval::details(r);
    }
    std::cout << eval::format_table(results);
    return results;
}

// Runs the stages of `settings` for the model S (LoRA spec L for `sft.method = lora`).
template <ModelSpec S, LoraSpec L>
class Pipeline {
  public:
    Pipeline(PipelineSettings settings, RunOptions options)
        : settings_(std::move(settings)), options_(std::move(options)) {
        if (!settings_.preset.empty() && settings_.preset != options_.preset)
            throw lumi::Error("preset is '" + settings_.preset + "' but this binary was compiled for '" +
                              options_.preset + "'");
        if (!options_.from.empty() && !options_.only.empty())
            throw lumi::Error("--from and --only exclude each other");
        for (const auto* key : {&options_.from, &options_.only})
            if (!key->empty() && !find_stage(*key))
                throw lumi::Error("no stage '" + *key + "' (stages: " + stage_names() + ")");
        run_ = fs::absolute(options_.run).lexically_normal();
        const fs::path shared =
            (fs::absolute(options_.presets_dir) / ".." / ".." / "shared" / "data").lexically_normal();
        placeholders_ = {{"{presets}", fs::absolute(options_.presets_dir).lexically_normal().string()},
                         {"{shared}", shared.string()},
                         {"{sources}", (run_ / "sources").string()}};
    }

    PipelineResult run() {
        remove_leftovers(run_);  // staged outputs of an interrupted invocation; an interrupted swap undone
        for (const auto& stage : stages) remove_leftovers(dir(stage.stage));
        fs::create_directories(run_ / "logs");
        fs::create_directories(run_ / "configs");
        config::save(settings_, run_ / "pipeline.json");
        load_records();
        resolve();

        const auto from = options_.from.empty() ? std::optional<Stage>() : find_stage(options_.from);
        const auto only = options_.only.empty() ? std::optional<Stage>() : find_stage(options_.only);
        std::uint32_t ran = 0;
        for (const auto& stage : stages) {
            StageRecord& record = records_[static_cast<std::size_t>(stage.stage)];
            const std::string fingerprint = fingerprint_of(stage.stage);
            if (only && *only != stage.stage) {
                record.status = "pending";
                continue;
            }
            if (!enabled(stage.stage)) {
                record.status = "off";
                record.complete = false;
                record.summary = "off: no preference data (dpo_corpus.datasets)";
                save_records();
                continue;
            }
            const bool forced = (from && stage.stage >= *from) || only;
            const bool consistent = record.complete && record.fingerprint == fingerprint &&
                                    fs::exists(dir(stage.stage) / stage.marker);
            if (!forced && consistent && (ran & stage.reads) == 0) {
                record.status = "skipped";
                say(stage, "complete, skipped (" + record.summary + ")");
                save_records();
                continue;
            }
            // A checkpoint made from inputs that were just remade is not resumed.
            run_stage(stage, record, fingerprint, forced || (ran & stage.reads) != 0);
            ran |= bit(stage.stage);
        }
        const fs::path report = run_ / "report.md";
        write_report(run_,
                     ModelInfo{.preset = options_.preset,
                               .description = model::describe<S>(),
                               .parameters = std::integral_constant<std::int64_t, parameter_count(S)>::value,
                               .lora_parameters = lora::parameter_count(S, L),
                               .lora_rank = L.rank,
                               .lora_alpha = L.alpha,
                               .command = command_line(),
                               .working_directory = fs::current_path().string()});
        std::fprintf(options_.terminal, "report %s\n", report.string().c_str());
        std::fflush(options_.terminal);
        return {run_, report, records_};
    }

  private:
    fs::path dir(Stage s) const { return run_ / std::string(info(s).directory); }
    static bool is_trainer(Stage s) { return s == Stage::pretrain || s == Stage::sft || s == Stage::dpo; }
    bool enabled(Stage s) const {
        return settings_.dpo_enabled() || (s != Stage::dpo_corpus && s != Stage::dpo);
    }
    // Where a trainer stage writes until it completes: the last complete output stays whole meanwhile.
    fs::path work(Stage s) const {
        return is_trainer(s) ? run_ / (std::string(info(s).directory) + ".partial") : dir(s);
    }
    fs::path log_of(Stage s) const { return run_ / "logs" / (std::string(info(s).directory) + ".log"); }
    fs::path config_of(Stage s) const {
        return run_ / "configs" / (std::string(info(s).directory) + ".json");
    }
    fs::path expand(const fs::path& p) const {
        return detail::replace_placeholders(p.string(), placeholders_);
    }

    std::string command_line() const {
        std::string out = options_.binary;
        for (const auto& a : options_.arguments) out += " " + detail::shell_quote(a);
        return out;
    }

    void say(const StageInfo& stage, const std::string& text) const {
        std::fprintf(options_.terminal, "[%d/%zu] %-13s %s\n", static_cast<int>(stage.stage) + 1, stage_count,
                     std::string(stage.name).c_str(), text.c_str());
        std::fflush(options_.terminal);
    }

    void load_records() {
        records_.assign(stage_count, {});
        const fs::path file = run_ / "stages.json";
        if (fs::exists(file)) {
            // Unreadable records are not a reason to redo (and so replace) every stage's output.
            try {
                const auto saved = config::from_json<StagesFile>(config::read_json_file(file), file.string());
                for (const auto& r : saved.stages)
                    if (const auto s = find_stage(r.name)) records_[static_cast<std::size_t>(*s)] = r;
            } catch (const lumi::Error& e) {
                throw lumi::Error(
                    std::string(e.what()) +
                    " (the record of which stages are complete; restore it, or remove it to run "
                    "every stage again)");
            }
        }
        for (const auto& stage : stages) {
            auto& r = records_[static_cast<std::size_t>(stage.stage)];
            r.name = stage.name;
            r.directory = stage.directory;
            r.log = "logs/" + std::string(stage.directory) + ".log";
            r.config = "configs/" + std::string(stage.directory) + ".json";
            r.status = "pending";
        }
    }

    void save_records() const { config::save(StagesFile{records_}, run_ / "stages.json"); }

    // Placeholders expanded, layout paths made absolute, the instruction data and evaluation tasks chosen.
    void resolve() {
        auto& p = settings_;
        p.preset = options_.preset;
        for (auto& source : p.corpus.sources)
            for (auto& path : source.paths) {
                if (path == "{sources}/fortunes.jsonl") derive_fortunes_ = true;
                path = expand(path);
            }
        for (auto& path : p.fortunes.paths) path = expand(path);

        auto& datasets = p.sft_corpus.datasets;
        for (auto& d : datasets) d.path = expand(d.path);
        const bool present =
            std::all_of(datasets.begin(), datasets.end(), [](const auto& d) { return fs::exists(d.path); });
        if (p.instructions.source == InstructionSource::wordnet ||
            (p.instructions.source == InstructionSource::available && !present)) {
            instructions_note_ =
                p.instructions.source == InstructionSource::wordnet
                    ? "instructions derived from WordNet (instructions.source = wordnet)"
                    : "instructions derived from WordNet: " + datasets.front().path.string() + " not found";
            p.instructions.wordnet.directory = expand(p.instructions.wordnet.directory);
            datasets = {
                {.path = run_ / "sources" / "wordnet_instructions.jsonl", .format = data::SftFormat::alpaca}};
            derive_wordnet_ = true;
        } else {
            instructions_note_ = "instruction datasets as configured";
        }
        for (auto& d : p.dpo_corpus.datasets) d.path = expand(d.path);

        auto& e = p.evaluation;
        e.wikitext.file = expand(e.wikitext.file);
        e.boolq.file = expand(e.boolq.file);
        e.smoke.prompts = expand(e.smoke.prompts).string();
        for (const auto& task : e.tasks) {
            const fs::path file = task == "wikitext" ? e.wikitext.file
                                  : task == "boolq"  ? e.boolq.file
                                  : task == "smoke"  ? fs::path(e.smoke.prompts)
                                                     : fs::path();
            if (!file.empty() && !fs::exists(file)) {
                if (e.missing == MissingData::fail)
                    throw lumi::Error("evaluation." + task + ": " + file.string() + " not found");
                skipped_tasks_.push_back(task + ": " + file.string() + " not found");
            } else {
                tasks_.push_back(task);
            }
        }
    }

    std::string fingerprint_of(Stage s) const {
        const auto& p = settings_;
        boost::json::object section;
        switch (s) {
            case Stage::corpus:
                section = {
                    {"corpus", config::to_json(p.corpus)},
                    {"fortunes", derive_fortunes_ ? config::to_json(p.fortunes) : boost::json::value()}};
                break;
            case Stage::tokenizer:
                section = {{"tokenizer", config::to_json(p.tokenizer)}};
                break;
            case Stage::packed:
                section = {{"pack", config::to_json(p.pack)}};
                break;
            case Stage::pretrain:
                section = {{"preset", options_.preset}, {"pretrain", config::to_json(p.pretrain)}};
                break;
            case Stage::eval_pretrain:
            case Stage::eval_sft:
                section = {{"evaluation", config::to_json(p.evaluation)},
                           {"template", std::string(config::enum_name(p.sft_corpus.chat_template))},
                           {"tasks", config::to_json(tasks_)}};
                break;
            case Stage::sft_corpus:
                section = {{"sft_corpus", config::to_json(p.sft_corpus)},
                           {"wordnet", derive_wordnet_ ? config::to_json(p.instructions.wordnet)
                                                       : boost::json::value()}};
                break;
            case Stage::sft:
                section = {{"sft", config::to_json(p.sft)}};
                break;
            case Stage::generations:
                section = {{"generations", config::to_json(p.generations)},
                           {"template", std::string(config::enum_name(p.sft_corpus.chat_template))}};
                break;
            case Stage::dpo_corpus:
                section = {{"dpo_corpus", config::to_json(p.dpo_corpus)}};
                break;
            case Stage::dpo:
                section = {{"preset", options_.preset}, {"dpo", config::to_json(p.dpo)}};
                break;
        }
        std::string text = boost::json::serialize(section);
        // The run directory's own path is not part of any stage's identity.
        const std::string quoted = boost::json::serialize(boost::json::string(run_.string()));
        const std::string run_path = quoted.substr(1, quoted.size() - 2);
        for (std::size_t at = 0; (at = text.find(run_path, at)) != std::string::npos;) {
            text.replace(at, run_path.size(), "{run}");
            at += 5;
        }
        for (const auto& stage : stages)
            if (info(s).reads & bit(stage.stage))
                text += fingerprint_cache_[static_cast<std::size_t>(stage.stage)];
        fingerprint_cache_[static_cast<std::size_t>(s)] = sha256_hex(text);
        return fingerprint_cache_[static_cast<std::size_t>(s)];
    }

    void run_stage(const StageInfo& stage, StageRecord& record, const std::string& fingerprint, bool fresh) {
        const bool trainer = is_trainer(stage.stage);
        const bool resume = trainer && !fresh && record.fingerprint == fingerprint &&
                            !train::list_checkpoints(work(stage.stage)).empty();
        // An unfinished run of other settings (or inputs): nothing in it is a stage's good output.
        if (trainer && !resume) remove_directory(work(stage.stage));
        record.status = resume ? "resumed" : "ran";
        record.complete = false;
        record.fingerprint = fingerprint;
        record.started = detail::utc_now();
        record.finished.clear();
        record.summary.clear();
        record.rerun = command_line_for(stage.stage);
        save_records();
        say(stage,
            std::string(resume ? "resuming" : "running") + " (log " + log_of(stage.stage).string() + ")");

        const auto start = std::chrono::steady_clock::now();
        std::string summary, failure;
        int stop_signal = 0;
        {
            detail::CaptureOutput capture(log_of(stage.stage), resume);
            std::printf("lumi pipeline: stage %s (%s) started %s\n", std::string(stage.directory).c_str(),
                        std::string(stage.description).c_str(), record.started.c_str());
            std::fflush(stdout);  // a file gets stdout in blocks: keep the log in order
            try {
                summary = execute(stage.stage, resume);
            } catch (const lumi::Interrupted& e) {
                failure = e.what();
                stop_signal = e.signal;
                std::fflush(stdout);
                std::fprintf(stderr, "stopped: %s\n", failure.c_str());
            } catch (const std::exception& e) {
                failure = e.what();
                std::cout.flush();
                std::fflush(stdout);
                std::fprintf(stderr, "error: %s\n", failure.c_str());
            }
        }
        record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        record.finished = detail::utc_now();
        if (stop_signal != 0) {
            record.status = "interrupted";
            record.summary = failure;
            save_records();
            say(stage, "interrupted after " + detail::duration(record.seconds));
            throw lumi::Interrupted("stage " + std::string(stage.name) + " " + failure, stop_signal);
        }
        if (!failure.empty()) {
            record.status = "failed";
            record.summary = failure;
            save_records();
            say(stage, "FAILED after " + detail::duration(record.seconds));
            throw lumi::Error("stage " + std::string(stage.name) + " failed: " + failure +
                              " (log: " + log_of(stage.stage).string() + ")");
        }
        if (trainer) {
            // The old output goes first, then the finished one takes its name: killed in between, the next
            // run finds the finished one still in .partial and resumes it (at its last step) to move it
            // again.
            remove_directory(dir(stage.stage));
            replace_directory(work(stage.stage), dir(stage.stage));
        }
        record.complete = true;
        record.summary = summary;
        save_records();
        say(stage, "done in " + detail::duration(record.seconds) + ": " + summary);
    }

    std::string command_line_for(Stage s) const {
        return options_.binary + " --config " + detail::shell_quote((run_ / "pipeline.json").string()) +
               " --run " + detail::shell_quote(run_.string()) + " --only " + std::string(info(s).name);
    }

    // Writes the stage's settings in the format of its own binary and records how to run that binary.
    template <class T>
    void record_config(Stage s, const T& settings, const std::string& binary) {
        config::save(settings, config_of(s));
        auto& record = records_[static_cast<std::size_t>(s)];
        record.command = binary.empty() ? std::string()
                                        : binary + " --config " + detail::shell_quote(config_of(s).string());
    }

    std::string binary(std::string_view stage) const {
        return "lumi_" + std::string(stage) + "_" + options_.preset;
    }

    std::string execute(Stage s, bool resume) {
        switch (s) {
            case Stage::corpus:
                return corpus();
            case Stage::tokenizer:
                return tokenizer_stage();
            case Stage::packed:
                return packed();
            case Stage::pretrain:
                return pretrain(resume);
            case Stage::eval_pretrain:
                return evaluate(Stage::eval_pretrain, dir(Stage::pretrain) / "final",
                                eval::PromptTemplate::raw);
            case Stage::sft_corpus:
                return sft_corpus();
            case Stage::sft:
                return sft(resume);
            case Stage::eval_sft:
                return evaluate(Stage::eval_sft, dir(Stage::sft) / "merged",
                                detail::prompt_template(settings_.sft_corpus.chat_template));
            case Stage::generations:
                return generations();
            case Stage::dpo_corpus:
                return dpo_corpus();
            case Stage::dpo:
                return dpo(resume);
        }
        return {};
    }

    std::string corpus() {
        if (derive_fortunes_) {
            const auto r = derive_fortunes(settings_.fortunes, run_ / "sources" / "fortunes.jsonl");
            std::printf("fortunes: %llu files, %llu entries -> %s\n", (unsigned long long)r.files,
                        (unsigned long long)r.written, (run_ / "sources" / "fortunes.jsonl").c_str());
        }
        auto s = settings_.corpus;
        s.output = dir(Stage::corpus);
        record_config(Stage::corpus, s, "lumi_prepare_corpus");
        const auto report = prepare_corpus(s, &std::cout);
        std::cout << data::summary(report);
        return std::to_string(report.documents) + " documents, " + std::to_string(report.characters) +
               " characters, ~" + std::to_string(report.estimated_tokens) + " tokens";
    }

    std::string tokenizer_stage() {
        auto s = settings_.tokenizer;
        s.input = dir(Stage::corpus);
        s.output = dir(Stage::tokenizer);
        record_config(Stage::tokenizer, s, "lumi_train_tokenizer");
        const auto report = tokenizer::train_tokenizer(s);
        const auto tok = tokenizer::Tokenizer::load(report.directory, report.sha256);
        const std::string sample = "The quick brown fox jumps over the lazy dog.";
        std::printf("vocabulary %d, trained on %llu lines (%.1f MB) in %.1f s\n\"%s\" ->", tok.vocab_size(),
                    (unsigned long long)report.input.sentences, double(report.input.bytes) / 1e6,
                    report.seconds, sample.c_str());
        for (const int id : tok.encode(sample)) std::printf(" %s", tok.id_to_piece(id).c_str());
        std::printf("\n");
        return "vocabulary " + std::to_string(tok.vocab_size()) + ", " +
               std::to_string(report.input.sentences) + " lines";
    }

    std::string packed() {
        auto s = settings_.pack;
        s.corpus = dir(Stage::corpus);
        s.tokenizer = dir(Stage::tokenizer);
        s.output = dir(Stage::packed);
        record_config(Stage::packed, s, "lumi_pack_dataset");
        const auto tok = tokenizer::Tokenizer::load(s.tokenizer);
        const auto r = data::pack_dataset(
            s, [&tok](std::string_view text) { return tok.encode(text); }, data::tokenizer_info(tok));
        std::printf("train: %llu documents, %llu sequences; val: %llu documents, %llu sequences (%.1f s)\n",
                    (unsigned long long)r.train.documents, (unsigned long long)r.train.sequences,
                    (unsigned long long)r.val.documents, (unsigned long long)r.val.sequences, r.seconds);
        return std::to_string(r.train.sequences) + " train and " + std::to_string(r.val.sequences) +
               " validation sequences of " + std::to_string(s.sequence_length) + " tokens";
    }

    static boost::json::object fit_json(const train::FitResult& fit) {
        auto number = [](double x) {
            return std::isfinite(x) ? boost::json::value(x) : boost::json::value(nullptr);
        };
        return {{"steps", fit.steps},
                {"tokens", fit.tokens},
                {"train_loss", number(fit.train_loss)},
                {"val_loss", number(fit.val_loss)},
                {"val_ppl", number(std::exp(fit.val_loss))}};
    }
    static void write_fit(const fs::path& file, const train::FitResult& fit) {
        config::write_json_file(fit_json(fit), file);
    }

    static void stop_if_interrupted(const train::FitResult& fit) {
        if (fit.interrupted)
            throw lumi::Interrupted("interrupted at step " + std::to_string(fit.steps) +
                                        "; run the pipeline again to resume from " + fit.checkpoint.string(),
                                    fit.signal);
    }

    // A fine-tuning stage that was not interrupted: full fine-tuning leaves its model in final/, and later
    // stages read merged/ either way.
    void finish_finetune(Stage s, const train::FinetuneResult& result, train::FinetuneMethod method) const {
        stop_if_interrupted(result.fit);
        if (method != train::FinetuneMethod::full) return;
        StagedDirectory merged(work(s) / "merged");
        fs::copy(work(s) / "final", merged.path(), fs::copy_options::recursive);
        merged.commit();
    }

    static std::string fit_summary(const train::FitResult& fit) {
        std::string out = std::to_string(fit.steps) + " steps, loss " + detail::fixed(fit.train_loss, 4);
        if (!std::isnan(fit.val_loss)) out += ", validation loss " + detail::fixed(fit.val_loss, 4);
        return out;
    }

    std::string pretrain(bool resume) {
        auto s = settings_.pretrain;
        s.preset = options_.preset;
        s.data.dataset = dir(Stage::packed).string();
        s.data.tokenizer = dir(Stage::tokenizer).string();
        s.run.output = dir(Stage::pretrain).string();
        record_config(Stage::pretrain, s, binary("pretrain"));
        s.run.output = work(Stage::pretrain).string();
        if (resume) s.run.resume = "latest";
        const auto fit = train::pretrain<S>(s);
        stop_if_interrupted(fit);
        write_fit(work(Stage::pretrain) / "result.json", fit);
        return fit_summary(fit);
    }

    std::string sft_corpus() {
        auto s = settings_.sft_corpus;
        if (derive_wordnet_) {
            const auto r =
                derive_wordnet_instructions(settings_.instructions.wordnet, s.datasets.front().path);
            std::printf("WordNet: %llu synsets in %llu files, %llu instructions -> %s\n",
                        (unsigned long long)r.records, (unsigned long long)r.files,
                        (unsigned long long)r.written, s.datasets.front().path.c_str());
        }
        std::printf("%s\n", instructions_note_.c_str());
        s.tokenizer = dir(Stage::tokenizer);
        s.output = dir(Stage::sft_corpus);
        record_config(Stage::sft_corpus, s, "lumi_prepare_sft");
        const auto tok = tokenizer::Tokenizer::load(s.tokenizer);
        const auto r = data::prepare_sft(
            s, [&tok](std::string_view text) { return tok.encode(text); }, data::tokenizer_info(tok));
        std::uint64_t examples = 0;
        for (const auto& d : r.datasets) examples += d.train_examples + d.val_examples;
        std::printf("%llu examples, %llu train sequences, packing efficiency %.1f%%\n",
                    (unsigned long long)examples, (unsigned long long)r.train.split.sequences,
                    100.0 * r.efficiency());
        return std::to_string(examples) + " examples in " + std::to_string(r.train.split.sequences) +
               " train sequences (" + (derive_wordnet_ ? "WordNet" : "datasets") + ")";
    }

    std::string sft(bool resume) {
        auto s = settings_.sft;
        s.preset = options_.preset;
        s.data.dataset = dir(Stage::sft_corpus).string();
        s.data.base = (dir(Stage::pretrain) / "final").string();
        s.data.tokenizer = dir(Stage::tokenizer).string();
        s.run.output = dir(Stage::sft).string();
        record_config(Stage::sft, s, binary("train_sft"));
        s.run.output = work(Stage::sft).string();
        if (resume) s.run.resume = "latest";
        const auto result = s.method == train::FinetuneMethod::lora ? train::finetune<S, Lora<L>>(s)
                                                                    : train::finetune<S, Dense>(s);
        finish_finetune(Stage::sft, result, s.method);
        write_fit(work(Stage::sft) / "result.json", result.fit);
        return fit_summary(result.fit);
    }

    std::string dpo_corpus() {
        auto s = settings_.dpo_corpus;
        s.tokenizer = dir(Stage::tokenizer);
        s.output = dir(Stage::dpo_corpus);
        record_config(Stage::dpo_corpus, s, "lumi_prepare_dpo");
        const auto tok = tokenizer::Tokenizer::load(s.tokenizer);
        const auto r = data::prepare_preferences(
            s, [&tok](std::string_view text) { return tok.encode(text); }, data::tokenizer_info(tok));
        const auto& m = r.manifest;
        std::printf(
            "%llu train and %llu validation pairs; dropped %llu identical, %llu duplicate; truncated %llu "
            "prompts, %llu responses (%.1f s)\n",
            (unsigned long long)m.train.pairs, (unsigned long long)m.val.pairs,
            (unsigned long long)m.dropped.identical, (unsigned long long)m.dropped.duplicate,
            (unsigned long long)m.dropped.truncated_prompts,
            (unsigned long long)m.dropped.truncated_responses, r.seconds);
        return std::to_string(m.train.pairs) + " train and " + std::to_string(m.val.pairs) +
               " validation pairs";
    }

    template <class Loss>
    train::FinetuneResult train_dpo(const train::DpoStageSettings<>& s) {
        return s.method == train::FinetuneMethod::lora ? train::train_dpo<S, Lora<L>, Loss>(s)
                                                       : train::train_dpo<S, Dense, Loss>(s);
    }

    // The held-out pairs scored by the SFT model (before) and the DPO model (after): the likelihood of each
    // answer, and after also the implicit reward against the SFT model (the reference).
    boost::json::object preference_scores(const fs::path& checkpoint, bool with_reference) const {
        const auto& s = settings_.dpo;
        const auto tok = tokenizer::Tokenizer::load(dir(Stage::tokenizer));
        const auto device = resolve_device(s.run.device, "run.device");
        Transformer<S> model, reference;
        io::load_model_for(model, checkpoint, tok, dir(Stage::tokenizer).string());
        model->to(device);
        model->eval();
        const eval::LogitsOf logits = [&](const torch::Tensor& x) { return model->forward(x); };
        eval::PreferenceTaskSettings task{.dataset = dir(Stage::dpo_corpus), .beta = s.dpo.beta};
        boost::json::object out;
        auto add = [&](const char* prefix, const eval::PreferenceTaskResult& r) {
            out[std::string(prefix) + "_accuracy"] = r.accuracy;
            out[std::string(prefix) + "_margin"] = r.margin;
            out["pairs"] = r.n;
        };
        add("likelihood", eval::preference(logits, {}, task, device));
        if (with_reference) {
            io::load_model_for(reference, dir(Stage::sft) / "merged", tok, dir(Stage::tokenizer).string());
            reference->to(device);
            reference->eval();
            add("reward",
                eval::preference(
                    logits, [&](const torch::Tensor& x) { return reference->forward(x); }, task, device));
        }
        return out;
    }

    std::string dpo(bool resume) {
        auto s = settings_.dpo;
        s.preset = options_.preset;
        s.data.dataset = dir(Stage::dpo_corpus).string();
        s.data.base = (dir(Stage::sft) / "merged").string();
        s.data.tokenizer = dir(Stage::tokenizer).string();
        s.run.output = dir(Stage::dpo).string();
        record_config(Stage::dpo, s, binary("train_dpo"));
        s.run.output = work(Stage::dpo).string();
        if (resume) s.run.resume = "latest";
        const auto before = preference_scores(dir(Stage::sft) / "merged", false);
        const auto result =
            s.loss == train::DpoLoss::ipo ? train_dpo<train::IpoLoss>(s) : train_dpo<train::SigmoidLoss>(s);
        finish_finetune(Stage::dpo, result, s.method);
        const auto after = preference_scores(work(Stage::dpo) / "merged", true);
        boost::json::object validation;
        for (const auto& [name, value] : result.fit.val_metrics)
            validation[name] = std::isfinite(value) ? boost::json::value(value) : boost::json::value(nullptr);
        auto fit = fit_json(result.fit);
        fit.erase("val_ppl");  // the DPO loss is no next-token loss
        fit["val_metrics"] = validation;
        fit["preference"] = boost::json::object{{"before", before}, {"after", after}};
        config::write_json_file(fit, work(Stage::dpo) / "result.json");
        std::printf(
            "held-out pairs (%s): likelihood prefers chosen %.3f before, %.3f after; implicit reward %.3f\n",
            boost::json::serialize(after.at("pairs")).c_str(), before.at("likelihood_accuracy").as_double(),
            after.at("likelihood_accuracy").as_double(), after.at("reward_accuracy").as_double());
        return fit_summary(result.fit) + ", held-out reward accuracy " +
               detail::fixed(after.at("reward_accuracy").as_double(), 3);
    }

    std::string evaluate(Stage s, const fs::path& checkpoint, eval::PromptTemplate smoke_template) {
        const auto& e = settings_.evaluation;
        std::vector<std::string> tasks = tasks_, skipped = skipped_tasks_, heldout;
        const std::string origin =
            dir(Stage::corpus).string() + " (validation split of " + dir(Stage::packed).string() + ")";
        if (std::find(tasks.begin(), tasks.end(), "heldout") != tasks.end()) {
            heldout = heldout_documents(dir(Stage::corpus), settings_.pack, e.heldout.limit);
            if (heldout.empty()) {
                tasks.erase(std::find(tasks.begin(), tasks.end(), "heldout"));
                skipped.push_back("heldout: the validation split is empty (pack.validation_fraction)");
            }
        }
        config::write_json_file(
            boost::json::object{{"checkpoint", checkpoint.string()},
                                {"tokenizer", dir(Stage::tokenizer).string()},
                                {"tasks", config::to_json(tasks)},
                                {"skipped", config::to_json(skipped)},
                                {"smoke_template", std::string(config::enum_name(smoke_template))},
                                {"evaluation", config::to_json(e)}},
            config_of(s));
        records_[static_cast<std::size_t>(s)].command.clear();
        for (const auto& note : skipped) std::printf("skipped %s\n", note.c_str());
        auto results = evaluate_checkpoint<S>(checkpoint, dir(Stage::tokenizer), e, tasks, heldout, origin,
                                              smoke_template, skipped);
        results.info["preset"] = options_.preset;
        eval::write_results(results, dir(s) / "results.json");
        std::string summary;
        for (const char* name :
             {"heldout.token_perplexity", "wikitext.word_perplexity", "boolq.accuracy", "smoke.score"})
            if (const auto* m = results.find(name))
                summary +=
                    (summary.empty() ? "" : ", ") + std::string(name) + " " + eval::detail::number(m->value);
        return summary.empty() ? "no task" : summary;
    }

    std::string generations() {
        const auto& g = settings_.generations;
        const auto t = detail::prompt_template(settings_.sft_corpus.chat_template);
        const fs::path output = dir(Stage::generations) / "generations.jsonl";
        // The generate binary's settings: the same checkpoint, prompts, template and sampling.
        config::write_json_file(boost::json::object{{"checkpoint", (dir(Stage::sft) / "merged").string()},
                                                    {"tokenizer", dir(Stage::tokenizer).string()},
                                                    {"prompts", config::to_json(g.prompts)},
                                                    {"prompt_template", std::string(config::enum_name(t))},
                                                    {"sampling", config::to_json(g.sampling)},
                                                    {"device", g.device},
                                                    {"batch", g.batch},
                                                    {"output", output.string()}},
                                config_of(Stage::generations));
        records_[static_cast<std::size_t>(Stage::generations)].command =
            binary("generate") + " --config " + detail::shell_quote(config_of(Stage::generations).string());
        const auto tok = tokenizer::Tokenizer::load(dir(Stage::tokenizer));
        Transformer<S> model;
        io::load_model_for(model, dir(Stage::sft) / "merged", tok, dir(Stage::tokenizer).string());
        model->to(resolve_device(g.device));
        auto sampling = g.sampling;
        for (auto& stop : eval::template_stops(t)) sampling.stop.push_back(stop);
        std::string lines;
        for (std::size_t first = 0; first < g.prompts.size(); first += std::size_t(g.batch)) {
            const std::size_t last = std::min(g.prompts.size(), first + std::size_t(g.batch));
            std::vector<std::string> batch;
            for (std::size_t i = first; i < last; ++i) batch.push_back(eval::apply_template(t, g.prompts[i]));
            const auto results = eval::generate(model, tok, batch, sampling);
            for (std::size_t i = 0; i < results.size(); ++i) {
                std::printf("### %s\n%s\n[%zu tokens, %s]\n\n", g.prompts[first + i].c_str(),
                            results[i].text.c_str(), results[i].tokens.size(),
                            results[i].finish_reason.c_str());
                lines +=
                    boost::json::serialize(boost::json::object{{"prompt", g.prompts[first + i]},
                                                               {"completion", results[i].text},
                                                               {"finish_reason", results[i].finish_reason}}) +
                    "\n";
            }
        }
        write_file_atomic(output, lines);
        return std::to_string(g.prompts.size()) + " prompts answered";
    }

    PipelineSettings settings_;
    RunOptions options_;
    fs::path run_;
    std::vector<std::pair<std::string, std::string>> placeholders_;
    std::vector<StageRecord> records_;
    mutable std::array<std::string, stage_count> fingerprint_cache_;
    bool derive_fortunes_ = false, derive_wordnet_ = false;
    std::string instructions_note_;
    std::vector<std::string> tasks_, skipped_tasks_;
};

template <ModelSpec S, LoraSpec L>
PipelineResult run_pipeline(PipelineSettings settings, RunOptions options) {
    return Pipeline<S, L>(std::move(settings), std::move(options)).run();
}

}  // namespace lumi::pipeline

#ifdef LUMI_PIPELINE_NANO_INSTANCE
// Instantiated once in lumi's build (examples/pipeline_nano_instance.cpp), linked where this is defined.
#include <lumi/presets.hpp>
extern template lumi::pipeline::PipelineResult
    lumi::pipeline::run_pipeline<lumi::presets::nano, lumi::presets::nano_lora>(
        lumi::pipeline::PipelineSettings, lumi::pipeline::RunOptions);
#endif
