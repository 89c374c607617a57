#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <lumi/config/config.hpp>
#include <lumi/pipeline/lumi_lab.hpp>
#include <lumi/presets.hpp>

#include "test_errors.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace pipeline = lumi::pipeline;
using lumi::test::error_of;

// Copies of the original's files (tests/data/lumi-lab, with its licence) and the accept list the committed
// presets were made with.
const fs::path source_dir = LUMI_SOURCE_DIR;
const fs::path fixtures = source_dir / "tests" / "data" / "lumi-lab" / "config";
const fs::path accept_file = source_dir / "presets" / "import" / "lumi-lab.json";

pipeline::LumiLabImportSettings settings(const std::string& recipe, const fs::path& original = fixtures) {
    return lumi::config::load<pipeline::LumiLabImportSettings>(
        accept_file, {"original=" + original.string(), "recipe=" + recipe});
}

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("lumi_lab_test_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(path);
        fs::copy(fixtures, path, fs::copy_options::recursive);
    }
    ~TempDir() { fs::remove_all(path); }

    // Edits one key of a copied file: `set(doc)` changes the parsed JSON, which is written back.
    template <class F>
    void edit(const std::string& file, F&& set) const {
        json::value doc = lumi::config::read_json_file(path / file);
        set(doc.as_object());
        lumi::config::write_json_file(doc, path / file);
    }
};

const pipeline::KeyMapping* row(const pipeline::LumiLabImport& imported, const std::string& file_suffix,
                                const std::string& key) {
    for (const auto& k : imported.keys)
        if (k.file.ends_with(file_suffix) && k.key == key) return &k;
    return nullptr;
}

