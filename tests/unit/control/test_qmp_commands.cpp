// The QMP session and command vocabulary driven directly (no socket): the
// negotiation, each command against a real Fleet, and the error replies for
// malformed requests, unknown commands, wrong argument types and missing VMs,
// after each of which the session must still answer.
#include "tests/unit/control/control_fixture.hpp"

using namespace disco;
using namespace disco::test;
using json = nlohmann::json;

namespace {
/// The VM's libvirt state and reason, from vm-info.
std::pair<std::string, std::string> state_of(control::QmpSession& s, const std::string& vm) {
    const json r = run(s, vendor("vm-info"), {{"vm", vm}});
    if (!r.contains("return")) return {"?", error_desc(r)};
    return {r["return"]["state"], r["return"]["reason"]};
}

/// The VM_STATE events waiting, as "state/reason" for the named VM.
std::vector<std::string> state_events(control::EventQueue& q, const std::string& vm) {
    std::vector<std::string> out;
    for (const auto& e : q.take()) {
        REQUIRE(e["timestamp"]["seconds"].get<long long>() > 0);
        REQUIRE(e["timestamp"]["microseconds"].get<long long>() >= 0);
        if (e["event"] == vendor("VM_STATE") && e["data"]["vm"] == vm)
            out.push_back(e["data"]["state"].get<std::string>() + "/" + e["data"]["reason"].get<std::string>());
    }
    return out;
}
}  // namespace

TEST_CASE("QMP greeting and capabilities negotiation", "[control]") {
    ControlFixture f;
    const json greeting = control::QmpSession::greeting();
    REQUIRE(greeting["QMP"]["capabilities"] == json::array());
    REQUIRE(greeting["QMP"]["version"]["qemu"].contains("major"));
    REQUIRE(greeting["QMP"]["version"]["package"].get<std::string>().starts_with("disco "));

    control::QmpSession s(*f.commands);
    // Nothing but qmp_capabilities before negotiation, as QEMU answers.
    json r = ask(s, R"({"execute": "query-status", "id": "early"})");
    CHECK(error_class(r) == "CommandNotFound");
    CHECK(error_desc(r).find("qmp_capabilities") != std::string::npos);
    CHECK(r["id"] == "early");
    CHECK_FALSE(s.negotiated());
    // No capability is offered, so none can be enabled.
    r = ask(s, R"({"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 1})");
    CHECK(error_class(r) == "GenericError");
    CHECK(r["id"] == 1);
    r = ask(s, R"({"execute": "qmp_capabilities", "arguments": {"enable": "oob"}})");
    CHECK(error_desc(r).find("Invalid parameter type") != std::string::npos);
    r = ask(s, R"({"execute": "qmp_capabilities", "arguments": {"bogus": 1}})");
    CHECK(error_desc(r).find("unexpected") != std::string::npos);
    CHECK_FALSE(s.negotiated());

    r = ask(s, R"({"execute": "qmp_capabilities", "arguments": {"enable": []}, "id": {"any": ["json"]}})");
    CHECK(r == json{{"return", json::object()}, {"id", {{"any", {"json"}}}}});
    CHECK(s.negotiated());
    r = ask(s, R"({"execute": "qmp_capabilities"})");
    CHECK(error_class(r) == "CommandNotFound");
    CHECK(error_desc(r).find("already complete") != std::string::npos);
    CHECK(s.negotiated());
}

