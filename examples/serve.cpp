// lumi_serve_<preset>: an OpenAI-compatible HTTP server for a checkpoint, with a chat page at /
// (docs/serving.md).
//   lumi_serve_nano --set checkpoint=runs/nano/09_sft/merged --set tokenizer=runs/nano/02_tokenizer
//   curl http://127.0.0.1:8000/v1/chat/completions -d '{"model": "lumi-nano", "messages": [...]}'
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>

#include <lumi/core/threads.hpp>
#include <lumi/io/model_io.hpp>
#include <lumi/presets.hpp>
#include <lumi/serve/server.hpp>

#include "stage_cli.hpp"
#include "stage_model.hpp"

namespace {

using lumi::stage::preset_name;
using lumi::stage::spec;

int stop_pipe[2] = {-1, -1};
extern "C" void on_stop_signal(int signal) {
    const char byte = char(signal);
    [[maybe_unused]] const auto ignored = ::write(stop_pipe[1], &byte, 1);
}

struct ServeSettings {
    std::string checkpoint = "runs/pretrain/final";
    std::string tokenizer = "runs/tokenizer";
    std::string device = "auto";
    lumi::Dtype dtype = lumi::Dtype::float32;
    lumi::serve::ServerSettings server;
};

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{std::string("Serve a '") + preset_name + "' checkpoint over OpenAI's HTTP API"};
    lumi::stage::Cli cli(app, "ServeSettings");
    return lumi::stage::main(app, argc, argv, [&] {
        if (cli.described<ServeSettings>()) return 0;
        auto settings = cli.load<ServeSettings>();
        if (settings.server.model_name.empty())
            settings.server.model_name = std::string("lumi-") + preset_name;
        if (cli.printed(settings)) return 0;
        const auto tokenizer = lumi::tokenizer::Tokenizer::load(settings.tokenizer);
        auto model = lumi::stage::load_model<spec>(settings.checkpoint, tokenizer, settings.tokenizer,
                                                   settings.device, settings.dtype);

        lumi::serve::Server<lumi::Transformer<spec>> server(model, tokenizer, settings.server);
        const auto port = server.listen();
        // SIGINT and SIGTERM reach a watcher thread through a pipe (the only async-signal-safe way out of a
        // handler): the first stops the server, which finishes the requests in flight; a second exits at
        // once.
        if (::pipe(stop_pipe) != 0) throw lumi::Error("serve: cannot create a pipe");
        struct sigaction action {};
        action.sa_handler = on_stop_signal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, nullptr);
        sigaction(SIGTERM, &action, nullptr);
        std::thread([&] {
            for (int count = 0;;) {
                char signal = 0;
                const auto n = ::read(stop_pipe[0], &signal, 1);
                if (n != 1) {
                    if (n < 0 && errno == EINTR) continue;
                    return;
                }
                if (count++ > 0) std::_Exit(128 + signal);
                std::cout
                    << "lumi_serve: " << (signal == SIGTERM ? "SIGTERM" : "SIGINT")
                    << ": finishing the requests in flight, then stopping (a second signal stops at once)\n"
                    << std::flush;
                server.stop();
            }
        }).detach();
        std::cout << "lumi_serve: " << settings.server.model_name << " (" << settings.checkpoint
                  << ") listening on http://" << settings.server.host << ":" << port
                  << " (chat page at /, API at /v1)" << std::endl;
        server.run();
        std::cout << "lumi_serve: stopped" << std::endl;
        return 0;
    });
}
