// QMP stop / cont / system_powerdown and query-cpus-fast's thread-id against
// a real Fleet: a paused VM's vCPU threads use no CPU and its state, events
// and errors are QMP's and libvirt's; a paused VM still stops and resets (and
// stays paused across the reset); page operations on a paused virt VM do not
// wait for it (its parked vCPUs are quiescent for shootdowns), including a
// secondary vCPU held in reset; bare-metal VMs refuse system_powerdown.
#include <libvirt/libvirt.h>

#include <sstream>

#include "tests/unit/control/control_fixture.hpp"
#include "vmm/control/vm_state.hpp"

using namespace disco;
using namespace disco::test;
using json = nlohmann::json;

namespace {
/// A MIPS64 kernel whose vCPU never sleeps: `1: b 1b; nop` (the host thread spins).
std::vector<u8> spin_kernel() {
    constexpr u64 kEntry = 0xFFFFFFFF80010000ull;
    const u32 code[] = {0x1000FFFFu /* beq $0, $0, 1b */, 0u /* nop */};
    std::vector<u8> bytes(sizeof code);
    std::memcpy(bytes.data(), code, sizeof code);
    ElfSpec spec{.big_endian = false, .entry = kEntry};
    spec.segments.push_back({.vaddr = kEntry, .bytes = bytes});
    return build_elf(spec);
}

/// utime + stime of one thread of this process, in clock ticks (proc(5), /proc/pid/task/tid/stat).
long long thread_cpu_ticks(int tid) {
    std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    const auto close = text.rfind(')');
    REQUIRE(close != std::string::npos);
    std::istringstream fields(text.substr(close + 2));  // from field 3, the state
    std::string field;
    long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
        if (i == 14) utime = std::stoll(field);
        if (i == 15) stime = std::stoll(field);
    }
    return utime + stime;
}

/// CPU ticks the thread used over `ms` of wall time.
long long ticks_over(int tid, int ms) {
    const long long before = thread_cpu_ticks(tid);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return thread_cpu_ticks(tid) - before;
}

/// Whether the thread uses CPU: 10 ticks (100 ms at 100 Hz) within 5 s, however loaded the host.
bool spins(int tid) {
    const long long before = thread_cpu_ticks(tid);
    return eventually([&] { return thread_cpu_ticks(tid) - before >= 10; }, std::chrono::seconds(5));
}

/// vCPU `i`'s host thread id from query-cpus-fast, once it has one (0 if none in time).
int vcpu_tid(control::QmpSession& s, const std::string& vm, unsigned i = 0) {
    int tid = 0;
    eventually([&] {
        const json r = run(s, "query-cpus-fast", {{"vm", vm}});
        if (!r.contains("return") || r["return"].size() <= i || !r["return"][i].contains("thread-id")) return false;
        tid = r["return"][i]["thread-id"].get<int>();
        return tid > 0;
    });
    return tid;
}

std::pair<std::string, std::string> state_of(control::QmpSession& s, const std::string& vm) {
    const json r = run(s, vendor("vm-info"), {{"vm", vm}});
    if (!r.contains("return")) return {"?", error_desc(r)};
    return {r["return"]["state"], r["return"]["reason"]};
}

/// The events waiting, as names, with VM_STATE's as "VM_STATE state/reason".
std::vector<std::string> event_names(control::EventQueue& q) {
    std::vector<std::string> out;
    for (const auto& e : q.take()) {
        if (e["event"] == vendor("VM_STATE"))
            out.push_back("VM_STATE " + e["data"]["state"].get<std::string>() + "/" +
                          e["data"]["reason"].get<std::string>());
        else
            out.push_back(e["event"].get<std::string>() + (e.contains("data") ? " " + e["data"].dump() : ""));
    }
    return out;
}