TEST_CASE("QMP malformed requests get errors and the session goes on", "[control]") {
    ControlFixture f;
    auto s = negotiated(*f.commands);
    const std::string deep = std::string(70, '[') + std::string(70, ']');
    const std::pair<std::string, std::string> cases[] = {
        {R"({"execute": )", "JSON parse error"},
        {R"({"execute": "query-version",})", "JSON parse error"},
        {"\x7f\x80\xfe garbage", "JSON parse error"},
        {"{\"execute\": \"\xff\xfe\"}", "JSON parse error"},  // not UTF-8
        {"42", "must be a JSON object"},
        {R"(["execute", "query-version"])", "must be a JSON object"},
        {R"({"arguments": {}})", "lacks member 'execute'"},
        {R"({"execute": 7})", "'execute' must be a string"},
        {R"({"execute": "query-version", "arguments": [1]})", "'arguments' must be an object"},
        {R"({"execute": "query-version", "exec-oob": true})", "'exec-oob' is unexpected"},
        {deep, "nesting deeper than 64"},
    };
    for (const auto& [text, expect] : cases) {
        INFO(text);
        const json r = ask(s, text);
        CHECK(error_class(r) == "GenericError");
        CHECK(error_desc(r).find(expect) != std::string::npos);
        CHECK_FALSE(r.contains("id"));  // none could be read
        CHECK(ask(s, R"({"execute": "query-version"})").contains("return"));
    }
    // An object whose id can be read gets it back with its error.
    const json r = ask(s, R"({"execute": 7, "id": "x"})");
    CHECK(r["id"] == "x");
    // 64 levels is the limit, not an error by itself.
    const std::string nested =
        R"({"execute": "query-version", "id": )" + std::string(63, '[') + std::string(63, ']') + "}";
    CHECK(ask(s, nested).contains("return"));
}

TEST_CASE("QMP unknown commands, bad arguments and missing VMs", "[control]") {
    ControlFixture f;
    auto s = negotiated(*f.commands);
    json r = ask(s, R"({"execute": "no-such-command", "id": 3})");
    CHECK(error_class(r) == "CommandNotFound");
    CHECK(r["id"] == 3);

    CHECK(error_desc(run(s, "query-status", {{"vm", 5}})).find("Invalid parameter type for 'vm'") != std::string::npos);
    CHECK(error_desc(run(s, "query-status", {{"vm", json::array()}})).find("expected: string") != std::string::npos);
    CHECK(error_desc(run(s, "query-status", {{"name", "a"}})).find("Parameter 'name' is unexpected") !=
          std::string::npos);
    CHECK(error_desc(run(s, vendor("vm-info"))).find("Parameter 'vm' is missing") != std::string::npos);
    CHECK(error_desc(run(s, vendor("vm-create"), {{"definition", "x"}})).find("expected: object") != std::string::npos);
    CHECK(error_desc(run(s, vendor("vm-create"), {{"definition", json::object()}, {"start", "yes"}}))
              .find("expected: boolean") != std::string::npos);

    // No VMs at all, then a named one that does not exist.
    CHECK(error_desc(run(s, "query-status")).find("no VMs") != std::string::npos);
    for (const std::string cmd : {"query-status", "system_reset", "query-cpus-fast", "query-memory-size-summary",
                                  "stop", "cont", "system_powerdown"})
        CHECK(error_desc(run(s, cmd, {{"vm", "ghost"}})) == "No VM named 'ghost'");
    for (const std::string cmd : {"vm-info", "vm-start", "vm-stop", "vm-destroy"})
        CHECK(error_desc(run(s, vendor(cmd), {{"vm", "ghost"}})) == "No VM named 'ghost'");
    // A long name is cut in the message.
    const std::string long_name(1000, 'x');
    CHECK(error_desc(run(s, "query-status", {{"vm", long_name}})).size() < 100);
    CHECK(run(s, "query-version").contains("return"));
}

TEST_CASE("QMP query-version and query-commands", "[control]") {
    ControlFixture f;
    auto s = negotiated(*f.commands);
    CHECK(run(s, "query-version")["return"] == control::QmpCommands::version());
    const json list = run(s, "query-commands")["return"];
    std::vector<std::string> names;
    for (const auto& c : list) names.push_back(c["name"]);
    for (const std::string expect :
         {"qmp_capabilities", "query-status", "system_reset", "quit", "query-cpus-fast", "query-memory-size-summary",
          "query-version", "query-commands", "stop", "cont", "system_powerdown"})
        CHECK(std::find(names.begin(), names.end(), expect) != names.end());
    for (const std::string expect : {"vm-list", "vm-info", "vm-create", "vm-start", "vm-stop", "vm-destroy"})
        CHECK(std::find(names.begin(), names.end(), vendor(expect)) != names.end());
}

