// The lumi side of the interoperability tests (test_interop.py): each subcommand writes checkpoints,
// adapters, tokenizers and model outputs that Python compares with transformers and PEFT, or reads theirs.
//   lumi_interop_tool config|export|logits|generate --preset nano ...   a dense model of a preset
//   lumi_interop_tool tokenizer ...                                     train, encode, decode
//   lumi_interop_tool lora-export|lora-logits ...                       nano with nano_lora
//   lumi_interop_tool gguf --set checkpoint=... --set tokenizer=...      lumi::io::export_gguf (llama.cpp)
//   lumi_interop_tool train --tokenizer ... --input text --out dir      nano trained briefly on a text
//   lumi_interop_tool dpo --loss sigmoid|ipo --beta B --out dir        lumi::Dpo on nano + nano_lora (TRL)
//   lumi_interop_tool optimizer --kind adamw|muon|muon_adamw --dir dir  steps on given gradients
//   (torch.optim)
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/error.hpp>
#include <lumi/eval/generate.hpp>
#include <lumi/io/gguf_export.hpp>
#include <lumi/io/hf_config.hpp>
#include <lumi/io/model_io.hpp>
#include <lumi/io/safetensors.hpp>
#include <lumi/lora/lora.hpp>
#include <lumi/model/transformer.hpp>
#include <lumi/presets/nano.hpp>
#include <lumi/presets/tiny.hpp>
#include <lumi/tokenizer/tokenizer.hpp>
#include <lumi/tokenizer/trainer.hpp>
#include <lumi/train/dpo.hpp>
#include <lumi/train/muon.hpp>

namespace {

namespace fs = std::filesystem;
using lumi::ModelSpec;

// nano with 4 query heads sharing 2 key/value heads: groups of two, so a wrong repetition order shows.
inline constexpr ModelSpec nano_gqa{.vocab_size = 4096,
                                    .n_layer = 4,
                                    .d_model = 192,
                                    .n_head = 4,
                                    .n_kv_head = 2,
                                    .ffn_hidden = 768,
                                    .context = 256};
// nano with tied embeddings and LLaMA 3's RoPE base and norm epsilon, to check those config.json fields.
inline constexpr ModelSpec nano_tied{.vocab_size = 4096,
                                     .n_layer = 4,
                                     .d_model = 192,
                                     .n_head = 3,
                                     .n_kv_head = 3,
                                     .ffn_hidden = 768,
                                     .context = 256,
                                     .rope_theta = 500000.0,
                                     .norm_eps = 1e-6,
                                     .tie_embeddings = true};

// Weights larger than training's 0.02 so attention is far from uniform and every path moves the logits.
inline constexpr double init_std = 0.1;
inline constexpr std::int64_t batch = 2, sequence = 16;

// Calls f.template operator()<S>() for the preset named `name`.
template <class F>
int with_preset(const std::string& name, F&& f) {
    if (name == "nano") return f.template operator()<lumi::presets::nano>();
    if (name == "tiny") return f.template operator()<lumi::presets::tiny>();
    if (name == "nano_gqa") return f.template operator()<nano_gqa>();
    if (name == "nano_tied") return f.template operator()<nano_tied>();
    throw lumi::Error("--preset: no preset named '" + name + "' (nano, tiny, nano_gqa, nano_tied)");
}

// Norm weights away from their initial ones, so a wrong RMSNorm convention shows too.
template <class Model>
void perturb_norms(Model& model, at::Generator& gen) {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters())
        if (item.key().ends_with("norm.weight")) item.value().normal_(1.0, 0.1, gen);
}

torch::Tensor fixed_ids(std::int64_t vocab_size, std::uint64_t seed) {
    auto gen = lumi::make_generator(seed);
    return torch::randint(vocab_size, {batch, sequence}, gen, torch::kInt64);
}

template <class Model>
torch::Tensor logits_of(Model& model, const torch::Tensor& ids) {
    torch::NoGradGuard no_grad;
    model->eval();
    return model->forward(ids).to(torch::kFloat32).contiguous();
}

void save_logits(const fs::path& file, const torch::Tensor& ids, const torch::Tensor& logits) {
    lumi::io::save_safetensors(file, {{"ids", ids}, {"logits", logits}});
}

