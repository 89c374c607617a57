#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <lumi/config/config.hpp>
#include <lumi/eval/results.hpp>
#include <lumi/pipeline/pipeline.hpp>
#include <lumi/presets.hpp>

namespace {

namespace fs = std::filesystem;
namespace pipeline = lumi::pipeline;

const fs::path presets_dir = LUMI_PRESETS_DIR;

std::string read(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("lumi_pipeline_test_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
};

// Small inputs of every kind the pipeline reads, written by the test: no ../shared/data needed.
void write_inputs(const fs::path& dir) {
    std::string alpaca = "[";
    const char* words[] = {"river", "mountain", "licence",  "software",
                           "copy",  "notice",   "warranty", "author"};
    for (int i = 0; i < 40; ++i) {
        const std::string w = words[i % 8];
        alpaca += std::string(i ? "," : "") + "{\"instruction\": \"Explain the word " + w + " (" +
                  std::to_string(i) + ").\", \"input\": \"\", \"output\": \"The word " + w +
                  " names something the licence texts talk about, example " + std::to_string(i) + ".\"}";
    }
    write(dir / "alpaca.json", alpaca + "]");
    std::string boolq = "[";
    for (int i = 0; i < 6; ++i)
        boolq +=
            std::string(i ? "," : "") +
            "{\"question\": \"is the software provided without warranty\", \"passage\": \"The software is "
            "provided as is, without warranty of any kind.\", \"answer\": " +
            (i % 2 ? "true" : "false") + "}";
    write(dir / "boolq.json", boolq + "]");
    write(dir / "wikitext.txt",
          " = Licence = \n\n The licence grants permission to copy and distribute the software . \n\n"
          " = Warranty = \n\n There is no warranty for the program , to the extent permitted . \n");
    write(dir / "smoke.json",
          R"({"prompts": [{"id": "copy", "category": "basic_knowledge", "prompt": "May I copy the software?",
               "rule": {"any": ["yes", "copy"]}},
              {"id": "name", "category": "reasoning", "prompt": "Name a licence.", "rule": {"any": ["GPL"]}}]})");
}

// presets/pipeline/smoke.json with the test's own inputs.
pipeline::PipelineSettings smoke_settings(const fs::path& inputs, std::vector<std::string> more = {}) {
    std::vector<std::string> sets = {
        "sft_corpus.datasets=[{\"path\": \"" + (inputs / "alpaca.json").string() + "\"}]",
        "evaluation.boolq.file=" + (inputs / "boolq.json").string(),
        "evaluation.wikitext.file=" + (inputs / "wikitext.txt").string(),
        "evaluation.smoke.prompts=" + (inputs / "smoke.json").string(),
        "instructions.source=datasets",
        "dpo_corpus.datasets=[{\"path\": \"" LUMI_SOURCE_DIR
        "/tests/data/fixtures/hh_rlhf_600.jsonl.gz\", "
        "\"max_pairs\": 120}]",
        "pretrain.run.threads=1",  // small tensors: one thread, no OpenMP spinning on a busy machine
        "sft.run.threads=1",
        "dpo.run.threads=1",
    };
    sets.insert(sets.end(), more.begin(), more.end());
    return lumi::config::load<pipeline::PipelineSettings>(presets_dir / "pipeline" / "smoke.json", sets);
}

pipeline::PipelineResult run(const pipeline::PipelineSettings& settings, const fs::path& dir,
                             std::string from = {}, std::string only = {}) {
    return pipeline::run_pipeline<lumi::presets::nano, lumi::presets::nano_lora>(
        settings, {.run = dir, .from = from, .only = only, .preset = "nano", .presets_dir = presets_dir});
}

std::vector<std::string> statuses(const fs::path& run) {
    const auto saved = lumi::config::load<pipeline::StagesFile>(run / "stages.json");
    std::vector<std::string> out;
    for (const auto& s : saved.stages) out.push_back(s.status);
    return out;
}

std::vector<std::string> repeat(const std::string& status, std::size_t n) {
    return std::vector<std::string>(n, status);
}

