#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "lumi/distributed/process_group.hpp"

namespace lumi::distributed {

// Copies rank 0's values into every rank's tensors, a bucket of flattened tensors at a time.
inline void broadcast_from_rank0(ProcessGroup& group, const std::vector<torch::Tensor>& tensors,
                                 std::int64_t bucket_bytes = 25 << 20) {
    if (!group.distributed() || tensors.empty()) return;
    torch::NoGradGuard no_grad;
    std::size_t begin = 0;
    while (begin < tensors.size()) {
        std::size_t end = begin;
        std::int64_t bytes = 0;
        while (end < tensors.size() &&
               (end == begin ||
                (bytes < bucket_bytes && tensors[end].scalar_type() == tensors[begin].scalar_type() &&
                 tensors[end].device() == tensors[begin].device()))) {
            bytes += tensors[end].numel() * std::int64_t(tensors[end].element_size());
            ++end;
        }
        std::vector<torch::Tensor> flat;
        for (std::size_t i = begin; i < end; ++i) flat.push_back(tensors[i].detach().reshape({-1}));
        auto bucket = torch::cat(flat);
        group.broadcast(bucket, 0, "the broadcast of rank 0's parameters");
        std::int64_t at = 0;
        for (std::size_t i = begin; i < end; ++i) {
            const std::int64_t n = tensors[i].numel();
            tensors[i].detach().copy_(bucket.narrow(0, at, n).view_as(tensors[i]));
            at += n;
        }
        begin = end;
    }
}

// Averages gradients over ranks in buckets of about `bucket_bytes`, as DistributedDataParallel does. Buckets
// hold the parameters in reverse order (roughly the order backward produces their gradients); a hook on
// each parameter's gradient accumulator marks it ready, and a bucket whose gradients are all ready starts its
// allreduce while backward goes on. Buckets start in the same order on every rank, as collectives must.
class GradientReducer {
  public:
    GradientReducer(ProcessGroup& group, std::vector<torch::Tensor> parameters,
                    std::int64_t bucket_bytes = 25 << 20)
        : group_(group), params_(std::move(parameters)) {
        std::vector<std::size_t> order;
        for (std::size_t i = params_.size(); i-- > 0;)
            if (params_[i].requires_grad()) order.push_back(i);
        bucket_of_.assign(params_.size(), npos);
        std::int64_t bytes = 0;
        for (std::size_t i : order) {
            const auto& p = params_[i];
            const bool fits = !buckets_.empty() && bytes < bucket_bytes &&
                              params_[buckets_.back().members.front()].scalar_type() == p.scalar_type() &&
                              params_[buckets_.back().members.front()].device() == p.device();
            if (!fits) {
                buckets_.emplace_back();
                bytes = 0;
            }
            buckets_.back().members.push_back(i);
            bucket_of_[i] = buckets_.size() - 1;
            bytes += p.numel() * std::int64_t(p.element_size());
        }
        for (std::size_t i : order) {
            auto accumulator = torch::autograd::impl::grad_accumulator(params_[i]);
            const auto key = accumulator->add_post_hook(std::make_unique<ReadyHook>(this, i));
            hooks_.push_back({std::move(accumulator), key});
        }
    }
    GradientReducer(const GradientReducer&) = delete;
    GradientReducer& operator=(const GradientReducer&) = delete;
    ~GradientReducer() {
        for (auto& [accumulator, key] : hooks_) accumulator->del_post_hook(key);
    }

    std::size_t bucket_count() const { return buckets_.size(); }
    std::size_t parameter_count() const { return hooks_.size(); }
    // Buckets of the last armed backward pass whose allreduce started before backward returned.
    std::size_t started_in_backward() const { return started_in_backward_; }

    // The next backward pass is the last before the optimizer step: its gradients are reduced as they arrive.
    void arm() {
        std::lock_guard lock(mutex_);
        for (auto& bucket : buckets_) {
            bucket.pending = bucket.members.size();
            bucket.work.reset();
        }
        next_ = 0;
        started_in_backward_ = 0;
        armed_ = true;
    }

    // After that backward pass: starts what is left, waits, and leaves each gradient the mean over ranks.
    void finish() {
        {
            std::lock_guard lock(mutex_);
            armed_ = false;
            while (next_ < buckets_.size()) launch(next_++);  // a parameter without a gradient counts as zero
        }
        torch::NoGradGuard no_grad;
        const double scale = 1.0 / double(group_.size());
        for (auto& bucket : buckets_) {
            group_.wait(bucket.work, "the gradient allreduce");
            bucket.flat.mul_(scale);
            std::int64_t at = 0;
            for (std::size_t i : bucket.members) {
                auto& p = params_[i];
                const std::int64_t n = p.numel();
                auto mean = bucket.flat.narrow(0, at, n).view_as(p);
                if (p.grad().defined())
                    p.mutable_grad().copy_(mean);
                else
                    p.mutable_grad() = mean.clone();
                at += n;
            }
            bucket.flat = torch::Tensor();
            bucket.work.reset();
        }
    }

  private:
    static constexpr std::size_t npos = std::size_t(-1);

    struct Bucket {
        std::vector<std::size_t> members;  // indices into params_
        std::size_t pending = 0;
        torch::Tensor flat;
        Work work;
    };

    struct ReadyHook : torch::autograd::FunctionPostHook {
        ReadyHook(GradientReducer* owner, std::size_t index) : owner(owner), index(index) {}
        torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                                  const torch::autograd::variable_list&) override {
            owner->ready(index);
            return outputs;
        }
        GradientReducer* owner;
        std::size_t index;
    };

    // Called from backward (possibly on an autograd device thread) once params_[index].grad is final.
    void ready(std::size_t index) {
        std::lock_guard lock(mutex_);
        if (!armed_) return;
        auto& bucket = buckets_[bucket_of_[index]];
        if (bucket.pending > 0) --bucket.pending;
        while (next_ < buckets_.size() && buckets_[next_].pending == 0) {
            launch(next_++);
            ++started_in_backward_;
        }
    }

    void launch(std::size_t b) {
        torch::NoGradGuard no_grad;
        auto& bucket = buckets_[b];
        std::vector<torch::Tensor> flat;
        for (std::size_t i : bucket.members) {
            const auto& p = params_[i];
            flat.push_back(p.grad().defined() ? p.grad().detach().reshape({-1})
                                              : torch::zeros({p.numel()}, p.options()));
        }
        bucket.flat = torch::cat(flat);
        bucket.work = group_.allreduce_async(bucket.flat, "the gradient allreduce");
    }

    ProcessGroup& group_;
    std::vector<torch::Tensor> params_;
    std::vector<std::size_t> bucket_of_;
    std::vector<Bucket> buckets_;
    std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, std::uintptr_t>> hooks_;
    std::mutex mutex_;
    std::size_t next_ = 0, started_in_backward_ = 0;
    bool armed_ = false;
};

}  // namespace lumi::distributed