torch::Tensor read_ids(const fs::path& file) {
    const auto tensors = lumi::io::load_safetensors(file);
    const torch::Tensor* ids = tensors.find("ids");
    if (!ids) throw lumi::Error(file.string() + ": no tensor named 'ids'");
    return *ids;
}

std::vector<std::vector<int>> read_id_rows(const fs::path& file) {
    std::vector<std::vector<int>> rows;
    const auto json = lumi::config::read_json_file(file);
    for (const auto& row : json.as_array()) {
        rows.emplace_back();
        for (const auto& id : row.as_array()) rows.back().push_back(int(id.to_number<std::int64_t>()));
    }
    return rows;
}

boost::json::array id_rows_json(const std::vector<std::vector<int>>& rows) {
    boost::json::array out;
    for (const auto& row : rows) out.emplace_back(boost::json::array(row.begin(), row.end()));
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"lumi's side of the transformers / PEFT interoperability tests"};
    app.require_subcommand(1);
    std::string preset = "nano";
    std::uint64_t seed = 0;
    std::string out, model_dir, ids_file, base_dir, adapter_dir, input, lines_file;
    std::int64_t max_new_tokens = 32;
    std::int32_t vocab_size = 1000;

    auto* config = app.add_subcommand("config", "print the LlamaConfig (config.json) of a preset");
    config->add_option("--preset", preset)->required();

    auto* export_ = app.add_subcommand("export", "save a random model and its logits on fixed ids");
    export_->add_option("--preset", preset)->required();
    export_->add_option("--seed", seed);
    export_->add_option("--out", out, "directory: model/ and logits.safetensors")->required();

    auto* logits = app.add_subcommand("logits", "load a checkpoint and write its logits on the given ids");
    logits->add_option("--preset", preset)->required();
    logits->add_option("--model", model_dir)->required();
    logits->add_option("--ids", ids_file, "safetensors file with an int64 'ids' [B, T]")->required();
    logits->add_option("--out", out, "safetensors file: ids, logits")->required();
    bool no_config_check = false;
    logits->add_flag("--no-config-check", no_config_check,
                     "load without config.json (compare tensor shapes only)");

    auto* generate = app.add_subcommand("generate", "greedy continuations (KV cache) of prompts");
    generate->add_option("--preset", preset)->required();
    generate->add_option("--model", model_dir)->required();
    generate->add_option("--prompts", ids_file, "JSON list of lists of ids")->required();
    generate->add_option("--max-new-tokens", max_new_tokens);
    generate->add_option("--out", out, "JSON list of lists of new ids")->required();

    auto* tokenizer = app.add_subcommand("tokenizer", "train a tokenizer, then encode and decode lines");
    tokenizer->add_option("--input", input, "training text")->required();
    tokenizer->add_option("--vocab-size", vocab_size);
    tokenizer->add_option("--out", out, "tokenizer directory")->required();
    tokenizer->add_option("--lines", lines_file, "text to encode, one line each")->required();
    tokenizer->add_option("--encoded", ids_file, "JSON: {ids, decoded}")->required();

    auto* lora_export = app.add_subcommand(
        "lora-export", "nano + nano_lora, random adapter: base/, adapter/, merged/, logits.safetensors");
    lora_export->add_option("--seed", seed);
    lora_export->add_option("--out", out)->required();

    auto* lora_logits = app.add_subcommand("lora-logits", "nano + nano_lora from a base and a PEFT adapter");
    lora_logits->add_option("--base", base_dir)->required();
    lora_logits->add_option("--adapter", adapter_dir)->required();
    lora_logits->add_option("--ids", ids_file)->required();
    lora_logits->add_option("--out", out)->required();

    std::string tokenizer_dir;
    std::int64_t steps = 120;
    auto* train = app.add_subcommand("train", "train nano briefly on a text, so its predictions are peaked");
    train->add_option("--tokenizer", tokenizer_dir)->required();
    train->add_option("--input", input, "training text")->required();
    train->add_option("--steps", steps);
    train->add_option("--seed", seed);
    train->add_option("--out", out, "checkpoint directory")->required();

    std::vector<std::string> sets;
    auto* gguf = app.add_subcommand("gguf", "export a checkpoint and its tokenizer as GGUF");
    gguf->add_option("--set", sets, "a GgufExportSettings field: key=value (repeatable)")->required();

    std::string loss_type = "sigmoid";
    double beta = 0.1, label_smoothing = 0.0;
    auto* dpo = app.add_subcommand(
        "dpo",
        "nano + nano_lora, random adapter: base/, adapter/, pairs.json; lumi's DPO loss, metrics, gradients");
    dpo->add_option("--seed", seed);
    dpo->add_option("--loss", loss_type)->check(CLI::IsMember({"sigmoid", "ipo"}));
    dpo->add_option("--beta", beta);
    dpo->add_option("--label-smoothing", label_smoothing);
    dpo->add_option("--out", out, "directory: base/, adapter/, pairs.json, dpo.json, grads.safetensors")
        ->required();

    std::string kind = "muon_adamw", optimizer_dir;
    std::int64_t resume_at = 0;
    auto* optimizer = app.add_subcommand(
        "optimizer",
        "steps of a lumi optimizer on params.safetensors with grads.safetensors ('<step>.<name>')");
    optimizer->add_option("--kind", kind)->check(CLI::IsMember({"adamw", "muon", "muon_adamw"}));
    optimizer
        ->add_option("--dir", optimizer_dir,
                     "params.safetensors, grads.safetensors, settings.json in; "
                     "result.safetensors out")
        ->required();
    optimizer->add_option("--steps", steps);
    optimizer->add_option("--resume-at", resume_at, "save the state after this many steps, continue from it");

    CLI11_PARSE(app, argc, argv);
    try {
        if (*config)
            return with_preset(preset, [&]<ModelSpec S>() {
                std::cout << lumi::config::format_json(lumi::io::llama_config(S));
                return 0;
            });
        if (*export_)
            return with_preset(preset, [&]<ModelSpec S>() {
                lumi::Transformer<S> model(lumi::InitSettings{.seed = seed, .std = init_std});
                auto gen = lumi::make_generator(seed + 1);
                perturb_norms(model, gen);
                lumi::io::save_model(model, fs::path(out) / "model");
                const auto ids = fixed_ids(S.vocab_size, seed + 2);
                save_logits(fs::path(out) / "logits.safetensors", ids, logits_of(model, ids));
                return 0;
            });
        if (*logits)
            return with_preset(preset, [&]<ModelSpec S>() {
                lumi::Transformer<S> model;
                lumi::io::load_model(model, model_dir, {.check_config = !no_config_check});
                const auto ids = read_ids(ids_file);
                save_logits(out, ids, logits_of(model, ids));
                return 0;
            });
        if (*generate)
            return with_preset(preset, [&]<ModelSpec S>() {
                lumi::Transformer<S> model;
                lumi::io::load_model(model, model_dir);
                lumi::eval::SamplingSettings greedy;
                greedy.max_new_tokens = max_new_tokens;
                greedy.stop_at_eos = false;
                const auto generated =
                    lumi::eval::generate_ids(model, read_id_rows(ids_file), greedy, /*eos_id=*/-1);
                std::vector<std::vector<int>> rows;
                for (const auto& g : generated) rows.push_back(g.tokens);
                lumi::config::write_json_file(id_rows_json(rows), out);
                return 0;
            });
        if (*optimizer) {
            // The factor a schedule would give update s, so the scaling is checked too.
            auto factor = [](std::int64_t s) { return 1.0 - 0.05 * double(s); };
            const fs::path dir(optimizer_dir);
            auto run = [&]<class Optimizer>() {
                const auto settings = lumi::config::load<typename Optimizer::Settings>(dir / "settings.json");
                lumi::io::NamedTensors params =
                    lumi::io::load_safetensors(dir / "params.safetensors").tensors;
                for (auto& [name, p] : params) p.requires_grad_(true);
                const auto grads = lumi::io::load_safetensors(dir / "grads.safetensors");
                auto optimizer = std::make_unique<Optimizer>(params, settings);
                for (std::int64_t s = 0; s < steps; ++s) {
                    if (resume_at > 0 && s == resume_at) {  // through a file, as a checkpoint does
                        lumi::io::save_safetensors(dir / "state.safetensors", optimizer->state());
                        optimizer = std::make_unique<Optimizer>(params, settings);
                        optimizer->load_state(lumi::io::load_safetensors(dir / "state.safetensors").tensors,
                                              "state.safetensors");
                    }
                    for (auto& [name, p] : params) {
                        const torch::Tensor* g = grads.find(std::to_string(s) + "." + name);
                        if (!g)
                            throw lumi::Error("grads.safetensors: no gradient '" + std::to_string(s) + "." +
                                              name + "'");
                        p.mutable_grad() = g->clone();
                    }
                    optimizer->clip_gradients();
                    optimizer->step_scaled(factor(s));
                    optimizer->zero_grad();
                }
                lumi::io::save_safetensors(dir / "result.safetensors", params);
                return 0;
            };
            if (kind == "adamw") return run.template operator()<lumi::AdamW>();
            if (kind == "muon") return run.template operator()<lumi::Muon>();
            return run.template operator()<lumi::MuonAdamW>();
        }
        if (*train) {
            constexpr ModelSpec S = lumi::presets::nano;
            const auto tok = lumi::Tokenizer::load(tokenizer_dir);
            const auto encoded = tok.encode(lumi::read_file(input));
            const auto ids = torch::tensor(std::vector<std::int64_t>(encoded.begin(), encoded.end()));
            constexpr std::int64_t rows = 8, length = 64;
            if (ids.numel() < 2 * length) throw lumi::Error(input + ": too short to train on");
            lumi::Transformer<S> model(lumi::InitSettings{.seed = seed});
            torch::optim::AdamW optimizer(model->parameters(),
                                          torch::optim::AdamWOptions(3e-3).weight_decay(0.0));
            auto gen = lumi::make_generator(seed + 1);
            double loss = 0;
            for (std::int64_t step = 0; step < steps; ++step) {
                const auto starts = torch::randint(ids.numel() - length - 1, {rows}, gen, torch::kInt64);
                std::vector<torch::Tensor> windows;
                for (std::int64_t r = 0; r < rows; ++r)
                    windows.push_back(ids.narrow(0, starts[r].item<std::int64_t>(), length + 1));
                const auto batch = torch::stack(windows);
                auto result = model->forward(batch.narrow(1, 0, length), batch.narrow(1, 1, length));
                optimizer.zero_grad();
                result.loss.backward();
                optimizer.step();
                loss = result.loss.item<double>();
            }
            lumi::io::SaveSettings save;
            save.tokenizer = lumi::io::TokenizerIdentity{tok.sha256(), tok.vocab_size()};
            lumi::io::save_model(model, out, save);
            std::cout << "loss " << loss << "\n";
            return 0;
        }
        if (*gguf) {
            const auto settings = lumi::config::load<lumi::io::GgufExportSettings>(std::nullopt, sets);
            const auto report = lumi::io::export_gguf(settings);
            std::cout << report.tokenizer_model << " " << report.tensors << " " << report.bytes << "\n";
            return 0;
        }
        if (*tokenizer) {
            lumi::tokenizer::TrainerSettings settings;
            settings.input = input;
            settings.output = out;
            settings.vocab_size = vocab_size;
            settings.threads = 2;
            lumi::tokenizer::train_tokenizer(settings);
            const auto tok = lumi::Tokenizer::load(out);
            std::ifstream in(lines_file, std::ios::binary);
            std::vector<std::vector<int>> rows;
            boost::json::array decoded;
            for (std::string line; std::getline(in, line);) {
                rows.push_back(tok.encode(line));
                decoded.emplace_back(tok.decode(rows.back()));
            }
            lumi::config::write_json_file(
                boost::json::object{{"ids", id_rows_json(rows)}, {"decoded", decoded}}, ids_file);
            return 0;
        }
        constexpr ModelSpec S = lumi::presets::nano;
        constexpr lumi::LoraSpec L = lumi::presets::nano_lora;
        // nano + nano_lora with random base weights and a random adapter, saved as out/base and out/adapter.
        auto random_adapted = [&](at::Generator& gen) {
            lumi::Transformer<S, lumi::Lora<L>> model(lumi::InitSettings{.seed = seed, .std = init_std});
            perturb_norms(model, gen);
            // lora_B is still zero: the merged copy is the base model.
            lumi::io::save_model(lumi::lora::merged_copy(model), fs::path(out) / "base");
            {
                torch::NoGradGuard no_grad;
                for (auto& item : model->named_parameters())
                    if (item.key().ends_with("lora_B.weight")) item.value().normal_(0.0, 0.1, gen);
            }
            lumi::lora::save_adapter(model, fs::path(out) / "adapter", (fs::path(out) / "base").string());
            return model;
        };
        if (*lora_export) {
            auto gen = lumi::make_generator(seed + 1);
            auto model = random_adapted(gen);
            lumi::io::save_model(lumi::lora::merged_copy(model), fs::path(out) / "merged");
            const auto ids = fixed_ids(S.vocab_size, seed + 2);
            save_logits(fs::path(out) / "logits.safetensors", ids, logits_of(model, ids));
            return 0;
        }
        if (*dpo) {
            auto gen = lumi::make_generator(seed + 1);
            auto model = random_adapted(gen);
            // Three pairs of varied lengths, laid out as PreferenceDataset does: chosen rows, then rejected.
            constexpr std::int64_t pairs = 3;
            auto draw = [&](std::int64_t low, std::int64_t high) {
                const auto n = torch::randint(low, high + 1, {1}, gen, torch::kInt64).item<std::int64_t>();
                const auto ids = torch::randint(4, S.vocab_size, {n}, gen, torch::kInt64);
                return std::vector<std::int64_t>(ids.data_ptr<std::int64_t>(),
                                                 ids.data_ptr<std::int64_t>() + n);
            };
            std::vector<std::vector<std::int64_t>> prompts, responses[2];
            boost::json::array records;
            std::int64_t length = 0;
            for (std::int64_t p = 0; p < pairs; ++p) {
                prompts.push_back(draw(3, 8));
                responses[0].push_back(draw(2, 9));
                responses[1].push_back(draw(2, 9));
                for (const auto& r : {responses[0].back(), responses[1].back()})
                    length = std::max<std::int64_t>(length, std::int64_t(prompts.back().size() + r.size()));
                records.emplace_back(boost::json::object{
                    {"prompt_input_ids", boost::json::array(prompts.back().begin(), prompts.back().end())},
                    {"chosen_input_ids",
                     boost::json::array(responses[0].back().begin(), responses[0].back().end())},
                    {"rejected_input_ids",
                     boost::json::array(responses[1].back().begin(), responses[1].back().end())}});
            }
            lumi::config::write_json_file(records, fs::path(out) / "pairs.json");
            auto tokens = torch::zeros({2 * pairs, length}, torch::kInt64);
            auto mask = torch::zeros({2 * pairs, length}, torch::kBool);
            for (int side = 0; side < 2; ++side)
                for (std::int64_t p = 0; p < pairs; ++p) {
                    const auto row = side * pairs + p;
                    std::int64_t t = 0;
                    for (auto id : prompts[std::size_t(p)]) tokens[row][t++] = id;
                    for (auto id : responses[side][std::size_t(p)]) {
                        mask[row][t] = true;
                        tokens[row][t++] = id;
                    }
                }
            model->eval();  // no dropout: TRL runs the PEFT model in eval mode too
            const lumi::train::DpoSettings settings{.beta = beta, .label_smoothing = label_smoothing};
            auto run = [&]<class Loss>() {
                const lumi::Dpo<Loss> objective(settings);
                const auto result = objective(model, lumi::train::Batch{tokens, mask, {}});
                result.loss.backward();
                boost::json::object metrics;
                const auto names = objective.metric_names();
                for (std::size_t m = 0; m < names.size(); ++m)
                    metrics[names[m]] = result.metrics[m].template item<double>();
                lumi::config::write_json_file(
                    boost::json::object{{"loss", result.loss.template item<double>()}, {"metrics", metrics}},
                    fs::path(out) / "dpo.json");
            };
            if (loss_type == "ipo")
                run.template operator()<lumi::IpoLoss>();
            else
                run.template operator()<lumi::SigmoidLoss>();
            lumi::io::NamedTensors grads;
            for (const auto& item : model->named_parameters())
                if (item.value().requires_grad())
                    grads.emplace_back("base_model.model." + item.key(), item.value().grad());
            lumi::io::save_safetensors(fs::path(out) / "grads.safetensors", grads);
            return 0;
        }
        if (*lora_logits) {
            lumi::Transformer<S, lumi::Lora<L>> model;
            lumi::lora::load_base(model, base_dir);
            lumi::lora::load_adapter(model, adapter_dir);
            const auto ids = read_ids(ids_file);
            save_logits(out, ids, logits_of(model, ids));
            return 0;
        }
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
    return 2;
}