void expect_well_formed_svg(const fs::path& file) {
    ASSERT_TRUE(fs::exists(file)) << file;
    const std::string svg = read(file);
    EXPECT_TRUE(svg.starts_with("<svg")) << file;
    EXPECT_TRUE(contains(svg, "<polyline")) << file;
    EXPECT_TRUE(svg.ends_with("</svg>\n")) << file;
    std::size_t opened = 0, closed = 0;
    for (std::size_t at = 0; (at = svg.find("<text", at)) != std::string::npos; ++at) ++opened;
    for (std::size_t at = 0; (at = svg.find("</text>", at)) != std::string::npos; ++at) ++closed;
    EXPECT_EQ(opened, closed) << file;
}

TEST(Pipeline, RunsEveryStageThenSkipsCompleteOnesResumesAndRerunsFromAStage) {
    TempDir temp;
    write_inputs(temp.path / "inputs");
    const auto settings = smoke_settings(temp.path / "inputs");
    const fs::path dir = temp.path / "run";

    const auto first = run(settings, dir);
    EXPECT_EQ(statuses(dir), repeat("ran", pipeline::stage_count));
    for (const auto& stage : pipeline::stages) {
        EXPECT_TRUE(fs::exists(dir / std::string(stage.directory) / std::string(stage.marker))) << stage.name;
        EXPECT_TRUE(fs::exists(dir / "logs" / (std::string(stage.directory) + ".log"))) << stage.name;
    }
    for (const char* file : {"04_pretrain/final/model.safetensors", "04_pretrain/metrics.jsonl",
                             "07_sft/adapter/adapter_model.safetensors", "07_sft/merged/model.safetensors",
                             "pipeline.json", "configs/04_pretrain.json"})
        EXPECT_TRUE(fs::exists(dir / file)) << file;
    EXPECT_TRUE(contains(read(dir / "logs" / "04_pretrain.log"), "validation loss"));

    // Every figure of both results files is in the report as the results table prints it.
    ASSERT_EQ(first.report, fs::absolute(dir) / "report.md");
    const std::string report = read(first.report);
    for (const char* stage : {"05_eval_pretrain", "08_eval_sft"}) {
        const auto results = lumi::eval::read_results(dir / stage / "results.json");
        for (const char* name : {"heldout.token_perplexity", "wikitext.word_perplexity", "boolq.accuracy",
                                 "smoke.score", "smoke.basic_knowledge.score", "smoke.reasoning.score"}) {
            const auto* metric = results.find(name);
            ASSERT_NE(metric, nullptr) << stage << " " << name;
            EXPECT_TRUE(contains(report, "| " + lumi::eval::detail::number(metric->value) + " |"))
                << stage << " " << name << " " << metric->value;
        }
    }
    const auto before = lumi::eval::read_results(dir / "05_eval_pretrain" / "results.json");
    const auto after = lumi::eval::read_results(dir / "08_eval_sft" / "results.json");
    const double delta = after.find("boolq.accuracy")->value - before.find("boolq.accuracy")->value;
    EXPECT_TRUE(contains(
        report, "| boolq.accuracy | " + lumi::eval::detail::number(before.find("boolq.accuracy")->value) +
                    " | " + lumi::eval::detail::number(after.find("boolq.accuracy")->value) + " | " +
                    (delta > 0 ? "+" : "") + lumi::eval::detail::number(delta) + " |"));
    const auto fit = lumi::config::read_json_file(dir / "04_pretrain" / "result.json").as_object();
    char val_loss[32];
    std::snprintf(val_loss, sizeof val_loss, "%.4f", fit.at("val_loss").to_number<double>());
    EXPECT_TRUE(contains(report, val_loss)) << val_loss;
    for (const char* section :
         {"## Model", "parameters 3933888", "## Data", "common-licenses", "vocabulary 400",
          "## Training curves", "figures/pretrain_loss.svg", "## Sample generations", "## Stages",
          "## Hardware", "## Reproduce", "lumi_pretrain_nano --config", "--only generations",
          "### Preference optimisation (DPO)", "| implicit reward accuracy | 0.5000 |",
          "lumi_train_dpo_nano --config", "## Talk to the model",
          "07_sft/merged --set tokenizer=", "lumi_serve_nano --set checkpoint="})
        EXPECT_TRUE(contains(report, section)) << section;
    for (const char* figure : {"pretrain_loss", "pretrain_lr", "sft_loss", "sft_lr", "dpo_loss"})
        expect_well_formed_svg(dir / "figures" / (std::string(figure) + ".svg"));

    // Again: every stage is complete and consistent, so nothing runs.
    const auto start = std::chrono::steady_clock::now();
    run(settings, dir);
    EXPECT_EQ(statuses(dir), repeat("skipped", pipeline::stage_count));
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
    EXPECT_TRUE(contains(read(first.report), "this invocation ran 0 stages and skipped 11"));

    // A moved run directory is the same run.
    fs::rename(dir, temp.path / "moved");
    run(settings, temp.path / "moved");
    EXPECT_EQ(statuses(temp.path / "moved"), repeat("skipped", pipeline::stage_count));
    fs::rename(temp.path / "moved", dir);

    // --from pretrain: the stages before it are kept, it and every later one run.
    run(settings, dir, "pretrain");
    auto expected = repeat("skipped", 3);
    for (std::size_t i = 3; i < pipeline::stage_count; ++i) expected.push_back("ran");
    EXPECT_EQ(statuses(dir), expected);

    // A re-run of pretraining interrupted after its first checkpoint: its partial directory holds the
    // checkpoint, 04_pretrain still the last complete output. It resumes; what reads it runs again, the
    // instruction corpus (which does not) is kept.
    const std::string weights = read(dir / "04_pretrain" / "final" / "model.safetensors");
    fs::copy(dir / "04_pretrain", dir / "04_pretrain.partial", fs::copy_options::recursive);
    fs::remove(dir / "04_pretrain.partial" / "result.json");
    fs::remove_all(dir / "04_pretrain.partial" / "final");
    fs::remove_all(dir / "04_pretrain.partial" / "checkpoints" / "step_00000006");
    auto records = lumi::config::load<pipeline::StagesFile>(dir / "stages.json");
    records.stages[3].complete = false;
    lumi::config::save(records, dir / "stages.json");
    run(settings, dir);
    EXPECT_EQ(statuses(dir), (std::vector<std::string>{"skipped", "skipped", "skipped", "resumed", "ran",
                                                       "skipped", "ran", "ran", "ran", "skipped", "ran"}));
    EXPECT_TRUE(contains(read(dir / "logs" / "04_pretrain.log"), "resuming from"));
    EXPECT_EQ(lumi::config::read_json_file(dir / "04_pretrain" / "result.json").at("steps").to_number<int>(),
              6);
    EXPECT_FALSE(fs::exists(dir / "04_pretrain.partial"));
    EXPECT_EQ(read(dir / "04_pretrain" / "final" / "model.safetensors"), weights);  // resumed exactly

    // A changed setting re-runs its stage only (nothing reads the generations).
    run(smoke_settings(temp.path / "inputs", {"generations.sampling.max_new_tokens=4"}), dir);
    EXPECT_EQ(statuses(dir),
              (std::vector<std::string>{"skipped", "skipped", "skipped", "skipped", "skipped", "skipped",
                                        "skipped", "skipped", "ran", "skipped", "skipped"}));

    // --only runs one stage whatever its state.
    run(smoke_settings(temp.path / "inputs", {"generations.sampling.max_new_tokens=4"}), dir, {},
        "tokenizer");
    EXPECT_EQ(statuses(dir)[1], "ran");
    EXPECT_EQ(statuses(dir)[0], "pending");

    // A re-run that fails leaves the last complete output whole.
    const std::string result = read(dir / "04_pretrain" / "result.json");
    EXPECT_THROW(run(smoke_settings(temp.path / "inputs", {"pretrain.run.device=cuda"}), dir, {}, "pretrain"),
                 lumi::Error);
    EXPECT_EQ(statuses(dir)[3], "failed");
    EXPECT_EQ(read(dir / "04_pretrain" / "result.json"), result);
    EXPECT_EQ(read(dir / "04_pretrain" / "final" / "model.safetensors"), weights);
}