TEST_CASE("QMP a VM's life: create, start, query, reset, stop, start again, destroy", "[control]") {
    ControlFixture f;
    auto s = negotiated(*f.commands);

    json r = run(s, vendor("vm-create"), {{"definition", f.idle_vm("idle")}, {"start", false}});
    REQUIRE(r.contains("return"));
    CHECK(r["return"]["name"] == "idle");
    CHECK(r["return"]["state"] == "shutoff");
    CHECK(r["return"]["reason"] == "unknown");
    CHECK(r["return"]["machine"] == "baremetal");
    CHECK(r["return"]["vcpus"] == 1);
    CHECK(r["return"]["memory"] == 16ull << 20);
    CHECK(r["return"]["console"] == (f.dir / "idle.log").string());  // relative to base_dir
    CHECK(run(s, "query-status")["return"] ==
          json{{"running", false}, {"status", "prelaunch"}, {vendor("state"), "shutoff"}});
    CHECK(run(s, "query-cpus-fast")["return"] == json::array());  // no vCPUs before it starts
    CHECK(run(s, "query-memory-size-summary")["return"] == json{{"base-memory", 16ull << 20}});
    CHECK(error_desc(run(s, "system_reset")) == "VM 'idle' is not running");
    CHECK(error_desc(run(s, vendor("vm-stop"), {{"vm", "idle"}})) == "VM 'idle' is not running");

    REQUIRE(run(s, vendor("vm-start"), {{"vm", "idle"}}) == json{{"return", json::object()}});
    CHECK(state_of(s, "idle") == std::pair<std::string, std::string>{"running", "booted"});
    CHECK(run(s, "query-status", {{"vm", "idle"}})["return"] ==
          json{{"running", true}, {"status", "running"}, {vendor("state"), "running"}});
    CHECK(error_desc(run(s, vendor("vm-start"), {{"vm", "idle"}})).find("already running") != std::string::npos);
    CHECK(error_desc(run(s, vendor("vm-destroy"), {{"vm", "idle"}})).find("stop it first") != std::string::npos);
    // vCPUs show once the Vm exists (its supervisor builds it).
    REQUIRE(eventually([&] { return run(s, "query-cpus-fast")["return"].size() == 1; }));
    const json cpu = run(s, "query-cpus-fast")["return"][0];
    CHECK(cpu["cpu-index"] == 0);
    CHECK(cpu["qom-path"] == "/machine/cpu[0]");
    CHECK(cpu["props"]["core-id"] == 0);
    CHECK(cpu["props"].contains("node-id"));
    CHECK(run(s, vendor("vm-info"), {{"vm", "idle"}})["return"]["vcpu-nodes"].size() == 1);

    // A reset reboots the guest: a fresh Vm, still running.
    REQUIRE(run(s, "system_reset") == json{{"return", json::object()}});
    CHECK(eventually([&] {
        const std::string text = [&] {
            std::ifstream in(f.dir / "messages");
            return std::string(std::istreambuf_iterator<char>(in), {});
        }();
        return text.find("vm idle rebooted; restarting it") != std::string::npos;
    }));
    CHECK(state_of(s, "idle").first == "running");

    REQUIRE(run(s, vendor("vm-stop"), {{"vm", "idle"}}) == json{{"return", json::object()}});
    REQUIRE(eventually([&] { return state_of(s, "idle").first == "shutoff"; }));
    CHECK(state_of(s, "idle").second == "destroyed");
    CHECK(run(s, vendor("vm-info"), {{"vm", "idle"}})["return"]["exit-status"] == 0);
    CHECK(run(s, "query-status")["return"]["status"] == "shutdown");
    CHECK(state_events(*f.events, "idle") ==
          std::vector<std::string>{"running/booted", "shutdown/user", "shutoff/destroyed"});

    // An ended VM starts afresh, and stops again.
    REQUIRE(run(s, vendor("vm-start"), {{"vm", "idle"}}).contains("return"));
    CHECK(state_of(s, "idle").first == "running");
    REQUIRE(run(s, vendor("vm-stop"), {{"vm", "idle"}}).contains("return"));
    REQUIRE(eventually([&] { return state_of(s, "idle").first == "shutoff"; }));
    CHECK(state_events(*f.events, "idle") ==
          std::vector<std::string>{"running/booted", "shutdown/user", "shutoff/destroyed"});

    REQUIRE(run(s, vendor("vm-destroy"), {{"vm", "idle"}}) == json{{"return", json::object()}});
    CHECK(run(s, vendor("vm-list"))["return"] == json::array());
    CHECK(error_desc(run(s, vendor("vm-info"), {{"vm", "idle"}})) == "No VM named 'idle'");
    // The name is free again.
    CHECK(run(s, vendor("vm-create"), {{"definition", f.idle_vm("idle")}, {"start", false}}).contains("return"));
}

