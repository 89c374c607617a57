// lumi_chat_<preset>: talk to a checkpoint in a terminal (docs/serving.md). Lines are messages; commands:
//   /reset  /system TEXT  /set temperature=0.7 (any sampling setting)  /save FILE  /exit
// Ctrl-C stops the answer being written; Ctrl-D (end of input) exits. With input that is not a terminal it
// reads a script and prints plain lines.
#include <unistd.h>

#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/core/files.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/eval/prompt.hpp>
#include <lumi/io/model_io.hpp>
#include <lumi/presets.hpp>
#include <lumi/serve/engine.hpp>

#include "stage_cli.hpp"
#include "stage_model.hpp"

namespace {

using lumi::stage::preset_name;
using lumi::stage::spec;
using Model = lumi::Transformer<spec>;

struct ChatSettings {
    std::string checkpoint = "runs/pretrain/final";
    std::string tokenizer = "runs/tokenizer";
    lumi::eval::PromptTemplate chat_template = lumi::eval::PromptTemplate::instruct;
    std::string system;  // the system message (shown with the first kept prompt, as in fine-tuning)
    lumi::eval::SamplingSettings sampling{.max_new_tokens = 256, .temperature = 0.7, .top_p = 0.95};
    std::string device = "auto";
    lumi::Dtype dtype = lumi::Dtype::float32;
};

std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) {
    interrupted = true;
}

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(i);
}

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{std::string("Chat with a '") + preset_name + "' checkpoint"};
    lumi::stage::Cli cli(app, "ChatSettings");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<ChatSettings>()) return 0;
        auto settings = cli.load<ChatSettings>();
        if (cli.printed(settings)) return 0;
        settings.sampling.validate();
        const bool terminal = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);

        const auto tokenizer = lumi::tokenizer::Tokenizer::load(settings.tokenizer);
        auto model = lumi::stage::load_model<spec>(settings.checkpoint, tokenizer, settings.tokenizer,
                                                   settings.device, settings.dtype);
        lumi::serve::Engine<Model> engine(
            model, tokenizer.eos_id(), [&](const std::vector<int>& t) { return tokenizer.decode(t); },
            {.max_batch = 1, .max_queue = 0}, tokenizer.vocab_size());

        struct sigaction action {};
        action.sa_handler = on_interrupt;
        action.sa_flags = SA_RESTART;  // a Ctrl-C at the prompt does not end the read
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, nullptr);

        std::vector<lumi::eval::ChatMessage> history;
        if (terminal)
            std::cout
                << "lumi_chat: " << settings.checkpoint << " (" << preset_name
                << "). /reset, /system TEXT, /set key=value, /save FILE, /exit; Ctrl-C stops an answer.\n";
        for (std::string line;;) {
            if (terminal) std::cout << "\n> " << std::flush;
            interrupted = false;
            if (!std::getline(std::cin, line)) break;
            line = trim(line);
            if (line.empty()) continue;
            if (line == "/exit" || line == "/quit") break;
            if (line == "/reset") {
                history.clear();
                std::cout << "(the conversation is cleared)\n";
                continue;
            }
            if (line.rfind("/system", 0) == 0) {
                settings.system = trim(line.substr(7));
                std::cout << "(system message " << (settings.system.empty() ? "cleared" : "set") << ")\n";
                continue;
            }
            if (line.rfind("/set ", 0) == 0) {
                try {
                    auto doc = lumi::config::to_json(settings.sampling);
                    lumi::config::apply_override(doc, trim(line.substr(5)));
                    auto sampling = lumi::config::from_json<lumi::eval::SamplingSettings>(doc, "/set");
                    sampling.validate();
                    settings.sampling = std::move(sampling);
                    std::cout << "(sampling: " << lumi::config::format_json_line(doc) << ")\n";
                } catch (const std::exception& e) {
                    std::cout << "error: " << lumi::stage::detail::message_of(e) << "\n";
                }
                continue;
            }
            if (line.rfind("/save ", 0) == 0) {
                try {
                    boost::json::array messages;
                    for (const auto& m : history)
                        messages.push_back({{"role", m.role}, {"content", m.content}});
                    const std::string file = trim(line.substr(6));
                    lumi::config::write_json_file(
                        boost::json::object{{"checkpoint", settings.checkpoint},
                                            {"chat_template", lumi::config::to_json(settings.chat_template)},
                                            {"system", settings.system},
                                            {"messages", std::move(messages)}},
                        file);
                    std::cout << "(saved " << history.size() << " messages to " << file << ")\n";
                } catch (const std::exception& e) {
                    std::cout << "error: " << lumi::stage::detail::message_of(e) << "\n";
                }
                continue;
            }
            if (line[0] == '/') {
                std::cout << "error: unknown command '" << line.substr(0, line.find(' '))
                          << "' (/reset, /system TEXT, /set key=value, /save FILE, /exit)\n";
                continue;
            }
            std::vector<lumi::eval::ChatMessage> messages;
            if (!settings.system.empty()) messages.push_back({"system", settings.system});
            messages.insert(messages.end(), history.begin(), history.end());
            messages.push_back({"user", line});
            lumi::serve::Request request{.sampling = settings.sampling};
            for (auto& stop : lumi::eval::template_stops(settings.chat_template))
                request.sampling.stop.push_back(stop);
            try {
                const auto prompt = lumi::eval::chat_prompt(
                    settings.chat_template, messages, [&](std::string_view t) { return tokenizer.encode(t); },
                    tokenizer.bos_id(), std::size_t(spec.context - settings.sampling.max_new_tokens));
                if (prompt.dropped_turns > 0)
                    std::cout << "(the oldest " << prompt.dropped_turns
                              << " turns no longer fit in the context and are left out)\n";
                request.prompt = prompt.ids;
            } catch (const std::exception& e) {
                std::cout << "error: " << lumi::stage::detail::message_of(e) << "\n";
                continue;
            }
            auto stream = engine.submit(std::move(request));
            std::string answer;
            lumi::serve::Event last;
            while (!last.last) {
                if (interrupted) stream->cancel();
                for (auto& e : stream->take(std::chrono::milliseconds(50))) {
                    answer += e.text;
                    if (terminal) std::cout << e.text << std::flush;
                    if (e.last) last = e;
                }
            }
            if (!terminal) std::cout << answer;
            std::cout << (last.finish_reason == "cancelled" ? "\n(stopped)\n" : "\n");
            history.push_back({"user", line});
            history.push_back({"assistant", answer});
        }
        if (terminal) std::cout << "\n";
        return 0;
    });
}
