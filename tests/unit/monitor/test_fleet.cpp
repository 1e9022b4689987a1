// Several bare-metal VMs in one Fleet: they run at the same time, each with its
// own console; one that fails, cannot start or is stopped leaves the others be.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "tests/unit/monitor/fleet_test_paths.hpp"
#include "vmm/monitor/fleet.hpp"

using namespace disco;
using namespace disco::monitor;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
const std::string kHello = GUEST_KERNEL_HELLO_EL;
const std::string kIsa = GUEST_KERNEL_ISA_EL;
const std::string kBench = GUEST_KERNEL_BENCH_EL;

/// The guest kernels are built by default (`ninja -C BUILD`); without the
/// cross compiler there are none, and these tests only say so.
bool have_kernels(std::initializer_list<const std::string*> kernels) {
    for (const std::string* k : kernels) {
        if (k->empty() || !fs::exists(*k)) {
            WARN("guest kernel " << (k->empty() ? "(no mips64el cross compiler)" : *k)
                                 << " is not built: run ninja on the build folder; test skipped");
            return false;
        }
    }
    return true;
}

std::string file_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

/// A folder for logs and the fleet's own messages, removed at the end.
struct Scratch {
    fs::path dir;
    int messages = -1;
    Scratch() {
        char tmpl[] = "/tmp/disco-fleet-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        messages = ::open((dir / "messages").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        REQUIRE(messages >= 0);
    }
    ~Scratch() {
        ::close(messages);
        fs::remove_all(dir);
    }
    std::string log(const std::string& name) const { return file_text(dir / (name + ".log")); }
    std::string message_text() const { return file_text(dir / "messages"); }

    VmDefinition baremetal(const std::string& name, const std::string& kernel, u64 max_insns = 0) const {
        VmDefinition vm;
        vm.name = name;
        vm.config.machine = Machine::BareMetal;
        vm.config.memory_bytes = 64ull << 20;
        vm.config.kernel = kernel;
        vm.config.max_insns = max_insns;
        vm.console = {ConsoleSpec::Kind::Log, (dir / (name + ".log")).string()};
        return vm;
    }
    FleetOptions options() const { return {.message_fd = messages}; }
};

/// Waits for the VM to end (or gives up after `limit`).
std::optional<FleetVmEnd> ended_within(const Fleet& fleet, const std::string& name, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (auto end = fleet.ended(name)) return end;
        std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
}
}  // namespace

TEST_CASE("three VMs run at once; one hits its instruction limit, the others finish", "[fleet]") {
    if (!have_kernels({&kHello, &kIsa, &kBench})) return;
    Scratch s;
    Fleet fleet(s.options());
    REQUIRE(fleet.add(s.baremetal("hello", kHello)));
    REQUIRE(fleet.add(s.baremetal("limited", kBench, 100000)));
    VmDefinition isa = s.baremetal("isa", kIsa);
    isa.config.smp = 2;
    REQUIRE(fleet.add(isa));
    fleet.start_all();
    CHECK(fleet.wait() == 1);  // the failing VM's status; the others' 0 do not hide it

    CHECK(fleet.ended("hello")->why == FleetVmEnd::Why::GuestStatus);
    CHECK(fleet.ended("hello")->status == 0);
    CHECK(fleet.ended("isa")->why == FleetVmEnd::Why::GuestStatus);
    CHECK(fleet.ended("isa")->status == 0);
    CHECK(fleet.ended("limited")->why == FleetVmEnd::Why::Error);
    CHECK(fleet.ended("limited")->status == 1);

    // Each console went to its own log, and only there.
    CHECK(s.log("hello").find("Hello from the disco bare-metal guest") != std::string::npos);
    CHECK(s.log("isa").find("RESULT: PASS") != std::string::npos);
    CHECK(s.log("isa").find("Hello from") == std::string::npos);
    CHECK(s.log("limited").find("checksum") == std::string::npos);
    CHECK(s.log("hello").find("RESULT") == std::string::npos);

    const std::string messages = s.message_text();
    INFO(messages);
    CHECK(messages.find("disco: vm hello console in " + (s.dir / "hello.log").string() + "\n") != std::string::npos);
    CHECK(messages.find("disco: vm hello ended: guest exit status 0 (status 0)\n") != std::string::npos);
    CHECK(messages.find("disco: vm isa ended: guest exit status 0 (status 0)\n") != std::string::npos);
    CHECK(messages.find("disco: vm limited ended: stopped by the monitor after an error (status 1)\n") !=
          std::string::npos);
}

TEST_CASE("a VM that cannot start is reported and the others run", "[fleet]") {
    if (!have_kernels({&kHello})) return;
    Scratch s;
    const fs::path not_elf = s.dir / "not-a-kernel";
    std::ofstream(not_elf) << "#!/bin/sh\necho this is no kernel\n";
    Fleet fleet(s.options());
    REQUIRE(fleet.add(s.baremetal("broken", not_elf.string())));
    REQUIRE(fleet.add(s.baremetal("hello", kHello)));
    fleet.start_all();
    CHECK(fleet.wait() == 2);
    CHECK(fleet.ended("broken")->why == FleetVmEnd::Why::StartFailed);
    CHECK(fleet.ended("hello")->status == 0);
    CHECK(s.log("hello").find("Hello from the disco bare-metal guest") != std::string::npos);
    const std::string messages = s.message_text();
    INFO(messages);
    CHECK(messages.find("disco: vm broken: ") != std::string::npos);
    CHECK(messages.find("not an ELF") != std::string::npos);
    CHECK(messages.find("disco: vm broken ended: could not start (status 2)\n") != std::string::npos);
}