TEST(LumiLabImport, TinyLoadsStrictlyWithTheOriginalsNumbers) {
    const auto imported = pipeline::import_lumi_lab(settings("tiny"));
    EXPECT_EQ(imported.preset, "tiny");
    // Written by lumi's writer, read back strictly as the pipeline binary reads it.
    TempDir temp;
    const fs::path file = temp.path / "tiny-lumi-lab.json";
    lumi::config::save(imported.settings, file);
    const auto s = lumi::config::load<pipeline::PipelineSettings>(file);
    EXPECT_EQ(s.preset, "tiny");

    const auto pre = s.pretrain.typed<lumi::AdamW, lumi::CosineWarmup>();
    EXPECT_EQ(pre.recipe, "adamw_cosine");
    EXPECT_EQ(pre.optimizer.lr, 5e-4);
    EXPECT_EQ(pre.optimizer.beta1, 0.9);
    EXPECT_EQ(pre.optimizer.beta2, 0.95);
    EXPECT_EQ(pre.optimizer.eps, 1e-8);
    EXPECT_EQ(pre.optimizer.weight_decay, 0.1);
    EXPECT_EQ(pre.optimizer.grad_clip, 1.0);
    EXPECT_EQ(pre.schedule.warmup_steps, 3000);
    EXPECT_EQ(pre.schedule.min_lr_ratio, 0.0);  // transformers' cosine ends at zero
    EXPECT_EQ(pre.run.max_steps, 30000);
    EXPECT_EQ(pre.run.micro_batch, 8);
    EXPECT_EQ(pre.run.grad_accum, 4);
    EXPECT_EQ(pre.run.seed, 42u);
    EXPECT_EQ(pre.init.seed, 42u);
    EXPECT_EQ(pre.run.checkpoint_every, 2000);
    EXPECT_EQ(pre.run.eval_every, 1000);
    EXPECT_EQ(pre.run.keep_checkpoints, 3);
    EXPECT_EQ(pre.precision.dtype, lumi::Dtype::bfloat16);
    EXPECT_EQ(s.pack.sequence_length, 1024u);
    EXPECT_EQ(s.pack.validation_fraction, 0.05);
    EXPECT_EQ(s.pack.seed, 42u);

    // The four sources, a quarter each of 600M tokens: 150M tokens apiece.
    ASSERT_EQ(s.corpus.sources.size(), 4u);
    EXPECT_EQ(s.corpus.budget.tokens, 600'000'000u);
    std::vector<std::string> names;
    for (const auto& source : s.corpus.sources) {
        names.push_back(source.name);
        ASSERT_TRUE(source.weight);
        EXPECT_EQ(*source.weight, 0.25);
        EXPECT_EQ(*source.weight * double(*s.corpus.budget.tokens), 150'000'000.0);
        EXPECT_EQ(source.match, std::vector<std::string>{"*.parquet"});
        EXPECT_EQ(source.format, lumi::data::SourceFormat::parquet);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"c4_full", "gutenberg_full", "fineweb_full",
                                               "vietgpt_wikipedia_full"}));
    EXPECT_EQ(s.corpus.sources[0].paths.front(), "{data}/allenai/c4/en/train");
    EXPECT_EQ(s.corpus.sources[1].paths.front(), "{data}/sedthh/gutenberg_english/default/train");
    EXPECT_EQ(s.corpus.sources[1].text_field, "TEXT");
    EXPECT_EQ(s.corpus.sources[2].paths.front(), "{data}/HuggingFaceFW/fineweb-edu/sample-10BT/train");
    EXPECT_EQ(s.corpus.sources[0].license, "ODC-BY: allenai/c4 (https://huggingface.co/datasets/allenai/c4)");
    EXPECT_EQ(s.corpus.dedup.threshold, 0.85);
    EXPECT_EQ(s.corpus.dedup.permutations, 128u);
    EXPECT_EQ(s.corpus.dedup.shingle_size, 3u);
    // Each source's own length bounds (C4, Gutenberg, FineWeb-Edu, Wikipedia).
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> bounds = {
        {50, 10'000}, {200, 900'000}, {100, 9'000}, {100, 50'000}};
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        EXPECT_EQ(s.corpus.sources[i].min_characters, bounds[i].first) << i;
        EXPECT_EQ(s.corpus.sources[i].max_characters, bounds[i].second) << i;
    }
    EXPECT_EQ(s.corpus.shards.max_documents, 10'000u);

    EXPECT_EQ(s.tokenizer.vocab_size, 32768);
    EXPECT_EQ(s.tokenizer.normalization, "nfkc");
    EXPECT_FALSE(s.tokenizer.byte_fallback);
    EXPECT_EQ(s.tokenizer.input_sentence_size, 10'000'000u);
    EXPECT_EQ(s.tokenizer.threads, 8u);
    EXPECT_EQ(s.tokenizer.pad_id, 3);

    // LoRA r 32, alpha 64 on the seven projections: the preset the pipeline binary is compiled with.
    EXPECT_EQ(lumi::presets::tiny_lora.rank, 32);
    EXPECT_EQ(lumi::presets::tiny_lora.alpha, 64.0);
    EXPECT_EQ(lumi::presets::tiny_lora.targets, lumi::lora::all_roles);
    ASSERT_TRUE(row(imported, "lora_tiny_23m.json", "lora_config.r"));
    EXPECT_EQ(row(imported, "lora_tiny_23m.json", "lora_config.r")->use, pipeline::KeyUse::checked);
    EXPECT_EQ(s.sft.method, lumi::train::FinetuneMethod::lora);
    EXPECT_EQ(s.sft.optimizer.lr, 8e-5);
    EXPECT_EQ(s.sft.optimizer.beta2, 0.95);
    EXPECT_EQ(s.sft.optimizer.weight_decay, 0.01);
    EXPECT_EQ(s.sft.run.micro_batch, 4);
    EXPECT_EQ(s.sft.run.grad_accum, 8);
    EXPECT_EQ(s.sft.run.max_steps, 5400);
    EXPECT_EQ(s.sft.schedule.warmup_ratio, 0.1);
    ASSERT_EQ(s.sft_corpus.datasets.size(), 3u);
    for (const auto& d : s.sft_corpus.datasets) EXPECT_EQ(d.max_tokens, 5'000'000u);  // 15M in three
    EXPECT_EQ(s.sft_corpus.datasets[0].path, "{data}/OpenAssistant/oasst1/default/train");
    EXPECT_EQ(s.sft_corpus.datasets[0].language, "en");
    // Each reader from the fields the original reads: OASST1's trees, WizardLM as Alpaca, OpenOrca.
    EXPECT_EQ(s.sft_corpus.datasets[0].format, lumi::data::SftFormat::oasst);
    EXPECT_EQ(s.sft_corpus.datasets[1].format, lumi::data::SftFormat::alpaca);
    EXPECT_EQ(s.sft_corpus.datasets[2].format, lumi::data::SftFormat::orca);
    EXPECT_EQ(s.dpo_corpus.datasets.at(0).format, lumi::data::PreferenceFormat::hh_rlhf);
    EXPECT_EQ(s.sft_corpus.sequence_length, 1024u);
    EXPECT_EQ(s.instructions.source, pipeline::InstructionSource::datasets);

    EXPECT_TRUE(s.dpo_enabled());
    EXPECT_EQ(s.dpo.dpo.beta, 0.1);
    EXPECT_EQ(s.dpo.optimizer.lr, 5e-7);
    EXPECT_EQ(s.dpo.optimizer.beta2, 0.999);  // transformers' default: dpo_tiny names none
    EXPECT_EQ(s.dpo.run.max_steps, 2000);
    EXPECT_EQ(s.dpo.run.micro_batch, 2);
    EXPECT_EQ(s.dpo.run.grad_accum, 8);
    EXPECT_EQ(s.dpo.run.eval_batches, 250);  // 500 pairs, 2 a batch
    EXPECT_EQ(s.dpo.schedule.warmup_steps, 200);
    EXPECT_EQ(s.dpo_corpus.datasets.at(0).max_pairs, 50'000u);
    EXPECT_EQ(s.dpo_corpus.max_prompt_tokens, 512u);

    EXPECT_EQ(s.evaluation.tasks, (std::vector<std::string>{"heldout", "wikitext", "boolq", "smoke"}));
    EXPECT_EQ(s.evaluation.boolq.limit, 100);
    EXPECT_EQ(s.generations.prompts.size(), 5u);
    EXPECT_EQ(s.generations.sampling.temperature, 0.7);
    EXPECT_EQ(s.generations.sampling.top_k, 50);
    EXPECT_EQ(s.generations.sampling.max_new_tokens, 128);
}

TEST(LumiLabImport, NamesEveryKeyOfEveryFile) {
    const auto imported = pipeline::import_lumi_lab(settings("tiny"));
    const auto* lr = row(imported, "chinchilla_tiny_500m.json", "training_params.learning_rate");
    ASSERT_TRUE(lr);
    EXPECT_EQ(lr->use, pipeline::KeyUse::mapped);
    EXPECT_EQ(lr->lumi, "pretrain.optimizer.lr");
    EXPECT_EQ(row(imported, "architectures/tiny.json", "dropout")->use, pipeline::KeyUse::accepted);
    EXPECT_EQ(row(imported, "architectures/tiny.json", "_description")->use, pipeline::KeyUse::documentation);
    EXPECT_EQ(row(imported, "chinchilla_tiny_500m.json", "hardware_params.dataloader_num_workers")->use,
              pipeline::KeyUse::ignored);
    // Every leaf of the pretraining file has its row (documentation objects count once).
    const json::value doc =
        lumi::config::read_json_file(fixtures / "pretrain/training/chinchilla_tiny_500m.json");
    std::size_t leaves = 0;
    for (const auto& [section, value] : doc.as_object())
        leaves += value.is_object() && !section.starts_with("_") ? value.as_object().size() : 1;
    const auto rows = std::count_if(imported.keys.begin(), imported.keys.end(), [](const auto& k) {
        return k.file.ends_with("chinchilla_tiny_500m.json");
    });
    EXPECT_EQ(std::size_t(rows), leaves);
    EXPECT_CONTAINS(pipeline::mapping_markdown(imported.keys),
                    "| `training_params.learning_rate` | `5e-4` | mapped | pretrain.optimizer.lr |");
}

TEST(LumiLabImport, CommittedPresetsAreWhatTheImporterWrites) {
    for (const std::string recipe : {"tiny", "small", "medium"}) {
        const fs::path committed = source_dir / "presets" / "pipeline" / (recipe + "-lumi-lab.json");
        const auto imported = pipeline::import_lumi_lab(settings(recipe));
        EXPECT_EQ(lumi::config::format_json(lumi::config::to_json(imported.settings)),
                  lumi::config::format_json(lumi::config::read_json_file(committed)))
            << committed << " differs from the import: regenerate it with lumi_import_config --config "
            << accept_file << " --set original=" << fixtures << " --set recipe=" << recipe
            << " --set output=" << committed;
    }
}

TEST(LumiLabImport, SmallAndMediumAreTheirPresetsWithoutDpo) {
    const auto small = pipeline::import_lumi_lab(settings("small")).settings;
    EXPECT_EQ(small.preset, "small");
    EXPECT_EQ(small.pretrain.run.max_steps, 27466);
    EXPECT_EQ(*small.corpus.budget.tokens, 900'000'000u);
    EXPECT_FALSE(small.dpo_enabled());
    const auto medium = pipeline::import_lumi_lab(settings("medium")).settings;
    EXPECT_EQ(medium.pretrain.run.max_steps, 54932);
    // target_conversations has no lumi equivalent (accepted): the instruction datasets are read whole.
    for (const auto& d : medium.sft_corpus.datasets) EXPECT_EQ(d.max_tokens, 0u);
}

TEST(LumiLabImport, TheDataFolderIsTheOnlyPathToFill) {
    auto s = settings("tiny");
    s.data = "/mnt/hf";
    const auto imported = pipeline::import_lumi_lab(s).settings;
    EXPECT_EQ(imported.corpus.sources[0].paths.front(), "/mnt/hf/allenai/c4/en/train");
    EXPECT_EQ(imported.sft_corpus.datasets[2].path, "/mnt/hf/Open-Orca/OpenOrca/default/train");
    EXPECT_EQ(imported.dpo_corpus.datasets[0].path, "/mnt/hf/Anthropic/hh-rlhf/default/train");
}

TEST(BadInputLumiLab, AnUnknownKeyIsRefusedNamingFileAndKey) {
    TempDir temp;
    temp.edit("pretrain/training/chinchilla_tiny_500m.json",
              [](json::object& doc) { doc["training_params"].as_object()["magic_flag"] = true; });
    EXPECT_CONTAINS(
        error_of([&] { pipeline::import_lumi_lab(settings("tiny", temp.path)); }),
        "pretrain/training/chinchilla_tiny_500m.json: training_params.magic_flag: no lumi equivalent "
        "is known for this key");
}

TEST(BadInputLumiLab, AKeyLumiCannotReproduceIsRefusedUnlessAccepted) {
    auto s = settings("tiny");
    s.accept.clear();
    EXPECT_CONTAINS(
        error_of([&] { pipeline::import_lumi_lab(s); }),
        "architectures/tiny.json: dropout: 0.1 has no lumi equivalent: lumi's model has no dropout; "
        "list 'architecture:dropout' in accept to import without it");
    // A value lumi does reproduce needs no acceptance.
    TempDir temp;
    temp.edit("architectures/tiny.json", [](json::object& doc) { doc["dropout"] = 0.0; });
    s = settings("tiny", temp.path);
    s.accept.erase(std::remove(s.accept.begin(), s.accept.end(), "architecture:dropout"), s.accept.end());
    EXPECT_EQ(error_of([&] { pipeline::import_lumi_lab(s); }), "");
}

TEST(BadInputLumiLab, AnArchitectureThatIsNoPresetIsRefusedNamingTheFields) {
    TempDir temp;
    temp.edit("architectures/tiny.json", [](json::object& doc) {
        doc["d_model"] = 512;
        doc["d_ff"] = 2048;
    });
    const std::string error = error_of([&] { pipeline::import_lumi_lab(settings("tiny", temp.path)); });
    EXPECT_CONTAINS(error, "architectures/tiny.json: the architecture is not lumi's preset 'tiny': ");
    EXPECT_CONTAINS(error, "d_model 512 (lumi's d_model 256)");
    EXPECT_CONTAINS(error, "d_ff 2048 (lumi's ffn_hidden 1024)");
    temp.edit("architectures/tiny.json", [](json::object& doc) { doc["model_name"] = "huge"; });
    EXPECT_CONTAINS(error_of([&] { pipeline::import_lumi_lab(settings("tiny", temp.path)); }),
                    "architectures/tiny.json: model_name: 'huge' is not a lumi preset (nano, micro, tiny");
}

TEST(BadInputLumiLab, ALoraThatIsNotThePresetsIsRefusedNamingTheFields) {
    TempDir temp;
    temp.edit("sft/training/lora_tiny_23m.json", [](json::object& doc) {
        doc["lora_config"].as_object()["r"] = 16;
        doc["lora_config"].as_object()["target_modules"] = json::array{"q_proj", "v_proj"};
    });
    const std::string error = error_of([&] { pipeline::import_lumi_lab(settings("tiny", temp.path)); });
    EXPECT_CONTAINS(error,
                    "sft/training/lora_tiny_23m.json: lora_config is not lumi's presets::tiny_lora: r 16 "
                    "(lumi's rank 32), target_modules [\"q_proj\", \"v_proj\"] (lumi's targets)");
}

TEST(BadInputLumiLab, TwoFilesGivingOneSettingDifferentValuesAreRefused) {
    TempDir temp;
    temp.edit("pretrain/training/chinchilla_tiny_500m.json",
              [](json::object& doc) { doc["data_params"].as_object()["train_val_split"] = 0.9; });
    EXPECT_CONTAINS(
        error_of([&] { pipeline::import_lumi_lab(settings("tiny", temp.path)); }),
        "chinchilla_tiny_500m.json: data_params.train_val_split: sets pack.validation_fraction to 0.1, "
        "but " +
            (temp.path / "pretrain/packing/default.json").string() +
            ": packing_params.train_val_split set it to 0.05");
}

TEST(BadInputLumiLab, AValueLumiDoesNotDoIsRefused) {
    TempDir temp;
    temp.edit("architectures/tiny.json", [](json::object& doc) {
        doc["_architecture_details"].as_object()["normalization"] = "LayerNorm";
    });
    EXPECT_CONTAINS(
        error_of([&] { pipeline::import_lumi_lab(settings("tiny", temp.path)); }),
        "architectures/tiny.json: _architecture_details.normalization: \"LayerNorm\" is not what lumi "
        "does (RMSNorm)");
}

}  // namespace