TEST_CASE("QMP vm-create refuses bad definitions without effect", "[control]") {
    ControlFixture f;
    auto s = negotiated(*f.commands);
    json bad = f.idle_vm("bad");
    bad["smp"] = "four";
    json r = run(s, vendor("vm-create"), {{"definition", bad}});
    CHECK(error_desc(r).starts_with("definition: field \"smp\": expected an integer"));
    bad = f.idle_vm("bad");
    bad["memroy"] = "1G";
    CHECK(error_desc(run(s, vendor("vm-create"), {{"definition", bad}})).find("unknown field") != std::string::npos);
    CHECK(error_desc(run(s, vendor("vm-create"), {{"definition", {{"vms", json::array({f.idle_vm("x")})}}}}))
              .find("not a fleet") != std::string::npos);
    CHECK(error_desc(run(s, vendor("vm-create"), {{"definition", {{"name", "nokernel"}}}})) ==
          "definition: field \"kernel\": required");
    CHECK(run(s, vendor("vm-list"))["return"] == json::array());

    REQUIRE(run(s, vendor("vm-create"), {{"definition", f.idle_vm("one")}, {"start", false}}).contains("return"));
    CHECK(error_desc(run(s, vendor("vm-create"), {{"definition", f.idle_vm("one")}})).find("already") !=
          std::string::npos);
    // Two VMs: a standard command must now say which.
    REQUIRE(run(s, vendor("vm-create"), {{"definition", f.idle_vm("two")}, {"start", false}}).contains("return"));
    CHECK(error_desc(run(s, "query-status")).find("has 2 VMs: name one with argument 'vm'") != std::string::npos);
    CHECK(run(s, "query-status", {{"vm", "two"}}).contains("return"));
    // The fixture's monitor holds at most 4.
    REQUIRE(run(s, vendor("vm-create"), {{"definition", f.idle_vm("three")}, {"start", false}}).contains("return"));
    REQUIRE(run(s, vendor("vm-create"), {{"definition", f.idle_vm("four")}, {"start", false}}).contains("return"));
    CHECK(error_desc(run(s, vendor("vm-create"), {{"definition", f.idle_vm("five")}})).find("its most") !=
          std::string::npos);
    const json list = run(s, vendor("vm-list"))["return"];
    REQUIRE(list.size() == 4);
    CHECK(list[0]["name"] == "one");
    CHECK(list[3]["name"] == "four");
}

TEST_CASE("QMP a VM whose kernel cannot be loaded ends as failed", "[control]") {
    ControlFixture f;
    auto s = negotiated(*f.commands);
    json def = f.idle_vm("broken");
    def["kernel"] = "/nonexistent/kernel.elf";
    REQUIRE(run(s, vendor("vm-create"), {{"definition", def}}).contains("return"));  // starts by default
    REQUIRE(eventually([&] { return state_of(s, "broken").first == "shutoff"; }));
    CHECK(state_of(s, "broken").second == "failed");
    CHECK(run(s, vendor("vm-info"), {{"vm", "broken"}})["return"]["exit-status"] == 2);
    CHECK(run(s, "query-status")["return"] ==
          json{{"running", false}, {"status", "internal-error"}, {vendor("state"), "shutoff"}});
    CHECK(state_events(*f.events, "broken") == std::vector<std::string>{"running/booted", "shutoff/failed"});
}

TEST_CASE("QMP quit asks the monitor to stop and announces SHUTDOWN", "[control]") {
    ControlFixture f;
    auto s = negotiated(*f.commands);
    (void)f.events->take();
    CHECK(run(s, "quit") == json{{"return", json::object()}});
    CHECK(f.quits == 1);
    const auto events = f.events->take();
    REQUIRE(events.size() == 1);
    CHECK(events[0]["event"] == "SHUTDOWN");
    CHECK(events[0]["data"] == json{{"guest", false}, {"reason", "host-qmp-quit"}});
}
