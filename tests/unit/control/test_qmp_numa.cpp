// The NUMA and memory commands against a real Fleet (numa_commands.hpp):
// a virt VM on two simulated nodes whose guest touches two pages
// (control_fixture.hpp's toucher) shows them in hot-pages; migrate, replicate
// and collapse move them, with their events, and numa / hot-pages report the
// new placement; each error class gets its GenericError and the session goes on.
#include "tests/unit/control/control_fixture.hpp"

using namespace disco;
using namespace disco::test;
using json = nlohmann::json;

namespace {
/// Starts the toucher as "t" and waits until hot-pages shows its stored page.
json start_toucher(ControlFixture& f, control::QmpSession& s) {
    REQUIRE(run(s, vendor("vm-create"), {{"definition", toucher_vm(f, "t")}}).contains("return"));
    json hot;
    REQUIRE(eventually([&] {
        hot = run(s, vendor("hot-pages"), {{"vm", "t"}});
        if (!hot.contains("return")) return false;
        for (const auto& p : hot["return"]["pages"])
            if (p["gpa"] == kTouchedStore) return true;
        return false;
    }));
    return hot["return"];
}

std::optional<json> page_entry(const json& hot, u64 gpa) {
    for (const auto& p : hot["pages"])
        if (p["gpa"] == gpa) return p;
    return std::nullopt;
}

std::vector<std::string> events_named(control::EventQueue& q, const std::string& name) {
    std::vector<std::string> out;
    for (const auto& e : q.take())
        if (e["event"] == vendor(name)) out.push_back(e["data"].dump());
    return out;
}
}  // namespace

TEST_CASE("hot-pages: a running guest's pages, counts per node, written, totals and reset", "[control][numa]") {
    ControlFixture f(2);
    auto s = negotiated(*f.commands);
    const json hot = start_toucher(f, s);
    CHECK(hot["nodes"] == 2);
    CHECK(hot["simulated"] == true);
    REQUIRE(hot["vms"].size() == 1);
    CHECK(hot["vms"][0]["name"] == "t");
    const auto stored = page_entry(hot, kTouchedStore);
    REQUIRE(stored);
    CHECK((*stored)["vm"] == "t");
    CHECK((*stored)["state"] == "private");
    CHECK((*stored)["written"] == true);
    CHECK((*stored)["counts"].size() == 2);
    CHECK((*stored)["total"].get<u64>() >= 1);
    CHECK((*stored)["counts"][0].get<u64>() + (*stored)["counts"][1].get<u64>() == (*stored)["total"].get<u64>());
    if (const auto loaded = page_entry(hot, kTouchedLoad)) CHECK((*loaded)["written"] == false);
    // Hottest first; limit respected.
    for (usize i = 1; i < hot["pages"].size(); ++i)
        CHECK(hot["pages"][i - 1]["total"].get<u64>() >= hot["pages"][i]["total"].get<u64>());
    const json one = run(s, vendor("hot-pages"), {{"limit", 1}});
    REQUIRE(one.contains("return"));
    CHECK(one["return"]["pages"].size() == 1);
    const u64 local = hot["accesses"]["local"], remote = hot["accesses"]["remote"];
    CHECK(local + remote >= (*stored)["total"].get<u64>());
    // vCPU 0 lives on node 0 and its RAM is there: every access is local so far.
    CHECK(local > 0);

    // reset: the interval's figures go into since_start, the counters to zero.
    const json before = run(s, vendor("hot-pages"), {{"reset", true}})["return"];
    const u64 counted = before["accesses"]["local"].get<u64>() + before["accesses"]["remote"].get<u64>();
    const json after = run(s, vendor("hot-pages"))["return"];
    const u64 since = after["since_start"]["local"].get<u64>() + after["since_start"]["remote"].get<u64>();
    CHECK(since >= counted);
    CHECK(after["accesses"]["local"].get<u64>() + after["accesses"]["remote"].get<u64>() <= since - counted);
    if (const auto p = page_entry(after, kTouchedStore)) CHECK((*p)["total"].get<u64>() < 1000);

    // Errors: bad limit, bad types, unknown VM; the session goes on.
    CHECK(error_desc(run(s, vendor("hot-pages"), {{"limit", 0}})).find("between 1 and 4096") != std::string::npos);
    CHECK(error_desc(run(s, vendor("hot-pages"), {{"limit", 5000}})).find("between 1 and 4096") != std::string::npos);
    CHECK(error_desc(run(s, vendor("hot-pages"), {{"limit", "many"}})).find("expected: integer") != std::string::npos);
    CHECK(error_desc(run(s, vendor("hot-pages"), {{"reset", 1}})).find("expected: boolean") != std::string::npos);
    CHECK(error_desc(run(s, vendor("hot-pages"), {{"vm", "nope"}})).find("No VM named 'nope'") != std::string::npos);
    CHECK(run(s, "query-version").contains("return"));
}

