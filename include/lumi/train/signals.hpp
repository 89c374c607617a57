#pragma once

#include <atomic>
#include <csignal>

namespace lumi::train {

namespace detail {
inline std::atomic<int>& stop_signal() {
    static std::atomic<int> value{0};
    return value;
}
extern "C" inline void lumi_record_stop_signal(int signal) {
    stop_signal().store(signal);
}
}  // namespace detail

// While alive, SIGINT and SIGTERM only record that a stop was asked for: the trainer finishes the current
// step, writes a checkpoint and returns. The previous handlers come back afterwards.
class StopSignals {
  public:
    StopSignals() {
        detail::stop_signal().store(0);
        struct sigaction action {};
        action.sa_handler = detail::lumi_record_stop_signal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, &previous_int_);
        sigaction(SIGTERM, &action, &previous_term_);
    }
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;
    ~StopSignals() {
        sigaction(SIGINT, &previous_int_, nullptr);
        sigaction(SIGTERM, &previous_term_, nullptr);
    }
    // The signal received, or 0.
    static int received() { return detail::stop_signal().load(); }
    // Lets code (and tests) ask for a stop as a signal would.
    static void request(int signal = SIGTERM) { detail::stop_signal().store(signal); }

  private:
    struct sigaction previous_int_ {};
    struct sigaction previous_term_ {};
};

}  // namespace lumi::train
