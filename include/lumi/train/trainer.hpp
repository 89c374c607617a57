#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/torch.hpp"
#include "lumi/distributed/gradients.hpp"
#include "lumi/io/model_io.hpp"
#include "lumi/io/safetensors.hpp"
#include "lumi/model/transformer.hpp"
#include "lumi/train/checkpoints.hpp"
#include "lumi/train/efficiency.hpp"
#include "lumi/train/loader.hpp"
#include "lumi/train/muon.hpp"
#include "lumi/train/objective.hpp"
#include "lumi/train/optimizer.hpp"
#include "lumi/train/precision.hpp"
#include "lumi/train/progress.hpp"
#include "lumi/train/schedule.hpp"
#include "lumi/train/signals.hpp"
#include "lumi/train/state.hpp"

namespace lumi::train {

struct RunSettings {
    std::string output = "runs/pretrain";  // checkpoints/, final/, metrics.jsonl, config.json
    std::string resume;                    // "", "latest" (the newest checkpoint in output) or a directory
    bool overwrite = false;                // a new run may replace another run's checkpoints in output
    std::string device = "auto";           // auto (CUDA when available), cpu, cuda, cuda:N
    std::int64_t threads = 0;              // LibTorch intra-op threads; 0 keeps LibTorch's choice
    std::uint64_t seed = 42;               // data order
    std::int64_t micro_batch = 8;          // sequences per forward pass
    std::int64_t grad_accum = 1;           // micro-batches per optimizer step
    std::int64_t max_steps = 1000;         // optimizer steps; 0 = from token_budget
    std::int64_t token_budget = 0;         // tokens to train on when max_steps is 0
    std::int64_t log_every = 10;
    std::int64_t eval_every = 200;  // 0 = only at the end
    std::int64_t eval_batches = 20;
    std::int64_t checkpoint_every = 500;  // 0 = only at the end
    std::int64_t keep_checkpoints = 3;
    double peak_tflops = 0;  // the device's peak for MFU; 0 = a known GPU's datasheet, else measured
    // Resume even when max_steps, token_budget, the optimizer or schedule settings, the dataset or its
    // tokenizer differ from the checkpoint's (the run then takes another trajectory); without it that is an
    // error.
    bool allow_changed_settings = false;