TEST_CASE("page-migrate moves a hot page; numa and hot-pages see it on the new node", "[control][numa]") {
    ControlFixture f(2);
    auto s = negotiated(*f.commands);
    start_toucher(f, s);
    f.events->take();
    json numa = run(s, vendor("numa"), {{"vm", "t"}});
    REQUIRE(numa.contains("return"));
    REQUIRE(numa["return"]["nodes"].size() == 2);
    CHECK(numa["return"]["nodes"][0]["distances"] == json::array({10, numa["return"]["nodes"][0]["distances"][1]}));
    CHECK(numa["return"]["nodes"][0]["frames_in_use"].get<u64>() > 0);
    REQUIRE(numa["return"]["vms"].size() == 1);
    CHECK(numa["return"]["vms"][0]["vcpu_nodes"] == json::array({0}));
    const u64 on_node1_before = numa["return"]["vms"][0]["frames_per_node"][1];

    const json moved = run(s, vendor("page-migrate"), {{"vm", "t"}, {"gpa", kTouchedStore}, {"node", 1}});
    REQUIRE(moved == json{{"return", {{"node", 1}}}});
    const auto events = events_named(*f.events, "PAGE_MIGRATED");
    REQUIRE(events.size() == 1);
    CHECK(json::parse(events[0]) == json{{"vm", "t"}, {"gpa", kTouchedStore}, {"from", 0}, {"to", 1}});
    numa = run(s, vendor("numa"), {{"vm", "t"}});
    CHECK(numa["return"]["vms"][0]["frames_per_node"][1].get<u64>() == on_node1_before + 1);
    // The guest touches the page again from node 0: a remote access to its new frame.
    json hot;
    REQUIRE(eventually([&] {
        hot = run(s, vendor("hot-pages"), {{"vm", "t"}})["return"];
        const auto p = page_entry(hot, kTouchedStore);
        return p && (*p)["home"] == 1 && (*p)["counts"][0].get<u64>() > 0;
    }));
    CHECK(hot["accesses"]["remote"].get<u64>() > 0);
    CHECK(hot["vms"][0]["remote"].get<u64>() > 0);

    // Errors, each a GenericError with the page operation's words.
    const auto migrate_error = [&](json args) { return error_desc(run(s, vendor("page-migrate"), std::move(args))); };
    CHECK(migrate_error({{"vm", "t"}, {"gpa", kTouchedStore}, {"node", 1}}).find("on node 1 already") !=
          std::string::npos);
    CHECK(migrate_error({{"vm", "t"}, {"gpa", kTouchedStore}, {"node", 7}}).find("no node 7") != std::string::npos);
    CHECK(migrate_error({{"vm", "t"}, {"gpa", kTouchedStore + 8}, {"node", 0}}).find("not page-aligned") !=
          std::string::npos);
    CHECK(migrate_error({{"vm", "t"}, {"gpa", 0x1F020000}, {"node", 0}}).find("is not RAM") !=
          std::string::npos);  // UART
    CHECK(migrate_error({{"vm", "t"}, {"gpa", 1ull << 40}, {"node", 0}}).find("is not RAM") != std::string::npos);
    CHECK(migrate_error({{"vm", "t"}, {"gpa", -4096}, {"node", 0}}).find("negative") != std::string::npos);
    CHECK(migrate_error({{"vm", "nope"}, {"gpa", 0}, {"node", 0}}).find("No VM named") != std::string::npos);
    CHECK(migrate_error({{"vm", "t"}, {"gpa", 0}}).find("'node' is missing") != std::string::npos);
    CHECK(run(s, "query-version").contains("return"));
}

