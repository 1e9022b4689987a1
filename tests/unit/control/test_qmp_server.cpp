// The control socket over a real unix socket: its folder's and file's modes,
// framing on the wire, what it refuses to start on, and that a stuck or
// greedy client is slowed or dropped without holding up anyone else.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <thread>

#include "tests/unit/control/control_fixture.hpp"
#include "vmm/control/qmp_server.hpp"

using namespace disco;
using namespace disco::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {
class TestClient {
public:
    explicit TestClient(const std::string& path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~TestClient() { ::close(fd_); }
    bool connected() const { return connected_; }

    void send(const std::string& text) {
        size_t done = 0;
        while (done < text.size()) {
            const ssize_t n = ::send(fd_, text.data() + done, text.size() - done, MSG_NOSIGNAL);
            if (n <= 0) return;
            done += static_cast<size_t>(n);
        }
    }
    /// The next CRLF-ended line; "" on timeout or end of stream.
    std::string line(int timeout_ms = 5000) {
        for (;;) {
            if (const auto end = buf_.find("\r\n"); end != std::string::npos) {
                std::string l = buf_.substr(0, end);
                buf_.erase(0, end + 2);
                return l;
            }
            if (!fill(timeout_ms)) return "";
        }
    }
    json message(int timeout_ms = 5000) {
        const std::string l = line(timeout_ms);
        return l.empty() ? json() : json::parse(l);
    }
    /// Reads until the server closes the connection (true) or the time is up.
    bool closed_within(int timeout_ms) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (std::chrono::steady_clock::now() < end) {
            if (eof_) return true;
            fill(100);
            buf_.clear();
        }
        return eof_;
    }
    void negotiate() {
        REQUIRE(message().contains("QMP"));
        send(R"({"execute":"qmp_capabilities"})");
        REQUIRE(message() == json{{"return", json::object()}});
    }

private:
    bool fill(int timeout_ms) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0) return false;
        char chunk[65536];
        const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) {
            eof_ = true;
            return false;
        }
        buf_.append(chunk, static_cast<size_t>(n));
        return true;
    }

    int fd_ = -1;
    bool connected_ = false, eof_ = false;
    std::string buf_;
};

struct ServerFixture : ControlFixture {
    fs::path socket = dir / "run" / "qmp.sock";
    int log_fd = ::open((dir / "server.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ~ServerFixture() { ::close(log_fd); }

    control::QmpServerOptions options() const { return {.socket_path = socket.string(), .log_fd = log_fd}; }
    std::unique_ptr<control::QmpServer> start(control::QmpServerOptions o) {
        auto s = control::QmpServer::start(std::move(o), *commands, *events);
        INFO((s ? "" : s.error().message));
        REQUIRE(s.has_value());
        return std::move(*s);
    }
    std::string log() const {
        std::ifstream in(dir / "server.log");
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
};

mode_t mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
}
}  // namespace

TEST_CASE("Control socket: private modes, QMP on the wire, removed at the end", "[control]") {
    ServerFixture f;
    {
        auto server = f.start(f.options());
        CHECK(mode_of(f.socket.parent_path()) == 0700);
        CHECK(mode_of(f.socket) == 0600);
        TestClient c(f.socket);
        REQUIRE(c.connected());
        const json greeting = c.message();
        CHECK(greeting == control::QmpSession::greeting());
        // Two requests in one write, no newline, and one split across writes.
        c.send(R"({"execute":"qmp_capabilities","id":1}{"execute":"query-version","id":2})");
        CHECK(c.message() == json{{"return", json::object()}, {"id", 1}});
        CHECK(c.message()["id"] == 2);
        c.send(R"({"execute":"__com.disco-)");
        c.send(R"(project_vm-list","id":3})");
        CHECK(c.message() == json{{"return", json::array()}, {"id", 3}});
        // A bad request, then a good one on the same connection.
        c.send("{\"execute\": }\n{\"execute\":\"query-version\",\"id\":4}");
        CHECK(c.message()["error"]["class"] == "GenericError");
        CHECK(c.message()["id"] == 4);
        // Over the bound: one error, then back in step.
        c.send(R"({"execute":"query-version","arguments":{"pad":")" + std::string(70000, 'p') + R"("}})");
        CHECK(c.message()["error"]["desc"].get<std::string>().find("longer than 65536") != std::string::npos);
        c.send(R"({"execute":"query-version","id":5})");
        CHECK(c.message()["id"] == 5);
        // Events reach a negotiated session.
        f.events->push(control::make_event("TEST_EVENT", {{"n", 1}}));
        const json e = c.message();
        CHECK(e["event"] == "TEST_EVENT");
        CHECK(e["data"]["n"] == 1);
        CHECK(e["timestamp"]["seconds"].get<long long>() > 0);
    }
    CHECK_FALSE(fs::exists(f.socket));
}

