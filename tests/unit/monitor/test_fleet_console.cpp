// The host ends of fleet consoles: a log file written a line at a time, and a
// pty that neither blocks the guest nor echoes its output back as input.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "vmm/monitor/fleet_console.hpp"

using namespace disco;
using namespace disco::monitor;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
std::span<const u8> bytes_of(const std::string& s) { return {reinterpret_cast<const u8*>(s.data()), s.size()}; }

std::string file_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

/// Everything readable on fd within `wait` (fd non-blocking).
std::string drain(int fd, std::chrono::milliseconds wait) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + wait;
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) {
            if (!out.empty()) break;
            continue;
        }
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<usize>(n));
    }
    return out;
}

struct TempLog {
    fs::path path = fs::temp_directory_path() / ("disco-fleet-console-" + std::to_string(::getpid()) + ".log");
    ~TempLog() { fs::remove(path); }
};
}  // namespace

TEST_CASE("a log console appends whole lines as they come", "[fleet]") {
    TempLog log;
    std::ofstream(log.path) << "earlier run\n";
    auto console = FleetConsole::open({ConsoleSpec::Kind::Log, log.path.string()});
    REQUIRE(console.has_value());
    CHECK((*console)->where() == log.path.string());
    (*console)->write(bytes_of("ab"));
    CHECK(file_text(log.path) == "earlier run\n");  // half a line waits for its end
    (*console)->write(bytes_of("c\nd"));
    CHECK(file_text(log.path) == "earlier run\nabc\n");
    (*console)->write(bytes_of("e\nf\ng"));
    CHECK(file_text(log.path) == "earlier run\nabc\nde\nf\n");
    (*console)->flush();
    CHECK(file_text(log.path) == "earlier run\nabc\nde\nf\ng");

    // A guest that never ends its line still gets written, in bounded pieces.
    const std::string endless(10000, 'x');
    (*console)->write(bytes_of(endless));
    CHECK(file_text(log.path).size() == std::string("earlier run\nabc\nde\nf\ng").size() + endless.size());
}

TEST_CASE("a log console that cannot be opened names its file", "[fleet]") {
    auto console = FleetConsole::open({ConsoleSpec::Kind::Log, "/nonexistent/dir/vm.log"});
    REQUIRE_FALSE(console.has_value());
    CHECK(console.error().message == "console log /nonexistent/dir/vm.log: No such file or directory");
}

TEST_CASE("a pty console carries output out and typed bytes in", "[fleet]") {
    auto opened = FleetConsole::open({ConsoleSpec::Kind::Pty, ""});
    REQUIRE(opened.has_value());
    FleetConsole& console = **opened;
    const std::string where = console.where();
    REQUIRE(where.starts_with("/dev/pts/"));

    std::mutex mutex;
    std::string typed;
    REQUIRE(console.start_input([&](std::span<const u8> b) {
        std::lock_guard lock(mutex);
        typed.append(b.begin(), b.end());
    }));

    const int user = ::open(where.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(user >= 0);
    // Output before anyone attached is still there, unchanged (raw: no
    // CR-LF translation on the way).
    console.write(bytes_of("boot line\n"));
    CHECK(drain(user, 2000ms) == "boot line\n");

    REQUIRE(::write(user, "ls\r", 3) == 3);
    for (int i = 0; i < 200; ++i) {
        {
            std::lock_guard lock(mutex);
            if (typed.size() >= 3) break;
        }
        std::this_thread::sleep_for(10ms);
    }
    {
        std::lock_guard lock(mutex);
        CHECK(typed == "ls\r");  // no echo of guest output, no line discipline in between
    }
    console.stop_input();
    ::close(user);
}

TEST_CASE("a pty nobody reads never blocks the guest and keeps the latest output", "[fleet]") {
    auto opened = FleetConsole::open({ConsoleSpec::Kind::Pty, ""});
    REQUIRE(opened.has_value());
    FleetConsole& console = **opened;
    const auto start = std::chrono::steady_clock::now();
    const std::string chunk(1000, 'o');
    for (int i = 0; i < 1000; ++i) console.write(bytes_of(chunk));
    console.write(bytes_of("LAST\n"));
    CHECK(std::chrono::steady_clock::now() - start < 10s);

    const int user = ::open(console.where().c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(user >= 0);
    const std::string seen = drain(user, 2000ms);
    CHECK(seen.ends_with("LAST\n"));
    CHECK(seen.size() < 1000 * chunk.size());
    ::close(user);
}
