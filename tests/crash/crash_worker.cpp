// The pretraining process the crash test kills: `lumi_crash_worker DATASET OUTPUT STEPS` trains the test
// spec with lumi::train::pretrain (float32, one thread, a checkpoint every other step), resuming from the
// newest checkpoint in OUTPUT when there is one.
#include <cstdio>
#include <string>

#include "../model/test_specs.hpp"
#include "lumi/train/pretrain.hpp"

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s DATASET OUTPUT STEPS\n", argv[0]);
        return 2;
    }
    try {
        lumi::train::PretrainSettings<> s;
        s.data.dataset = argv[1];
        s.run.output = argv[2];
        s.run.max_steps = std::stoll(argv[3]);
        if (!lumi::train::list_checkpoints(s.run.output).empty()) s.run.resume = "latest";
        s.run.device = "cpu";
        s.run.threads = 1;
        s.run.micro_batch = 4;
        s.run.log_every = 1;
        s.run.eval_every = 0;
        s.run.checkpoint_every = 2;
        s.run.keep_checkpoints = 2;
        s.precision.dtype = lumi::train::Dtype::float32;
        s.optimizer.lr = 3e-3;
        s.schedule.warmup_steps = 4;
        const auto result = lumi::train::pretrain<lumi::test::gqa>(s, nullptr);
        std::printf("steps %lld\n", (long long)result.steps);
        return 0;
    } catch (const lumi::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
