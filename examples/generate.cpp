// Stage 08: continues prompts with a checkpoint (KV cache; greedy or sampled), streaming to the terminal.
//   lumi_generate_nano --set checkpoint=runs/nano/sft_train/merged --set tokenizer=runs/nano/tokenizer \
//       --set prompt_template=instruct --set prompts='["Name three colours."]'
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/files.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/eval/generate.hpp>
#include <lumi/eval/prompt.hpp>
#include <lumi/io/model_io.hpp>
#include <lumi/presets.hpp>

#include "stage_cli.hpp"
#include "stage_model.hpp"

namespace {

using lumi::stage::preset_name;
using lumi::stage::spec;

using lumi::eval::PromptTemplate;

struct GenerateSettings {
    std::string checkpoint = "runs/pretrain/final";
    std::string tokenizer = "runs/tokenizer";
    std::vector<std::string> prompts;
    std::string prompt_file;  // one prompt per line, after `prompts`
    PromptTemplate prompt_template = PromptTemplate::raw;
    lumi::eval::SamplingSettings sampling;
    std::string device = "auto";
    lumi::Dtype dtype = lumi::Dtype::float32;
    std::int64_t batch = 8;  // prompts decoded together (streaming shows the first of each batch)
    std::string output;      // optional JSON Lines: prompt, completion, finish_reason

    void validate() const {
        if (batch < 1) throw lumi::config::FieldError("batch", "must be >= 1");
    }
};

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{std::string("Generate text with a '") + preset_name + "' checkpoint"};
    lumi::stage::Cli cli(app, "GenerateSettings");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<GenerateSettings>()) return 0;
        auto settings = cli.load<GenerateSettings>();
        if (cli.printed(settings)) return 0;
        if (!settings.prompt_file.empty()) {
            std::ifstream in = lumi::open_file(settings.prompt_file);
            for (std::string line; std::getline(in, line);)
                if (!line.empty()) settings.prompts.push_back(line);
        }
        if (settings.prompts.empty()) throw lumi::Error("no prompts: set prompts or prompt_file");
        // Opened first, so an unwritable path fails before the model loads; renamed into place at the end.
        std::optional<lumi::AtomicFile> jsonl;
        if (!settings.output.empty()) jsonl.emplace(settings.output);
        for (auto& stop : lumi::eval::template_stops(settings.prompt_template))
            settings.sampling.stop.push_back(stop);

        const auto tokenizer = lumi::tokenizer::Tokenizer::load(settings.tokenizer);
        auto model = lumi::stage::load_model<spec>(settings.checkpoint, tokenizer, settings.tokenizer,
                                                   settings.device, settings.dtype);

        const bool terminal = isatty(fileno(stdout));
        for (std::size_t first = 0; first < settings.prompts.size(); first += std::size_t(settings.batch)) {
            const std::size_t last = std::min(settings.prompts.size(), first + std::size_t(settings.batch));
            std::vector<std::string> batch;
            for (std::size_t i = first; i < last; ++i)
                batch.push_back(lumi::eval::apply_template(settings.prompt_template, settings.prompts[i]));
            std::cout << "### " << settings.prompts[first] << "\n" << std::flush;
            const auto results = lumi::eval::generate(model, tokenizer, batch, settings.sampling,
                                                      [&](std::size_t row, const std::string& text) {
                                                          if (row == 0 && terminal)
                                                              std::cout << text << std::flush;
                                                      });
            for (std::size_t i = 0; i < results.size(); ++i) {
                if (i > 0) std::cout << "### " << settings.prompts[first + i] << "\n";
                if (i > 0 || !terminal) std::cout << results[i].text;
                std::cout << "\n[" << results[i].tokens.size() << " tokens, " << results[i].finish_reason
                          << "]\n\n";
                if (jsonl)
                    jsonl->write(boost::json::serialize(
                                     boost::json::object{{"prompt", settings.prompts[first + i]},
                                                         {"completion", results[i].text},
                                                         {"finish_reason", results[i].finish_reason}}) +
                                 "\n");
            }
        }
        if (jsonl) {
            jsonl->commit();
            std::cout << "wrote " << settings.output << "\n";
        }
        return 0;
    });
}
