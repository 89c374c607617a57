#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace lumi {

// Threads for CPU-bound data work: LUMI_THREADS, else the machine's cores.
inline std::size_t default_threads() {
    if (const char* value = std::getenv("LUMI_THREADS")) {
        const long parsed = std::strtol(value, nullptr, 10);
        if (parsed > 0) return static_cast<std::size_t>(parsed);
    }
    return std::max<std::size_t>(1, std::thread::hardware_concurrency());
}

// Calls f(begin, end) on contiguous chunks of [0, count) from `threads` threads; rethrows the first error.
template <class F>
void parallel_for(std::size_t count, std::size_t threads, F&& f) {
    threads = std::clamp<std::size_t>(threads, 1, std::max<std::size_t>(count, 1));
    if (threads == 1) {
        f(std::size_t{0}, count);
        return;
    }
    std::exception_ptr failure;
    std::mutex failure_mutex;
    std::vector<std::thread> workers;
    workers.reserve(threads);
    for (std::size_t t = 0; t < threads; ++t) {
        const std::size_t begin = count * t / threads, end = count * (t + 1) / threads;
        workers.emplace_back([&, begin, end] {
            try {
                f(begin, end);
            } catch (...) {
                std::lock_guard lock(failure_mutex);
                if (!failure) failure = std::current_exception();
            }
        });
    }
    for (auto& worker : workers) worker.join();
    if (failure) std::rethrow_exception(failure);
}

}  // namespace lumi
