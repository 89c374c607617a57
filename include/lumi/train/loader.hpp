#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "lumi/core/error.hpp"
#include "lumi/core/torch.hpp"

namespace lumi::train {

// One micro-batch: token ids [B, T] (int64), and for instruction data a loss mask and example ids [B, T].
struct Batch {
    torch::Tensor tokens{};
    torch::Tensor loss_mask{};  // bool; undefined = every token counts
    torch::Tensor segments{};   // int32 example index within a packed sequence; undefined = one example
};

// Where the next micro-batch starts: epoch and offset into that epoch's shuffled order.
struct DataPosition {
    std::int64_t epoch = 0;
    std::int64_t offset = 0;
};

// What the loader needs from a dataset (PackedDataset provides it): samples(indices) gives [B, T] tensors.
template <class D>
concept BatchDataset = requires(const D& d, std::int64_t epoch, std::span<const std::int64_t> indices) {
    { d.size() } -> std::convertible_to<std::int64_t>;
    { d.sequence_length() } -> std::convertible_to<std::int64_t>;
    { d.order(epoch) } -> std::convertible_to<std::vector<std::int64_t>>;
    { d.samples(indices).tokens } -> std::convertible_to<torch::Tensor>;
    { d.samples(indices).loss_mask } -> std::convertible_to<torch::Tensor>;
    { d.samples(indices).segments } -> std::convertible_to<torch::Tensor>;
};

template <BatchDataset Dataset>
Batch read_batch(const Dataset& dataset, std::span<const std::int64_t> indices) {
    auto sample = dataset.samples(indices);
    return {std::move(sample.tokens), std::move(sample.loss_mask), std::move(sample.segments)};
}

// Micro-batches in the dataset's shuffled order, epoch after epoch, this rank's share only (rank r of w takes
// every w-th batch-sized group, so w ranks together see exactly what one process with w times the batch
// would). On CUDA a background thread prepares the next `prefetch` batches in pinned memory, overlapping the
// GPU; on CPU batches are read when asked for (microseconds from the memory map): a producer thread there
// only competes with LibTorch's own spinning OpenMP threads (measured: 40x slower steps with torch 2.11 on 2
// cores).
template <BatchDataset Dataset>
class Loader {
  public:
    Loader(const Dataset& dataset, std::int64_t batch_size, DataPosition start, torch::Device device,
           std::int64_t rank = 0, std::int64_t world = 1, std::int64_t prefetch = -1)
        : dataset_(dataset),
          batch_(batch_size),
          rank_(rank),
          world_(world),
          device_(device),
          prefetch_(std::size_t(prefetch >= 0      ? prefetch
                                : device.is_cuda() ? 2
                                                   : 0)),
          produce_at_(start),
          consumed_(start) {
        if (dataset.size() < batch_size * world)
            throw lumi::Error("the dataset has " + std::to_string(dataset.size()) +
                              " sequences, fewer than one global micro-batch (" +
                              std::to_string(batch_size * world) + ")");
        if (prefetch_ > 0) worker_ = std::thread([this] { produce(); });
    }
    Loader(const Loader&) = delete;
    Loader& operator=(const Loader&) = delete;
    ~Loader() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        changed_.notify_all();
        if (worker_.joinable()) worker_.join();
    }

    Batch next() {
        if (prefetch_ == 0) {
            auto [batch, after] = produce_one();
            std::lock_guard lock(mutex_);
            consumed_ = after;
            return batch;
        }
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return !queue_.empty() || failure_; });
        if (queue_.empty()) std::rethrow_exception(failure_);
        auto [batch, after] = std::move(queue_.front());
        queue_.pop_front();
        consumed_ = after;
        lock.unlock();
        changed_.notify_all();
        auto to_device = [&](const torch::Tensor& t) {
            return t.defined() ? t.to(device_, /*non_blocking=*/device_.is_cuda()) : t;
        };
        return {to_device(batch.tokens), to_device(batch.loss_mask), to_device(batch.segments)};
    }

    // The position of the next batch next() will return: what a checkpoint records.
    DataPosition position() const {
        std::lock_guard lock(mutex_);
        return consumed_;
    }

    // Batches per epoch for one rank.
    std::int64_t batches_per_epoch() const { return dataset_.size() / (batch_ * world_); }

  private:
    // The batch at produce_at_ and the position after it.
    std::pair<Batch, DataPosition> produce_one() {
        DataPosition at = produce_at_;
        if (at.offset + batch_ * world_ > dataset_.size()) at = {at.epoch + 1, 0};  // drop the ragged tail
        if (order_epoch_ != at.epoch) {
            order_ = dataset_.order(at.epoch);
            order_epoch_ = at.epoch;
        }
        const std::span<const std::int64_t> indices(order_.data() + at.offset + rank_ * batch_,
                                                    std::size_t(batch_));
        Batch batch = read_batch(dataset_, indices);
        if (device_.is_cuda()) {
            batch.tokens = batch.tokens.pin_memory();
            if (batch.loss_mask.defined()) batch.loss_mask = batch.loss_mask.pin_memory();
            if (batch.segments.defined()) batch.segments = batch.segments.pin_memory();
        }
        produce_at_ = {at.epoch, at.offset + batch_ * world_};
        return {std::move(batch), produce_at_};
    }

    void produce() {
        try {
            while (true) {
                {
                    std::unique_lock lock(mutex_);
                    changed_.wait(lock, [&] { return stopping_ || queue_.size() < prefetch_; });
                    if (stopping_) return;
                }
                auto [batch, after] = produce_one();
                {
                    std::lock_guard lock(mutex_);
                    queue_.emplace_back(std::move(batch), after);
                }
                changed_.notify_all();
            }
        } catch (...) {
            {
                std::lock_guard lock(mutex_);
                failure_ = std::current_exception();
            }
            changed_.notify_all();
        }
    }

    const Dataset& dataset_;
    std::int64_t batch_, rank_, world_;
    torch::Device device_;
    std::size_t prefetch_;
    DataPosition produce_at_;  // the producer's (worker thread, or next() without one)
    std::vector<std::int64_t> order_;
    std::int64_t order_epoch_ = -1;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<std::pair<Batch, DataPosition>> queue_;
    DataPosition consumed_;
    std::exception_ptr failure_;
    bool stopping_ = false;
    std::thread worker_;
};

}  // namespace lumi::train
