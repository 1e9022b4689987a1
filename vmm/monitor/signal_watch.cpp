#include "vmm/monitor/signal_watch.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace disco::monitor {

void block_monitor_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

SignalWatch::SignalWatch(std::initializer_list<int> signals, std::function<void(int)> on_signal)
    : on_signal_(std::move(on_signal)) {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : signals) sigaddset(&set, sig);
    signal_fd_ = ::signalfd(-1, &set, SFD_CLOEXEC);
    done_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (signal_fd_ >= 0 && done_fd_ >= 0) watcher_ = std::thread([this] { watch(); });
}

SignalWatch::~SignalWatch() {
    if (watcher_.joinable()) {
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(done_fd_, &one, sizeof one);
        watcher_.join();
    }
    if (signal_fd_ >= 0) ::close(signal_fd_);
    if (done_fd_ >= 0) ::close(done_fd_);
}

void SignalWatch::watch() {
    for (;;) {
        pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {done_fd_, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
        if (fds[1].revents) return;
        signalfd_siginfo info{};
        if (!(fds[0].revents & POLLIN) || ::read(signal_fd_, &info, sizeof info) != sizeof info) continue;
        on_signal_(static_cast<int>(info.ssi_signo));
    }
}
}  // namespace disco::monitor
