// The QMP client (numad/monitor_client.hpp) against a real unix-socket server run by the test:
// a small scripted server that speaks the monitor's framing (greeting, CRLF after every
// message), so that greeting, negotiation, event skipping, errors, size bounds, timeouts and a
// server that hangs up are checked on a real socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "numad/monitor_api.hpp"
#include "numad/monitor_client.hpp"

using namespace disco::numad;
using json = nlohmann::json;

namespace {

const char* greeting =
    R"({"QMP": {"version": {"qemu": {"major": 0, "minor": 1, "micro": 0}, "package": "disco 0.1.0"}, "capabilities": []}})";

/// One connection's server side.
struct Peer {
    int fd;
    std::string pending;

    void send(const std::string& text) {
        const std::string msg = text + "\r\n";
        REQUIRE(::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(msg.size()));
    }
    /// The next request line, parsed; null when the client hung up.
    json receive() {
        for (;;) {
            if (auto eol = pending.find('\n'); eol != std::string::npos) {
                json j = json::parse(pending.substr(0, eol));
                pending.erase(0, eol + 1);
                return j;
            }
            char buf[4096];
            const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
            if (n <= 0) return nullptr;
            pending.append(buf, static_cast<std::size_t>(n));
        }
    }
    /// Greets, and answers the negotiation as the monitor does.
    void negotiate() {
        send(greeting);
        const json req = receive();
        REQUIRE(req.at("execute") == "qmp_capabilities");
        send(json{{"return", json::object()}, {"id", req.at("id")}}.dump());
    }
};

/// Listens on a fresh socket and runs `script` on the first connection, in a thread.
class ScriptedServer {
public:
    explicit ScriptedServer(std::function<void(Peer&)> script) {
        char dir[] = "/tmp/numad-test-XXXXXX";
        REQUIRE(mkdtemp(dir) != nullptr);
        dir_ = dir;
        path_ = dir_ + "/qmp.sock";
        listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(listen_fd_ >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
        REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
        REQUIRE(::listen(listen_fd_, 4) == 0);
        thread_ = std::thread([this, script = std::move(script)] {
            const int fd = ::accept(listen_fd_, nullptr, nullptr);
            if (fd < 0) return;
            Peer peer{fd, {}};
            script(peer);
            ::close(fd);
        });
    }
    ~ScriptedServer() {
        ::shutdown(listen_fd_, SHUT_RDWR);
        thread_.join();
        ::close(listen_fd_);
        ::unlink(path_.c_str());
        ::rmdir(dir_.c_str());
    }
    const std::string& path() const { return path_; }

private:
    std::string dir_, path_;
    int listen_fd_ = -1;
    std::thread thread_;
};

ClientOptions quick() {
    ClientOptions o;
    o.timeout = std::chrono::milliseconds(1000);
    return o;
}

}  // namespace

TEST_CASE("the client reads the greeting, negotiates, and gets a reply by id", "[numad][client]") {
    ScriptedServer server([](Peer& peer) {
        peer.negotiate();
        const json req = peer.receive();
        CHECK(req.at("execute") == "query-status");
        CHECK_FALSE(req.contains("arguments"));
        peer.send(json{{"return", {{"running", true}}}, {"id", req.at("id")}}.dump());
        peer.receive();  // until the client hangs up
    });
    auto client = MonitorClient::connect(server.path(), quick());
    REQUIRE(client);
    CHECK(client->server_package() == "disco 0.1.0");
    CHECK(client->peer_pid() == getpid());
    auto r = client->execute("query-status");
    REQUIRE(r);
    CHECK(r->at("running") == true);
}

TEST_CASE("events and replies to other ids are skipped", "[numad][client]") {
    ScriptedServer server([](Peer& peer) {
        peer.negotiate();
        const json req = peer.receive();
        CHECK(req.at("arguments") == json{{"vm", "web"}});
        peer.send(
            R"({"event":"__com.disco-project_VM_STATE","data":{"vm":"web"},"timestamp":{"seconds":1,"microseconds":2}})");
        peer.send(json{{"return", "stale"}, {"id", 999}}.dump());
        peer.send("");  // a blank line between messages
        peer.send(R"({"event":"STOP","timestamp":{"seconds":1,"microseconds":2}})");
        peer.send(json{{"return", "mine"}, {"id", req.at("id")}}.dump());
        peer.receive();
    });
    auto client = MonitorClient::connect(server.path(), quick());
    REQUIRE(client);
    auto r = client->execute("x", {{"vm", "web"}});
    REQUIRE(r);
    CHECK(*r == "mine");
    CHECK(client->events_skipped() == 2);
}

TEST_CASE("an error reply is a command error and the connection stays usable", "[numad][client]") {
    ScriptedServer server([](Peer& peer) {
        peer.negotiate();
        json req = peer.receive();
        peer.send(
            json{{"error", {{"class", "GenericError"}, {"desc", "No VM named 'x'"}}}, {"id", req.at("id")}}.dump());
        req = peer.receive();
        peer.send(json{{"return", {{"node", 1}}}, {"id", req.at("id")}}.dump());
        peer.receive();
    });
    auto client = MonitorClient::connect(server.path(), quick());
    REQUIRE(client);
    auto r = migrate_page(*client, "x", 0x1000, 1);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ClientError::Kind::command);
    CHECK(r.error().error_class == "GenericError");
    CHECK(r.error().message.find("No VM named 'x'") != std::string::npos);
    CHECK(client->connected());
    auto ok = migrate_page(*client, "web", 0x1000, 1);
    REQUIRE(ok);
    CHECK(*ok == 1);
}