// The DPO stages read preference data only when some is configured; without, they are off, not failed.
TEST(Pipeline, DpoStagesAreOffWithoutPreferenceDataAndKeepTheSftTemplate) {
    TempDir temp;
    write_inputs(temp.path / "inputs");
    run(smoke_settings(temp.path / "inputs", {"dpo_corpus.datasets=[]"}), temp.path / "run", {}, "dpo");
    const auto status = statuses(temp.path / "run");
    EXPECT_EQ(status[9], "pending");
    EXPECT_EQ(status[10], "off");
    const auto saved = lumi::config::load<pipeline::StagesFile>(temp.path / "run" / "stages.json");
    EXPECT_EQ(saved.stages[10].summary, "off: no preference data (dpo_corpus.datasets)");
    try {
        smoke_settings(temp.path / "inputs", {"dpo_corpus.chat_template=chatml"});
        FAIL() << "expected an error";
    } catch (const lumi::Error& e) {
        EXPECT_TRUE(
            contains(e.what(), "dpo_corpus.chat_template: must be sft_corpus.chat_template ('instruct')"))
            << e.what();
    }
}

TEST(Pipeline, AFailingStageStopsThePipelineNamingTheStageAndItsLog) {
    TempDir temp;
    write_inputs(temp.path / "inputs");
    run(smoke_settings(temp.path / "inputs"), temp.path / "run", {}, "corpus");
    const std::string manifest = read(temp.path / "run" / "01_corpus" / "manifest.json");
    const auto settings =
        smoke_settings(temp.path / "inputs",
                       {"corpus.sources=[{\"paths\": [\"" + (temp.path / "missing.txt").string() + "\"]}]"});
    try {
        run(settings, temp.path / "run");
        FAIL() << "expected an error";
    } catch (const lumi::Error& e) {
        const fs::path log = fs::absolute(temp.path / "run") / "logs" / "01_corpus.log";
        EXPECT_TRUE(contains(e.what(), "stage corpus failed: ")) << e.what();
        EXPECT_TRUE(contains(e.what(), "(log: " + log.string() + ")")) << e.what();
        const std::string text = read(log);
        EXPECT_TRUE(contains(text, "missing.txt")) << text;
        EXPECT_TRUE(contains(text, "error: source 'missing.txt': ")) << text;
        EXPECT_TRUE(contains(text, "No such file or directory")) << text;
    }
    EXPECT_EQ(statuses(temp.path / "run")[0], "failed");
    EXPECT_FALSE(fs::exists(temp.path / "run" / "02_tokenizer"));
    EXPECT_EQ(read(temp.path / "run" / "01_corpus" / "manifest.json"), manifest);  // the good output stays
}

