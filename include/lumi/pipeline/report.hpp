#pragma once

// report.md for a pipeline run directory (pipeline.hpp), written from the files the stages left, so the
// numbers in it are those of the results files: the model and its parameter counts, each stage's settings
// and duration, corpus and tokenizer statistics, training curves (figures/*.svg, svg.hpp), validation loss,
// the evaluations before and after fine-tuning with the change, smoke-prompt scores per category, sample
// generations, the hardware and the commands that reproduce each stage.

#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/torch.hpp"
#include "lumi/eval/results.hpp"
#include "lumi/pipeline/svg.hpp"

namespace lumi::pipeline {

// What the report says about the model, from the compile-time preset.
struct ModelInfo {
    std::string preset;
    std::string description;  // lumi::model::describe<S>()
    std::int64_t parameters = 0;
    std::int64_t lora_parameters = 0;
    std::int64_t lora_rank = 0;
    double lora_alpha = 0;
    std::string command;  // how the pipeline was started
    std::string working_directory;
};

struct Curve {
    std::vector<std::pair<double, double>> loss, lr, val_loss;
    double tokens_per_second = 0, flops_per_second = 0, mfu = 0;
};

// The training and validation points of a trainer's metrics.jsonl.
inline Curve read_curve(const std::filesystem::path& file) {
    Curve curve;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
        boost::json::error_code error;
        const auto value = boost::json::parse(line, error);
        if (error || !value.is_object()) continue;
        const auto& o = value.as_object();
        auto number = [&](const char* key) -> std::optional<double> {
            const auto* v = o.if_contains(key);
            return v && v->is_number() ? std::optional<double>(v->to_number<double>()) : std::nullopt;
        };
        const auto step = number("step");
        if (!step) continue;
        if (const auto loss = number("loss")) curve.loss.emplace_back(*step, *loss);
        if (const auto lr = number("lr")) curve.lr.emplace_back(*step, *lr);
        if (const auto val = number("val_loss")) curve.val_loss.emplace_back(*step, *val);
        if (const auto rate = number("tokens_per_s")) curve.tokens_per_second = *rate;
        if (const auto flops = number("flops_per_s")) curve.flops_per_second = *flops;
        if (const auto mfu = number("mfu")) curve.mfu = *mfu;
    }
    return curve;
}

namespace detail {

inline std::optional<boost::json::object> read_object(const std::filesystem::path& file) {
    if (!std::filesystem::exists(file)) return std::nullopt;
    try {
        auto value = config::read_json_file(file);
        if (value.is_object()) return value.as_object();
    } catch (const lumi::Error&) {
    }
    return std::nullopt;
}

inline const boost::json::value* at(const boost::json::object& o, std::initializer_list<const char*> path) {
    const boost::json::value* v = nullptr;
    const boost::json::object* current = &o;
    for (const char* key : path) {
        if (!current) return nullptr;
        v = current->if_contains(key);
        if (!v) return nullptr;
        current = v->if_object();
    }
    return v;
}

inline std::string text(const boost::json::value* v) {
    if (!v || v->is_null()) return "-";
    if (v->is_string()) return std::string(v->as_string());
    if (v->is_bool()) return v->as_bool() ? "true" : "false";
    if (v->is_int64() || v->is_uint64()) {
        std::string digits = std::to_string(v->to_number<std::int64_t>()), out;
        for (std::size_t i = 0; i < digits.size(); ++i) {
            if (i > 0 && digits[0] != '-' && (digits.size() - i) % 3 == 0) out += ',';
            out += digits[i];
        }
        return out;
    }
    if (v->is_double()) return eval::detail::number(v->as_double());
    return boost::json::serialize(*v);
}

inline std::string fixed4(const boost::json::value* v) {
    if (!v || !v->is_number()) return "-";
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.4f", v->to_number<double>());
    return buffer;
}

inline std::string seconds_text(double seconds) {
    char buffer[32];
    if (seconds < 60)
        std::snprintf(buffer, sizeof buffer, "%.1f s", seconds);
    else
        std::snprintf(buffer, sizeof buffer, "%ld min %02ld s", std::lround(seconds) / 60,
                      std::lround(seconds) % 60);
    return buffer;
}

// Markdown table cells must not break the row.
inline std::string cell(std::string s) {
    std::string out;
    for (const char c : s)
        out += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
    return out;
}

inline std::string proc_field(const char* file, const char* key) {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);)
        if (line.rfind(key, 0) == 0) {
            const auto colon = line.find(':');
            if (colon == std::string::npos) continue;
            auto value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(" \t"));
            return value;
        }
    return "unknown";
}