    void validate() const {
        if (output.empty()) throw config::FieldError("output", "must name a directory");
        if (micro_batch < 1) throw config::FieldError("micro_batch", "must be >= 1");
        if (grad_accum < 1) throw config::FieldError("grad_accum", "must be >= 1");
        if (max_steps < 0) throw config::FieldError("max_steps", "must be >= 0");
        if (max_steps == 0 && token_budget <= 0)
            throw config::FieldError("max_steps", "is 0, so token_budget must be positive");
        if (log_every < 1) throw config::FieldError("log_every", "must be >= 1");
        if (eval_every < 0) throw config::FieldError("eval_every", "must be >= 0");
        if (eval_batches < 1) throw config::FieldError("eval_batches", "must be >= 1");
        if (checkpoint_every < 0) throw config::FieldError("checkpoint_every", "must be >= 0");
        if (keep_checkpoints < 1) throw config::FieldError("keep_checkpoints", "must be >= 1");
        if (threads < 0) throw config::FieldError("threads", "must be >= 0");
        if (!(peak_tflops >= 0)) throw config::FieldError("peak_tflops", "must be >= 0 (0: measured)");
        if (!(device == "auto" || device == "cpu" || device.starts_with("cuda")))
            throw config::FieldError("device", "must be auto, cpu, cuda or cuda:N");
    }
};

// Everything a trainer reads at run time: one JSON file, one section per policy.
template <class Optimizer, class Schedule, class Precision>
struct TrainerSettings {
    RunSettings run;
    typename Optimizer::Settings optimizer;
    typename Schedule::Settings schedule;
    typename Precision::Settings precision;
    model::InitSettings init;
};

struct StepReport {
    std::int64_t step = 0;  // optimizer steps done
    std::int64_t total_steps = 0;
    std::int64_t tokens = 0;
    double loss = 0, lr = 0, grad_norm = 0, tokens_per_second = 0, elapsed = 0;
    double communication = 0;     // seconds this step waited for the other ranks (data-parallel runs)
    double flops_per_second = 0;  // model FLOPs (efficiency.hpp) per second, summed over ranks
    double mfu = 0;               // flops_per_second / (peak per device x ranks)
    std::vector<std::pair<std::string, double>> metrics;  // the objective's, over the step's micro-batches
};

// A validation pass: the objective's loss and metrics, weighted means over the batches.
struct Evaluation {
    double loss = NAN;
    std::vector<std::pair<std::string, double>> metrics;
};

struct FitResult {
    std::int64_t steps = 0, tokens = 0;
    double train_loss = NAN, val_loss = NAN;
    std::vector<std::pair<std::string, double>> val_metrics;  // the objective's, at the last validation
    bool interrupted = false;
    int signal = 0;  // what stopped an interrupted run (SIGTERM when another rank was asked)
    std::filesystem::path checkpoint;  // the last one written
};

using lumi::resolve_device;

// Trains `Model` (a lumi::Transformer holder) with policy types, as ensmallen composes optimizers:
//   Trainer<Transformer<presets::nano>, AdamW, CosineWarmup, MixedPrecision>
// The objective (objective.hpp) says what is minimised: next-token prediction unless another is given.
// Started as several processes (WORLD_SIZE > 1, see docs/distributed.md) it trains data-parallel: each rank
// takes its share of every global batch, gradients are averaged over ranks, and rank 0 alone writes.
template <class Model, OptimizerPolicy Optimizer = AdamW, SchedulePolicy Schedule = CosineWarmup,
          class Precision = MixedPrecision, class Objective = NextToken>
class Trainer {
  public:
    using Settings = TrainerSettings<Optimizer, Schedule, Precision>;
    using Callback = std::function<void(const StepReport&)>;
    using State = TrainerState<typename Optimizer::Settings, typename Schedule::Settings>;
    using RunTrajectory = Trajectory<typename Optimizer::Settings, typename Schedule::Settings>;

    Trainer(Model model, Settings settings, Objective objective = Objective())
        : model_(std::move(model)),
          settings_(std::move(settings)),
          objective_(std::move(objective)),
          device_(resolve_device(settings_.run.device, "run.device")) {
        settings_.run.validate();
        if (settings_.run.threads > 0) torch::set_num_threads(int(settings_.run.threads));
        group_ = &distributed::world(device_);
        if (group_->distributed() && device_.is_cuda() && !device_.has_index())
            device_ = torch::Device(torch::kCUDA, group_->local_rank());
        model_->to(device_);
        // Same loss and gradients (to float32 rounding) without the [tokens, vocab] logits: less memory, no
        // slower (docs/performance.md). Set model()->loss_kernel after construction to choose another.
        model_->loss_kernel = model::LossKernel::chunked;
    }

    Model& model() { return model_; }
    Objective& objective() { return objective_; }
    const Settings& settings() const { return settings_; }
    torch::Device device() const { return device_; }
    // This process's place in a data-parallel run (rank 0 of 1 alone).
    const distributed::ProcessGroup& group() const { return *group_; }
    void add_callback(Callback callback) { callbacks_.push_back(std::move(callback)); }
    // How checkpoints are saved: with the training data's tokenizer once fit() has seen the data.
    const io::SaveSettings& save_settings() const { return save_settings_; }

    std::int64_t total_steps(std::int64_t sequence_length) const {
        const auto& run = settings_.run;
        if (run.max_steps > 0) return run.max_steps;
        const std::int64_t per_step = run.micro_batch * run.grad_accum * group_->size() *
                                      Objective::sequences_per_example * sequence_length;
        return std::max<std::int64_t>(1, (run.token_budget + per_step - 1) / per_step);
    }

    // The objective's mean loss (per target token for next-token prediction) over the first `batches`
    // micro-batches of `data`, in file order (shared out over the ranks of a data-parallel run, which all get
    // the same answer).
    template <BatchDataset Dataset>
    double evaluate(const Dataset& data, std::int64_t batches) {
        return evaluation(data, batches).loss;
    }

