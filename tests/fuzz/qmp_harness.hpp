// One fuzz case for the control protocol: the input is what a client sends on
// the socket, cut into writes where the first byte says, and goes through the
// framer and a fresh session over a Fleet that holds one VM ("a", whose
// kernel does not exist, so a start fails fast instead of running a guest).
// Whatever the bytes: every reply is an object with exactly one of "return"
// and "error" (plus "id"), an error has a string class and desc, every reply
// can be sent (dumped with bad UTF-8 replaced), and the framer never holds
// more than its bound. Shared by tests/fuzz/fuzz_qmp.cpp (libFuzzer) and the
// seeded test in tests/unit/control/test_qmp_fuzz.cpp.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "vmm/control/event_queue.hpp"
#include "vmm/control/qmp_commands.hpp"
#include "vmm/control/qmp_framer.hpp"
#include "vmm/monitor/fleet.hpp"

namespace disco::test {

/// Aborts (a finding for libFuzzer, a failed test for Catch2) when an invariant breaks.
inline void qmp_check(bool ok) {
    if (!ok) std::abort();
}

inline void check_reply(const nlohmann::json& reply) {
    qmp_check(reply.is_object());
    const bool is_return = reply.contains("return"), is_error = reply.contains("error");
    qmp_check(is_return != is_error);
    for (const auto& [key, value] : reply.items()) qmp_check(key == "return" || key == "error" || key == "id");
    if (is_error) {
        const auto& e = reply["error"];
        qmp_check(e.is_object() && e.size() == 2 && e.contains("class") && e["class"].is_string() &&
                  e.contains("desc") && e["desc"].is_string());
    }
    const std::string wire = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    qmp_check(!wire.empty() && wire.find('\n') == std::string::npos);
}

inline void run_qmp_case(std::span<const u8> data) {
    constexpr usize kMaxMessage = 4096;  // small, so that the fuzzer reaches the bound
    static const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    auto events = control::EventQueue::create(64);
    qmp_check(events.has_value());
    control::EventQueue& queue = **events;
    monitor::FleetOptions options;
    options.message_fd = null_fd;
    options.min_bytes_per_node = 64ull << 20;
    options.on_state_change = [&](const monitor::FleetVmStatus& vm) { queue.push(control::vm_state_event(vm)); };
    monitor::Fleet fleet(std::move(options));
    monitor::VmDefinition a;
    a.name = "a";
    a.config.machine = monitor::Machine::BareMetal;
    a.config.memory_bytes = 16ull << 20;
    a.config.kernel = "/nonexistent/disco-fuzz-kernel.elf";
    a.console = {monitor::ConsoleSpec::Kind::Log, "/dev/null"};
    qmp_check(fleet.add(a).has_value());
    control::QmpCommands commands(fleet,
                                  {.base_dir = "/nonexistent", .max_vms = 4, .on_quit = [] {}, .events = &queue});
    control::QmpSession session(commands);
    control::QmpFramer framer(kMaxMessage);

    std::string_view bytes(reinterpret_cast<const char*>(data.data()), data.size());
    // The first byte picks the write size, so that messages also arrive in pieces.
    const usize chunk = bytes.empty() ? 1 : 1 + static_cast<u8>(bytes.front()) % 64;
    std::vector<control::QmpFramer::Piece> pieces;
    for (usize at = 0; at < bytes.size(); at += chunk) {
        pieces.clear();
        framer.feed(bytes.substr(at, chunk), pieces);
        qmp_check(framer.pending() <= kMaxMessage);
        for (const auto& piece : pieces) {
            if (piece.kind != control::QmpFramer::Piece::Kind::Text) continue;
            qmp_check(piece.text.size() <= kMaxMessage);
            check_reply(session.handle_text(piece.text));
        }
    }
    fleet.stop_all();
    fleet.wait();
    for (const auto& event : queue.take()) qmp_check(event.contains("event") && event.contains("timestamp"));
}
}  // namespace disco::test