TEST(Pipeline, AnUnreadableStagesFileIsAnErrorNotAReasonToRedoEverything) {
    TempDir temp;
    write_inputs(temp.path / "inputs");
    const fs::path dir = temp.path / "run";
    write(dir / "01_corpus" / "manifest.json", "{}");
    write(dir / "stages.json", "{\"stages\": [{\"name\": \"corpus\", \"complete\": tru");
    try {
        run(smoke_settings(temp.path / "inputs"), dir);
        FAIL() << "expected an error";
    } catch (const lumi::Error& e) {
        EXPECT_TRUE(contains(e.what(), (fs::absolute(dir) / "stages.json").string() + ":1:")) << e.what();
        EXPECT_TRUE(contains(e.what(), "remove it to run every stage again")) << e.what();
    }
    EXPECT_EQ(read(dir / "01_corpus" / "manifest.json"), "{}");
}

TEST(Pipeline, FingerprintsDoNotDependOnWhereTheRunDirectoryIs) {
    TempDir temp;
    write_inputs(temp.path / "inputs");
    // The corpus reads {sources}/fortunes.jsonl, a path inside the run directory.
    const auto settings =
        smoke_settings(temp.path / "inputs", {"corpus.sources=[{\"paths\": [\"{sources}/fortunes.jsonl\"]}]",
                                              "fortunes.paths=[\"/usr/share/games/fortunes/computers\"]"});
    auto fingerprint = [](const fs::path& run) {
        return lumi::config::load<pipeline::StagesFile>(run / "stages.json").stages[0].fingerprint;
    };
    run(settings, temp.path / "a", {}, "corpus");
    const std::string here = fingerprint(temp.path / "a");
    fs::rename(temp.path / "a", temp.path / "b");
    run(settings, temp.path / "b", {}, "corpus");
    EXPECT_EQ(fingerprint(temp.path / "b"), here);
    EXPECT_FALSE(here.empty());
}

