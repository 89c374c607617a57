// Prints a preset's shape, parameter counts and memory, then times a forward and backward pass on random
// tokens.
//   lumi_model_info --set preset=tiny --set batch=4 --set sequence=256
#include <chrono>
#include <iostream>

#include <CLI/CLI.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/threads.hpp>
#include <lumi/lumi.hpp>
#include <lumi/presets.hpp>

#include "stage_cli.hpp"

namespace {

enum class DType { float32, bfloat16 };

struct Settings {
    std::string preset = "nano";
    std::int64_t batch = 2;
    std::int64_t sequence = 64;
    DType dtype = DType::float32;
    std::uint64_t seed = 0;

    void validate() const {
        if (!lumi::presets::find(preset))
            throw lumi::config::FieldError("preset", "no preset named '" + preset + "'");
        if (batch < 1) throw lumi::config::FieldError("batch", "must be at least 1");
        if (sequence < 1) throw lumi::config::FieldError("sequence", "must be at least 1");
    }
};

template <lumi::ModelSpec S>
void run(const Settings& settings) {
    std::cout << "preset " << settings.preset << "\n" << lumi::model::describe<S>() << "\n";
    lumi::Transformer<S> model(lumi::InitSettings{.seed = settings.seed});
    if (settings.dtype == DType::bfloat16) model->to(torch::kBFloat16);
    const auto length = std::min(settings.sequence, S.context);
    const auto ids = torch::randint(S.vocab_size, {settings.batch, length + 1}, torch::kLong);
    const auto start = std::chrono::steady_clock::now();
    auto out = model->forward(ids.narrow(1, 0, length), ids.narrow(1, 1, length));
    out.loss.backward();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "runtime parameters " << model->parameter_count() << " (compile time "
              << lumi::parameter_count(S) << ")\nloss at initialisation " << out.loss.item().toDouble()
              << " (ln vocab " << std::log(double(S.vocab_size)) << ")\nforward+backward " << settings.batch
              << "x" << length << " tokens: " << seconds << " s, "
              << double(settings.batch * length) / seconds << " tokens/s\n";
}

}  // namespace

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    CLI::App app{"Describe a lumi preset and time one training pass"};
    std::optional<std::string> config;
    std::vector<std::string> sets;
    app.add_option("--config", config, "JSON settings file");
    app.add_option("--set", sets, "override a setting: key=value (repeatable)");
    return lumi::stage::main(app, argc, argv, [&] {
        const auto settings = lumi::config::load<Settings>(config, sets);
        lumi::presets::visit(settings.preset, [&]<lumi::ModelSpec S>() { run<S>(settings); });
        return 0;
    });
}
