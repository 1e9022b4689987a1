// Perf samples as page accesses: the ring parser on synthetic records (wrapped, truncated,
// garbage), the resolve-addresses reply, the merge of resolved samples into an interval's
// counts feeding the policy, and one whole daemon interval whose only accesses are samples,
// each against a scripted monitor on a real socket. The PMU itself is not exercised here:
// the build machines offer no hardware perf events (numad/README.md).
#include <linux/perf_event.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>

#include "numad/daemon.hpp"
#include "numad/monitor_api.hpp"
#include "numad/options.hpp"
#include "numad/perf_sampler.hpp"
#include "numad/policy.hpp"
#include "numad/sampled_pages.hpp"

using namespace disco::numad;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// A ring of `size` bytes and a writer that appends records at head, wrapping.
struct Ring {
    std::vector<unsigned char> bytes;
    std::uint64_t head = 0;
    explicit Ring(std::size_t size, std::uint64_t start = 0) : bytes(size, 0xAA), head(start) {}
    void put(const void* from, std::size_t n) {
        const auto* b = static_cast<const unsigned char*>(from);
        for (std::size_t i = 0; i < n; ++i) bytes[(head + i) % bytes.size()] = b[i];
        head += n;
    }
    void header(std::uint32_t type, std::uint16_t size) {
        perf_event_header h{};
        h.type = type;
        h.size = size;
        put(&h, sizeof(h));
    }
    void sample(std::uint32_t tid, std::uint64_t addr) {
        header(PERF_RECORD_SAMPLE, 24);
        const std::uint32_t ids[2] = {77, tid};
        put(ids, sizeof(ids));
        put(&addr, sizeof(addr));
    }
    void other(std::uint32_t type, std::uint16_t size) {  // any record the sampler skips
        header(type, size);
        std::vector<unsigned char> body(size - sizeof(perf_event_header), 0x5C);
        put(body.data(), body.size());
    }
};

/// A scripted monitor on a unix socket: greets, answers qmp_capabilities, hands every other
/// request to `answer` (its return value is the reply's "return"), and records the requests.
struct ScriptedMonitor {
    fs::path dir;
    std::string socket;
    int listen_fd = -1;
    std::vector<json> requests;
    std::thread thread;

    explicit ScriptedMonitor(std::function<json(const std::string&, const json&)> answer) {
        char tmpl[] = "/tmp/numad-perf-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        socket = (dir / "qmp.sock").string();
        listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket.c_str());
        REQUIRE(::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
        REQUIRE(::listen(listen_fd, 1) == 0);
        thread = std::thread([this, answer = std::move(answer)] {
            const int fd = ::accept(listen_fd, nullptr, nullptr);
            const auto send = [&](const json& j) {
                const std::string m = j.dump() + "\r\n";
                ::send(fd, m.data(), m.size(), MSG_NOSIGNAL);
            };
            send(json::parse(
                R"({"QMP": {"version": {"qemu": {"major": 0, "minor": 1, "micro": 0}, "package": "disco 0.1.0"}, "capabilities": []}})"));
            std::string pending;
            for (;;) {
                const auto eol = pending.find('\n');
                if (eol == std::string::npos) {
                    char buf[65536];
                    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
                    if (n <= 0) break;
                    pending.append(buf, static_cast<std::size_t>(n));
                    continue;
                }
                const json req = json::parse(pending.substr(0, eol));
                pending.erase(0, eol + 1);
                requests.push_back(req);
                const std::string cmd = req.at("execute");
                const json args = req.value("arguments", json::object());
                send(
                    {{"return", cmd == "qmp_capabilities" ? json::object() : answer(cmd, args)}, {"id", req.at("id")}});
            }
            ::close(fd);
        });
    }
    ~ScriptedMonitor() {
        if (thread.joinable()) thread.join();
        ::close(listen_fd);
        fs::remove_all(dir);
    }
    void join() { thread.join(); }
    std::vector<std::string> commands() const {
        std::vector<std::string> out;
        for (const auto& r : requests) out.push_back(r.at("execute"));
        return out;
    }
};

/// The scripted monitor's machine: page 0x5000 of "web" is the frame at host 0x7f0000100000
/// (node 0); vCPU threads 101 and 102 are homed on nodes 0 and 1; any other address is not
/// machine memory.
constexpr std::uint64_t page_host = 0x7f0000100000;
json resolve(const json& args) {
    json pages = json::array();
    std::uint64_t unresolved = 0;
    for (const json& s : args.at("samples")) {
        const std::uint64_t addr = s.at("addr");
        if (addr < page_host || addr >= page_host + 4096) {
            ++unresolved;
            continue;
        }
        json p = {{"vm", "web"}, {"gpa", 0x5000}, {"node", 0}, {"state", "private"}};
        if (s.contains("tid") && (s["tid"] == 101 || s["tid"] == 102)) p["accessor_node"] = s["tid"] == 101 ? 0 : 1;
        pages.push_back(p);
    }
    return {{"pages", pages}, {"unresolved", unresolved}};
}