TEST(Pipeline, TheShippedNanoSettingsEqualTheCompiledDefaults) {
    const auto shipped =
        lumi::config::load<pipeline::PipelineSettings>(presets_dir / "pipeline" / "nano.json");
    EXPECT_EQ(lumi::config::format_json(lumi::config::to_json(shipped)),
              lumi::config::format_json(lumi::config::to_json(pipeline::PipelineSettings{})));
}

TEST(Pipeline, LayoutPathsCannotBeMovedAndUnknownStagesAreRefused) {
    try {
        lumi::config::load<pipeline::PipelineSettings>(std::nullopt, {"pack.output=elsewhere"});
        FAIL() << "expected an error";
    } catch (const lumi::Error& e) {
        EXPECT_TRUE(
            contains(e.what(), "pack.output: is fixed by the run directory's layout: must be '03_packed'"))
            << e.what();
    }
    EXPECT_EQ(pipeline::find_stage("pretrain"), pipeline::Stage::pretrain);
    EXPECT_EQ(pipeline::find_stage("4"), pipeline::Stage::pretrain);
    EXPECT_EQ(pipeline::find_stage("04_pretrain"), pipeline::Stage::pretrain);
    EXPECT_FALSE(pipeline::find_stage("train"));
    try {
        run(pipeline::PipelineSettings{}, "unused", "train");
        FAIL() << "expected an error";
    } catch (const lumi::Error& e) {
        EXPECT_TRUE(contains(e.what(), "no stage 'train' (stages: corpus, tokenizer")) << e.what();
    }
}