TEST_CASE("Control socket: refuses an unsafe folder, a taken path, a live monitor", "[control]") {
    ServerFixture f;
    fs::create_directories(f.socket.parent_path());
    fs::permissions(f.socket.parent_path(), fs::perms::all);
    auto bad = control::QmpServer::start(f.options(), *f.commands, *f.events);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find("writable by others") != std::string::npos);
    fs::permissions(f.socket.parent_path(), fs::perms::owner_all, fs::perm_options::replace);

    { std::ofstream(f.socket) << "not a socket"; }
    bad = control::QmpServer::start(f.options(), *f.commands, *f.events);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find("is not a socket") != std::string::npos);
    fs::remove(f.socket);

    // A socket nobody answers on (a monitor that died) is replaced.
    {
        const int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, f.socket.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::bind(stale, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        ::close(stale);
    }
    auto server = f.start(f.options());
    bad = control::QmpServer::start(f.options(), *f.commands, *f.events);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find("another monitor is serving") != std::string::npos);
    TestClient c(f.socket);
    c.negotiate();  // the first one still serves
}

TEST_CASE("Control socket: a half-closed client is answered in full", "[control]") {
    ServerFixture f;
    auto server = f.start(f.options());
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, f.socket.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const std::string requests = R"({"execute":"qmp_capabilities"}{"execute":"query-version","id":"last"})";
    REQUIRE(::send(fd, requests.data(), requests.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(requests.size()));
    ::shutdown(fd, SHUT_WR);  // as `socat` does at the end of its input
    std::string all;
    char chunk[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 5000) <= 0) break;
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) break;
        all.append(chunk, static_cast<size_t>(n));
    }
    ::close(fd);
    CHECK(all.find(R"("id":"last")") != std::string::npos);
}

TEST_CASE("Control socket: a stuck client is dropped, the others are served", "[control]") {
    ServerFixture f;
    auto o = f.options();
    o.max_output = 64 * 1024;
    auto server = f.start(o);
    TestClient stuck(f.socket);
    stuck.negotiate();
    // 4 MiB of events: far more than the socket buffer and the output bound.
    const std::string pad(4000, 'e');
    const auto before = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) f.events->push(control::make_event("TEST_FLOOD", {{"pad", pad}}));
    CHECK(std::chrono::steady_clock::now() - before < std::chrono::seconds(2));  // nobody waited on the client
    REQUIRE(eventually([&] { return f.log().find("disconnected uid") != std::string::npos; }));
    CHECK(f.log().find("unread") != std::string::npos);
    CHECK(stuck.closed_within(5000));
    TestClient fresh(f.socket);
    fresh.negotiate();
    fresh.send(R"({"execute":"query-version","id":1})");
    json reply;
    do reply = fresh.message();
    while (reply.contains("event"));
    CHECK(reply["id"] == 1);
}

TEST_CASE("Control socket: a client that sends without reading is slowed, not dropped", "[control]") {
    ServerFixture f;
    auto server = f.start(f.options());
    TestClient greedy(f.socket);
    greedy.negotiate();
    constexpr int kRequests = 20000;  // about 1 MiB of replies
    std::thread sender([&] {
        std::string batch;
        for (int i = 0; i < kRequests; ++i) batch += R"({"execute":"query-version","id":)" + std::to_string(i) + "}";
        greedy.send(batch);
    });
    int answered = 0;
    for (; answered < kRequests; ++answered) {
        const json r = greedy.message();
        if (r.is_null() || r["id"] != answered) break;
    }
    sender.join();
    CHECK(answered == kRequests);
    CHECK(f.log().find("disconnected") == std::string::npos);
}

TEST_CASE("Control socket: at most max_clients connections", "[control]") {
    ServerFixture f;
    auto o = f.options();
    o.max_clients = 2;
    auto server = f.start(o);
    TestClient a(f.socket), b(f.socket);
    a.negotiate();
    b.negotiate();
    TestClient c(f.socket);
    CHECK(c.closed_within(5000));
    CHECK(f.log().find("already 2 connections") != std::string::npos);
}
