// The daemon's other parts: options and config file, the status file and its table, the
// decisions log line, stock-numad detection on a fake /proc, and one whole interval of the
// daemon against a scripted monitor on a real socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "numad/daemon.hpp"
#include "numad/decision_log.hpp"
#include "numad/options.hpp"
#include "numad/status_file.hpp"
#include "numad/stock_numad.hpp"

using namespace disco::numad;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

disco::Result<Invocation, disco::Error> parse(std::vector<std::string> args) {
    args.insert(args.begin(), "disco-numad");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

struct TempDir {
    fs::path path;
    TempDir() {
        char dir[] = "/tmp/numad-test-XXXXXX";
        REQUIRE(mkdtemp(dir) != nullptr);
        path = dir;
    }
    ~TempDir() { fs::remove_all(path); }
    void write(const std::string& name, const std::string& text) {
        fs::create_directories((path / name).parent_path());
        std::ofstream(path / name) << text;
    }
};

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("options: defaults, flags and ranges", "[numad][options]") {
    auto inv = parse({"--socket", "/run/disco/qmp.sock"});
    REQUIRE(inv);
    CHECK(inv->mode == Mode::run);
    CHECK(inv->options.interval_ms == 1000);
    CHECK(inv->options.batch == 256);
    CHECK(inv->options.policy.hot_threshold == 128);

    inv = parse({"--socket", "s", "--threshold", "50", "--dry-run", "--dominant-share", "0.9", "--batch", "4096"});
    REQUIRE(inv);
    CHECK(inv->options.policy.hot_threshold == 50);
    CHECK(inv->options.dry_run);
    CHECK(inv->options.policy.dominant_share == 0.9);

    for (std::vector<std::string> bad :
         std::vector<std::vector<std::string>>{{},
                                               {"--socket", "s", "--batch", "0"},
                                               {"--socket", "s", "--batch", "4097"},
                                               {"--socket", "s", "--interval-ms", "abc"},
                                               {"--socket", "s", "--interval-ms", "-5"},
                                               {"--socket", "s", "--dominant-share", "0.4"},
                                               {"--socket", "s", "--threshold", "0"},
                                               {"--socket", "s", "--bogus"},
                                               {"--socket", "s", "--json"},
                                               {"--socket", "s", "--config", "/nonexistent.json"}}) {
        auto r = parse(bad);
        CHECK_FALSE(r);
        if (!r) CHECK(r.error().message.find('\n') == std::string::npos);
    }
    CHECK(parse({"--status"})->mode == Mode::status);
    CHECK(parse({"--help"})->mode == Mode::help);
}

TEST_CASE("options: the config file, with flags winning", "[numad][options]") {
    TempDir dir;
    dir.write("numad.json", R"({"socket": "/x.sock", "threshold": 64, "freeze-intervals": 0, "dry-run": true})");
    const std::string file = (dir.path / "numad.json").string();
    auto inv = parse({"--config", file, "--threshold", "99"});
    REQUIRE(inv);
    CHECK(inv->options.socket == "/x.sock");
    CHECK(inv->options.policy.hot_threshold == 99);
    CHECK(inv->options.policy.freeze_intervals == 0);
    CHECK(inv->options.dry_run);

    Options o;
    CHECK_FALSE(apply_config(R"({"threshhold": 1})", o, {}));
    CHECK_FALSE(apply_config(R"({"threshold": -1})", o, {}));
    CHECK_FALSE(apply_config(R"({"threshold": "1"})", o, {}));
    CHECK_FALSE(apply_config(R"([1])", o, {}));
    CHECK_FALSE(apply_config("{", o, {}));
    dir.write("bad.json", R"({"batch": 0, "socket": "s"})");
    CHECK_FALSE(parse({"--config", (dir.path / "bad.json").string()}));
}

TEST_CASE("the status file round-trips and prints as a table", "[numad][status]") {
    TempDir dir;
    DaemonStatus s;
    s.pid = 42;
    s.updated = 1000;
    s.interval = 7;
    s.connected = true;
    s.socket = "/run/disco/qmp.sock";
    s.access_source = "monitor soft-TLB fill counters";
    s.topology = "2 simulated nodes: node 0, node 1";
    s.cpu_user_s = 0.25;
    s.vms.push_back(VmFigures{"web", 780, 220, 90, 10, 12, 3, 1, 2});
    const std::string path = (dir.path / "sub" / "status.json").string();
    REQUIRE(write_status(path, s));
    std::string raw;
    auto back = read_status(path, &raw);
    REQUIRE(back);
    CHECK(json::parse(raw).at("vms")[0].at("local_ratio") == Approx(0.78));
    CHECK(back->vms.size() == 1);
    CHECK(back->vms[0].migrations == 12);
    const std::string table = format_status(*back, 1005);
    CHECK(table.find("updated 5s ago") != std::string::npos);
    CHECK(table.find("78.0") != std::string::npos);  // since start
    CHECK(table.find("90.0") != std::string::npos);  // last interval
    CHECK(table.find("0.25s user") != std::string::npos);
    CHECK_FALSE(read_status((dir.path / "none.json").string()));
    dir.write("junk.json", "{}");
    CHECK_FALSE(read_status((dir.path / "junk.json").string()));
}

TEST_CASE("a decisions log line names everything", "[numad][log]") {
    Decision d;
    d.action = Action::migrate;
    d.reason = Reason::dominant_remote;
    d.interval = 12;
    d.vm = "web";
    d.gpa = 0x3f2000;
    d.from = 0;
    d.to = 1;
    d.counts = {3, 250};
    d.total = 253;
    d.dominant_node = 1;
    d.dominant_share = 250.0 / 253.0;
    CHECK(format_decision(d, "done") ==
          "interval=12 action=migrate vm=web gpa=0x3f2000 from=0 to=1 counts=3,250 total=253 result=done "
          "reason=\"node 1 made 99% of 253 accesses\"");
    CHECK(format_decision(d, "refused: no such page").find("result=\"refused: no such page\"") != std::string::npos);
}

TEST_CASE("the stock numad is found by comm or by a live pidfile", "[numad][stock]") {
    TempDir proc;
    proc.write("1/comm", "systemd\n");
    proc.write("77/comm", "numad-ish\n");
    proc.write("self/comm", "numad\n");  // not a pid folder
    const std::string pidfile = (proc.path / "numad.pid").string();
    CHECK_FALSE(find_stock_numad(proc.path.string(), pidfile));
    proc.write("4242/comm", "numad\n");
    auto found = find_stock_numad(proc.path.string(), pidfile);
    REQUIRE(found);
    CHECK(*found == 4242);
    const std::string warning = stock_numad_warning(4242, 99);
    CHECK(warning.find("systemctl disable --now numad") != std::string::npos);
    CHECK(warning.find("numad -x 99") != std::string::npos);
}

TEST_CASE("one daemon interval against a scripted monitor migrates and logs", "[numad][daemon]") {
    TempDir dir;
    const std::string sock = (dir.path / "qmp.sock").string();
    const int listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock.c_str());
    REQUIRE(::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(listen_fd, 1) == 0);
    std::vector<json> requests;
    std::thread monitor([&] {
        const int fd = ::accept(listen_fd, nullptr, nullptr);
        std::string pending;
        auto send = [&](const json& j) {
            const std::string m = j.dump() + "\r\n";
            ::send(fd, m.data(), m.size(), MSG_NOSIGNAL);
        };
        send(json::parse(
            R"({"QMP": {"version": {"qemu": {"major": 0, "minor": 1, "micro": 0}, "package": "disco 0.1.0"}, "capabilities": []}})"));
        for (;;) {
            auto eol = pending.find('\n');
            if (eol == std::string::npos) {
                char buf[4096];
                const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
                if (n <= 0) break;
                pending.append(buf, static_cast<std::size_t>(n));
                continue;
            }
            const json req = json::parse(pending.substr(0, eol));
            pending.erase(0, eol + 1);
            requests.push_back(req);
            const std::string cmd = req.at("execute");
            json ret = json::object();
            if (cmd == "__com.disco-project_numa") {
                ret = {{"simulated", true},
                       {"nodes",
                        {{{"node", 0},
                          {"frames_total", 100},
                          {"frames_free", 50},
                          {"frames_in_use", 50},
                          {"distances", {10, 20}}},
                         {{"node", 1},
                          {"frames_total", 100},
                          {"frames_free", 50},
                          {"frames_in_use", 50},
                          {"distances", {20, 10}}}}},
                       {"vms", json::array()}};
            } else if (cmd == "__com.disco-project_hot-pages") {
                ret = {{"nodes", 2},
                       {"simulated", true},
                       {"accesses", {{"local", 60}, {"remote", 540}}},
                       {"since_start", {{"local", 60}, {"remote", 540}}},
                       {"vms", {{{"name", "web"}, {"local", 60}, {"remote", 540}}}},
                       {"pages",
                        {{{"vm", "web"},
                          {"gpa", 0x7000},
                          {"home", 0},
                          {"state", "private"},
                          {"written", true},
                          {"counts", {0, 500}},
                          {"total", 500}},
                         {{"vm", "web"},
                          {"gpa", 0x9000},
                          {"home", 0},
                          {"state", "private"},
                          {"written", false},
                          {"counts", {60, 40}},
                          {"total", 100}}}}};
            } else if (cmd == "__com.disco-project_pages-migrate") {
                ret = {{"node", req.at("arguments").at("node")},
                       {"migrated", req.at("arguments").at("gpas")},
                       {"failed", json::array()}};
            }
            send({{"return", ret}, {"id", req.at("id")}});
        }
        ::close(fd);
    });
    Options o;
    o.socket = sock;
    o.once = true;
    o.log_file = (dir.path / "decisions.log").string();
    o.status_file = (dir.path / "status.json").string();
    const int status = run_daemon(o);
    monitor.join();
    ::close(listen_fd);
    CHECK(status == 0);
    std::vector<std::string> commands;
    for (const auto& r : requests) commands.push_back(r.at("execute"));
    CHECK(commands == std::vector<std::string>{"qmp_capabilities", "__com.disco-project_numa",
                                               "__com.disco-project_hot-pages", "__com.disco-project_pages-migrate"});
    CHECK(requests[2].at("arguments") == json{{"limit", 256}, {"reset", true}});
    CHECK(requests[3].at("arguments") == json{{"vm", "web"}, {"gpas", {0x7000}}, {"node", 1}});
    const std::string log = read_file(dir.path / "decisions.log");
    CHECK(log.find("interval=1 action=migrate vm=web gpa=0x7000 from=0 to=1 counts=0,500 total=500 result=done") !=
          std::string::npos);
    CHECK(log.find("0x9000") == std::string::npos);  // cold (100 < 128): no line
    auto st = read_status(o.status_file);
    REQUIRE(st);
    CHECK(st->interval == 1);
    REQUIRE(st->vms.size() == 1);
    CHECK(st->vms[0].migrations == 1);
    CHECK(st->vms[0].local == 60);
    CHECK(st->topology == "2 simulated nodes: node 0, node 1");
}

TEST_CASE("with --once, a monitor that is not there ends the daemon with status 1", "[numad][daemon]") {
    TempDir dir;
    Options o;
    o.socket = (dir.path / "absent.sock").string();
    o.once = true;
    o.status_file = (dir.path / "status.json").string();
    CHECK(run_daemon(o) == 1);
}