std::string messages_of(const ControlFixture& f) {
    std::ifstream in(f.dir / "messages");
    return std::string(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

TEST_CASE("vm_state: a paused VM is libvirt's paused/user and QEMU's paused", "[control]") {
    monitor::FleetVmStatus vm;
    vm.state = monitor::FleetVmState::Paused;
    const control::VmStateNames names = control::libvirt_state(vm);
    CHECK(names.state == "paused");
    CHECK(names.reason == "user");
    CHECK(names.virsh == "paused");
    CHECK(names.state_value == VIR_DOMAIN_PAUSED);
    CHECK(names.reason_value == VIR_DOMAIN_PAUSED_USER);
    const control::RunState rs = control::qemu_run_state(vm);
    CHECK(rs.status == "paused");
    CHECK_FALSE(rs.running);
}

TEST_CASE("QMP stop and cont: a paused VM's vCPU uses no CPU; state, events and errors", "[control]") {
    ControlFixture f;
    MemFile spinner{spin_kernel()};
    auto s = negotiated(*f.commands);
    json def = f.idle_vm("spin");
    def["kernel"] = spinner.path();
    REQUIRE(run(s, vendor("vm-create"), {{"definition", def}, {"start", false}}).contains("return"));

    // Not running yet: nothing to pause or resume.
    CHECK(error_desc(run(s, "stop")) == "VM 'spin' is not running");
    CHECK(error_desc(run(s, "cont")) == "VM 'spin' is not paused");
    CHECK(error_desc(run(s, "stop", {{"vm", "ghost"}})) == "No VM named 'ghost'");
    CHECK(error_desc(run(s, "cont", {{"vm", "ghost"}})) == "No VM named 'ghost'");
    CHECK(error_desc(run(s, "stop", {{"vm", 1}})).find("Invalid parameter type") != std::string::npos);

    REQUIRE(run(s, vendor("vm-start"), {{"vm", "spin"}}).contains("return"));
    // thread-id: a real thread of this process, spinning.
    const int tid = vcpu_tid(s, "spin");
    REQUIRE(tid > 0);
    CHECK(std::filesystem::exists("/proc/self/task/" + std::to_string(tid)));
    CHECK(spins(tid));
    f.events->take();

    REQUIRE(run(s, "stop") == json{{"return", json::object()}});
    CHECK(run(s, "query-status")["return"] ==
          json{{"running", false}, {"status", "paused"}, {vendor("state"), "paused"}});
    CHECK(state_of(s, "spin") == std::pair<std::string, std::string>{"paused", "user"});
    CHECK(run(s, vendor("vm-list"))["return"][0]["state"] == "paused");
    CHECK(event_names(*f.events) == std::vector<std::string>{"VM_STATE paused/user", "STOP"});
    // Parked: the thread sleeps (a tick of slack for the moment it parked).
    CHECK(ticks_over(tid, 500) <= 1);
    // Its vCPUs are still there, and the monitor's diagnostics still reach them.
    CHECK(run(s, "query-cpus-fast")["return"][0]["thread-id"] == tid);
    const std::string state = f.fleet->describe_state();
    CHECK(state.find("vCPU 0: paused") != std::string::npos);
    CHECK(error_desc(run(s, "stop")) == "VM 'spin' is paused already");
    CHECK(error_desc(run(s, "system_powerdown")).find("not supported") != std::string::npos);

    REQUIRE(run(s, "cont") == json{{"return", json::object()}});
    CHECK(run(s, "query-status")["return"]["status"] == "running");
    CHECK(event_names(*f.events) == std::vector<std::string>{"VM_STATE running/booted", "RESUME"});
    CHECK(spins(tid));
    CHECK(error_desc(run(s, "cont")) == "VM 'spin' is not paused");

    // A reset of a paused VM: a fresh Vm, still paused (as QEMU keeps a stopped guest stopped).
    REQUIRE(run(s, "stop").contains("return"));
    REQUIRE(run(s, "system_reset") == json{{"return", json::object()}});
    REQUIRE(eventually([&] { return messages_of(f).find("vm spin rebooted; restarting it") != std::string::npos; }));
    CHECK(state_of(s, "spin").first == "paused");
    const int tid2 = vcpu_tid(s, "spin");
    REQUIRE(tid2 > 0);
    CHECK(ticks_over(tid2, 500) <= 1);
    REQUIRE(run(s, "cont").contains("return"));
    CHECK(spins(tid2));

    // Stopping a paused VM ends it as any stop does.
    REQUIRE(run(s, "stop").contains("return"));
    f.events->take();
    REQUIRE(run(s, vendor("vm-stop"), {{"vm", "spin"}}) == json{{"return", json::object()}});
    REQUIRE(eventually([&] { return state_of(s, "spin").first == "shutoff"; }));
    CHECK(state_of(s, "spin").second == "destroyed");
    CHECK(event_names(*f.events) == std::vector<std::string>{"VM_STATE shutdown/user", "VM_STATE shutoff/destroyed"});
    CHECK(error_desc(run(s, "cont")) == "VM 'spin' is not paused");
    CHECK(run(s, "query-cpus-fast")["return"] == json::array());
    // Started again, it runs: the pause does not outlive the run.
    REQUIRE(run(s, vendor("vm-start"), {{"vm", "spin"}}).contains("return"));
    CHECK(state_of(s, "spin").first == "running");
}

TEST_CASE("QMP a paused virt VM: page operations do not wait for it, the guest does not run", "[control][numa]") {
    ControlFixture f(2);
    auto s = negotiated(*f.commands);
    json def = toucher_vm(f, "t");
    def["smp"] = 2;  // vCPU 1 stays held in reset (CPS): it parks there
    REQUIRE(run(s, vendor("vm-create"), {{"definition", def}}).contains("return"));
    const auto stored_total = [&]() -> long long {
        const json hot = run(s, vendor("hot-pages"), {{"vm", "t"}});
        if (!hot.contains("return")) return -1;
        for (const auto& p : hot["return"]["pages"])
            if (p["gpa"] == kTouchedStore) return p["total"].get<long long>();
        return 0;
    };
    REQUIRE(eventually([&] { return stored_total() > 0; }));
    const json cpus = run(s, "query-cpus-fast")["return"];
    REQUIRE(cpus.size() == 2);
    for (const auto& cpu : cpus)
        if (cpu.contains("thread-id"))
            CHECK(std::filesystem::exists("/proc/self/task/" + std::to_string(cpu["thread-id"].get<int>())));

    REQUIRE(run(s, "stop", {{"vm", "t"}}) == json{{"return", json::object()}});
    // A migration's two shootdowns find the parked vCPUs quiescent: it completes
    // while the VM is paused, and the moved page's fresh counters stay at zero
    // (the guest touches it every 0.1 s when it runs).
    REQUIRE(run(s, vendor("page-migrate"), {{"vm", "t"}, {"gpa", kTouchedStore}, {"node", 1}}) ==
            json{{"return", {{"node", 1}}}});
    const json batch = run(s, vendor("pages-migrate"), {{"vm", "t"}, {"gpas", {kTouchedLoad}}, {"node", 1}});
    REQUIRE(batch.contains("return"));
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    CHECK(stored_total() == 0);
    CHECK(state_of(s, "t") == std::pair<std::string, std::string>{"paused", "user"});

    REQUIRE(run(s, "cont", {{"vm", "t"}}) == json{{"return", json::object()}});
    CHECK(eventually([&] { return stored_total() > 0; }));
    CHECK(state_of(s, "t").first == "running");
}

TEST_CASE("QMP system_powerdown: refused on bare-metal and on VMs that do not run", "[control]") {
    ControlFixture f;
    auto s = negotiated(*f.commands);
    REQUIRE(run(s, vendor("vm-create"), {{"definition", f.idle_vm("idle")}, {"start", false}}).contains("return"));
    CHECK(error_desc(run(s, "system_powerdown")) ==
          "VM 'idle' is bare-metal: system_powerdown is not supported (no guest OS to ask)");
    REQUIRE(run(s, vendor("vm-create"), {{"definition", toucher_vm(f, "v")}, {"start", false}}).contains("return"));
    CHECK(error_desc(run(s, "system_powerdown", {{"vm", "v"}})) == "VM 'v' is not running");
    CHECK(error_desc(run(s, "system_powerdown", {{"vm", "ghost"}})) == "No VM named 'ghost'");
    CHECK(event_names(*f.events).empty());  // no POWERDOWN for a refusal

    // A running virt VM takes the request (this guest ignores its console) and
    // POWERDOWN is announced at once; a paused one too (the sequence waits for
    // cont). Stopping the VM mid-sequence ends the sequence's thread with it.
    REQUIRE(run(s, vendor("vm-start"), {{"vm", "v"}}).contains("return"));
    REQUIRE(eventually([&] { return !run(s, "query-cpus-fast", {{"vm", "v"}})["return"].empty(); }));
    f.events->take();
    CHECK(run(s, "system_powerdown", {{"vm", "v"}}) == json{{"return", json::object()}});
    CHECK(event_names(*f.events) == std::vector<std::string>{"POWERDOWN"});
    REQUIRE(run(s, "stop", {{"vm", "v"}}).contains("return"));
    CHECK(run(s, "system_powerdown", {{"vm", "v"}}) == json{{"return", json::object()}});
    f.events->take();
    const auto asked = std::chrono::steady_clock::now();
    REQUIRE(run(s, vendor("vm-stop"), {{"vm", "v"}}).contains("return"));
    REQUIRE(eventually([&] { return state_of(s, "v").first == "shutoff"; }));
    CHECK(std::chrono::steady_clock::now() - asked < std::chrono::seconds(1));
    CHECK(state_of(s, "v").second == "destroyed");
    CHECK(error_desc(run(s, "system_powerdown", {{"vm", "v"}})) == "VM 'v' is not running");
}