    // The same pass with the objective's metrics, weighted alike.
    template <BatchDataset Dataset>
    Evaluation evaluation(const Dataset& data, std::int64_t batches) {
        torch::NoGradGuard no_grad;
        model_->eval();
        const std::int64_t b = settings_.run.micro_batch;
        const std::int64_t n = std::min(batches, std::max<std::int64_t>(1, data.size() / b));
        // Sums of weight, weight x loss and weight x each metric, in the objective's order.
        const std::vector<std::string> names = objective_.metric_names();
        std::vector<double> sums(2 + names.size(), 0.0);
        std::vector<std::int64_t> indices;
        for (std::int64_t i = group_->rank(); i < n; i += group_->size()) {
            indices.clear();
            for (std::int64_t j = i * b; j < std::min((i + 1) * b, data.size()); ++j) indices.push_back(j);
            Batch batch = read_batch(data, indices);
            batch.tokens = batch.tokens.to(device_);
            if (batch.loss_mask.defined()) batch.loss_mask = batch.loss_mask.to(device_);
            if (batch.segments.defined()) batch.segments = batch.segments.to(device_);
            auto guard = Precision::guard(settings_.precision, device_);
            const ObjectiveOutput out = objective_(model_, batch);
            const double weight = out.weight.template item<double>();
            if (weight <= 0) continue;
            sums[0] += weight;
            sums[1] += weight * out.loss.template item<double>();
            for (std::size_t m = 0; m < names.size(); ++m)
                sums[2 + m] += weight * out.metrics.at(m).template item<double>();
        }
        model_->train();
        if (group_->distributed()) sums = group_->sum(sums, "the validation allreduce");
        Evaluation result;
        if (sums[0] > 0) result.loss = sums[1] / sums[0];
        for (std::size_t m = 0; m < names.size(); ++m)
            result.metrics.emplace_back(names[m], sums[0] > 0 ? sums[2 + m] / sums[0] : NAN);
        return result;
    }