// "24684084 kB" (a /proc/meminfo value) as "23.5 GiB".
inline std::string gib(const std::string& kilobytes) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1f GiB", std::strtod(kilobytes.c_str(), nullptr) / (1 << 20));
    return buffer;
}

inline std::string fence(const std::string& body, const char* language = "") {
    std::string marks = "```";
    while (body.find(marks) != std::string::npos) marks += '`';
    return marks + language + "\n" + body + (body.ends_with('\n') ? "" : "\n") + marks + "\n";
}

inline void chart(const std::filesystem::path& run, const std::string& name, Chart c, std::ostream& md,
                  const std::string& alt) {
    bool any = false;
    for (const auto& s : c.series) any = any || !s.points.empty();
    if (!any) return;
    write_file_atomic(run / "figures" / (name + ".svg"), svg(c));
    md << "![" << alt << "](figures/" << name << ".svg)\n";
}

}  // namespace detail

// The hardware and software the run used.
inline std::string hardware_section() {
    std::ostringstream md;
    utsname u{};
    ::uname(&u);
    md << "| | |\n|---|---|\n"
       << "| CPU | " << detail::cell(detail::proc_field("/proc/cpuinfo", "model name")) << " |\n"
       << "| logical cores | " << std::thread::hardware_concurrency() << " (LibTorch threads "
       << torch::get_num_threads() << ") |\n"
       << "| memory | " << detail::gib(detail::proc_field("/proc/meminfo", "MemTotal")) << " |\n"
       << "| system | " << u.sysname << " " << u.release << " " << u.machine << " |\n"
       << "| LibTorch | " << TORCH_VERSION
       << (torch::cuda::is_available() ? ", CUDA available" : ", CPU only") << " |\n";
    return md.str();
}