TEST_CASE("a socket that does not greet with QMP is refused", "[numad][client]") {
    ScriptedServer server([](Peer& peer) {
        peer.send(R"({"hello": 1})");
        peer.receive();
    });
    auto client = MonitorClient::connect(server.path(), quick());
    REQUIRE_FALSE(client);
    CHECK(client.error().kind == ClientError::Kind::protocol);
}

TEST_CASE("a message over the size bound is refused and the connection dropped", "[numad][client]") {
    ScriptedServer server([](Peer& peer) {
        peer.negotiate();
        const json req = peer.receive();
        peer.send(json{{"return", std::string(100000, 'x')}, {"id", req.at("id")}}.dump());
        peer.receive();
    });
    ClientOptions o = quick();
    o.max_message = 4096;
    auto client = MonitorClient::connect(server.path(), o);
    REQUIRE(client);
    auto r = client->execute("big");
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ClientError::Kind::too_large);
    CHECK_FALSE(client->connected());
}

TEST_CASE("a server that closes the connection mid-request gives a closed error", "[numad][client]") {
    ScriptedServer server([](Peer& peer) {
        peer.negotiate();
        peer.receive();  // then hang up without a reply
    });
    auto client = MonitorClient::connect(server.path(), quick());
    REQUIRE(client);
    auto r = client->execute("query-status");
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ClientError::Kind::closed);
    CHECK_FALSE(client->connected());
    auto again = client->execute("query-status");
    CHECK(again.error().kind == ClientError::Kind::closed);
}

TEST_CASE("a server that never answers gives a timeout", "[numad][client]") {
    ScriptedServer server([](Peer& peer) {
        peer.negotiate();
        peer.receive();
        peer.receive();  // silent until the client gives up and hangs up
    });
    ClientOptions o;
    o.timeout = std::chrono::milliseconds(200);
    auto client = MonitorClient::connect(server.path(), o);
    REQUIRE(client);
    const auto start = std::chrono::steady_clock::now();
    auto r = client->execute("query-status");
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ClientError::Kind::timeout);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("garbage from the server is a protocol error", "[numad][client]") {
    ScriptedServer server([](Peer& peer) {
        peer.negotiate();
        peer.receive();
        peer.send("this is not json");
        peer.receive();
    });
    auto client = MonitorClient::connect(server.path(), quick());
    REQUIRE(client);
    auto r = client->execute("query-status");
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ClientError::Kind::protocol);
}

TEST_CASE("no server at the path is a connect error", "[numad][client]") {
    auto client = MonitorClient::connect("/nonexistent/disco/qmp.sock", quick());
    REQUIRE_FALSE(client);
    CHECK(client.error().kind == ClientError::Kind::connect);
    CHECK(client.error().message.find("/nonexistent/disco/qmp.sock") != std::string::npos);
}

TEST_CASE("hot-pages is pulled with limit and reset, and its reply is checked", "[numad][client]") {
    const json reply = {{"nodes", 2},
                        {"simulated", true},
                        {"accesses", {{"local", 70}, {"remote", 30}}},
                        {"since_start", {{"local", 700}, {"remote", 300}}},
                        {"vms", {{{"name", "web"}, {"local", 70}, {"remote", 30}}}},
                        {"pages",
                         {{{"vm", "web"},
                           {"gpa", 0x5000},
                           {"home", 0},
                           {"state", "private"},
                           {"written", false},
                           {"counts", {10, 90}},
                           {"total", 100}}}}};
    ScriptedServer server([&](Peer& peer) {
        peer.negotiate();
        const json req = peer.receive();
        CHECK(req.at("execute") == "__com.disco-project_hot-pages");
        CHECK(req.at("arguments") == json{{"limit", 256}, {"reset", true}});
        peer.send(json{{"return", reply}, {"id", req.at("id")}}.dump());
        peer.receive();
    });
    auto client = MonitorClient::connect(server.path(), quick());
    REQUIRE(client);
    auto b = pull_hot_pages(*client, 256, true);
    REQUIRE(b);
    CHECK(b->nodes == 2);
    CHECK(b->simulated);
    CHECK(b->local == 70);
    REQUIRE(b->vms.size() == 1);
    CHECK(b->vms[0].remote == 30);
    REQUIRE(b->pages.size() == 1);
    CHECK(b->pages[0].gpa == 0x5000);
    CHECK(b->pages[0].counts == std::vector<std::uint32_t>{10, 90});

    SECTION("malformed replies are protocol errors") {
        auto broken = [&](auto mutate) {
            json r = reply;
            mutate(r);
            auto parsed = parse_hot_pages(r);
            REQUIRE_FALSE(parsed);
            CHECK(parsed.error().kind == ClientError::Kind::protocol);
        };
        broken([](json& r) { r["pages"][0]["counts"] = {1, 2, 3}; });
        broken([](json& r) { r["pages"][0]["home"] = 2; });
        broken([](json& r) { r["pages"][0]["total"] = 7; });
        broken([](json& r) { r["pages"][0]["state"] = "odd"; });
        broken([](json& r) { r["pages"][0]["gpa"] = -1; });
        broken([](json& r) { r.erase("vms"); });
        broken([](json& r) { r["nodes"] = 0; });
    }
}