json no_hot_pages() {
    return {{"nodes", 2},
            {"simulated", true},
            {"accesses", {{"local", 0}, {"remote", 0}}},
            {"since_start", {{"local", 0}, {"remote", 0}}},
            {"vms", {{{"name", "web"}, {"local", 0}, {"remote", 0}}}},
            {"pages", json::array()}};
}

/// Five samples of the page by node 1's vCPU, one by node 0's, and some the monitor cannot place.
std::vector<PerfSample> mostly_node1() {
    std::vector<PerfSample> s;
    for (int i = 0; i < 5; ++i) s.push_back({page_host + 64 * static_cast<unsigned>(i), 102});
    s.push_back({page_host + 8, 101});
    s.push_back({0x1234000, 102});       // outside machine memory
    s.push_back({page_host + 16, 999});  // no vCPU's thread
    return s;
}

}  // namespace

TEST_CASE("the perf ring parser reads samples, skips other records and wraps", "[numad][perf]") {
    Ring ring(256, 200);  // starts near the end: the third record wraps
    ring.sample(11, 0x1000);
    ring.other(PERF_RECORD_LOST, 24);
    ring.sample(12, 0x2008);  // bytes 248..271: across the end
    ring.sample(13, 0);       // no data address: not a sample for us
    ring.other(PERF_RECORD_THROTTLE, 32);
    ring.sample(14, 0x3010);
    std::vector<PerfSample> out;
    const RingParse r = parse_perf_ring(ring.bytes, 200, ring.head, out);
    CHECK(r.tail == ring.head);
    CHECK(r.records == 6);
    CHECK(r.malformed == 0);
    CHECK(out == std::vector<PerfSample>{{0x1000, 11}, {0x2008, 12}, {0x3010, 14}});

    // Nothing new: nothing read.
    out.clear();
    CHECK(parse_perf_ring(ring.bytes, ring.head, ring.head, out).tail == ring.head);
    CHECK(out.empty());
}

TEST_CASE("the perf ring parser survives truncated and garbage records", "[numad][perf]") {
    std::vector<PerfSample> out;
    SECTION("a record longer than what was written: the rest is dropped") {
        Ring ring(256);
        ring.sample(1, 0x1000);
        ring.sample(2, 0x2000);
        const RingParse r = parse_perf_ring(ring.bytes, 0, ring.head - 4, out);
        CHECK(r.tail == ring.head - 4);
        CHECK(r.malformed == 1);
        CHECK(out == std::vector<PerfSample>{{0x1000, 1}});
    }
    SECTION("a head inside a header") {
        Ring ring(256);
        ring.sample(1, 0x1000);
        const RingParse r = parse_perf_ring(ring.bytes, 0, 28, out);
        CHECK(r.tail == 28);
        CHECK(r.malformed == 1);
        CHECK(out.size() == 1);
    }
    SECTION("a zero-sized record does not loop") {
        Ring ring(256);
        ring.header(PERF_RECORD_SAMPLE, 0);
        ring.sample(1, 0x1000);
        const RingParse r = parse_perf_ring(ring.bytes, 0, ring.head, out);
        CHECK(r.tail == ring.head);
        CHECK(r.malformed == 1);
        CHECK(out.empty());
    }
    SECTION("sizes below a header or not 8-byte multiples") {
        for (std::uint16_t size : {3, 7, 12, 27}) {
            Ring ring(256);
            ring.header(PERF_RECORD_SAMPLE, size);
            ring.sample(1, 0x1000);
            out.clear();
            const RingParse r = parse_perf_ring(ring.bytes, 0, ring.head, out);
            CHECK(r.tail == ring.head);
            CHECK(r.malformed == 1);
            CHECK(out.empty());
        }
    }
    SECTION("a sample too short for TID and ADDR is skipped; the next one is read") {
        Ring ring(256);
        ring.other(PERF_RECORD_SAMPLE, 16);
        ring.sample(5, 0x5000);
        const RingParse r = parse_perf_ring(ring.bytes, 0, ring.head, out);
        CHECK(r.tail == ring.head);
        CHECK(r.malformed == 1);
        CHECK(out == std::vector<PerfSample>{{0x5000, 5}});
    }
    SECTION("a head more than the ring ahead, behind the tail, or a ring that is not one") {
        Ring ring(256);
        ring.sample(1, 0x1000);
        CHECK(parse_perf_ring(ring.bytes, 0, 257, out).tail == 257);
        CHECK(parse_perf_ring(ring.bytes, 100, 50, out).tail == 50);
        CHECK(parse_perf_ring(std::span(ring.bytes).first(200), 0, 24, out).tail == 24);
        CHECK(parse_perf_ring({}, 0, 24, out).tail == 24);
        CHECK(out.empty());
    }
    SECTION("random bytes: always ends at head") {
        std::mt19937_64 rng(7);
        std::vector<unsigned char> bytes(512);
        for (int round = 0; round < 2000; ++round) {
            for (auto& b : bytes) b = static_cast<unsigned char>(rng());
            if (round % 2) {  // plausible headers now and then
                for (std::size_t at = 0; at + 8 <= bytes.size(); at += 8 * (1 + rng() % 4)) {
                    bytes[at + 4] = PERF_RECORD_SAMPLE;
                    bytes[at + 5] = bytes[at + 7] = 0;
                    bytes[at + 6] = static_cast<unsigned char>(8 * (rng() % 6));
                }
            }
            const std::uint64_t tail = rng() % 100000, head = tail + rng() % 700;
            out.clear();
            const RingParse r = parse_perf_ring(bytes, tail, head, out);
            CHECK(r.tail == head);
        }
    }
}