// Writes <run>/report.md and <run>/figures/*.svg from the run directory's files.
inline std::filesystem::path write_report(const std::filesystem::path& run, const ModelInfo& model) {
    namespace fs = std::filesystem;
    using detail::at;
    using detail::text;
    const auto settings = detail::read_object(run / "pipeline.json").value_or(boost::json::object{});
    const auto stages_file = detail::read_object(run / "stages.json").value_or(boost::json::object{});
    const auto corpus = detail::read_object(run / "01_corpus" / "manifest.json");
    const auto tok = detail::read_object(run / "02_tokenizer" / "manifest.json");
    const auto tok_config = detail::read_object(run / "02_tokenizer" / "tokenizer_config.json");
    const auto packed = detail::read_object(run / "03_packed" / "manifest.json");
    const auto pretrain = detail::read_object(run / "04_pretrain" / "result.json");
    const auto sft_corpus = detail::read_object(run / "06_sft_corpus" / "manifest.json");
    const auto sft = detail::read_object(run / "07_sft" / "result.json");
    const auto dpo = detail::read_object(run / "11_dpo" / "result.json");
    std::optional<eval::Results> before, after;
    if (fs::exists(run / "05_eval_pretrain" / "results.json"))
        before = eval::read_results(run / "05_eval_pretrain" / "results.json");
    if (fs::exists(run / "08_eval_sft" / "results.json"))
        after = eval::read_results(run / "08_eval_sft" / "results.json");

    std::vector<boost::json::object> records;
    if (const auto* list = stages_file.if_contains("stages"); list && list->is_array())
        for (const auto& r : list->as_array())
            if (r.is_object()) records.push_back(r.as_object());
    double total = 0;
    int ran = 0, skipped = 0;
    for (const auto& r : records) {
        if (const auto* s = r.if_contains("seconds"); s && s->is_number()) total += s->to_number<double>();
        const std::string status = text(r.if_contains("status"));
        ran += status == "ran" || status == "resumed";
        skipped += status == "skipped";
    }

    std::ostringstream md;
    md << "# lumi pipeline report: " << model.preset << "\n\n"
       << "Run directory `" << run.string() << "`. The stages' outputs took " << detail::seconds_text(total)
       << " to make (this invocation ran " << ran << " stages and skipped " << skipped << "). Command:\n\n"
       << detail::fence(model.command, "sh") << "\n";

    // Results first: what a reader came for.
    md << "## Results\n\n";
    const std::string sft_method = text(at(settings, {"sft", "method"}));
    md << "| training | steps | tokens | final training loss | validation loss | validation perplexity |\n"
       << "|---|---:|---:|---:|---:|---:|\n";
    auto fit_row = [&](const char* label, const std::optional<boost::json::object>& r) {
        if (!r) return;
        md << "| " << label << " | " << text(r->if_contains("steps")) << " | "
           << text(r->if_contains("tokens")) << " | " << detail::fixed4(r->if_contains("train_loss")) << " | "
           << detail::fixed4(r->if_contains("val_loss")) << " | " << detail::fixed4(r->if_contains("val_ppl"))
           << " |\n";
    };
    fit_row("pretraining (corpus validation split)", pretrain);
    fit_row(("fine-tuning, " + sft_method + " (instruction validation split)").c_str(), sft);
    fit_row("preference optimisation (DPO loss, preference validation split)", dpo);
    md << "\n";

    auto is_smoke = [](const std::string& name) { return name.rfind("smoke.", 0) == 0; };
    auto comparison = [&](bool smoke) {
        md << "| metric | pretrained | fine-tuned | change | relative | n "
              "|\n|---|---:|---:|---:|---:|---:|\n";
        std::vector<std::string> names;
        for (const auto* r : {before ? &*before : nullptr, after ? &*after : nullptr})
            if (r)
                for (const auto& m : r->metrics)
                    if (is_smoke(m.name) == smoke &&
                        std::find(names.begin(), names.end(), m.name) == names.end())
                        names.push_back(m.name);
        for (const auto& name : names) {
            const eval::Metric* a = before ? before->find(name) : nullptr;
            const eval::Metric* b = after ? after->find(name) : nullptr;
            md << "| " << name << " | " << (a ? eval::detail::number(a->value) : "-") << " | "
               << (b ? eval::detail::number(b->value) : "-") << " | ";
            if (a && b) {
                const double delta = b->value - a->value;
                md << (delta > 0 ? "+" : "") << eval::detail::number(delta) << " | ";
                if (a->value != 0) {
                    char relative[32];
                    std::snprintf(relative, sizeof relative, "%+.3g%%", 100 * delta / std::abs(a->value));
                    md << relative
                       << (delta == 0                           ? ""
                           : (delta > 0) == b->higher_is_better ? " better"
                                                                : " worse");
                }
                md << " | ";
            } else {
                md << " | | ";
            }
            md << (b ? b->sample_size : a->sample_size) << " " << (b ? b->sample_unit : a->sample_unit)
               << " |\n";
        }
        md << "\n";
    };
    md << "### Evaluation before and after fine-tuning\n\n";
    if (!before && !after) md << "No evaluation results yet.\n\n";
    if (before || after) {
        comparison(false);
        md << "Held-out perplexity: documents of the corpus that the packing stage put in its validation "
              "split "
              "(never trained on). WikiText-2 and BoolQ as defined in docs/evaluation.md. Definitions of "
              "every "
              "figure are in each `results.json`.\n\n";
        for (const auto* r : {before ? &*before : nullptr, after ? &*after : nullptr})
            if (r)
                if (const auto* s = r->info.if_contains("skipped");
                    s && s->is_array() && !s->as_array().empty()) {
                    md << "Skipped tasks (their data is not on this machine):\n\n";
                    for (const auto& note : s->as_array()) md << "- " << text(&note) << "\n";
                    md << "\n";
                    break;
                }
        md << "### Smoke prompts, per category\n\nScore in [0, 1] per prompt (content x form, "
              "docs/evaluation.md); "
              "the pretrained model sees the raw prompt, the fine-tuned one the instruction template.\n\n";
        comparison(true);
    }

    if (dpo) {
        md << "### Preference optimisation (DPO)\n\n"
           << "Held-out preference pairs (`10_dpo_corpus`, validation split), "
           << text(at(*dpo, {"preference", "after", "pairs"}))
           << " pairs. Likelihood: the fraction whose chosen answer is more likely than the rejected one; "
              "implicit reward: the same for beta (log pi - log ref), the reference being the fine-tuned "
              "model (0.5 for it by definition). Ties count one half.\n\n"
           << "| figure | fine-tuned | after DPO |\n|---|---:|---:|\n"
           << "| likelihood accuracy | "
           << detail::fixed4(at(*dpo, {"preference", "before", "likelihood_accuracy"})) << " | "
           << detail::fixed4(at(*dpo, {"preference", "after", "likelihood_accuracy"})) << " |\n"
           << "| likelihood margin (nats) | "
           << detail::fixed4(at(*dpo, {"preference", "before", "likelihood_margin"})) << " | "
           << detail::fixed4(at(*dpo, {"preference", "after", "likelihood_margin"})) << " |\n"
           << "| implicit reward accuracy | 0.5000 | "
           << detail::fixed4(at(*dpo, {"preference", "after", "reward_accuracy"}))
           << " |\n| implicit reward margin | 0.0000 | "
           << detail::fixed4(at(*dpo, {"preference", "after", "reward_margin"})) << " |\n\n"
           << text(dpo->if_contains("steps")) << " steps (" << text(at(settings, {"dpo", "loss"}))
           << " loss, beta " << text(at(settings, {"dpo", "dpo", "beta"})) << "); last validation DPO loss "
           << detail::fixed4(dpo->if_contains("val_loss")) << ", rewards/accuracies "
           << detail::fixed4(at(*dpo, {"val_metrics", "rewards/accuracies"})) << ", kl "
           << detail::fixed4(at(*dpo, {"val_metrics", "kl"})) << ".\n\n";
    }

    md << "## Model\n\n" << detail::fence(model.description) << "\n";
    {
        const boost::json::value p(model.parameters), l(model.lora_parameters);
        md << "Parameters: " << text(&p) << " (compile-time count, equal to the runtime count). ";
        if (sft_method == "lora")
            md << "Fine-tuning: LoRA rank " << model.lora_rank << ", alpha "
               << eval::detail::number(model.lora_alpha) << ", " << text(&l) << " trainable parameters ("
               << eval::detail::number(100.0 * double(model.lora_parameters) / double(model.parameters))
               << "% of the model); the merged model has the base's shape.\n\n";
        else
            md << "Fine-tuning: every weight (" << sft_method << ").\n\n";
    }

    md << "## Data\n\n### Corpus\n\n";
    if (corpus) {
        md << "| source | licence | documents | characters | share | estimated tokens | duplicates (exact, "
              "near) |\n"
           << "|---|---|---:|---:|---:|---:|---:|\n";
        if (const auto* sources = corpus->if_contains("sources"); sources && sources->is_array())
            for (const auto& v : sources->as_array()) {
                const auto& s = v.as_object();
                char share[16];
                std::snprintf(share, sizeof share, "%.1f%%",
                              100 * (s.if_contains("share") ? s.at("share").to_number<double>() : 0.0));
                md << "| " << detail::cell(text(s.if_contains("name"))) << " | "
                   << detail::cell(text(s.if_contains("license"))) << " | "
                   << text(s.if_contains("documents")) << " | " << text(s.if_contains("characters")) << " | "
                   << share << " | " << text(s.if_contains("estimated_tokens")) << " | "
                   << text(at(s, {"duplicates", "exact"})) << ", " << text(at(s, {"duplicates", "near"}))
                   << " |\n";
            }
        md << "| **all** | | " << text(corpus->if_contains("documents")) << " | "
           << text(corpus->if_contains("characters")) << " | 100% | "
           << text(corpus->if_contains("estimated_tokens")) << " | |\n\n"
           << text(corpus->if_contains("records")) << " records read, " << text(corpus->if_contains("bytes"))
           << " bytes written; details in `01_corpus/DATA_CARD.md`.\n\n";
    }
    md << "### Tokenizer\n\n";
    if (tok && tok_config) {
        md << "SentencePiece " << text(at(*tok_config, {"lumi", "model_type"})) << ", vocabulary "
           << text(tok->if_contains("vocab_size")) << ", normalisation `"
           << text(at(*tok_config, {"lumi", "normalization"})) << "`, byte fallback "
           << text(at(*tok_config, {"lumi", "byte_fallback"})) << "; trained on "
           << text(tok->if_contains("sentences")) << " of " << text(tok->if_contains("lines")) << " lines ("
           << text(tok->if_contains("bytes")) << " bytes) in " << detail::fixed4(tok->if_contains("seconds"))
           << " s. `spm.model` SHA-256 `" << text(at(*tok_config, {"lumi", "spm_model_sha256"})) << "`.\n\n";
    }
    if (packed) {
        const double bytes = at(*packed, {"corpus", "text_bytes"})
                                 ? at(*packed, {"corpus", "text_bytes"})->to_number<double>()
                                 : 0;
        double tokens = 0;
        for (const char* split : {"train", "val"})
            for (const char* key : {"tokens", "dropped_tail_tokens"})
                if (const auto* v = at(*packed, {split, key}); v && v->is_number())
                    tokens += v->to_number<double>();
        md << "Packed: sequences of " << text(packed->if_contains("sequence_length")) << " tokens; train "
           << text(at(*packed, {"train", "documents"})) << " documents, "
           << text(at(*packed, {"train", "sequences"})) << " sequences, "
           << text(at(*packed, {"train", "tokens"})) << " tokens; validation "
           << text(at(*packed, {"val", "documents"})) << " documents, "
           << text(at(*packed, {"val", "sequences"})) << " sequences. The tokenizer compresses the corpus to "
           << eval::detail::number(tokens > 0 ? bytes / tokens : 0)
           << " bytes of text per token (EOS included).\n\n";
    }
    md << "### Instruction data\n\n";
    if (sft_corpus) {
        md << "| dataset | format | records | train examples | validation examples "
              "|\n|---|---|---:|---:|---:|\n";
        if (const auto* list = sft_corpus->if_contains("datasets"); list && list->is_array())
            for (const auto& v : list->as_array()) {
                const auto& d = v.as_object();
                md << "| `" << detail::cell(text(d.if_contains("path"))) << "` | "
                   << text(d.if_contains("format")) << " | " << text(d.if_contains("records")) << " | "
                   << text(d.if_contains("train_examples")) << " | " << text(d.if_contains("val_examples"))
                   << " |\n";
            }
        const auto* efficiency = at(*sft_corpus, {"packing", "efficiency"});
        md << "\nTemplate `" << text(sft_corpus->if_contains("template")) << "`, sequences of "
           << text(sft_corpus->if_contains("sequence_length")) << " tokens, "
           << text(at(*sft_corpus, {"train", "sequences"})) << " train sequences, packing efficiency "
           << (efficiency && efficiency->is_number()
                   ? eval::detail::number(100 * efficiency->to_number<double>())
                   : "-")
           << "%. Loss on the responses only.\n\n";
    }

    md << "## Training curves\n\n";
    for (const auto& [dir, label] :
         {std::pair{"04_pretrain", "pretraining"}, std::pair{"07_sft", "fine-tuning"},
          std::pair{"11_dpo", "preference optimisation"}}) {
        const Curve c = read_curve(run / dir / "metrics.jsonl");
        if (c.loss.empty()) continue;
        const std::string name = std::string(dir).substr(3);
        md << "### " << label << "\n\n";
        detail::chart(
            run, name + "_loss",
            Chart{.title = std::string(label) + ": loss",
                  .y_label = "loss (nats per token)",
                  .series = {Series{.name = "training", .points = c.loss}, Series{.name = "validation",
                                                                                  .points = c.val_loss,
                                                                                  .colour = "#d62728",
                                                                                  .markers = true}}},
            md, label + std::string(" loss"));
        detail::chart(run, name + "_lr",
                      Chart{.title = std::string(label) + ": learning rate",
                            .y_label = "learning rate",
                            .series = {Series{.name = "lr", .points = c.lr, .colour = "#2ca02c"}}},
                      md, label + std::string(" learning rate"));
        char rate[64];
        std::snprintf(rate, sizeof rate, "%.0f", c.tokens_per_second);
        md << "\nLast logged throughput " << rate << " tokens/s";
        if (c.flops_per_second > 0) {
            char efficiency[96];
            std::snprintf(efficiency, sizeof efficiency, " (%.3g model TFLOP/s, MFU %.1f%%)",
                          c.flops_per_second / 1e12, 100.0 * c.mfu);
            md << efficiency;
        }
        if (!c.val_loss.empty()) {
            char val[64];
            std::snprintf(val, sizeof val, "%.4f", c.val_loss.back().second);
            md << "; last validation loss " << val << " at step " << c.val_loss.back().first;
        }
        md << ".\n\n";
    }

    md << "## Sample generations\n\n";
    if (std::ifstream in(run / "09_generations" / "generations.jsonl"); in) {
        for (std::string line; std::getline(in, line);) {
            boost::json::error_code error;
            const auto v = boost::json::parse(line, error);
            if (error || !v.is_object()) continue;
            md << "**" << detail::cell(text(v.as_object().if_contains("prompt"))) << "** ("
               << text(v.as_object().if_contains("finish_reason")) << ")\n\n"
               << detail::fence(text(v.as_object().if_contains("completion")), "text") << "\n";
        }
    } else {
        md << "No generations yet.\n\n";
    }

    md << "## Stages\n\n| # | stage | status | duration | started (UTC) | finished (UTC) | log |\n"
       << "|---|---|---|---:|---|---|---|\n";
    for (const auto& r : records) {
        const std::string directory = text(r.if_contains("directory"));
        const double seconds = r.if_contains("seconds") ? r.at("seconds").to_number<double>() : 0;
        md << "| " << directory.substr(0, 2) << " | " << text(r.if_contains("name")) << " | "
           << text(r.if_contains("status")) << " | " << detail::seconds_text(seconds) << " | "
           << text(r.if_contains("started")) << " | " << text(r.if_contains("finished")) << " | `"
           << text(r.if_contains("log")) << "` |\n";
    }
    md << "\nEach stage's effective settings (`configs/`):\n\n";
    for (const auto& r : records) {
        const fs::path file = run / text(r.if_contains("config"));
        if (!fs::exists(file)) continue;
        md << "<details><summary>" << text(r.if_contains("directory")) << ": "
           << detail::cell(text(r.if_contains("summary"))) << "</summary>\n\n"
           << detail::fence(read_file(file), "json") << "\n</details>\n\n";
    }

    md << "## Hardware\n\n" << hardware_section() << "\n";

    md << "## Reproduce\n\nFrom `" << model.working_directory << "`, the whole run: `" << model.command
       << "` (complete stages are skipped). One stage:\n\n";
    for (const auto& r : records) {
        auto field = [&](const char* key) {
            const std::string value = text(r.if_contains(key));
            return value == "-" ? std::string() : value;
        };
        const std::string rerun = field("rerun"), command = field("command");
        if (rerun.empty()) continue;
        std::string body = rerun + "\n";
        if (!command.empty())
            body += "# or its own binary:\n" + command + "\n";
        else if (field("name").starts_with("eval"))
            body += "# lumi_evaluate_" + model.preset +
                    " scores wikitext, boolq and smoke alike, not the held-out split\n";
        md << "- " << field("directory") << ":\n\n" << detail::fence(body, "sh") << "\n";
    }
    // The model to talk to: the fine-tuned one when there is one, in the template it was tuned with.
    const auto tuned = run / "07_sft" / "merged";
    const auto checkpoint = fs::exists(tuned) ? tuned : run / "04_pretrain" / "final";
    std::string chat_template;
    if (const auto manifest = run / "06_sft_corpus" / "manifest.json";
        fs::exists(tuned) && fs::exists(manifest)) {
        const auto value = config::read_json_file(manifest);
        if (const auto* t = value.as_object().if_contains("template"); t && t->is_string())
            chat_template = " --set chat_template=" + std::string(t->get_string());
    }
    const std::string model_args =
        " --set checkpoint=" + checkpoint.string() + " --set tokenizer=" + (run / "02_tokenizer").string();
    md << "## Talk to the model\n\nIn a terminal, or served to OpenAI's clients with a chat page at "
          "http://127.0.0.1:8000/ (lumi's docs/serving.md):\n\n"
       << detail::fence("lumi_chat_" + model.preset + model_args + chat_template + "\nlumi_serve_" +
                            model.preset + model_args +
                            (chat_template.empty() ? "" : " --set server." + chat_template.substr(7)) + "\n",
                        "sh")
       << "\n";
    write_file_atomic(run / "report.md", md.str());
    return run / "report.md";
}

}  // namespace lumi::pipeline