    // Trains until the step count or token budget is reached, or a stop signal arrives.
    template <BatchDataset Dataset>
    FitResult fit(const Dataset& train, const Dataset* validation = nullptr) {
        namespace fs = std::filesystem;
        const auto& run = settings_.run;
        const fs::path output(run.output);
        const std::int64_t total = total_steps(train.sequence_length());
        const bool chief = group_->rank() == 0;  // the rank that writes and prints
        Optimizer optimizer(named_parameters(), settings_.optimizer);

        std::int64_t step = 0, tokens = 0;
        DataPosition position;
        if (chief) {  // what an interrupted write left: a staged checkpoint, a swapped-out final model
            remove_leftovers(output);
            remove_leftovers(output / "checkpoints");
        }
        trajectory_ = {
            run.max_steps,        run.token_budget, settings_.optimizer, settings_.schedule, {}, {},
            objective_.identity()};
        if constexpr (requires { train.identity(); }) trajectory_.dataset = train.identity();
        if constexpr (requires { train.tokenizer_sha256(); })
            trajectory_.tokenizer_sha256 = train.tokenizer_sha256();
        // Checkpoints record the tokenizer they were trained with.
        if constexpr (requires { train.vocab_size(); })
            save_settings_.tokenizer =
                io::TokenizerIdentity{trajectory_.tokenizer_sha256, train.vocab_size()};
        const bool resuming = !run.resume.empty();
        if (resuming) {
            const fs::path from = resume_directory(chief);
            restore(from, optimizer, step, tokens, position, train.size());
            if (chief)
                std::fprintf(stderr, "resuming from %s at step %lld\n", from.string().c_str(),
                             (long long)step);
        } else {
            refuse_other_runs();
        }
        std::optional<distributed::GradientReducer> reducer;
        if (group_->distributed()) {
            std::vector<torch::Tensor> parameters;
            for (const auto& p : model_->parameters()) parameters.push_back(p);
            distributed::broadcast_from_rank0(*group_, parameters);
            reducer.emplace(*group_, std::move(parameters));  // only those that require gradients
        }
        Loader<Dataset> loader(train, run.micro_batch, position, device_, group_->rank(), group_->size());
        // Only now, with the start checked, is anything of an earlier run changed.
        MetricsLog log;
        if (chief) {
            if (!resuming && run.overwrite) {
                remove_directory(output / "checkpoints");
                remove_directory(output / "final");
            }
            config::save(settings_, output / "config.json");
            log = MetricsLog(output / "metrics.jsonl", resuming ? step : std::optional<std::int64_t>());
        }
        StopSignals signals;
        Progress progress("train", total, run.log_every);
        FitResult result;
        result.steps = step;
        const std::int64_t first_step = step;
        const std::int64_t tokens_per_micro =
            run.micro_batch * group_->size() * Objective::sequences_per_example * train.sequence_length();
        const double flops_per_token =
            training_flops_per_token(Model::ContainedType::spec, named_parameters(),
                                     train.sequence_length() - 1)
                .total();
        const DevicePeak peak = device_peak(device_, Precision::compute_dtype(settings_.precision, device_),
                                            run.peak_tflops * 1e12);
        if (chief)
            std::fprintf(
                stderr,
                "model FLOPs per token %.4g (docs/performance.md); peak %.4g TFLOP/s per device (%s)\n",
                flops_per_token, peak.flops / 1e12, peak.source.c_str());
        const std::vector<std::string> metric_names = objective_.metric_names();
        const auto start = std::chrono::steady_clock::now();
        model_->train();

        while (step < total) {
            double loss_sum = 0;
            std::vector<std::pair<std::string, double>> metrics;
            for (const auto& name : metric_names) metrics.emplace_back(name, 0.0);
            for (std::int64_t micro = 0; micro < run.grad_accum; ++micro) {
                const Batch batch = loader.next();
                ObjectiveOutput out;
                {
                    auto guard = Precision::guard(settings_.precision, device_);
                    out = objective_(model_, batch);
                }
                if (reducer && micro + 1 == run.grad_accum) reducer->arm();
                (out.loss / double(run.grad_accum)).backward();
                loss_sum += out.loss.template item<double>();
                for (std::size_t m = 0; m < metrics.size(); ++m)
                    metrics[m].second += out.metrics.at(m).template item<double>() / double(run.grad_accum);
            }
            double loss = loss_sum / double(run.grad_accum);
            double communication = 0;
            if (reducer) {
                const auto waiting = std::chrono::steady_clock::now();
                reducer->finish();
                std::vector<double> values{loss};
                for (const auto& [name, value] : metrics) values.push_back(value);
                values = group_->sum(values, "the loss allreduce");
                loss = values[0] / double(group_->size());
                for (std::size_t m = 0; m < metrics.size(); ++m)
                    metrics[m].second = values[1 + m] / double(group_->size());
                communication =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - waiting).count();
            }
            if (!std::isfinite(loss)) {
                if (chief) progress.interrupt();
                const auto kept = list_checkpoints(output);
                throw lumi::Error("step " + std::to_string(step + 1) + ": the training loss is " +
                                  (std::isnan(loss) ? std::string("nan") : std::to_string(loss)) +
                                  "; stopped. The last good checkpoint is " +
                                  (kept.empty() ? std::string("none") : kept.back().string()) +
                                  " (lower optimizer.lr or raise schedule warmup, then resume from it)");
            }
            const double grad_norm = optimizer.clip_gradients();
            const double factor = Schedule::factor(settings_.schedule, step, total);
            optimizer.step_scaled(factor);
            const double lr = optimizer.peak_lr() * factor;
            optimizer.zero_grad();
            ++step;
            tokens += tokens_per_micro * run.grad_accum;

            const double elapsed =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            const double tokens_per_second =
                double((step - first_step) * tokens_per_micro * run.grad_accum) / elapsed;
            StepReport report{step,
                              total,
                              tokens,
                              loss,
                              lr,
                              grad_norm,
                              tokens_per_second,
                              elapsed,
                              communication,
                              tokens_per_second * flops_per_token,
                              tokens_per_second * flops_per_token / (peak.flops * double(group_->size())),
                              metrics};
            result.train_loss = loss;
            if (step % run.log_every == 0 || step == total) {
                boost::json::object record{{"step", step},
                                           {"loss", loss},
                                           {"lr", lr},
                                           {"grad_norm", grad_norm},
                                           {"tokens", tokens},
                                           {"tokens_per_s", report.tokens_per_second},
                                           {"flops_per_s", report.flops_per_second},
                                           {"mfu", report.mfu},
                                           {"elapsed_s", elapsed}};
                if (group_->distributed()) record["comm_s"] = communication;
                for (const auto& [name, value] : report.metrics) record[name] = value;
                log.write(record);
            }
            if (chief) {
                char detail[160];
                std::snprintf(detail, sizeof detail, "loss %.4f lr %.2e tok/s %.0f MFU %.1f%%", loss, lr,
                              report.tokens_per_second, 100.0 * report.mfu);
                progress.update(step, first_step, detail);
            }
            for (auto& callback : callbacks_) callback(report);

            const bool last = step == total;
            // A signal (or a callback) may reach one rank only: all stop if any was asked to.
            const bool stop = group_->distributed() ? group_->sum({double(StopSignals::received() != 0)},
                                                                  "the stop vote")[0] > 0
                                                    : StopSignals::received() != 0;
            if (validation && ((run.eval_every > 0 && step % run.eval_every == 0) || last)) {
                const Evaluation evaluated = evaluation(*validation, run.eval_batches);
                result.val_loss = evaluated.loss;
                result.val_metrics = evaluated.metrics;
                boost::json::object record{{"step", step}, {"val_loss", result.val_loss}};
                // Perplexity is next-token prediction's; another objective's loss has no such reading.
                if constexpr (std::is_same_v<Objective, NextToken>)
                    record["val_ppl"] = std::exp(result.val_loss);
                for (const auto& [name, value] : evaluated.metrics) record["val_" + name] = value;
                log.write(record);
                if (chief) {
                    progress.interrupt();
                    if constexpr (std::is_same_v<Objective, NextToken>)
                        std::fprintf(stderr, "step %lld: validation loss %.4f, perplexity %.2f\n",
                                     (long long)step, result.val_loss, std::exp(result.val_loss));
                    else
                        std::fprintf(stderr, "step %lld: validation loss %.4f%s\n", (long long)step,
                                     result.val_loss, metric_text(evaluated.metrics).c_str());
                }
            }
            if ((run.checkpoint_every > 0 && step % run.checkpoint_every == 0) || last || stop)
                result.checkpoint = save_checkpoint(output, optimizer, step, tokens, loader.position(), loss);
            if (stop && chief) {
                progress.interrupt();
                if (StopSignals::received() == 0) std::fprintf(stderr, "another rank was asked to stop\n");
                std::fprintf(stderr,
                             "stopped by signal %d after step %lld; checkpoint %s\n"
                             "resume with --set run.resume=latest (same output directory)\n",
                             StopSignals::received(), (long long)step, result.checkpoint.string().c_str());
            }
            if (stop) {
                result.interrupted = true;
                result.signal = StopSignals::received() != 0 ? StopSignals::received() : SIGTERM;
                break;
            }
        }
        if (!result.interrupted && chief) {
            StagedDirectory final_model(output / "final");
            io::save_model(model_, final_model.path(), save_settings_);
            final_model.commit();
        }
        group_->barrier("the barrier after writing the final model");
        result.steps = step;
        result.tokens = tokens;
        return result;
    }