TEST_CASE("page-replicate then page-collapse, with events; replicated pages refuse migration", "[control][numa]") {
    ControlFixture f(2);
    auto s = negotiated(*f.commands);
    start_toucher(f, s);
    f.events->take();
    // The loaded page is only read: replicate it on both nodes.
    const json r = run(s, vendor("page-replicate"), {{"vm", "t"}, {"gpa", kTouchedLoad}});
    REQUIRE(r == json{{"return", {{"nodes", {0, 1}}}}});
    CHECK(events_named(*f.events, "PAGE_REPLICATED").size() == 1);
    CHECK(error_desc(run(s, vendor("page-replicate"), {{"vm", "t"}, {"gpa", kTouchedLoad}})).find("already") !=
          std::string::npos);
    CHECK(error_desc(run(s, vendor("page-migrate"), {{"vm", "t"}, {"gpa", kTouchedLoad}, {"node", 1}}))
              .find("replicated") != std::string::npos);
    const json numa = run(s, vendor("numa"))["return"];
    const json hot = run(s, vendor("hot-pages"), {{"limit", 4096}})["return"];
    if (const auto p = page_entry(hot, kTouchedLoad)) CHECK((*p)["state"] == "replicated");
    REQUIRE(numa["vms"].size() == 1);
    const u64 frames_before =
        numa["vms"][0]["frames_per_node"][0].get<u64>() + numa["vms"][0]["frames_per_node"][1].get<u64>();

    REQUIRE(run(s, vendor("page-collapse"), {{"vm", "t"}, {"gpa", kTouchedLoad}}) == json{{"return", json::object()}});
    const auto collapsed = events_named(*f.events, "PAGE_COLLAPSED");
    REQUIRE(collapsed.size() == 1);
    CHECK(json::parse(collapsed[0]) == json{{"vm", "t"}, {"gpa", kTouchedLoad}});
    const json after = run(s, vendor("numa"))["return"];
    CHECK(after["vms"][0]["frames_per_node"][0].get<u64>() + after["vms"][0]["frames_per_node"][1].get<u64>() ==
          frames_before - 1);
    CHECK(error_desc(run(s, vendor("page-collapse"), {{"vm", "t"}, {"gpa", kTouchedLoad}})).find("no replicas") !=
          std::string::npos);
    CHECK(error_desc(run(s, vendor("page-collapse"), {{"vm", "t"}, {"gpa", 0x1F000000}})).find("not RAM") !=
          std::string::npos);
}

TEST_CASE("page operations on a VM that does not run, or whose RAM cannot move", "[control][numa]") {
    ControlFixture f(2);
    auto s = negotiated(*f.commands);
    REQUIRE(run(s, vendor("vm-create"), {{"definition", f.idle_vm("bm")}}).contains("return"));
    REQUIRE(run(s, vendor("vm-create"), {{"definition", toucher_vm(f, "off")}, {"start", false}}).contains("return"));
    REQUIRE(eventually([&] { return !f.fleet->status("bm")->vcpu_nodes.empty(); }));
    // Bare-metal RAM is plain host memory, not machine frames.
    CHECK(error_desc(run(s, vendor("page-migrate"), {{"vm", "bm"}, {"gpa", 0x10000}, {"node", 1}}))
              .find("not in machine memory") != std::string::npos);
    for (const char* op : {"page-replicate", "page-collapse"})
        CHECK(error_desc(run(s, vendor(op), {{"vm", "off"}, {"gpa", 0}})).find("VM 'off' is not running") !=
              std::string::npos);
    CHECK(error_desc(run(s, vendor("vcpu-pin"), {{"vm", "off"}, {"vcpu", 0}, {"node", 1}})).find("is not running") !=
          std::string::npos);
    // numa lists only running VMs; memory names every running VM's figures.
    const json numa = run(s, vendor("numa"))["return"];
    CHECK(numa["vms"].size() == 1);
    CHECK(error_desc(run(s, vendor("numa"), {{"vm", "nope"}})).find("No VM named") != std::string::npos);
    const json mem = run(s, vendor("memory"), {{"vm", "bm"}})["return"];
    REQUIRE(mem["vms"].size() == 1);
    CHECK(mem["vms"][0]["name"] == "bm");
    CHECK(mem["vms"][0]["guest_pages"] == 16 * 256);
    CHECK(mem.contains("pages_shared"));
    CHECK(mem.contains("pages_sharing"));
    CHECK(mem["page_size"] == 4096);
    CHECK(error_desc(run(s, vendor("memory"), {{"vm", "nope"}})).find("No VM named") != std::string::npos);
}

