// The host console over pipes (a plain stream, and the escape decoder) and
// over a pseudo-terminal (raw mode and its restoration).
#include <fcntl.h>
#include <pty.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "vmm/monitor/host_console.hpp"

using namespace disco;
using namespace std::chrono_literals;

namespace {
struct Pipe {
    int rd = -1, wr = -1;
    Pipe() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        rd = fds[0];
        wr = fds[1];
    }
    ~Pipe() {
        close_write();
        if (rd >= 0) ::close(rd);
    }
    void close_write() {
        if (wr >= 0) ::close(wr);
        wr = -1;
    }
};

void put(int fd, const std::string& s) { REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }

/// What the console delivered: the guest-bound bytes and the escape requests.
struct Received {
    std::mutex mutex;
    std::string bytes;
    std::atomic<int> escapes{0};

    monitor::HostConsole::InputSink sink() {
        return [this](std::span<const u8> b) {
            std::lock_guard<std::mutex> lock(mutex);
            bytes.append(b.begin(), b.end());
        };
    }
    monitor::HostConsole::EscapeRequest escape() {
        return [this] { ++escapes; };
    }
    std::string text() {
        std::lock_guard<std::mutex> lock(mutex);
        return bytes;
    }
    /// Waits (up to 2 s) until n bytes have arrived; returns them.
    std::string wait_for(usize n) {
        const auto deadline = std::chrono::steady_clock::now() + 2s;
        while (text().size() < n && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
        return text();
    }
};

bool same_modes(const termios& a, const termios& b) {
    return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_lflag == b.c_lflag && a.c_cflag == b.c_cflag;
}

struct Pty {
    int master = -1, slave = -1;
    termios original{};
    Pty() {
        REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
        REQUIRE(::tcgetattr(slave, &original) == 0);
        REQUIRE((original.c_lflag & ICANON) != 0);  // a fresh pty is cooked
    }
    ~Pty() {
        ::close(master);
        ::close(slave);
    }
    termios now() const {
        termios t{};
        ::tcgetattr(slave, &t);
        return t;
    }
};

/// Runs body in a child process and returns its wait status.
template <class Body>
int in_child(Body body) {
    std::fflush(nullptr);  // nothing buffered may be written twice
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        body();
        ::_exit(99);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return status;
}
}  // namespace

TEST_CASE("host console: a pipe is a plain stream", "[console]") {
    Pipe in;
    Received got;
    monitor::HostConsole console(got.sink(), got.escape(), {.input_fd = in.rd});
    REQUIRE(console.start());
    CHECK_FALSE(console.is_terminal());
    const std::string sent = "hello\r\n\x01x\x01\x01\x03 world";
    put(in.wr, sent);
    CHECK(got.wait_for(sent.size()) == sent);  // Ctrl-A is just a byte here
    CHECK(got.escapes == 0);

    SECTION("end of input stops reading but does not end the VM") {
        in.close_write();
        std::this_thread::sleep_for(50ms);
        CHECK(got.escapes == 0);
        console.stop();
        CHECK(got.text() == sent);
    }
}