  private:
    NamedTensors named_parameters() const {
        NamedTensors out;
        for (const auto& item : model_->named_parameters()) out.emplace_back(item.key(), item.value());
        return out;
    }

    // The global generators (LoRA dropout draws from them): restored so a resumed run draws the same masks.
    // Ranks draw the same number of values, so rank 0's state (the one saved) is every rank's.
    NamedTensors rng_state() const {
        NamedTensors out{{"cpu", at::globalContext().defaultGenerator(torch::kCPU).get_state()}};
        if (device_.is_cuda())
            out.emplace_back("cuda", at::globalContext().defaultGenerator(device_).get_state());
        return out;
    }
    void restore_rng(const NamedTensors& state) {
        for (const auto& [name, tensor] : state) {
            auto generator = name == "cpu" ? at::globalContext().defaultGenerator(torch::kCPU)
                             : (name == "cuda" && device_.is_cuda())
                                 ? at::globalContext().defaultGenerator(device_)
                                 : at::Generator();
            if (generator.defined()) generator.set_state(tensor);
        }
    }

    // The checkpoint to resume from: run.resume, or for "latest" the whole checkpoint of the highest step
    // (torn newer ones are skipped with a warning).
    std::filesystem::path resume_directory(bool chief) const {
        const auto& run = settings_.run;
        if (run.resume != "latest") {
            if (!std::filesystem::exists(std::filesystem::path(run.resume) / "trainer_state.json"))
                throw lumi::Error("run.resume: " + run.resume +
                                  " is not a checkpoint (no trainer_state.json)");
            try {
                checkpoint_step(run.resume);
            } catch (const lumi::Error& e) {
                throw lumi::Error("run.resume: " + run.resume + " is not a whole checkpoint: " + e.what());
            }
            return run.resume;
        }
        const auto scan = scan_checkpoints(run.output);
        if (scan.good.empty()) {
            std::string why;
            for (const auto& [dir, problem] : scan.torn) why += "; " + problem;
            throw lumi::Error("run.resume is 'latest' but " + run.output +
                              "/checkpoints holds no whole checkpoint" + why);
        }
        const Checkpoint& newest = scan.good.back();
        if (chief)
            for (const auto& [dir, problem] : scan.torn)
                std::fprintf(stderr, "warning: skipping %s, not a whole checkpoint (%s); resuming from %s\n",
                             dir.string().c_str(), problem.c_str(), newest.directory.string().c_str());
        return newest.directory;
    }