TEST_CASE("VMs end and stop independently", "[fleet]") {
    if (!have_kernels({&kHello, &kBench})) return;
    Scratch s;
    Fleet fleet(s.options());
    REQUIRE(fleet.add(s.baremetal("long", kBench)));  // about 435 million instructions: seconds
    REQUIRE(fleet.add(s.baremetal("short", kHello)));
    fleet.start_all();

    // The short VM ends while the long one is still running: they run at the
    // same time, and an ending VM does not take the others with it.
    const auto short_end = ended_within(fleet, "short", 60s);
    REQUIRE(short_end.has_value());
    CHECK(short_end->status == 0);
    CHECK_FALSE(fleet.ended("long").has_value());

    CHECK(fleet.stop("long"));
    CHECK_FALSE(fleet.stop("nobody"));
    CHECK(fleet.wait() == 0);
    CHECK(fleet.ended("long")->why == FleetVmEnd::Why::Stopped);
    CHECK(s.log("long").find("checksum") == std::string::npos);  // it did not get to finish
    CHECK(s.message_text().find("disco: vm long ended: stopped (status 0)\n") != std::string::npos);
}

TEST_CASE("stop_all ends every VM, and none starts after it", "[fleet]") {
    if (!have_kernels({&kBench})) return;
    Scratch s;
    Fleet fleet(s.options());
    REQUIRE(fleet.add(s.baremetal("one", kBench)));
    VmDefinition two = s.baremetal("two", kBench);
    two.config.smp = 2;
    REQUIRE(fleet.add(two));
    fleet.start_all();
    std::this_thread::sleep_for(50ms);
    const auto start = std::chrono::steady_clock::now();
    fleet.stop_all();
    CHECK(fleet.wait() == 0);
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    CHECK(fleet.ended("one")->why == FleetVmEnd::Why::Stopped);
    CHECK(fleet.ended("two")->why == FleetVmEnd::Why::Stopped);

    REQUIRE(fleet.add(s.baremetal("late", kBench)));
    fleet.start_all();
    CHECK(fleet.wait() == 0);
    CHECK_FALSE(fleet.ended("late").has_value());
}

TEST_CASE("a VM's console can be a pty that keeps its output for whoever attaches", "[fleet]") {
    if (!have_kernels({&kHello})) return;
    Scratch s;
    Fleet fleet(s.options());
    VmDefinition vm = s.baremetal("pty-vm", kHello);
    vm.console = {ConsoleSpec::Kind::Pty, ""};
    REQUIRE(fleet.add(vm));
    const std::string where = fleet.console_where("pty-vm");
    REQUIRE(where.starts_with("/dev/pts/"));
    fleet.start_all();
    CHECK(fleet.wait() == 0);
    CHECK(s.message_text().find("disco: vm pty-vm console on " + where + "\n") != std::string::npos);

    const int user = ::open(where.c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(user >= 0);
    // The whole line, not just its start: the pty may hand it over in pieces,
    // and a loaded host may take a while (up to 10 s) to deliver them.
    const std::string expected = "Hello from the disco bare-metal guest";
    std::string seen;
    char buf[512];
    for (int i = 0; i < 500 && seen.find(expected) == std::string::npos; ++i) {
        pollfd p{user, POLLIN, 0};
        if (::poll(&p, 1, 20) > 0) {
            const ssize_t n = ::read(user, buf, sizeof buf);
            if (n > 0) seen.append(buf, static_cast<usize>(n));
        }
    }
    ::close(user);
    CHECK(seen.find(expected) != std::string::npos);
}

TEST_CASE("a fleet refuses a second VM of the same name and a console it cannot open", "[fleet]") {
    Scratch s;
    Fleet fleet(s.options());
    REQUIRE(fleet.add(s.baremetal("web", "/nonexistent/kernel")));
    auto again = fleet.add(s.baremetal("web", "/nonexistent/kernel"));
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().message == R"(a VM named "web" is already in the fleet)");

    VmDefinition bad_log = s.baremetal("db", "/nonexistent/kernel");
    bad_log.console.log_path = "/nonexistent/dir/db.log";
    auto refused = fleet.add(bad_log);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message == "vm db: console log /nonexistent/dir/db.log: No such file or directory");
    CHECK(fleet.wait() == 0);  // nothing started
}

TEST_CASE("the example VM file in configs/ is valid", "[fleet][vm-config]") {
    auto vms = load_vm_file(std::string(DISCO_SOURCE_ROOT) + "/configs/examples/linux-vm.json");
    INFO((vms ? "" : vms.error().message));
    REQUIRE(vms.has_value());
    REQUIRE(vms->size() == 1);
    CHECK(vms->at(0).config.kernel.ends_with("build/images/vmlinuz-mips64r2el"));
}