TEST_CASE("host console: Ctrl-A escapes", "[console]") {
    Pipe in, messages;
    Received got;
    monitor::HostConsole console(got.sink(), got.escape(),
                                 {.input_fd = in.rd, .message_fd = messages.wr, .escapes = true});
    REQUIRE(console.start());

    SECTION("Ctrl-A x asks for the VM to end; Ctrl-A Ctrl-A sends one Ctrl-A; others are dropped") {
        put(in.wr,
            "a\x01\x01"
            "b\x01zc\x01x");
        put(in.wr, "d");
        CHECK(got.wait_for(5) ==
              "a\x01"
              "bcd");
        CHECK(got.escapes == 1);
    }
    SECTION("an escape split across reads") {
        put(in.wr, "a\x01");
        CHECK(got.wait_for(1) == "a");
        std::this_thread::sleep_for(20ms);
        put(in.wr, "\x01");
        CHECK(got.wait_for(2) == "a\x01");
        put(in.wr, "\x01");
        std::this_thread::sleep_for(20ms);
        put(in.wr, "x");
        const auto deadline = std::chrono::steady_clock::now() + 2s;
        while (got.escapes == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
        CHECK(got.escapes == 1);
        CHECK(got.text() == "a\x01");
    }
    SECTION("Ctrl-A h prints the keys and sends nothing") {
        put(in.wr, "\x01h!");
        CHECK(got.wait_for(1) == "!");
        char buf[256] = {};
        const ssize_t n = ::read(messages.rd, buf, sizeof buf - 1);
        REQUIRE(n > 0);
        const std::string help(buf, static_cast<usize>(n));
        CHECK(help.find("C-a x") != std::string::npos);
        CHECK(help.back() == '\n');
    }
}

TEST_CASE("host console: stop() returns promptly while no input arrives", "[console]") {
    Pipe in;
    Received got;
    monitor::HostConsole console(got.sink(), got.escape(), {.input_fd = in.rd});
    REQUIRE(console.start());
    CHECK_FALSE(console.start());  // once only
    std::this_thread::sleep_for(20ms);
    const auto t0 = std::chrono::steady_clock::now();
    console.stop();
    CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
    console.stop();  // idempotent
    put(in.wr, "late");
    std::this_thread::sleep_for(20ms);
    CHECK(got.text().empty());
}

TEST_CASE("host console: a callback may stop the console", "[console]") {
    Pipe in;
    Received got;
    monitor::HostConsole* self = nullptr;
    monitor::HostConsole console(got.sink(), [&] { self->stop(); }, {.input_fd = in.rd, .escapes = true});
    self = &console;
    REQUIRE(console.start());
    put(in.wr, "\x01x");
    std::this_thread::sleep_for(50ms);
    put(in.wr, "after");
    std::this_thread::sleep_for(20ms);
    CHECK(got.text().empty());
}  // the destructor joins the thread the callback could not

TEST_CASE("host console: a terminal goes raw while the console runs", "[console]") {
    Pty pty;
    Received got;
    {
        monitor::HostConsole console(got.sink(), got.escape(), {.input_fd = pty.slave});
        REQUIRE(console.start());
        CHECK(console.is_terminal());
        const termios raw = pty.now();
        CHECK((raw.c_lflag & (ECHO | ICANON | ISIG | IEXTEN)) == 0);
        CHECK((raw.c_iflag & (ICRNL | IXON)) == 0);
        CHECK((raw.c_oflag & OPOST) != 0);  // host messages still get their CR
        CHECK(raw.c_cc[VMIN] == 1);

        SECTION("Ctrl-C and CR reach the guest as typed; Ctrl-A x is the escape") {
            put(pty.master, "ls\r\x03\x01\x01\x01x");
            CHECK(got.wait_for(5) == "ls\r\x03\x01");
            std::this_thread::sleep_for(20ms);
            CHECK(got.escapes == 1);
        }
        SECTION("a second console cannot take the same terminal") {
            Received other;
            monitor::HostConsole second(other.sink(), other.escape(), {.input_fd = pty.slave});
            CHECK_FALSE(second.start());
        }
        SECTION("stop() restores the terminal") {
            console.stop();
            CHECK(same_modes(pty.now(), pty.original));
        }
    }
    CHECK(same_modes(pty.now(), pty.original));  // destruction restores it too
}

TEST_CASE("host console: the terminal is restored when the monitor is killed or exits", "[console]") {
    Pty pty;
    SECTION("SIGTERM: restored, then the signal still kills") {
        const int status = in_child([&] {
            std::signal(SIGTERM, SIG_DFL);  // not the test framework's handler
            monitor::HostConsole console([](std::span<const u8>) {}, [] {}, {.input_fd = pty.slave});
            if (!console.start()) ::_exit(2);
            if ((pty.now().c_lflag & ICANON) != 0) ::_exit(3);
            ::raise(SIGTERM);
        });
        CHECK(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == SIGTERM);
    }
    SECTION("SIGHUP") {
        const int status = in_child([&] {
            std::signal(SIGHUP, SIG_DFL);
            monitor::HostConsole console([](std::span<const u8>) {}, [] {}, {.input_fd = pty.slave});
            if (!console.start()) ::_exit(2);
            if ((pty.now().c_lflag & ICANON) != 0) ::_exit(3);
            ::raise(SIGHUP);
        });
        CHECK(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == SIGHUP);
    }
    SECTION("exit() without stop()") {
        const int status = in_child([&] {
            auto* leaked = new monitor::HostConsole([](std::span<const u8>) {}, [] {}, {.input_fd = pty.slave});
            if (!leaked->start()) ::_exit(2);
            if ((pty.now().c_lflag & ICANON) != 0) ::_exit(3);  // not raw: the test would prove nothing
            std::exit(0);
        });
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    CHECK(same_modes(pty.now(), pty.original));
}
