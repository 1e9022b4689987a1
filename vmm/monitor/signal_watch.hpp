// Signals the monitor acts on, taken from every thread and read from a
// signalfd by one watcher thread, so that a handler may do anything (lock,
// allocate, print) instead of only async-signal-safe calls.
//
//   SIGUSR1          print every vCPU's and device's state on stderr, for a
//                    guest that seems hung; the VMs go on running
//   SIGINT, SIGTERM  (fleet mode) stop every VM; a second one exits at once
//
// block_monitor_signals() must run in main() before any thread exists, so
// that every thread inherits the mask and none takes SIGUSR1's default action
// (termination). Fleet mode blocks SIGINT and SIGTERM itself before its VMs start.
#pragma once
#include <csignal>
#include <functional>
#include <initializer_list>
#include <thread>

namespace disco::monitor {

/// Blocks SIGUSR1 in the calling thread (call first in main()).
void block_monitor_signals();

class SignalWatch {
public:
    /// Calls on_signal(signo) on the watcher thread for each of `signals`
    /// (which block_monitor_signals() must have blocked).
    SignalWatch(std::initializer_list<int> signals, std::function<void(int)> on_signal);
    ~SignalWatch();
    SignalWatch(const SignalWatch&) = delete;
    SignalWatch& operator=(const SignalWatch&) = delete;

private:
    void watch();

    std::function<void(int)> on_signal_;
    int signal_fd_ = -1, done_fd_ = -1;
    std::thread watcher_;
};
}  // namespace disco::monitor
