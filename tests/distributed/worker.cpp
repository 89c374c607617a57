// One training process of the distributed tests: started once alone, or twice as rank 0 and rank 1 of a
// loopback run (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Arguments are key=value:
//   mode=pretrain|muon|lora|dpo data=DIR output=DIR steps=N micro_batch=B grad_accum=A eval_batches=E
//   checkpoint_every=C resume=0|1 die_at=STEP hang_at=STEP stop_at=STEP (after that step rank 1 kills itself,
//   stops itself, or asks for a stop as SIGTERM would)
// Every rank saves its parameters to output/params_rank<R>.safetensors at the end, and prints one line.
#include <signal.h>

#include <cstdio>
#include <map>
#include <string>

#include "../model/test_specs.hpp"
#include "lumi/data/packed.hpp"
#include "lumi/data/preference.hpp"
#include "lumi/io/safetensors.hpp"
#include "lumi/lora/lora.hpp"
#include "lumi/train/dpo.hpp"
#include "lumi/train/trainer.hpp"

namespace {

constexpr lumi::ModelSpec spec = lumi::test::gqa;
constexpr lumi::LoraSpec adapter{.rank = 4, .alpha = 8, .dropout = 0.0};

template <class Model, class Objective = lumi::train::NextToken, class Dataset = lumi::data::PackedDataset,
          class Optimizer = lumi::AdamW, class Schedule = lumi::CosineWarmup>
int train(const std::map<std::string, std::string>& args) {
    auto get = [&](const std::string& key, const std::string& fallback) {
        const auto found = args.find(key);
        return found == args.end() ? fallback : found->second;
    };
    auto number = [&](const std::string& key, std::int64_t fallback) {
        return std::stoll(get(key, std::to_string(fallback)));
    };
    using Trainer = lumi::Trainer<Model, Optimizer, Schedule, lumi::FullPrecision, Objective>;
    typename Trainer::Settings s;
    s.run.output = get("output", "");
    s.run.device = "cpu";
    s.run.threads = 1;  // two ranks share two cores
    s.run.micro_batch = number("micro_batch", 2);
    s.run.grad_accum = number("grad_accum", 1);
    s.run.max_steps = number("steps", 4);
    s.run.log_every = 1;
    s.run.eval_every = 0;
    s.run.eval_batches = number("eval_batches", 2);
    s.run.checkpoint_every = number("checkpoint_every", 0);
    if (number("resume", 0) != 0) s.run.resume = "latest";
    if constexpr (std::is_same_v<Optimizer, lumi::MuonAdamW>) {
        s.optimizer.muon.lr = 0.02;
        s.optimizer.adamw.lr = 3e-3;
    } else {
        s.optimizer.lr = 3e-3;
    }
    s.schedule.warmup_steps = 2;

    const std::string data = get("data", "");
    const Dataset train(data, {.split = "train", .seed = 7});
    const Dataset validation(data, {.split = "val", .seed = 7});
    Model model;
    Trainer trainer(model, s);
    const int rank = trainer.group().rank();
    const std::int64_t die_at = number("die_at", -1), hang_at = number("hang_at", -1),
                       stop_at = number("stop_at", -1);
    trainer.add_callback([&](const lumi::train::StepReport& r) {
        if (rank == 1 && r.step == die_at) raise(SIGKILL);
        if (rank == 1 && r.step == hang_at) raise(SIGSTOP);
        if (rank == 1 && r.step == stop_at)
            lumi::train::StopSignals::request();  // as a SIGTERM to rank 1 only
    });
    const auto result = trainer.fit(train, &validation);

    lumi::train::NamedTensors parameters;
    for (const auto& item : trainer.model()->named_parameters())
        parameters.emplace_back(item.key(), item.value());
    lumi::io::save_safetensors(
        std::filesystem::path(s.run.output) / ("params_rank" + std::to_string(rank) + ".safetensors"),
        parameters);
    std::printf("rank %d: steps %lld tokens %lld val_loss %.9g%s\n", rank, (long long)result.steps,
                (long long)result.tokens, result.val_loss, result.interrupted ? " interrupted" : "");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::map<std::string, std::string> args;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const auto eq = arg.find('=');
        if (eq == std::string::npos) {
            std::fprintf(stderr, "worker: expected key=value, got '%s'\n", argv[i]);
            return 2;
        }
        args[arg.substr(0, eq)] = arg.substr(eq + 1);
    }
    try {
        if (args["mode"] == "lora") return train<lumi::Transformer<spec, lumi::Lora<adapter>>>(args);
        if (args["mode"] == "dpo")
            return train<lumi::Transformer<spec, lumi::Lora<adapter>>, lumi::Dpo<>,
                         lumi::data::PreferenceDataset>(args);
        if (args["mode"] == "muon")
            return train<lumi::Transformer<spec>, lumi::train::NextToken, lumi::data::PackedDataset,
                         lumi::MuonAdamW, lumi::WarmupStableDecay>(args);
        return train<lumi::Transformer<spec>>(args);
    } catch (const lumi::Error& error) {
        std::fprintf(stderr, "error: %s\n", error.what());
        return 2;
    }
}
