#include "vmm/control/cli_console.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <span>

#include "vmm/control/qmp_commands.hpp"
#include "vmm/monitor/host_console.hpp"

namespace disco::control {
namespace {
using Clock = std::chrono::steady_clock;

/// How often the client asks the monitor whether the VM still runs: a VM that
/// ends keeps its pty (or log) for as long as it is defined, so the console
/// itself does not say so.
constexpr auto kStatePoll = std::chrono::seconds(1);

int refuse(const std::string& message) {
    std::fprintf(stderr, "disco: %s\n", message.c_str());
    return 1;
}

void say(const std::string& message) { std::fprintf(stderr, "disco: %s\n", message.c_str()); }

bool write_all(int fd, std::span<const u8> bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes = bytes.subspan(static_cast<usize>(n));
    }
    return true;
}

/// The VM's vm-info, or why not.
Result<json, Error> vm_info(const std::string& vm, const ClientOptions& options) {
    return ask_monitor(std::string(kVendorPrefix) + "vm-info", {{"vm", vm}}, options);
}

/// Whether the VM still runs; the reason to leave its console when not.
std::string why_leave(const std::string& vm, const ClientOptions& options) {
    auto info = vm_info(vm, options);
    if (!info) return fmt::format("VM {}: {}", vm, info.error().message);
    const std::string state = info->value("state", "");
    if (state == "running" || state == "paused" || state == "blocked") return {};
    return fmt::format("VM {} is {}", vm, state == "shutoff" ? "shut off" : state);
}

/// Copies what fd has to stdout; false at its end (or an error: a pty whose
/// monitor side closed reads EIO).
bool relay_output(int fd) {
    u8 buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) return false;
    return write_all(STDOUT_FILENO, std::span<const u8>(buf, static_cast<usize>(n)));
}

int attach_pty(const std::string& vm, const std::string& path, const ClientOptions& options) {
    const int pty = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (pty < 0) return refuse(fmt::format("VM {}: cannot open its console {}: {}", vm, path, std::strerror(errno)));
    const int leave_fd = ::eventfd(0, EFD_CLOEXEC);
    if (leave_fd < 0) {
        ::close(pty);
        return refuse(fmt::format("cannot create an eventfd: {}", std::strerror(errno)));
    }
    std::atomic<bool> input_failed{false};
    monitor::HostConsole::Options console_options;
    console_options.escape_meaning = "leave the console (the VM goes on)";
    monitor::HostConsole keyboard(
        [&](std::span<const u8> bytes) {
            // The pty is non-blocking so that output never waits on input; a
            // full input queue (a guest that reads nothing) waits here instead.
            while (!bytes.empty()) {
                const ssize_t n = ::write(pty, bytes.data(), bytes.size());
                if (n > 0) {
                    bytes = bytes.subspan(static_cast<usize>(n));
                } else if (n < 0 && errno == EAGAIN) {
                    pollfd p{pty, POLLOUT, 0};
                    ::poll(&p, 1, 100);
                } else if (!(n < 0 && errno == EINTR)) {
                    input_failed = true;
                    return;
                }
            }
        },
        [&] {
            const u64 one = 1;
            [[maybe_unused]] const ssize_t n = ::write(leave_fd, &one, sizeof one);
        },
        console_options);
    say(fmt::format("connected to VM {}'s console ({}); Ctrl-A x leaves it, Ctrl-A h lists the keys", vm, path));
    if (auto started = keyboard.start(); !started) {
        ::close(pty);
        ::close(leave_fd);
        return refuse(started.error().message);
    }
    std::string why;
    auto next_check = Clock::now() + kStatePoll;
    while (why.empty()) {
        pollfd fds[2] = {{pty, POLLIN, 0}, {leave_fd, POLLIN, 0}};
        const int ready = ::poll(fds, 2, 200);
        if (ready < 0 && errno != EINTR) {
            why = fmt::format("poll: {}", std::strerror(errno));
            break;
        }
        if (fds[1].revents) {
            why = fmt::format("left VM {}'s console", vm);
            break;
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && !relay_output(pty))
            why = fmt::format("VM {}'s console closed", vm);
        else if (input_failed)
            why = fmt::format("VM {}'s console takes no more input", vm);
        else if (Clock::now() >= next_check) {
            why = why_leave(vm, options);
            next_check = Clock::now() + kStatePoll;
        }
    }
    keyboard.stop();                 // the terminal back to how it was, before the message
    if (!why.starts_with("left")) {  // the VM ended: what it wrote last
        pollfd p{pty, POLLIN, 0};
        while (::poll(&p, 1, 0) > 0 && (p.revents & POLLIN) && relay_output(pty)) {
        }
    }
    ::close(pty);
    ::close(leave_fd);
    say(why);
    return 0;
}

int follow_log(const std::string& vm, const std::string& path, const ClientOptions& options) {
    const int log = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (log < 0)
        return refuse(fmt::format("VM {}: cannot open its console log {}: {}", vm, path, std::strerror(errno)));
    say(fmt::format("VM {}'s console is the log {}: following it (read-only; Ctrl-C leaves)", vm, path));
    std::string why;
    auto next_check = Clock::now();
    for (;;) {
        while (relay_output(log)) {
        }
        if (!why.empty()) break;  // what the log held when the VM was seen to stop is out
        ::usleep(200'000);
        if (Clock::now() >= next_check) {
            why = why_leave(vm, options);
            next_check = Clock::now() + kStatePoll;
        }
    }
    ::close(log);
    say(why);
    return 0;
}
}  // namespace

int run_console_client(const std::string& vm, const ClientOptions& options) {
    auto info = vm_info(vm, options);
    if (!info) return refuse(info.error().message);
    const std::string where = info->value("console", "");
    if (where.empty() || where == "stdio")
        return refuse(
            fmt::format("VM {} has its console on the monitor's own standard input and output; give it "
                        "\"console\": {{\"pty\": true}} or {{\"log\": FILE}} to reach it from here",
                        vm));
    if (auto why = why_leave(vm, options); !why.empty()) return refuse(why + ": no console to attach to");
    struct stat st {};
    if (::stat(where.c_str(), &st) != 0)
        return refuse(fmt::format("VM {}: its console {}: {}", vm, where, std::strerror(errno)));
    return S_ISCHR(st.st_mode) ? attach_pty(vm, where, options) : follow_log(vm, where, options);
}
}  // namespace disco::control