TEST_CASE("vcpu-pin re-homes a running vCPU: its node, and the node its accesses count for", "[control][numa]") {
    ControlFixture f(2);
    auto s = negotiated(*f.commands);
    start_toucher(f, s);
    CHECK(error_desc(run(s, vendor("vcpu-pin"), {{"vm", "t"}, {"vcpu", 1}, {"node", 0}})).find("no vCPU 1") !=
          std::string::npos);
    CHECK(error_desc(run(s, vendor("vcpu-pin"), {{"vm", "t"}, {"vcpu", 0}, {"node", 2}})).find("no node 2") !=
          std::string::npos);
    // Counters zeroed first: from its next safe point (a WAIT wake-up) the vCPU
    // counts for node 1, as its flushed soft TLB refills there.
    REQUIRE(run(s, vendor("hot-pages"), {{"reset", true}}).contains("return"));
    REQUIRE(run(s, vendor("vcpu-pin"), {{"vm", "t"}, {"vcpu", 0}, {"node", 1}}) == json{{"return", json::object()}});
    CHECK(run(s, vendor("numa"))["return"]["vms"][0]["vcpu_nodes"] == json::array({1}));
    REQUIRE(eventually([&] {
        const json hot = run(s, vendor("hot-pages"))["return"];
        const auto p = page_entry(hot, kTouchedStore);
        return p && (*p)["counts"][1].get<u64>() > 0;
    }));
}

TEST_CASE("pages-migrate moves a batch and lists the pages it could not move", "[control][numa]") {
    ControlFixture f(2);
    auto s = negotiated(*f.commands);
    start_toucher(f, s);
    f.events->take();
    const json reply = run(s, vendor("pages-migrate"),
                           {{"vm", "t"}, {"gpas", {kTouchedStore, kTouchedLoad, 0x1F020000}}, {"node", 1}});
    REQUIRE(reply.contains("return"));
    CHECK(reply["return"]["node"] == 1);
    CHECK(reply["return"]["migrated"] == json::array({kTouchedStore, kTouchedLoad}));
    REQUIRE(reply["return"]["failed"].size() == 1);
    CHECK(reply["return"]["failed"][0]["gpa"] == 0x1F020000);
    CHECK(reply["return"]["failed"][0]["desc"].get<std::string>().find("is not RAM") != std::string::npos);
    const auto events = events_named(*f.events, "PAGES_MIGRATED");
    REQUIRE(events.size() == 1);
    CHECK(json::parse(events[0]) == json{{"vm", "t"}, {"to", 1}, {"gpas", {kTouchedStore, kTouchedLoad}}});
    const json hot = run(s, vendor("hot-pages"), {{"vm", "t"}})["return"];
    for (const auto gpa : {kTouchedStore, kTouchedLoad}) {
        const auto p = page_entry(hot, gpa);
        if (p) CHECK((*p)["home"] == 1);
    }
    // Bad batches: empty, too long, not integers; the session goes on.
    CHECK(error_desc(run(s, vendor("pages-migrate"), {{"vm", "t"}, {"gpas", json::array()}, {"node", 0}}))
              .find("1 to 1024") != std::string::npos);
    CHECK(error_desc(run(s, vendor("pages-migrate"),
                         {{"vm", "t"}, {"gpas", std::vector<u64>(1025, kTouchedStore)}, {"node", 0}}))
              .find("1 to 1024") != std::string::npos);
    CHECK(error_desc(run(s, vendor("pages-migrate"), {{"vm", "t"}, {"gpas", {"x"}}, {"node", 0}})).find("integers") !=
          std::string::npos);
    CHECK(run(s, "query-version").contains("return"));
}