TEST_CASE("a resolve-addresses reply is read in full or refused", "[numad][perf]") {
    auto r = parse_resolved(json::parse(
        R"({"pages": [{"vm": "web", "gpa": 20480, "node": 1, "state": "shared", "accessor_node": 0},
                      {"vm": "db", "gpa": 4096, "node": 0, "state": "private"}], "unresolved": 3})"));
    REQUIRE(r);
    REQUIRE(r->pages.size() == 2);
    CHECK(r->pages[0].state == PageState::shared);
    CHECK(r->pages[0].accessor_node == 0u);
    CHECK_FALSE(r->pages[1].accessor_node);
    CHECK(r->unresolved == 3);
    for (const char* bad : {R"({"pages": []})", R"({"unresolved": 0})", R"({"pages": {}, "unresolved": 0})",
                            R"({"pages": [{"vm": "w", "gpa": -1, "node": 0, "state": "private"}], "unresolved": 0})",
                            R"({"pages": [{"vm": "w", "gpa": 0, "node": 0, "state": "odd"}], "unresolved": 0})",
                            R"({"pages": [{"vm": "w", "gpa": 0, "node": 0, "state": "private", "accessor_node": "1"}],
                               "unresolved": 0})"}) {
        auto p = parse_resolved(json::parse(bad));
        REQUIRE_FALSE(p);
        CHECK(p.error().kind == ClientError::Kind::protocol);
    }
}

