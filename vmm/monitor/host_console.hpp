// The host side of a VM's serial console: a thread that reads the monitor's
// standard input (or another fd) and hands the bytes to the guest's UART.
//
// On a terminal it behaves like QEMU's `-serial mon:stdio`:
//   * the terminal goes into raw mode for as long as the console runs: no echo
//     and no line editing (the guest's tty does both), no signal keys (Ctrl-C
//     and Ctrl-Z go to the guest), no CR-to-NL or XON/XOFF translation (the
//     guest sees what a serial line would carry); output processing stays on,
//     so host messages written with '\n' still start a new line;
//   * the saved settings come back on stop(), on destruction, on exit() (an
//     atexit hook) and on SIGTERM, SIGINT or SIGHUP (the handler restores the
//     terminal, puts back the signal's previous disposition and re-raises it),
//     so a killed monitor does not leave the user's shell in raw mode;
//   * Ctrl-A is an escape: Ctrl-A x asks for the VM to end (the escape
//     callback), Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A h or ? prints the keys
//     on the message fd; any other key after Ctrl-A is dropped, as QEMU does.
// On anything else (a pipe, a file) the bytes pass through unchanged, and end
// of input only stops the reading: it never ends the VM, so
// `disco run ... </dev/null` boots normally.
//
// Threads: start() spawns the reader thread; the sink and the escape callback
// run on it. stop() wakes it through an eventfd and joins it, so it returns
// promptly even while no input arrives. A callback may call stop() (the join
// is then left to a later stop() or the destructor) but must not destroy the
// console. Only one console at a time can hold the process's terminal in raw
// mode.
#pragma once
#include <unistd.h>

#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco::monitor {

class HostConsole {
public:
    /// Receives the guest-bound bytes, in order (the reader thread).
    using InputSink = std::function<void(std::span<const u8>)>;
    /// Called when the user types Ctrl-A x (the reader thread).
    using EscapeRequest = std::function<void()>;

    struct Options {
        /// Read from; never closed by the console.
        int input_fd = STDIN_FILENO;
        /// Where Ctrl-A h writes the key list.
        int message_fd = STDERR_FILENO;
        /// Decode Ctrl-A escapes; unset: only when input_fd is a terminal.
        std::optional<bool> escapes = std::nullopt;
        /// What Ctrl-A x does, for Ctrl-A h's key list.
        const char* escape_meaning = "end the VM";
    };

    static constexpr u8 kEscapeKey = 0x01;  // Ctrl-A

    HostConsole(InputSink sink, EscapeRequest escape, Options options);
    HostConsole(InputSink sink, EscapeRequest escape) : HostConsole(std::move(sink), std::move(escape), Options{}) {}
    ~HostConsole();
    HostConsole(const HostConsole&) = delete;
    HostConsole& operator=(const HostConsole&) = delete;

    /// Puts a terminal into raw mode and starts the reader thread. Once only.
    Result<void, Error> start();
    /// Ends the reader thread and restores the terminal. Idempotent.
    void stop();

    /// Whether start() found a terminal (and put it into raw mode).
    bool is_terminal() const { return terminal_; }

private:
    void read_loop();
    void forward(std::span<const u8> bytes);
    void print_help() const;

    InputSink sink_;
    EscapeRequest escape_;
    Options options_;
    bool terminal_ = false;
    bool raw_ = false;  // this console holds the terminal in raw mode (under control_)
    bool escapes_ = false;
    bool escape_pending_ = false;  // the last byte read was Ctrl-A (reader thread only)

    std::mutex control_;  // start() and stop()
    bool started_ = false;
    int stop_fd_ = -1;  // eventfd: readable once stop() was called
    std::thread reader_;
};
}  // namespace disco::monitor