TEST(Pipeline, ThePretrainRecipeTypesItsSectionsAtLoad) {
    const auto defaults = pipeline::PipelineSettings{}.pretrain;
    EXPECT_EQ(defaults.recipe, "muon_wsd");
    const auto muon = defaults.typed<lumi::MuonAdamW, lumi::WarmupStableDecay>();
    EXPECT_EQ(muon.optimizer.adamw.lr, 2e-3);
    EXPECT_EQ(muon.schedule.warmup_steps, 60);
    // Another recipe: its sections null, lumi's defaults for that recipe.
    const auto adamw = lumi::config::load<pipeline::PipelineSettings>(
        std::nullopt, {"pretrain.recipe=adamw_cosine", "pretrain.optimizer=null", "pretrain.schedule=null"});
    const auto typed = adamw.pretrain.typed<lumi::AdamW, lumi::CosineWarmup>();
    EXPECT_EQ(typed.optimizer.lr, lumi::train::AdamWSettings{}.lr);
    EXPECT_EQ(typed.schedule.warmup_steps, lumi::train::ScheduleSettings{}.warmup_steps);
    auto error = [](std::vector<std::string> sets) {
        try {
            lumi::config::load<pipeline::PipelineSettings>(std::nullopt, std::move(sets));
        } catch (const lumi::Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_EQ(error({"pretrain.recipe=sgd"}),
              "--set pretrain.recipe: must be one of adamw_cosine, muon_wsd, found 'sgd'");
    EXPECT_EQ(error({"pretrain.optimizer.muon.lr=-1"}),
              "--set pretrain.optimizer.muon.lr: must be positive (in the optimizer section of recipe "
              "'muon_wsd'; null reads as its defaults)");
    // Naming another recipe drops the default recipe's sections: its own keys read over its defaults, and
    // the default recipe's keys are unknown to it.
    const auto named = lumi::config::load<pipeline::PipelineSettings>(
        std::nullopt, {"pretrain.recipe=adamw_cosine", "pretrain.optimizer.lr=5e-4"});
    EXPECT_EQ((named.pretrain.typed<lumi::AdamW, lumi::CosineWarmup>().optimizer.lr), 5e-4);
    EXPECT_TRUE(contains(error({"pretrain.recipe=adamw_cosine", "pretrain.optimizer.muon.lr=0.02"}),
                         "pretrain.optimizer.muon: unknown key"));
}

TEST(Derive, FortunesBecomeOneDocumentPerEntry) {
    TempDir temp;
    write(temp.path / "fortunes" / "wisdom.u8",
          "First fortune,\n\ttwo lines.\n%\nSecond one.\n%\n%\nThird.\n");
    write(temp.path / "fortunes" / "wisdom.dat", "binary index, not read");
    const auto report =
        pipeline::derive_fortunes({.paths = {temp.path / "fortunes"}}, temp.path / "out.jsonl");
    EXPECT_EQ(report.files, 1u);
    EXPECT_EQ(report.written, 3u);
    EXPECT_EQ(
        read(temp.path / "out.jsonl"),
        "{\"text\":\"First fortune,\\n\\ttwo lines.\"}\n{\"text\":\"Second one.\"}\n{\"text\":\"Third.\"}\n");
}

TEST(Derive, WordnetGlossesBecomeDeterministicInstructions) {
    TempDir temp;
    const fs::path wn = temp.path / "wordnet";
    write(wn / "data.noun",
          "  1 This software and database is being provided to you, the LICENSEE\n"
          "09411430 17 n 02 river 0 stream 1 001 @ 09448361 n 0000 | a large natural stream of water; \"the "
          "river "
          "was high\"  \n"
          "09359803 17 n 01 mountain 0 001 @ 09287968 n 0000 | a land mass that projects well above its "
          "surroundings  \n");
    write(wn / "data.verb",
          "01926311 38 v 01 run 0 001 @ 01835496 v 0000 | move fast by using one's feet  \n");
    write(wn / "data.adj",
          "00001740 00 a 01 able(a) 0 001 ! 00002098 a 0101 | having the necessary means  \n");
    write(wn / "data.adv", "");

    const auto river = pipeline::parse_synset(
        "09411430 17 n 02 river 0 stream 1 001 @ 09448361 n 0000 | a large natural stream of water; \"the "
        "river "
        "was high\"  ");
    ASSERT_TRUE(river);
    EXPECT_EQ(river->words, (std::vector<std::string>{"river", "stream"}));
    EXPECT_EQ(river->definition, "a large natural stream of water");
    EXPECT_EQ(river->examples, std::vector<std::string>{"the river was high"});
    EXPECT_EQ(
        boost::json::serialize(pipeline::wordnet_instruction(*river, 0)),
        R"({"instruction":"What does the word \"river\" mean?","input":"","output":"River is a noun meaning a large natural stream of water."})");
    EXPECT_EQ(pipeline::question_kinds(*river), (std::vector<std::uint64_t>{0, 1, 2, 3}));
    EXPECT_EQ(pipeline::wordnet_instruction(*river, 2).at("output"), "The river was high.");
    EXPECT_EQ(pipeline::wordnet_instruction(*river, 3).at("output"), "Stream.");
    EXPECT_FALSE(pipeline::parse_synset("  1 licence header line"));

    const auto report =
        pipeline::derive_wordnet_instructions({.directory = wn, .examples = 3}, temp.path / "a.jsonl");
    EXPECT_EQ(report.records, 4u);
    EXPECT_EQ(report.written, 3u);
    pipeline::derive_wordnet_instructions({.directory = wn, .examples = 3}, temp.path / "b.jsonl");
    EXPECT_EQ(read(temp.path / "a.jsonl"), read(temp.path / "b.jsonl"));
    EXPECT_TRUE(contains(read(temp.path / "a.jsonl"), "\"instruction\""));
}

TEST(Svg, ChartsAreCompleteDocumentsEvenForOnePoint) {
    pipeline::Chart chart{.title = "loss <train>", .y_label = "loss"};
    chart.series.push_back({.name = "train", .points = {{1, 2.5}}});
    const std::string svg = pipeline::svg(chart);
    EXPECT_TRUE(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    EXPECT_TRUE(contains(svg, "loss &lt;train&gt;"));
    EXPECT_TRUE(contains(svg, "<polyline"));
    EXPECT_FALSE(contains(svg, "nan"));
    EXPECT_TRUE(svg.ends_with("</svg>\n"));
}

}  // namespace