TEST_CASE("resolved samples merge into the counts and move a page the counters never saw", "[numad][perf]") {
    ScriptedMonitor monitor([](const std::string& cmd, const json& args) {
        return cmd == "__com.disco-project_resolve-addresses" ? resolve(args) : json::object();
    });
    auto connected = MonitorClient::connect(monitor.socket);
    REQUIRE(connected);
    std::optional<MonitorClient> client(std::move(*connected));
    HotPageBatch batch;
    batch.nodes = 2;
    // A page the counters did see, on node 1: samples add to its counts.
    batch.pages.push_back(HotPage{"web", 0x9000, 1, PageState::private_page, false, {10, 0}, 10});
    auto merged = add_sampled_accesses(*client, batch, mostly_node1(), 32);
    REQUIRE(merged);
    CHECK(merged->samples == 8);
    CHECK(merged->unresolved == 1);
    CHECK(merged->no_accessor == 1);
    CHECK(merged->merged == 6);
    CHECK(merged->added_pages == 1);
    REQUIRE(batch.pages.size() == 2);
    const HotPage& sampled = batch.pages[1];
    CHECK(sampled.gpa == 0x5000);
    CHECK(sampled.home == 0);
    CHECK(sampled.written);
    CHECK(sampled.counts == std::vector<std::uint32_t>{32, 160});
    CHECK(sampled.total == 192);
    CHECK(batch.pages[0].counts == std::vector<std::uint32_t>{10, 0});  // not sampled: as it was

    Policy policy{PolicyParams{}};
    const auto decisions = policy.decide(batch, 1);
    const auto it = std::find_if(decisions.begin(), decisions.end(), [](const Decision& d) { return d.gpa == 0x5000; });
    REQUIRE(it != decisions.end());
    CHECK(it->action == Action::migrate);
    CHECK(it->to == 1);

    // More than one request's worth goes in batches of 1024; a lighter weight keeps it cold.
    std::vector<PerfSample> many(1500, PerfSample{page_host, 101});
    HotPageBatch other;
    other.nodes = 2;
    merged = add_sampled_accesses(*client, other, many, 1);
    REQUIRE(merged);
    CHECK(merged->samples == 1500);
    REQUIRE(other.pages.size() == 1);
    CHECK(other.pages[0].counts == std::vector<std::uint32_t>{1500, 0});
    // Saturating counts.
    merge_resolved(other, {ResolvedPage{"web", 0x5000, 0, PageState::private_page, 0u}}, 0xFFFFFFFFu, *merged);
    CHECK(other.pages[0].counts[0] == 0xFFFFFFFFu);
    // An accessor beyond the batch's nodes is not counted.
    merge_resolved(other, {ResolvedPage{"web", 0x5000, 0, PageState::private_page, 2u}}, 1, *merged);
    CHECK(other.pages[0].counts[1] == 0);
    client.reset();  // the monitor's script ends with the connection
    monitor.join();
    std::vector<std::size_t> sizes;
    for (const auto& r : monitor.requests)
        if (r.at("execute") == "__com.disco-project_resolve-addresses")
            sizes.push_back(r["arguments"]["samples"].size());
    CHECK(sizes == std::vector<std::size_t>{8, 1024, 476});
    CHECK(monitor.requests[1]["arguments"]["samples"][7] == json{{"addr", page_host + 16}, {"tid", 999}});
}

TEST_CASE("a daemon interval migrates a page that only samples show", "[numad][perf][daemon]") {
    ScriptedMonitor monitor([](const std::string& cmd, const json& args) -> json {
        if (cmd == "__com.disco-project_hot-pages") return no_hot_pages();
        if (cmd == "__com.disco-project_resolve-addresses") return resolve(args);
        if (cmd == "__com.disco-project_pages-migrate")
            return {{"node", args.at("node")}, {"migrated", args.at("gpas")}, {"failed", json::array()}};
        json nodes = json::array();
        for (int n = 0; n < 2; ++n)
            nodes.push_back({{"node", n},
                             {"frames_total", 100},
                             {"frames_free", 50},
                             {"frames_in_use", 50},
                             {"distances", n == 0 ? json{10, 20} : json{20, 10}}});
        return {{"simulated", true}, {"nodes", nodes}, {"vms", json::array()}};  // numa
    });
    Options o;
    o.socket = monitor.socket;
    o.once = true;
    o.log_file = (monitor.dir / "decisions.log").string();
    o.status_file = (monitor.dir / "status.json").string();
    int drained = 0;
    const int status = run_daemon(o, [&] {
        ++drained;
        return mostly_node1();
    });
    monitor.join();
    CHECK(status == 0);
    CHECK(drained == 1);
    CHECK(monitor.commands() ==
          std::vector<std::string>{"qmp_capabilities", "__com.disco-project_numa", "__com.disco-project_hot-pages",
                                   "__com.disco-project_resolve-addresses", "__com.disco-project_pages-migrate"});
    CHECK(monitor.requests[4].at("arguments") == json{{"vm", "web"}, {"gpas", {0x5000}}, {"node", 1}});
    std::ifstream in(o.log_file);
    const std::string log{std::istreambuf_iterator<char>(in), {}};
    CHECK(log.find("action=migrate vm=web gpa=0x5000 from=0 to=1 counts=32,160 total=192 result=done") !=
          std::string::npos);
}

TEST_CASE("--sample-weight: default, flag, config key and range", "[numad][perf][options]") {
    const auto parse = [](std::vector<std::string> args) {
        args.insert(args.begin(), "disco-numad");
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        return parse_command_line(static_cast<int>(argv.size()), argv.data());
    };
    CHECK(parse({"--socket", "s"})->options.sample_weight == 32);
    CHECK(parse({"--socket", "s", "--sample-weight", "5"})->options.sample_weight == 5);
    CHECK_FALSE(parse({"--socket", "s", "--sample-weight", "0"}));
    CHECK_FALSE(parse({"--socket", "s", "--sample-weight", "1000001"}));
    Options o;
    REQUIRE(apply_config(R"({"sample-weight": 7})", o, {}));
    CHECK(o.sample_weight == 7);
}
