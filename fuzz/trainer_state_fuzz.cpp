// A checkpoint's `trainer_state.json` (step, tokens, data position, the run settings it must match), read
// when a run resumes from it: each input replaces the state of a whole checkpoint, and Trainer::fit
// resumes from it for at most two steps.
#include "fuzz_input.hpp"
#include "lumi/train/trainer.hpp"
#include "test_specs.hpp"

namespace {

namespace fs = std::filesystem;
constexpr lumi::ModelSpec spec = lumi::test::tied;
using Model = lumi::Transformer<spec>;
using Trainer = lumi::Trainer<Model, lumi::AdamW, lumi::CosineWarmup, lumi::FullPrecision>;

// Eight sequences of nine tokens.
struct Sequences {
    torch::Tensor tokens = torch::arange(72, torch::kInt64).remainder(spec.vocab_size).reshape({8, 9});
    std::int64_t size() const { return tokens.size(0); }
    std::int64_t sequence_length() const { return tokens.size(1); }
    std::vector<std::int64_t> order(std::int64_t) const { return {0, 1, 2, 3, 4, 5, 6, 7}; }
    lumi::train::Batch samples(std::span<const std::int64_t> indices) const {
        const auto index = torch::tensor(std::vector<std::int64_t>(indices.begin(), indices.end()));
        return {tokens.index_select(0, index), {}, {}};
    }
};

Trainer::Settings settings(const fs::path& output) {
    Trainer::Settings s;
    s.run.output = output.string();
    s.run.device = "cpu";
    s.run.micro_batch = 2;
    s.run.max_steps = 2;
    s.run.log_every = 1000;
    s.run.eval_every = 0;
    s.run.checkpoint_every = 1;
    return s;
}

// One step of training leaves a whole checkpoint.
const fs::path& checkpoint() {
    static const fs::path dir = [] {
        auto s = settings(lumi::fuzz::scratch() / "made");
        s.run.max_steps = 1;
        Trainer(Model(), s).fit(Sequences());
        return lumi::fuzz::scratch() / "made" / "checkpoints" / "step_00000001";
    }();
    return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const fs::path& from = checkpoint();
    lumi::fuzz::write_input(from / "trainer_state.json", lumi::fuzz::as_text(data, size));
    const fs::path output = lumi::fuzz::scratch() / "resumed";
    fs::remove_all(output);
    auto s = settings(output);
    s.run.resume = from.string();
    s.run.allow_changed_settings = true;  // the checkpoint ran one step, this run two
    try {
        Trainer(Model(), s).fit(Sequences());
    } catch (const lumi::Error&) {
    }
    return 0;
}
