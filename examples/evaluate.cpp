// Stages 06 and 08: WikiText-2 perplexity (token, word, byte, bits per byte), BoolQ, the smoke prompts and
// (when asked) held-out preference pairs for one checkpoint; writes results.json and prints a table, or
// compares two results files.
//   lumi_evaluate_nano --set checkpoint=runs/nano/pretrain/final --set tokenizer=runs/nano/tokenizer \
//       --set perplexity.file=../shared/data/wikitext-2/test.txt --set boolq.file=...
//   lumi_evaluate_nano --compare runs/nano/eval_pretrain/results.json runs/nano/eval_sft/results.json
#include <chrono>
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/eval/boolq.hpp>
#include <lumi/eval/generate.hpp>
#include <lumi/eval/perplexity.hpp>
#include <lumi/eval/preference.hpp>
#include <lumi/eval/prompt.hpp>
#include <lumi/eval/results.hpp>
#include <lumi/eval/smoke.hpp>
#include <lumi/io/model_io.hpp>
#include <lumi/presets.hpp>
#include <lumi/train/trainer.hpp>

#include "stage_cli.hpp"

namespace {

using lumi::stage::preset_name;
using lumi::stage::spec;

lumi::eval::SamplingSettings smoke_sampling() {
    lumi::eval::SamplingSettings s;
    s.max_new_tokens = 64;
    s.repetition_penalty = 1.1;
    return s;
}

struct SmokeTask {
    std::string prompts = LUMI_PRESETS_DIR "/eval/smoke_prompts.json";
    lumi::eval::PromptTemplate prompt_template = lumi::eval::PromptTemplate::raw;
    lumi::eval::SamplingSettings sampling = smoke_sampling();
};

std::vector<std::string> default_tasks() {
    return {"perplexity", "boolq", "smoke"};
}

struct EvaluateSettings {
    std::string checkpoint = "runs/pretrain/final";
    std::string tokenizer = "runs/tokenizer";
    std::string output = "runs/eval";  // results.json goes here
    std::vector<std::string> tasks = default_tasks();
    std::string device = "auto";
    lumi::eval::PerplexitySettings perplexity;
    lumi::eval::BoolqSettings boolq;
    SmokeTask smoke;
    lumi::eval::PreferenceTaskSettings preference;  // a task only when listed in tasks

    void validate() const {
        for (const auto& t : tasks) {
            if (t != "perplexity" && t != "boolq" && t != "smoke" && t != "preference")
                throw lumi::config::FieldError(
                    "tasks", "unknown task '" + t + "' (perplexity, boolq, smoke, preference)");
            if (t == "preference" && preference.dataset.empty())
                throw lumi::config::FieldError("preference.dataset",
                                               "must name a prepare_dpo dataset when tasks lists preference");
        }
    }
};

bool wants(const EvaluateSettings& s, const std::string& task) {
    return std::find(s.tasks.begin(), s.tasks.end(), task) != s.tasks.end();
}

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{std::string("Evaluate a '") + preset_name + "' checkpoint"};
    lumi::stage::Cli cli(app, "EvaluateSettings");
    std::vector<std::string> compare;
    app.add_option("--compare", compare, "print two results.json side by side and exit")->expected(2);
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<EvaluateSettings>()) return 0;
        if (!compare.empty()) {
            std::cout << lumi::eval::compare(std::filesystem::path(compare[0]),
                                             std::filesystem::path(compare[1]));
            return 0;
        }
        const auto settings = cli.load<EvaluateSettings>();
        if (cli.printed(settings)) return 0;
        const auto tokenizer = lumi::tokenizer::Tokenizer::load(settings.tokenizer);
        lumi::Transformer<spec> model;
        lumi::io::load_model_for(model, settings.checkpoint, tokenizer, settings.tokenizer);
        const auto device = lumi::resolve_device(settings.device);
        model->to(device);
        model->eval();

        lumi::eval::Results results;
        results.info = {{"preset", preset_name},           {"checkpoint", settings.checkpoint},
                        {"tokenizer", settings.tokenizer}, {"tokenizer_sha256", tokenizer.sha256()},
                        {"device", device.str()},          {"threads", torch::get_num_threads()}};
        const auto progress = [](const char* task) {
            return [task](std::size_t done, std::size_t total) {
                std::cerr << "\r" << task << " " << done << "/" << total << std::flush;
                if (done == total) std::cerr << "\n";
            };
        };
        if (wants(settings, "perplexity")) {
            const auto r =
                lumi::eval::perplexity(model, tokenizer, settings.perplexity, progress("perplexity"));
            results.add(lumi::eval::metrics(r));
        }
        if (wants(settings, "boolq")) {
            const auto r = lumi::eval::boolq(model, tokenizer, settings.boolq, progress("boolq"));
            results.add(lumi::eval::metrics(r));
        }
        if (wants(settings, "smoke")) {
            const auto set = lumi::eval::load_smoke_prompts(settings.smoke.prompts);
            auto sampling = settings.smoke.sampling;
            for (auto& stop : lumi::eval::template_stops(settings.smoke.prompt_template))
                sampling.stop.push_back(stop);
            const auto r = lumi::eval::run_smoke(set, [&](const std::vector<std::string>& prompts) {
                std::vector<std::string> shown, outputs;
                for (const auto& p : prompts)
                    shown.push_back(lumi::eval::apply_template(settings.smoke.prompt_template, p));
                for (const auto& g : lumi::eval::generate(model, tokenizer, shown, sampling))
                    outputs.push_back(g.text);
                return outputs;
            });
            results.add(lumi::eval::metrics(r));
            results.details["smoke"] = lumi::eval::details(r);
        }
        if (wants(settings, "preference")) {
            const auto logits = [&](const torch::Tensor& inputs) { return model->forward(inputs); };
            lumi::eval::LogitsOf reference;
            lumi::Transformer<spec> reference_model;
            if (!settings.preference.reference.empty()) {
                lumi::io::load_model_for(reference_model, settings.preference.reference, tokenizer,
                                         settings.tokenizer);
                reference_model->to(device);
                reference_model->eval();
                reference = [&](const torch::Tensor& inputs) { return reference_model->forward(inputs); };
            }
            const auto r = lumi::eval::preference(logits, reference, settings.preference, device,
                                                  progress("preference"));
            results.add(lumi::eval::metrics(r));
        }
        // Written once the evaluation succeeded: a failed run leaves an earlier output as it was.
        lumi::config::save(settings, std::filesystem::path(settings.output) / "evaluate.json");
        lumi::eval::write_results(results, std::filesystem::path(settings.output) / "results.json");
        std::cout << lumi::eval::format_table(results) << "results " << settings.output << "/results.json\n";
        return 0;
    });
}
