#pragma once

#include <unistd.h>

#include <atomic>
#include <csignal>

namespace lumi::train {

namespace detail {
inline std::atomic<int>& stop_signal() {
    static std::atomic<int> value{0};
    return value;
}
// Only async-signal-safe calls here: write, signal, raise.
extern "C" inline void lumi_record_stop_signal(int signal) {
    if (stop_signal().exchange(signal) == 0) {
        static constexpr char first[] =
            "\nstopping after this step, with a checkpoint (a second signal stops at once)\n";
        [[maybe_unused]] const auto ignored = ::write(STDERR_FILENO, first, sizeof first - 1);
        return;
    }
    // A second signal: stop at once, as the signal's default action would (the process ends by it when this
    // handler returns; the last complete checkpoint is kept).
    static constexpr char second[] = "\nsecond signal: stopping at once, without a checkpoint\n";
    [[maybe_unused]] const auto ignored = ::write(STDERR_FILENO, second, sizeof second - 1);
    std::signal(signal, SIG_DFL);
    std::raise(signal);
}
}  // namespace detail

// While alive, a first SIGINT or SIGTERM only records that a stop was asked for: the trainer finishes the
// current step, writes a checkpoint and returns (a stage binary then exits 128 + signal); a second one ends
// the process at once. The previous handlers come back afterwards.
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

// What a stage binary exits with: 0, or 128 + the signal that stopped the run (130 SIGINT, 143 SIGTERM).
inline int exit_status(int stop_signal) {
    return stop_signal == 0 ? 0 : 128 + stop_signal;
}

}  // namespace lumi::train
