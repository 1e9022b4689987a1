// Test support for the control plane: a real Fleet whose bare-metal VMs run a
// kernel built in memory that does nothing but WAIT (the vCPU thread sleeps,
// so a running VM costs no CPU), a session over it, and waiting helpers.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/board/elf_image.hpp"
#include "vmm/control/event_queue.hpp"
#include "vmm/control/qmp_commands.hpp"
#include "vmm/monitor/fleet.hpp"

namespace disco::test {

/// A MIPS64 kernel that loops on WAIT: `1: wait; b 1b; nop` at kseg0 + 64 KiB.
inline std::vector<u8> idle_kernel() {
    constexpr u64 kEntry = 0xFFFFFFFF80010000ull;
    const u32 code[] = {0x42000020u /* wait */, 0x1000FFFEu /* beq $0, $0, -2 words */, 0u /* nop */};
    std::vector<u8> bytes(sizeof code);
    std::memcpy(bytes.data(), code, sizeof code);  // little-endian host, little-endian guest
    ElfSpec spec{.big_endian = false, .entry = kEntry};
    spec.segments.push_back({.vaddr = kEntry, .bytes = bytes});
    return build_elf(spec);
}

/// A MIPS64 kernel for the virt board that touches two data pages every
/// 0.1 s and sleeps in between: a store to kseg0 0x80100000 and a load from
/// 0x80101000, then WAIT for the CP0 timer (IM7 only, IE off: WAIT returns
/// without an exception, MD00087 WAIT). Its soft-TLB fills are what the
/// access counters count: after a page operation shoots a page down, the next
/// touch counts again.
inline std::vector<u8> toucher_kernel() {
    constexpr u64 kEntry = 0xFFFFFFFF80010000ull;
    const u32 code[] = {
        0x40086000u,  // mfc0 t0, Status
        0x35088000u,  // ori t0, t0, 0x8000 (IM7)
        0x40886000u,  // mtc0 t0, Status
        0x3C098010u,  // lui t1, 0x8010
        0xAD200000u,  // 1: sw zero, 0(t1)
        0x8D2A1000u,  // lw t2, 0x1000(t1)
        0x400B4800u,  // mfc0 t3, Count
        0x3C0C0098u,  // lui t4, 0x98 (~10 M ticks: 0.1 s at 100 MHz)
        0x016C5821u,  // addu t3, t3, t4
        0x408B5800u,  // mtc0 t3, Compare (clears the timer interrupt)
        0x42000020u,  // wait
        0x1000FFF8u,  // b 1b
        0u,           // nop
    };
    std::vector<u8> bytes(sizeof code);
    std::memcpy(bytes.data(), code, sizeof code);
    ElfSpec spec{.big_endian = false, .entry = kEntry};
    spec.segments.push_back({.vaddr = kEntry, .bytes = bytes});
    return build_elf(spec);
}
/// The toucher's data pages' guest-physical addresses.
inline constexpr u64 kTouchedStore = 0x100000, kTouchedLoad = 0x101000;

/// Polls `done` for up to `limit`.
inline bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

struct ControlFixture {
    std::filesystem::path dir;
    int messages = -1;
    MemFile kernel{idle_kernel()};
    MemFile toucher{toucher_kernel()};
    std::unique_ptr<control::EventQueue> events;
    std::unique_ptr<monitor::Fleet> fleet;
    std::unique_ptr<control::QmpCommands> commands;
    int quits = 0;

    /// numa_sim: the fleet's simulated NUMA nodes (0: the host's).
    explicit ControlFixture(unsigned numa_sim = 0) {
        char tmpl[] = "/tmp/disco-control-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        messages = ::open((dir / "messages").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        REQUIRE(messages >= 0);
        events = std::move(control::EventQueue::create().value());
        monitor::FleetOptions options;
        options.message_fd = messages;
        options.min_bytes_per_node = 256ull << 20;
        options.numa_sim = numa_sim;
        options.on_state_change = [this](const monitor::FleetVmStatus& vm) {
            events->push(control::vm_state_event(vm));
        };
        fleet = std::make_unique<monitor::Fleet>(std::move(options));
        commands = std::make_unique<control::QmpCommands>(
            *fleet, control::ControlOptions{
                        .base_dir = dir, .max_vms = 4, .on_quit = [this] { ++quits; }, .events = events.get()});
    }
    ~ControlFixture() {
        commands.reset();
        fleet.reset();  // stops and joins every VM
        ::close(messages);
        std::filesystem::remove_all(dir);
    }

    /// A bare-metal VM definition (JSON, as vm-create takes it) running the idle kernel.
    nlohmann::json idle_vm(const std::string& name) const {
        return {{"name", name},
                {"machine", "baremetal"},
                {"kernel", kernel.path()},
                {"memory", "16M"},
                {"console", {{"log", name + ".log"}}}};
    }
};

/// A virt VM (machine memory: pages can move) running the toucher kernel.
inline nlohmann::json toucher_vm(const ControlFixture& f, const std::string& name) {
    nlohmann::json vm = f.idle_vm(name);
    vm["machine"] = "virt";
    vm["kernel"] = f.toucher.path();
    vm["memory"] = "64M";
    return vm;
}

/// A negotiated session's helper: send one request (as text), get the reply.
inline nlohmann::json ask(control::QmpSession& s, const std::string& text) { return s.handle_text(text); }

inline nlohmann::json run(control::QmpSession& s, const std::string& command, nlohmann::json args = nullptr) {
    nlohmann::json request = {{"execute", command}};
    if (!args.is_null()) request["arguments"] = std::move(args);
    return s.handle(request);
}

/// A session past the qmp_capabilities negotiation (QMP spec, "Capabilities negotiation").
inline control::QmpSession negotiated(control::QmpCommands& commands) {
    control::QmpSession s(commands);
    REQUIRE(run(s, "qmp_capabilities") == nlohmann::json{{"return", nlohmann::json::object()}});
    return s;
}

inline std::string vendor(const std::string& name) { return std::string(control::kVendorPrefix) + name; }

inline std::string error_class(const nlohmann::json& reply) {
    return reply.contains("error") ? reply["error"]["class"].get<std::string>() : "";
}
inline std::string error_desc(const nlohmann::json& reply) {
    return reply.contains("error") ? reply["error"]["desc"].get<std::string>() : "";
}
}  // namespace disco::test
