// The Prometheus endpoint (metrics_text.hpp, metrics_server.hpp): the text
// format's escapes and layout (HELP and TYPE once per family, its samples
// together, empty families left out), the address forms it accepts and the
// ones it refuses (anything not loopback), the server over a real unix
// socket and a loopback TCP port (200/404/405/400/431, HEAD, a client that
// sends nothing, the connection cap, the socket's mode and removal), and the
// figures of a real Fleet.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "tests/unit/control/control_fixture.hpp"
#include "vmm/control/metrics_server.hpp"
#include "vmm/control/metrics_text.hpp"

using namespace disco;
using namespace disco::test;
using json = nlohmann::json;
namespace fs = std::filesystem;
using control::MetricsAddress;
using control::MetricType;

namespace {
/// A well-formed exposition's samples ("name{labels}" as written -> value),
/// checked line by line on the way: each family's HELP then TYPE once, before
/// its samples, which come together and carry its name; counters end in _total.
struct Parsed {
    std::vector<std::string> families;
    std::map<std::string, double> samples;
    bool has(const std::string& key) const { return samples.count(key) > 0; }
    double at(const std::string& key) const {
        INFO(key);
        REQUIRE(has(key));
        return samples.at(key);
    }
    usize count(const std::string& family) const {
        usize n = 0;
        for (const auto& [key, value] : samples)
            if (key == family || key.starts_with(family + "{")) ++n;
        return n;
    }
};

Parsed parse_exposition(const std::string& text) {
    Parsed p;
    if (text.empty()) return p;
    REQUIRE(text.back() == '\n');
    std::istringstream in(text);
    std::string line, family;
    bool typed = false;
    while (std::getline(in, line)) {
        INFO(line);
        REQUIRE_FALSE(line.empty());
        if (line.starts_with("# HELP ")) {
            const std::string rest = line.substr(7);
            const std::string name = rest.substr(0, rest.find(' '));
            CHECK(control::valid_metric_name(name));
            CHECK(std::find(p.families.begin(), p.families.end(), name) == p.families.end());
            p.families.push_back(name);
            family = name;
            typed = false;
        } else if (line.starts_with("# TYPE ")) {
            std::istringstream words(line.substr(7));
            std::string name, type, extra;
            words >> name >> type >> extra;
            CHECK(name == family);
            CHECK_FALSE(typed);
            CHECK((type == "counter" || type == "gauge"));
            CHECK(extra.empty());
            if (type == "counter") CHECK(name.ends_with("_total"));
            typed = true;
        } else {
            REQUIRE(typed);
            REQUIRE(line[0] != '#');
            const usize space = line.rfind(' ');
            REQUIRE(space != std::string::npos);
            const std::string key = line.substr(0, space), value = line.substr(space + 1);
            CHECK(key.substr(0, key.find('{')) == family);
            if (const usize brace = key.find('{'); brace != std::string::npos) {
                CHECK(key.back() == '}');
                // name="value",... : each label name valid.
                const std::string labels = key.substr(brace + 1, key.size() - brace - 2);
                for (usize at = 0; at < labels.size();) {
                    const usize eq = labels.find("=\"", at);
                    REQUIRE(eq != std::string::npos);
                    CHECK(control::valid_label_name(labels.substr(at, eq - at)));
                    usize i = eq + 2;
                    while (i < labels.size() && labels[i] != '"') i += labels[i] == '\\' ? 2 : 1;
                    REQUIRE(i < labels.size());
                    at = i + 1;
                    if (at < labels.size()) {
                        REQUIRE(labels[at] == ',');
                        ++at;
                    }
                }
            }
            char* end = nullptr;
            const double v = std::strtod(value.c_str(), &end);
            CHECK((!value.empty() && *end == '\0'));
            CHECK(p.samples.emplace(key, v).second);  // each series once
        }
    }
    return p;
}

// ---- Clients ----------------------------------------------------------------

class Client {
public:
    explicit Client(const std::string& unix_path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, unix_path.c_str(), sizeof addr.sun_path - 1);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }
    explicit Client(u16 port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~Client() { ::close(fd_); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    bool connected() const { return connected_; }
    /// The client's end of the stream (what a client that gives up mid-request does).
    void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

    void send(const std::string& text) {
        usize done = 0;
        while (done < text.size()) {
            const ssize_t n = ::send(fd_, text.data() + done, text.size() - done, MSG_NOSIGNAL);
            if (n <= 0) return;
            done += static_cast<usize>(n);
        }
    }
    /// Everything until the server closes the connection; nullopt if it has not within the time.
    std::optional<std::string> until_closed(int timeout_ms = 5000) {
        std::string all;
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
            if (left <= 0) return std::nullopt;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
            char chunk[65536];
            const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n <= 0) return all;  // end of stream (or a reset: what came is what there is)
            all.append(chunk, static_cast<usize>(n));
        }
    }

private:
    int fd_ = -1;
    bool connected_ = false;
};

struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
};

Response parse_response(const std::string& raw) {
    INFO(raw);
    Response r;
    const usize end = raw.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    std::istringstream head(raw.substr(0, end));
    std::string line;
    std::getline(head, line);
    REQUIRE(line.starts_with("HTTP/1.1 "));
    r.status = std::stoi(line.substr(9, 3));
    while (std::getline(head, line)) {
        if (line.ends_with('\r')) line.pop_back();
        const usize colon = line.find(':');
        REQUIRE(colon != std::string::npos);
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), [](char c) { return std::tolower(u8(c)); });
        r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    r.body = raw.substr(end + 4);
    return r;
}

template <typename Where>
Response http_exchange(const Where& where, const std::string& request) {
    Client c(where);
    REQUIRE(c.connected());
    c.send(request);
    const auto raw = c.until_closed();
    REQUIRE(raw.has_value());
    return parse_response(*raw);
}

constexpr const char* kBody = "# HELP t_up A test figure\n# TYPE t_up gauge\nt_up 1\n";

struct ServerFixture {
    fs::path dir;
    int log_fd = -1;
    ServerFixture() {
        char tmpl[] = "/tmp/disco-metrics-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        log_fd = ::open((dir / "server.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        REQUIRE(log_fd >= 0);
    }
    ~ServerFixture() {
        ::close(log_fd);
        fs::remove_all(dir);
    }
    fs::path socket() const { return dir / "metrics.sock"; }
    control::MetricsServerOptions options(const std::string& address) const {
        auto a = control::parse_metrics_address(address);
        INFO(address);
        REQUIRE(a.has_value());
        return {.address = *a, .log_fd = log_fd};
    }
    std::unique_ptr<control::MetricsServer> start(control::MetricsServerOptions o) {
        auto s = control::MetricsServer::start(std::move(o), [] { return std::string(kBody); });
        INFO((s ? "" : s.error().message));
        REQUIRE(s.has_value());
        return std::move(*s);
    }
    std::string log() const {
        std::ifstream in(dir / "server.log");
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
};

/// The status-and-headers checks every kind of request gets, over either kind of socket.
template <typename Where>
void check_replies(const Where& where) {
    const Response ok = http_exchange(where, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
    CHECK(ok.status == 200);
    CHECK(ok.headers.at("content-type") == control::kMetricsContentType);
    CHECK(ok.headers.at("content-length") == std::to_string(std::strlen(kBody)));
    CHECK(ok.headers.at("connection") == "close");
    CHECK(ok.headers.count("date") == 1);
    CHECK(ok.body == kBody);

    // HTTP/1.0 without Host; a bare LF ends lines; a query string; the absolute form.
    CHECK(http_exchange(where, "GET /metrics HTTP/1.0\r\n\r\n").body == kBody);
    CHECK(http_exchange(where, "GET /metrics HTTP/1.0\n\n").status == 200);
    CHECK(http_exchange(where, "GET /metrics?name[]=x HTTP/1.1\r\nHost: x\r\n\r\n").status == 200);
    CHECK(http_exchange(where, "GET http://localhost:9100/metrics HTTP/1.1\r\nHost: x\r\n\r\n").status == 200);

    const Response head = http_exchange(where, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(head.status == 200);
    CHECK(head.headers.at("content-length") == std::to_string(std::strlen(kBody)));
    CHECK(head.body.empty());

    for (const char* path : {"/", "/metric", "/metrics/", "/favicon.ico"}) {
        const Response r = http_exchange(where, fmt::format("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path));
        CHECK(r.status == 404);
        CHECK(r.headers.at("content-length") == std::to_string(r.body.size()));
    }
    // A body after the head is read and dropped: the reply is not lost to a reset.
    const Response post = http_exchange(where, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    CHECK(post.status == 405);
    CHECK(post.headers.at("allow") == "GET, HEAD");
    CHECK(http_exchange(where, "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n").status == 405);

    for (const char* garbage :
         {"hello\r\n\r\n", "GET /metrics\r\n\r\n", "GET /metrics HTTP/2.0\r\n\r\n",
          "GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "G(T /metrics HTTP/1.0\r\n\r\n",
          "GET /metrics HTTP/1.1\r\n\r\n" /* 1.1 without Host */, "GET /metrics HTTP/1.0\r\nno colon here\r\n\r\n",
          "GET /metrics HTTP/1.0\r\nA: b\r\n folded\r\n\r\n",
          "\x16\x03\x01\x02\x7f\r\n\r\n" /* a TLS hello's first bytes */}) {
        INFO(garbage);
        CHECK(http_exchange(where, garbage).status == 400);
    }
    // Half a request, then the client's end of the stream: answered as it stands (400), not kept.
    {
        Client c(where);
        REQUIRE(c.connected());
        c.send("GET /metr");
        c.shutdown_write();
        const auto raw = c.until_closed();
        REQUIRE(raw.has_value());
        CHECK(parse_response(*raw).status == 400);
    }
}

mode_t mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
}
}  // namespace

// ---- The text format -----------------------------------------------------------

TEST_CASE("Metrics text: escapes in label values and HELP", "[metrics]") {
    CHECK(control::escape_label_value("plain") == "plain");
    CHECK(control::escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
    CHECK(control::escape_label_value("") == "");
    // HELP escapes backslash and line feed only: a double quote stays as it is.
    CHECK(control::escape_help("a\\b\"c\nd") == "a\\\\b\"c\\nd");

    control::MetricFamily f("t_info", MetricType::Gauge, "Line one\nand a \\ backslash");
    f.add({{"vm", "we\"ird\\name\n"}, {"machine", "virt"}}, u64(1));
    CHECK(f.text() ==
          "# HELP t_info Line one\\nand a \\\\ backslash\n"
          "# TYPE t_info gauge\n"
          "t_info{vm=\"we\\\"ird\\\\name\\n\",machine=\"virt\"} 1\n");
    const Parsed p = parse_exposition(f.text());
    CHECK(p.at("t_info{vm=\"we\\\"ird\\\\name\\n\",machine=\"virt\"}") == 1);
}

TEST_CASE("Metrics text: HELP and TYPE once per family, its samples together, empty ones left out", "[metrics]") {
    control::Exposition e;
    CHECK(e.text().empty());
    e.family("t_requests_total", MetricType::Counter, "Requests").add({{"code", "200"}}, u64(3));
    e.family("t_empty", MetricType::Gauge, "Never given a sample");
    e.family("t_temperature", MetricType::Gauge, "Degrees").add({}, 21.5);
    // The same family again, later: its sample joins the first one, under the first HELP.
    auto& again = e.family("t_requests_total", MetricType::Counter, "Another text, not used");
    again.add({{"code", "404"}}, u64(1));
    CHECK(&again == &e.family("t_requests_total", MetricType::Counter, "Requests"));

    CHECK(e.text() ==
          "# HELP t_requests_total Requests\n"
          "# TYPE t_requests_total counter\n"
          "t_requests_total{code=\"200\"} 3\n"
          "t_requests_total{code=\"404\"} 1\n"
          "# HELP t_temperature Degrees\n"
          "# TYPE t_temperature gauge\n"
          "t_temperature 21.5\n");
    const Parsed p = parse_exposition(e.text());
    CHECK(p.families == std::vector<std::string>{"t_requests_total", "t_temperature"});
    CHECK(p.count("t_requests_total") == 2);
    CHECK(e.text().find("t_empty") == std::string::npos);
}

TEST_CASE("Metrics text: values as Prometheus reads them", "[metrics]") {
    CHECK(control::metric_value(0) == "0");
    CHECK(control::metric_value(42) == "42");
    CHECK(control::metric_value(-3) == "-3");
    CHECK(control::metric_value(0.5) == "0.5");
    CHECK(control::metric_value(std::nan("")) == "NaN");
    CHECK(control::metric_value(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(control::metric_value(-std::numeric_limits<double>::infinity()) == "-Inf");
    for (const double v : {1e-7, 0.1, 1.0 / 3, 123456789.125, 1e300}) {
        INFO(v);
        CHECK(std::strtod(control::metric_value(v).c_str(), nullptr) == v);  // shortest text that reads back
    }
    // A u64 sample is written exactly, beyond what a double holds.
    control::MetricFamily f("t_big", MetricType::Gauge, "Big");
    f.add({}, std::numeric_limits<u64>::max());
    CHECK(f.text().ends_with("t_big 18446744073709551615\n"));
}

TEST_CASE("Metrics text: metric and label names", "[metrics]") {
    for (const char* ok : {"disco_vm_info", "a", "_x", "a:b", ":a", "A9_z"}) CHECK(control::valid_metric_name(ok));
    for (const char* bad : {"", "1a", "a-b", "a b", "é", "a.b", "a{"}) CHECK_FALSE(control::valid_metric_name(bad));
    for (const char* ok : {"vm", "_x", "node2", "__name__"}) CHECK(control::valid_label_name(ok));
    for (const char* bad : {"", "a:b", "9", "a-b", "a b"}) CHECK_FALSE(control::valid_label_name(bad));
}

// ---- Addresses -----------------------------------------------------------------

TEST_CASE("Metrics address: the forms accepted", "[metrics]") {
    auto a = control::parse_metrics_address("unix:/run/disco/metrics.sock");
    REQUIRE(a.has_value());
    CHECK(a->kind == MetricsAddress::Kind::Unix);
    CHECK(a->path == "/run/disco/metrics.sock");
    CHECK(control::to_string(*a) == "unix:/run/disco/metrics.sock");

    a = control::parse_metrics_address("unix:relative.sock");
    REQUIRE(a.has_value());
    CHECK(a->path == "relative.sock");

    a = control::parse_metrics_address("tcp:127.0.0.1:0");
    REQUIRE(a.has_value());
    CHECK(a->kind == MetricsAddress::Kind::Tcp);
    CHECK(a->host == "127.0.0.1");
    CHECK(a->port == 0);
    CHECK_FALSE(a->ipv6);

    a = control::parse_metrics_address("tcp:localhost:9100");
    REQUIRE(a.has_value());
    CHECK(a->host == "127.0.0.1");
    CHECK(a->port == 9100);
    CHECK(control::to_string(*a) == "tcp:127.0.0.1:9100");

    a = control::parse_metrics_address("tcp:127.10.20.30:65535");
    REQUIRE(a.has_value());
    CHECK(a->host == "127.10.20.30");
    CHECK(a->port == 65535);

    for (const char* v6 : {"tcp:[::1]:9100", "tcp:::1:9100"}) {
        INFO(v6);
        a = control::parse_metrics_address(v6);
        REQUIRE(a.has_value());
        CHECK(a->ipv6);
        CHECK(a->host == "::1");
        CHECK(a->port == 9100);
        CHECK(control::to_string(*a) == "tcp:[::1]:9100");
    }
}

TEST_CASE("Metrics address: the forms refused, each with its reason", "[metrics]") {
    const std::pair<const char*, const char*> cases[] = {
        {"tcp:0.0.0.0:80", "not a loopback address"},
        {"tcp:10.0.0.1:80", "not a loopback address"},
        {"tcp:128.0.0.1:80", "not a loopback address"},
        {"tcp:[::]:80", "not a loopback address"},
        {"tcp:[::ffff:127.0.0.1]:80", "not a loopback address"},
        {"tcp:example.com:80", "not an IP address or localhost"},
        {"tcp:127.0.0.1", "no port"},
        {"tcp:localhost", "no port"},
        {"tcp:127.0.0.1:", "port '' is not a number"},
        {"tcp:127.0.0.1:65536", "port '65536' is not a number from 0 to 65535"},
        {"tcp:127.0.0.1:-1", "is not a number"},
        {"tcp:127.0.0.1:80x", "is not a number"},
        {"tcp::9100", "no host"},
        {"tcp:[::1]9100", "[ADDRESS]:PORT"},
        {"tcp:[::1", "[ADDRESS]:PORT"},
        {"", "not unix:PATH or tcp:HOST:PORT"},
        {"http://127.0.0.1:9100", "not unix:PATH or tcp:HOST:PORT"},
        {"udp:127.0.0.1:9100", "not unix:PATH or tcp:HOST:PORT"},
        {"/run/metrics.sock", "not unix:PATH or tcp:HOST:PORT"},
        {"unix:", "needs a socket path"},
    };
    for (const auto& [text, why] : cases) {
        INFO(text);
        const auto a = control::parse_metrics_address(text);
        REQUIRE_FALSE(a.has_value());
        INFO(a.error().message);
        CHECK(a.error().message.find(why) != std::string::npos);
        CHECK(a.error().message.find('\n') == std::string::npos);  // one line
    }
    const auto long_path = control::parse_metrics_address("unix:/" + std::string(200, 'p'));
    REQUIRE_FALSE(long_path.has_value());
    CHECK(long_path.error().message.find("longer than") != std::string::npos);
}

// ---- The server ----------------------------------------------------------------

TEST_CASE("Metrics server: HTTP over a unix socket, 0600, removed when it stops", "[metrics]") {
    ServerFixture f;
    {
        auto server = f.start(f.options("unix:" + f.socket().string()));
        CHECK(server->port() == 0);
        CHECK(server->where() == "unix:" + f.socket().string());
        CHECK(mode_of(f.socket()) == 0600);
        check_replies(f.socket().string());

        // A second server on the same path: refused while this one answers.
        auto second = control::MetricsServer::start(f.options("unix:" + f.socket().string()), [] { return ""; });
        REQUIRE_FALSE(second.has_value());
        CHECK(second.error().message.find("another monitor is serving") != std::string::npos);
        CHECK(http_exchange(f.socket().string(), "GET /metrics HTTP/1.0\r\n\r\n").status == 200);
    }
    CHECK_FALSE(fs::exists(f.socket()));

    // A path taken by something that is not a socket is left alone.
    { std::ofstream(f.socket()) << "not a socket"; }
    auto bad = control::MetricsServer::start(f.options("unix:" + f.socket().string()), [] { return ""; });
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find("is not a socket") != std::string::npos);
    CHECK(fs::exists(f.socket()));
}

TEST_CASE("Metrics server: HTTP over loopback TCP, port 0 is a free port", "[metrics]") {
    ServerFixture f;
    auto server = f.start(f.options("tcp:127.0.0.1:0"));
    const u16 port = server->port();
    REQUIRE(port != 0);
    CHECK(server->where() == fmt::format("tcp:127.0.0.1:{}", port));
    check_replies(port);

    // The port is taken: a second server says so.
    auto second = control::MetricsServer::start(f.options(fmt::format("tcp:127.0.0.1:{}", port)), [] { return ""; });
    REQUIRE_FALSE(second.has_value());
    CHECK(second.error().message.find("cannot bind") != std::string::npos);
}

TEST_CASE("Metrics server: a client that sends nothing holds up no one, and is closed at its deadline", "[metrics]") {
    ServerFixture f;
    auto o = f.options("unix:" + f.socket().string());
    o.deadline = std::chrono::milliseconds(600);
    auto server = f.start(o);
    Client silent(f.socket().string());
    REQUIRE(silent.connected());
    Client half(f.socket().string());
    REQUIRE(half.connected());
    half.send("GET /metrics HTTP/1.1\r\nHost: x\r\n");  // no empty line: the head never ends

    const auto before = std::chrono::steady_clock::now();
    const Response r = http_exchange(f.socket().string(), "GET /metrics HTTP/1.0\r\n\r\n");
    CHECK(r.status == 200);
    CHECK(std::chrono::steady_clock::now() - before < std::chrono::milliseconds(400));

    // Both are closed when their time is up, without a reply.
    const auto silent_got = silent.until_closed(5000);
    REQUIRE(silent_got.has_value());
    CHECK(silent_got->empty());
    const auto half_got = half.until_closed(5000);
    REQUIRE(half_got.has_value());
    CHECK(half_got->empty());
    CHECK(std::chrono::steady_clock::now() - before >= std::chrono::milliseconds(500));
    CHECK(eventually([&] { return f.log().find("sent no complete request within 600 ms") != std::string::npos; }));
    // A client that says nothing and leaves is no error.
    {
        Client gone(f.socket().string());
        REQUIRE(gone.connected());
    }
    CHECK(http_exchange(f.socket().string(), "GET /metrics HTTP/1.0\r\n\r\n").status == 200);
}

TEST_CASE("Metrics server: a request head over 8 KiB is refused", "[metrics]") {
    ServerFixture f;
    auto server = f.start(f.options("tcp:127.0.0.1:0"));
    // Over the bound before its end came: 431 at once, without waiting for the rest.
    {
        Client c(server->port());
        REQUIRE(c.connected());
        c.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(9000, 'p'));
        const auto raw = c.until_closed();
        REQUIRE(raw.has_value());
        const Response r = parse_response(*raw);
        CHECK(r.status == 431);
        CHECK(r.body.find("longer than 8192 bytes") != std::string::npos);
    }
    // A whole head, but its end beyond the bound.
    CHECK(http_exchange(server->port(),
                        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(8200, 'p') + "\r\n\r\n")
              .status == 431);
    // Just under it: answered.
    const std::string head = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    CHECK(http_exchange(server->port(), head + std::string(8192 - head.size() - 4, 'p') + "\r\n\r\n").status == 200);
}

TEST_CASE("Metrics server: connections beyond the cap are closed at once", "[metrics]") {
    ServerFixture f;
    auto o = f.options("unix:" + f.socket().string());
    o.max_clients = 2;
    o.deadline = std::chrono::milliseconds(1500);
    auto server = f.start(o);
    Client a(f.socket().string()), b(f.socket().string());
    REQUIRE(a.connected());
    REQUIRE(b.connected());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // both accepted
    const auto before = std::chrono::steady_clock::now();
    Client third(f.socket().string());
    REQUIRE(third.connected());  // the kernel's backlog takes it; the server then closes it
    const auto got = third.until_closed(5000);
    REQUIRE(got.has_value());
    CHECK(got->empty());
    CHECK(std::chrono::steady_clock::now() - before < std::chrono::milliseconds(1000));
    CHECK(eventually([&] { return f.log().find("refused a connection: already 2 open") != std::string::npos; }));
    // Once the first two have gone, the next one is served.
    CHECK(a.until_closed(5000).has_value());
    CHECK(b.until_closed(5000).has_value());
    CHECK(http_exchange(f.socket().string(), "GET /metrics HTTP/1.0\r\n\r\n").status == 200);
}

// ---- A Fleet's figures ---------------------------------------------------------

TEST_CASE("Metrics of a real Fleet: per VM, per node, monitor-wide", "[metrics][control]") {
    ControlFixture f(2);
    control::QmpSession s(*f.commands);
    REQUIRE(run(s, "qmp_capabilities").contains("return"));
    REQUIRE(run(s, vendor("vm-create"), {{"definition", f.idle_vm("bm")}}).contains("return"));
    REQUIRE(run(s, vendor("vm-create"), {{"definition", toucher_vm(f, "t")}}).contains("return"));
    REQUIRE(run(s, vendor("vm-create"), {{"definition", f.idle_vm("off")}, {"start", false}}).contains("return"));
    REQUIRE(eventually(
        [&] { return !f.fleet->status("bm")->vcpu_nodes.empty() && !f.fleet->status("t")->vcpu_nodes.empty(); }));

    Parsed p;
    // The toucher's vCPU retires instructions (seen as of its last time slice) and counts accesses.
    std::string text;
    const bool counted = eventually([&] {
        text = control::fleet_metrics(*f.fleet);
        p = parse_exposition(text);
        return p.has("disco_vm_instructions_total{vm=\"t\"}") && p.at("disco_vm_instructions_total{vm=\"t\"}") > 0 &&
               p.at("disco_accesses_total{kind=\"local\"}") + p.at("disco_accesses_total{kind=\"remote\"}") > 0;
    });
    INFO(text);
    REQUIRE(counted);

    CHECK(p.at("disco_monitor_vms") == 3);
    CHECK(p.at("disco_vm_info{vm=\"bm\",machine=\"baremetal\"}") == 1);
    CHECK(p.at("disco_vm_info{vm=\"t\",machine=\"virt\"}") == 1);
    CHECK(p.at("disco_vm_info{vm=\"off\",machine=\"baremetal\"}") == 1);
    // Every state for every VM, 1 for the one it is in (node_exporter's enum style).
    for (const char* st : {"running", "shutoff", "paused", "shutdown"}) {
        CHECK(p.at(fmt::format("disco_vm_state{{vm=\"bm\",state=\"{}\"}}", st)) == (st == std::string("running")));
        CHECK(p.at(fmt::format("disco_vm_state{{vm=\"off\",state=\"{}\"}}", st)) == (st == std::string("shutoff")));
    }
    CHECK(p.count("disco_vm_state") == 3 * 4);
    CHECK(p.at("disco_vm_vcpus{vm=\"t\"}") == 1);
    CHECK(p.at("disco_vm_memory_bytes{vm=\"t\"}") == 64 << 20);
    CHECK(p.at("disco_vm_memory_bytes{vm=\"off\"}") == 16 << 20);
    // Figures of running VMs only: none for "off".
    CHECK(p.has("disco_vm_instructions_total{vm=\"bm\"}"));
    CHECK_FALSE(p.has("disco_vm_instructions_total{vm=\"off\"}"));
    CHECK(p.count("disco_vm_instructions_total") == 2);
    CHECK(p.at("disco_vm_guest_pages{vm=\"t\"}") == (64 << 20) / kPageSize);
    CHECK(p.at("disco_vm_guest_pages_used{vm=\"t\"}") > 0);
    CHECK_FALSE(p.has("disco_vm_guest_pages{vm=\"off\"}"));
    CHECK(p.has("disco_vm_node_frames{vm=\"t\",node=\"0\"}"));
    CHECK(p.has("disco_vm_node_frames{vm=\"t\",node=\"1\"}"));
    CHECK(p.has("disco_vm_accesses_total{vm=\"t\",kind=\"local\"}"));
    CHECK(p.has("disco_vm_vcpu_home_node{vm=\"t\",vcpu=\"0\"}"));
    CHECK(p.at("disco_page_size_bytes") == kPageSize);
    CHECK(p.has("disco_pages_shared"));
    CHECK(p.has("disco_pages_sharing"));
    // Both simulated nodes, with their pools' figures.
    for (const char* node : {"0", "1"}) {
        INFO(node);
        CHECK(p.at(fmt::format("disco_node_info{{node=\"{}\",host_node=\"-1\",simulated=\"true\"}}", node)) == 1);
        const double cap = p.at(fmt::format("disco_node_frames_capacity{{node=\"{}\"}}", node));
        const double used = p.at(fmt::format("disco_node_frames_in_use{{node=\"{}\"}}", node));
        const double free = p.at(fmt::format("disco_node_frames_free{{node=\"{}\"}}", node));
        CHECK(cap > 0);
        CHECK(used + free <= cap);
        CHECK(p.has(fmt::format("disco_node_accesses_total{{node=\"{}\",kind=\"remote\"}}", node)));
    }
    CHECK(p.at("disco_node_frames_in_use{node=\"0\"}") + p.at("disco_node_frames_in_use{node=\"1\"}") ==
          p.at("disco_machine_frames_in_use"));
    CHECK(p.count("disco_build_info") == 1);
    // The disk page cache is on, as by default (no disk here: nothing hit); the
    // page scanner is off: none of its families at all.
    CHECK(p.at("disco_disk_cache_hits_total") == 0);
    CHECK(p.at("disco_disk_cache_entries") == 0);
    CHECK(p.count("disco_page_scan_passes_total") == 0);
}