    // A new run must not mix its checkpoints with another run's, nor make `latest` resume the other run.
    void refuse_other_runs() const {
        const auto& run = settings_.run;
        if (run.overwrite) return;
        const auto scan = scan_checkpoints(run.output);
        std::vector<std::string> names;
        for (const auto& c : scan.good) names.push_back(c.directory.filename().string());
        for (const auto& [dir, problem] : scan.torn) names.push_back(dir.filename().string());
        if (names.empty()) return;
        std::sort(names.begin(), names.end());
        throw lumi::Error(run.output + "/checkpoints already holds another run's checkpoints (" +
                          io::detail::name_list(names) +
                          "): continue it with --resume (run.resume=latest), write elsewhere (run.output) or "
                          "replace it with run.overwrite=true");
    }

    std::filesystem::path save_checkpoint(const std::filesystem::path& output, const Optimizer& optimizer,
                                          std::int64_t step, std::int64_t tokens, DataPosition position,
                                          double loss) {
        char name[32];
        std::snprintf(name, sizeof name, "step_%08lld", (long long)step);
        const auto target = output / "checkpoints" / name;
        if (group_->rank() == 0) write_checkpoint(target, optimizer, step, tokens, position, loss);
        // Every rank returns once the checkpoint is complete on disk.
        group_->barrier("the barrier after writing a checkpoint");
        return target;
    }

    void write_checkpoint(const std::filesystem::path& target, const Optimizer& optimizer, std::int64_t step,
                          std::int64_t tokens, DataPosition position, double loss) {
        const auto output = target.parent_path().parent_path();
        StagedDirectory staged(target);
        io::save_model(model_, staged.path(), save_settings_);
        io::save_safetensors(staged.path() / "optimizer.safetensors", optimizer.state());
        io::save_safetensors(staged.path() / "rng.safetensors", rng_state());
        const auto& run = settings_.run;
        const State state{
            .step = step,
            .tokens = tokens,
            .loss = loss,
            .data = {position.epoch, position.offset},
            .seed = run.seed,
            .micro_batch = run.micro_batch,
            .grad_accum = run.grad_accum,
            .world_size = group_->size(),
            .torch = std::to_string(torch_version_major) + "." + std::to_string(torch_version_minor),
            .trajectory = trajectory_};
        config::save(state, staged.path() / "trainer_state.json");
        staged.commit();
        auto kept = list_checkpoints(output);  // by step; the one just written stays whatever its rank
        std::erase(kept, target);
        const std::int64_t surplus = std::int64_t(kept.size()) + 1 - run.keep_checkpoints;
        for (std::int64_t i = 0; i < surplus; ++i) remove_directory(kept[std::size_t(i)]);
    }