TEST_CASE("resolve-addresses maps host addresses and vCPU threads to guest pages and nodes", "[control][numa]") {
    ControlFixture f(2);
    auto s = negotiated(*f.commands);
    start_toucher(f, s);
    REQUIRE(run(s, vendor("vcpu-pin"), {{"vm", "t"}, {"vcpu", 0}, {"node", 1}}).contains("return"));
    u64 store = 0, load = 0;
    int tid = 0;
    REQUIRE(f.fleet->with_running("t", [&](monitor::Vm& vm) {
        store = reinterpret_cast<uintptr_t>(vm.ram().host_page(GuestPhysAddr(kTouchedStore)));
        load = reinterpret_cast<uintptr_t>(vm.ram().host_page(GuestPhysAddr(kTouchedLoad)));
        tid = vm.vcpu_thread_id(0);
    }));
    REQUIRE(store != 0);
    REQUIRE(tid > 0);
    const auto mm = f.fleet->machine_memory();
    REQUIRE(mm);
    const auto frame = mm->frame_of(reinterpret_cast<const u8*>(store));
    REQUIRE(frame);
    int outside = 0;
    const json reply =
        run(s, vendor("resolve-addresses"),
            {{"samples",
              {{{"addr", store + 0x10}, {"tid", tid}},
               {{"addr", load}},                                                     // no tid
               {{"addr", load + 8}, {"tid", 1}},                                     // not a vCPU thread
               {{"addr", reinterpret_cast<uintptr_t>(&outside)}, {"tid", tid}}}}});  // not machine memory
    REQUIRE(reply.contains("return"));
    const json& r = reply["return"];
    CHECK(r["unresolved"] == 1);
    REQUIRE(r["pages"].size() == 3);
    CHECK(r["pages"][0] == json{{"vm", "t"},
                                {"gpa", kTouchedStore},
                                {"node", mm->node_of(*frame)},
                                {"state", "private"},
                                {"accessor_node", 1}});
    CHECK(r["pages"][1]["gpa"] == kTouchedLoad);
    CHECK_FALSE(r["pages"][1].contains("accessor_node"));
    CHECK(r["pages"][2]["gpa"] == kTouchedLoad);
    CHECK_FALSE(r["pages"][2].contains("accessor_node"));

    // Bad batches: empty, too long, not objects, bad or unknown fields; the session goes on.
    CHECK(error_desc(run(s, vendor("resolve-addresses"), {{"samples", json::array()}})).find("1 to 1024") !=
          std::string::npos);
    CHECK(error_desc(run(s, vendor("resolve-addresses"), {{"samples", json::array({{{"addr", 1}}})}})).empty());
    CHECK(error_desc(run(s, vendor("resolve-addresses"), {{"samples", std::vector<json>(1025, json{{"addr", store}})}}))
              .find("1 to 1024") != std::string::npos);
    CHECK(error_desc(run(s, vendor("resolve-addresses"), {{"samples", {1, 2}}})).find("array of objects") !=
          std::string::npos);
    CHECK(error_desc(run(s, vendor("resolve-addresses"), {{"samples", {{{"tid", tid}}}}})).find("{addr, tid?}") !=
          std::string::npos);
    CHECK(error_desc(run(s, vendor("resolve-addresses"), {{"samples", {{{"addr", "x"}}}}})).find("integer") !=
          std::string::npos);
    CHECK(error_desc(run(s, vendor("resolve-addresses"), {{"samples", {{{"addr", -1}}}}})).find("between") !=
          std::string::npos);
    CHECK(
        error_desc(run(s, vendor("resolve-addresses"), {{"samples", {{{"addr", 1}, {"tid", 0}}}}})).find("between 1") !=
        std::string::npos);
    CHECK(error_desc(run(s, vendor("resolve-addresses"), {{"samples", {{{"addr", 1}, {"cpu", 0}}}}}))
              .find("'cpu' is unexpected") != std::string::npos);
    CHECK(run(s, "query-version").contains("return"));
}
