#include "vmm/monitor/host_console.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <termios.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace disco::monitor {
namespace {
// The terminal in raw mode, if any, and what to put back on it. Process-wide
// because the exit and signal paths that restore it are: they can reach only
// static state, and only through async-signal-safe calls (tcsetattr,
// sigaction, raise: signal-safety(7)).
std::atomic<int> g_raw_fd{-1};
termios g_saved_attrs{};  // written before g_raw_fd is published

constexpr int kRestoreSignals[] = {SIGTERM, SIGINT, SIGHUP};
struct sigaction g_previous[std::size(kRestoreSignals)];
bool g_installed[std::size(kRestoreSignals)] = {};

void restore_terminal() noexcept {
    const int fd = g_raw_fd.exchange(-1);
    if (fd >= 0) ::tcsetattr(fd, TCSANOW, &g_saved_attrs);
}

void on_fatal_signal(int sig) {
    restore_terminal();
    for (usize i = 0; i < std::size(kRestoreSignals); ++i) {
        if (kRestoreSignals[i] != sig) continue;
        // The signal is blocked while this handler runs, so the re-raised one
        // is delivered, with the previous disposition, when it returns.
        ::sigaction(sig, &g_previous[i], nullptr);
        ::raise(sig);
    }
}

void install_restore_hooks() {
    static std::once_flag atexit_once;
    std::call_once(atexit_once, [] { std::atexit(restore_terminal); });
    for (usize i = 0; i < std::size(kRestoreSignals); ++i) {
        struct sigaction ours {};
        ours.sa_handler = on_fatal_signal;
        sigemptyset(&ours.sa_mask);
        struct sigaction previous {};
        if (::sigaction(kRestoreSignals[i], nullptr, &previous) != 0) continue;
        // An ignored signal (nohup) kills nobody: nothing to restore for it.
        if (previous.sa_handler == SIG_IGN) continue;
        g_previous[i] = previous;
        g_installed[i] = ::sigaction(kRestoreSignals[i], &ours, nullptr) == 0;
    }
}

void remove_restore_hooks() {
    for (usize i = 0; i < std::size(kRestoreSignals); ++i) {
        if (!g_installed[i]) continue;
        g_installed[i] = false;
        // Leave alone a handler someone installed after ours.
        struct sigaction current {};
        if (::sigaction(kRestoreSignals[i], nullptr, &current) == 0 && current.sa_handler == on_fatal_signal)
            ::sigaction(kRestoreSignals[i], &g_previous[i], nullptr);
    }
}

/// The terminal settings of a serial console: see the header for why each.
termios raw_attrs(termios t) {
    t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cc[VMIN] = 1;  // read() returns as soon as one byte is there
    t.c_cc[VTIME] = 0;
    return t;
}

std::mutex g_raw_owner;  // enter/leave, between consoles

Result<void, Error> enter_raw_mode(int fd) {
    std::lock_guard<std::mutex> lock(g_raw_owner);
    if (g_raw_fd.load() >= 0) return fail(Error{"the terminal is already another VM's console"});
    termios saved{};
    if (::tcgetattr(fd, &saved) != 0)
        return fail(Error{fmt::format("console: cannot read terminal settings: {}", std::strerror(errno))});
    g_saved_attrs = saved;
    g_raw_fd.store(fd);
    install_restore_hooks();
    const termios raw = raw_attrs(saved);
    if (::tcsetattr(fd, TCSANOW, &raw) != 0) {
        const int err = errno;
        g_raw_fd.store(-1);
        remove_restore_hooks();
        return fail(Error{fmt::format("console: cannot put the terminal into raw mode: {}", std::strerror(err))});
    }
    return {};
}

void leave_raw_mode() {
    std::lock_guard<std::mutex> lock(g_raw_owner);
    restore_terminal();
    remove_restore_hooks();
}

void write_all(int fd, std::string_view text) {
    while (!text.empty()) {
        const ssize_t n = ::write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        text.remove_prefix(static_cast<usize>(n));
    }
}
}  // namespace

HostConsole::HostConsole(InputSink sink, EscapeRequest escape, Options options)
    : sink_(std::move(sink)), escape_(std::move(escape)), options_(options) {}

HostConsole::~HostConsole() {
    stop();  // also joins a reader thread that a callback's stop() left running
    if (stop_fd_ >= 0) ::close(stop_fd_);
}

Result<void, Error> HostConsole::start() {
    std::lock_guard<std::mutex> lock(control_);
    if (started_) return fail(Error{"console: already started"});
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) return fail(Error{fmt::format("console: eventfd: {}", std::strerror(errno))});
    terminal_ = ::isatty(options_.input_fd) == 1;
    escapes_ = options_.escapes.value_or(terminal_);
    if (terminal_) {
        DISCO_TRY(enter_raw_mode(options_.input_fd));
        raw_ = true;
    }
    started_ = true;
    reader_ = std::thread([this] { read_loop(); });
    return {};
}

void HostConsole::stop() {
    std::thread reader;
    {
        std::lock_guard<std::mutex> lock(control_);
        if (!started_) return;
        const u64 one = 1;
        [[maybe_unused]] const ssize_t n = ::write(stop_fd_, &one, sizeof one);
        // Joined outside the lock: a callback on the reader thread may be
        // waiting for it in its own stop(). From the reader thread itself, the
        // join is left to a later stop() or the destructor.
        if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id()) reader = std::move(reader_);
    }
    if (reader.joinable()) reader.join();
    std::lock_guard<std::mutex> lock(control_);
    if (raw_) {
        leave_raw_mode();
        raw_ = false;
    }
}

void HostConsole::read_loop() {
    pollfd fds[2] = {{options_.input_fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    std::vector<u8> buf(4096);
    for (;;) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[1].revents != 0) return;  // stop()
        if (fds[0].revents & POLLNVAL) return;
        if (fds[0].revents == 0) continue;
        const ssize_t n = ::read(options_.input_fd, buf.data(), buf.size());
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        // End of input, or EIO from a terminal that hung up: stop reading and
        // leave the VM running (see the header).
        if (n <= 0) return;
        forward(std::span<const u8>(buf.data(), static_cast<usize>(n)));
    }
}

void HostConsole::forward(std::span<const u8> bytes) {
    auto deliver = [this](std::span<const u8> run) {
        if (!run.empty() && sink_) sink_(run);
    };
    if (!escapes_) return deliver(bytes);
    usize run_start = 0;  // bytes [run_start, i) are plain and not yet delivered
    for (usize i = 0; i < bytes.size(); ++i) {
        const u8 b = bytes[i];
        if (!escape_pending_) {
            if (b != kEscapeKey) continue;
            deliver(bytes.subspan(run_start, i - run_start));
            escape_pending_ = true;
            run_start = i + 1;
            continue;
        }
        escape_pending_ = false;
        run_start = i + 1;
        switch (b) {
            case kEscapeKey:
                deliver(bytes.subspan(i, 1));
                break;
            case 'x':
                if (escape_) escape_();
                break;
            case 'h':
            case '?':
                print_help();
                break;
            default:  // unknown escape: dropped
                break;
        }
    }
    deliver(bytes.subspan(run_start));
}

void HostConsole::print_help() const {
    const std::string keys =
        std::string("disco console: C-a x  ") + options_.escape_meaning + "   C-a C-a  send C-a   C-a h  this help\n";
    write_all(options_.message_fd, keys);
}
}  // namespace disco::monitor