    void restore(const std::filesystem::path& dir, Optimizer& optimizer, std::int64_t& step,
                 std::int64_t& tokens, DataPosition& position, std::int64_t dataset_size) {
        const auto file = dir / "trainer_state.json";
        const State state = read_trainer_state<State>(file);
        const auto& run = settings_.run;
        // The data position counts global batches of this shape: it cannot carry over to another.
        std::vector<std::string> differences;
        auto same = [&](const char* key, std::int64_t then, std::int64_t now) {
            if (then != now)
                differences.push_back(std::string(key) + ": checkpoint " + std::to_string(then) + ", now " +
                                      std::to_string(now));
        };
        same("seed", std::int64_t(state.seed), std::int64_t(run.seed));
        same("micro_batch", state.micro_batch, run.micro_batch);
        same("grad_accum", state.grad_accum, run.grad_accum);
        same("world_size", state.world_size, group_->size());
        if (!differences.empty())
            throw lumi::Error(file.string() +
                              ": cannot resume exactly with different run settings: " + join(differences));
        std::vector<std::string> changed;
        if (state.trajectory)
            json_differences("", config::to_json(*state.trajectory), config::to_json(trajectory_), changed);
        else
            changed.push_back("trajectory: missing (a checkpoint of an older lumi)");
        if (!changed.empty() && !run.allow_changed_settings)
            throw lumi::Error(
                file.string() +
                ": the settings that decide the run differ from the checkpoint's: " + join(changed) +
                "; resume with the same settings, or set run.allow_changed_settings=true to "
                "continue on another trajectory");
        if (!changed.empty() && group_->rank() == 0)
            std::fprintf(stderr, "resuming with changed settings (run.allow_changed_settings): %s\n",
                         join(changed).c_str());
        const std::int64_t global_batch = run.micro_batch * group_->size();
        if (state.data.offset > dataset_size || state.data.offset % global_batch != 0)
            throw config::ConfigError(file.string(), "data.offset",
                                      std::to_string(state.data.offset) +
                                          " is not a position in this dataset (" +
                                          std::to_string(dataset_size) + " sequences, batches of " +
                                          std::to_string(global_batch) + ")");
        const auto rng_file = dir / "rng.safetensors";
        if (!std::filesystem::exists(rng_file))
            throw lumi::Error(rng_file.string() +
                              ": missing: a checkpoint holds the random generators' state, without which the "
                              "resumed run would not draw the same numbers");
        io::load_model(model_, dir);
        optimizer.load_state(io::load_safetensors(dir / "optimizer.safetensors").tensors,
                             (dir / "optimizer.safetensors").string());
        restore_rng(io::load_safetensors(rng_file).tensors);
        step = state.step;
        tokens = state.tokens;
        position = {state.data.epoch, state.data.offset};
    }

    static std::string metric_text(const std::vector<std::pair<std::string, double>>& metrics) {
        std::string text;
        char value[32];
        for (const auto& [name, v] : metrics) {
            std::snprintf(value, sizeof value, "%.4g", v);
            text += ", " + name + " " + value;
        }
        return text;
    }

    static std::string join(const std::vector<std::string>& parts) {
        std::string joined;
        for (const auto& part : parts) joined += (joined.empty() ? "" : "; ") + part;
        return joined;
    }

    Model model_;
    Settings settings_;
    Objective objective_;
    torch::Device device_;
    distributed::ProcessGroup* group_ = nullptr;
    std::vector<Callback> callbacks_;
    RunTrajectory trajectory_;
    io::SaveSettings save_settings_;
};

// The common mixes, as ensmallen names its own.
template <ModelSpec S>
using PretrainTrainer = Trainer<Transformer<S>, AdamW, CosineWarmup, MixedPrecision>;
template <ModelSpec S>
using MuonTrainer = Trainer<Transformer<S>, MuonAdamW, WarmupStableDecay, MixedPrecision>;

}  // namespace lumi::train

namespace lumi {
using train::AdamW;
using train::ConstantWarmup;
using train::CosineWarmup;
using train::FullPrecision;
using train::LinearWarmup;
using train::MixedPrecision;
using train::Muon;
using train::MuonAdamW;
using train::MuonTrainer;
using train::PretrainTrainer;
using train::Trainer;
using train::WarmupStableDecay;
}  // namespace lumi
