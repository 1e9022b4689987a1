#include "vmm/control/metrics_server.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

#include "vmm/control/metrics_text.hpp"
#include "vmm/control/qmp_server.hpp"

namespace disco::control {
namespace {
using Clock = std::chrono::steady_clock;

std::string errno_text() { return std::strerror(errno); }

/// What a connection may still send once its reply is out: read and dropped
/// so that closing does not reset the connection (and lose the reply) over
/// bytes left unread, RFC 9112 §9.6; beyond this the connection is just closed.
constexpr usize kMaxDrained = 64 * 1024;

bool ascii_iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

/// tchar (RFC 9110 §5.6.2): what a method or a field name is made of.
bool token(std::string_view s) {
    if (s.empty()) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return std::isalnum(u) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
    });
}

/// Where the request head ends (the empty line's last byte + 1), or npos.
/// A bare LF ends a line too (RFC 9112 §2.2 allows a recipient to take it so).
usize head_end(std::string_view in) {
    for (usize i = in.find('\n'); i != std::string_view::npos; i = in.find('\n', i + 1)) {
        if (i + 1 < in.size() && in[i + 1] == '\n') return i + 2;
        if (i + 2 < in.size() && in[i + 1] == '\r' && in[i + 2] == '\n') return i + 3;
    }
    return std::string_view::npos;
}

struct Reply {
    int status = 200;
    std::string body = {};
    std::string extra_headers = {};  // each "Name: value\r\n"
    bool head_only = false;
    std::string_view content_type = "text/plain; charset=utf-8";
};

std::string_view reason(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 431:
            return "Request Header Fields Too Large";
    }
    return "Error";
}

Reply bad(std::string why) { return Reply{.status = 400, .body = std::move(why) + "\n"}; }

/// The reply a complete request head gets (the head without its empty line).
Reply answer(std::string_view head, const MetricsServer::Render& render) {
    std::vector<std::string_view> lines;
    while (!head.empty()) {
        const usize nl = head.find('\n');
        std::string_view line = head.substr(0, nl);
        if (line.ends_with('\r')) line.remove_suffix(1);
        lines.push_back(line);
        head = nl == std::string_view::npos ? std::string_view() : head.substr(nl + 1);
    }
    if (lines.empty()) return bad("an empty request");
    // request-line = method SP request-target SP HTTP-version (RFC 9112 §3), single spaces.
    const std::string_view line = lines[0];
    const usize sp1 = line.find(' '), sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return bad("not an HTTP/1.x request line (METHOD TARGET HTTP/1.1)");
    const std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                           version = line.substr(sp2 + 1);
    const bool http1 = version.size() == 8 && version.starts_with("HTTP/1.") && std::isdigit(u8(version[7]));
    if (!token(method) || target.empty() || !http1) return bad("not an HTTP/1.x request line (METHOD TARGET HTTP/1.1)");
    if (std::any_of(target.begin(), target.end(), [](char c) { return u8(c) <= 0x20 || c == 0x7F; }))
        return bad("a request target with control characters");
    bool has_host = false;
    for (usize i = 1; i < lines.size(); ++i) {
        const std::string_view field = lines[i];
        if (field.starts_with(' ') || field.starts_with('\t')) return bad("a folded header line (RFC 9112 §5.2)");
        const usize colon = field.find(':');
        if (colon == std::string_view::npos || !token(field.substr(0, colon)))
            return bad("a header line that is not NAME: VALUE");
        has_host |= ascii_iequal(field.substr(0, colon), "host");
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host gets 400.
    if (version[7] != '0' && !has_host) return bad("an HTTP/1.1 request without Host");

    // origin-form (/metrics?query), or absolute-form (http://host/metrics), RFC 9112 §3.2.
    std::string_view path = target;
    if (const usize scheme = path.find("://"); scheme != std::string_view::npos && !path.starts_with('/')) {
        const usize slash = path.find('/', scheme + 3);
        path = slash == std::string_view::npos ? "/" : path.substr(slash);
    }
    path = path.substr(0, path.find('?'));
    if (path != "/metrics") return Reply{.status = 404, .body = "Not found: the figures are at /metrics\n"};
    if (method != "GET" && method != "HEAD")
        return Reply{.status = 405,
                     .body = fmt::format("Method {} is not allowed: GET or HEAD /metrics\n", method),
                     .extra_headers = "Allow: GET, HEAD\r\n"};
    return Reply{.body = render(), .head_only = method == "HEAD", .content_type = kMetricsContentType};
}

/// The Date field (RFC 9110 §6.6.1, IMF-fixdate).
std::string http_date() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} GMT", kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon],
                       tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string wire(const Reply& r) {
    std::string out = fmt::format(
        "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n", r.status,
        reason(r.status), http_date(), r.content_type, r.body.size(), r.extra_headers);
    if (!r.head_only) out += r.body;
    return out;
}

/// 127.0.0.0/8 (RFC 1122 §3.2.1.3) or ::1 (RFC 4291 §2.5.3).
Result<bool, Error> loopback_host(const std::string& host) {
    in_addr v4{};
    in6_addr v6{};
    if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
        if ((ntohl(v4.s_addr) >> 24) == 127) return false;
    } else if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    } else {
        return fail(Error{fmt::format("'{}' is not an IP address or localhost", host)});
    }
    return fail(
        Error{fmt::format("{} is not a loopback address (127.0.0.0/8, ::1 or localhost): the metrics are "
                          "served to this host only",
                          host)});
}
}  // namespace

Result<MetricsAddress, Error> parse_metrics_address(std::string_view text) {
    MetricsAddress a;
    if (text.starts_with("unix:")) {
        a.kind = MetricsAddress::Kind::Unix;
        a.path = std::string(text.substr(5));
        constexpr usize kMaxPath = sizeof(sockaddr_un::sun_path) - 1;
        if (a.path.empty()) return fail(Error{"unix: needs a socket path (unix:PATH)"});
        if (a.path.size() > kMaxPath || a.path.find('\0') != std::string::npos)
            return fail(Error{fmt::format("the socket path is longer than {} bytes", kMaxPath)});
        return a;
    }
    if (!text.starts_with("tcp:")) return fail(Error{"not unix:PATH or tcp:HOST:PORT"});
    a.kind = MetricsAddress::Kind::Tcp;
    std::string_view rest = text.substr(4), host, port;
    if (rest.starts_with('[')) {
        const usize close = rest.find(']');
        if (close == std::string_view::npos || rest.substr(close + 1, 1) != ":")
            return fail(Error{"an IPv6 address is written [ADDRESS]:PORT (tcp:[::1]:9100)"});
        host = rest.substr(1, close - 1);
        port = rest.substr(close + 2);
    } else {
        const usize colon = rest.rfind(':');
        if (colon == std::string_view::npos) return fail(Error{"no port (tcp:HOST:PORT)"});
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    if (host.empty()) return fail(Error{"no host (tcp:HOST:PORT, HOST a loopback address such as 127.0.0.1)"});
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
        return fail(Error{fmt::format("port '{}' is not a number from 0 to 65535", port)});
    a.port = static_cast<u16>(value);
    a.host = host == "localhost" ? "127.0.0.1" : std::string(host);
    a.ipv6 = DISCO_TRY(loopback_host(a.host));
    return a;
}

struct MetricsServer::Client {
    Client(int fd_, Clock::time_point deadline_) : fd(fd_), deadline(deadline_) {}
    ~Client() { ::close(fd); }
    enum class Phase { Reading, Writing, Draining };
    int fd;
    Clock::time_point deadline;
    Phase phase = Phase::Reading;
    std::string in, out;
    usize sent = 0, drained = 0;
    bool gone = false;
};

MetricsServer::MetricsServer(MetricsServerOptions options, Render render)
    : options_(std::move(options)), render_(std::move(render)) {}

std::string to_string(const MetricsAddress& a) {
    if (a.kind == MetricsAddress::Kind::Unix) return "unix:" + a.path;
    return a.ipv6 ? fmt::format("tcp:[{}]:{}", a.host, a.port) : fmt::format("tcp:{}:{}", a.host, a.port);
}

std::string MetricsServer::where() const {
    MetricsAddress bound = options_.address;
    bound.port = port_;
    return to_string(bound);
}

Result<std::unique_ptr<MetricsServer>, Error> MetricsServer::start(MetricsServerOptions options, Render render) {
    std::unique_ptr<MetricsServer> s(new MetricsServer(std::move(options), std::move(render)));
    const MetricsAddress& a = s->options_.address;
    if (a.kind == MetricsAddress::Kind::Unix) {
        sockaddr_un addr{};
        if (a.path.empty() || a.path.size() >= sizeof addr.sun_path)
            return fail(Error{fmt::format("the socket path '{}' is empty or too long", a.path)});
        DISCO_TRY(remove_stale_socket(a.path));
        s->listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->listen_fd_ < 0) return fail(Error{fmt::format("socket: {}", errno_text())});
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, a.path.c_str(), a.path.size() + 1);
        if (::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            return fail(Error{fmt::format("cannot bind {}: {}", a.path, errno_text())});
        struct stat st {};
        if (::stat(a.path.c_str(), &st) != 0) return fail(Error{fmt::format("{}: {}", a.path, errno_text())});
        s->socket_dev_ = st.st_dev;
        s->socket_ino_ = st.st_ino;
        // Before listen(): until then a connect() is refused, so nobody gets in under the umask's mode.
        if (::chmod(a.path.c_str(), 0600) != 0)
            return fail(Error{fmt::format("cannot chmod {}: {}", a.path, errno_text())});
    } else {
        const int family = a.ipv6 ? AF_INET6 : AF_INET;
        s->listen_fd_ = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->listen_fd_ < 0) return fail(Error{fmt::format("socket: {}", errno_text())});
        const int one = 1;
        // A monitor started again at once binds past its predecessor's connections in TIME_WAIT.
        ::setsockopt(s->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_storage addr{};
        socklen_t len = 0;
        if (a.ipv6) {
            ::setsockopt(s->listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
            auto& in6 = reinterpret_cast<sockaddr_in6&>(addr);
            in6.sin6_family = AF_INET6;
            in6.sin6_port = htons(a.port);
            ::inet_pton(AF_INET6, a.host.c_str(), &in6.sin6_addr);
            len = sizeof in6;
        } else {
            auto& in4 = reinterpret_cast<sockaddr_in&>(addr);
            in4.sin_family = AF_INET;
            in4.sin_port = htons(a.port);
            ::inet_pton(AF_INET, a.host.c_str(), &in4.sin_addr);
            len = sizeof in4;
        }
        if (::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0)
            return fail(Error{fmt::format("cannot bind {} port {}: {}", a.host, a.port, errno_text())});
        sockaddr_storage bound{};
        socklen_t bound_len = sizeof bound;
        if (::getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0)
            return fail(Error{fmt::format("getsockname: {}", errno_text())});
        s->port_ = ntohs(a.ipv6 ? reinterpret_cast<sockaddr_in6&>(bound).sin6_port
                                : reinterpret_cast<sockaddr_in&>(bound).sin_port);
    }
    if (::listen(s->listen_fd_, 64) != 0) return fail(Error{fmt::format("listen: {}", errno_text())});
    s->stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->stop_fd_ < 0) return fail(Error{fmt::format("eventfd: {}", errno_text())});
    s->thread_ = std::thread([server = s.get()] { server->serve(); });
    return s;
}

MetricsServer::~MetricsServer() {
    stop_serving_thread(thread_, stopping_, stop_fd_);
    clients_.clear();
    if (listen_fd_ >= 0) {
        ::close(listen_fd_);
        if (options_.address.kind == MetricsAddress::Kind::Unix)
            unlink_own_socket(options_.address.path, socket_dev_, socket_ino_);
    }
    if (stop_fd_ >= 0) ::close(stop_fd_);
}

void MetricsServer::log(const std::string& line) const {
    const std::string text = fmt::format("disco: metrics: {}\n", line);
    [[maybe_unused]] const ssize_t n = ::write(options_.log_fd, text.data(), text.size());
}

void MetricsServer::serve() {
    std::vector<pollfd> fds;
    while (!stopping_.load()) {
        fds.clear();
        fds.push_back({stop_fd_, POLLIN, 0});
        fds.push_back({listen_fd_, POLLIN, 0});
        Clock::time_point first_deadline = Clock::time_point::max();
        for (const auto& c : clients_) {
            fds.push_back({c->fd, static_cast<short>(c->phase == Client::Phase::Writing ? POLLOUT : POLLIN), 0});
            first_deadline = std::min(first_deadline, c->deadline);
        }
        int timeout_ms = -1;
        if (first_deadline != Clock::time_point::max()) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(first_deadline - Clock::now());
            timeout_ms = static_cast<int>(std::max<i64>(0, left.count()));
        }
        if (::poll(fds.data(), fds.size(), timeout_ms) < 0) {
            if (errno == EINTR) continue;
            log(fmt::format("poll: {}; no longer serving", errno_text()));
            break;
        }
        if (fds[0].revents) break;
        // Clients accepted now are not in fds: only the first ones were polled.
        const usize polled = fds.size() - 2;
        if (fds[1].revents & POLLIN) accept_clients();
        const auto now = Clock::now();
        for (usize i = 0; i < polled; ++i) {
            Client& c = *clients_[i];
            const short got = fds[i + 2].revents;
            if (got & (POLLERR | POLLNVAL)) c.gone = true;
            if (!c.gone && c.phase == Client::Phase::Reading && (got & (POLLIN | POLLHUP))) read_from(c);
            if (!c.gone && c.phase == Client::Phase::Writing && (got & (POLLOUT | POLLHUP))) write_to(c);
            if (!c.gone && c.phase == Client::Phase::Draining && (got & (POLLIN | POLLHUP))) drain(c);
            if (!c.gone && now >= c.deadline) {
                if (c.phase != Client::Phase::Draining)
                    log(fmt::format("closed a connection that {} within {} ms",
                                    c.phase == Client::Phase::Reading ? "sent no complete request"
                                                                      : "did not read "
                                                                        "its reply",
                                    options_.deadline.count()));
                c.gone = true;
            }
        }
        std::erase_if(clients_, [](const auto& c) { return c->gone; });
    }
    clients_.clear();
}

void MetricsServer::accept_clients() {
    for (;;) {
        std::string why;
        const int fd = accept_connection(listen_fd_, why);
        if (fd < 0) {
            if (!why.empty()) log(why);
            return;
        }
        if (clients_.size() >= options_.max_clients) {
            log(fmt::format("refused a connection: already {} open", clients_.size()));
            ::close(fd);
            continue;
        }
        clients_.push_back(std::make_unique<Client>(fd, Clock::now() + options_.deadline));
    }
}

/// One recv() on a client's non-blocking socket: the bytes read (0 at the
/// client's end), or -1 when there is nothing more for now (and c.gone set
/// when that is an error rather than EAGAIN).
ssize_t MetricsServer::receive(Client& c, char* buf, usize size) {
    for (;;) {
        const ssize_t n = ::recv(c.fd, buf, size, 0);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) c.gone = true;
        return -1;
    }
}

void MetricsServer::read_from(Client& c) {
    char buf[4096];
    for (;;) {
        const ssize_t n = receive(c, buf, sizeof buf);
        if (n < 0) return;
        if (n == 0) {
            // Gone before a whole head: nothing to answer if it said nothing,
            // else what came is answered as it is (a 400, most likely).
            if (c.in.find_first_not_of("\r\n") == std::string::npos) {
                c.gone = true;
                return;
            }
            c.in += "\n\n";
        } else {
            c.in.append(buf, static_cast<usize>(n));
        }
        // RFC 9112 §2.2: empty lines before the request line are ignored.
        c.in.erase(0, std::min(c.in.find_first_not_of("\r\n"), c.in.size()));
        const usize end = head_end(c.in);
        if (end != std::string::npos && end <= options_.max_head) {
            respond(c, end);
            return;
        }
        if (end != std::string::npos || c.in.size() >= options_.max_head) {
            c.out = wire(Reply{.status = 431,
                               .body = fmt::format("The request head is longer than {} bytes\n", options_.max_head)});
            c.phase = Client::Phase::Writing;
            write_to(c);
            return;
        }
    }
}

void MetricsServer::respond(Client& c, usize end) {
    // The head without its empty line; what follows it (a body) is drained at the end.
    std::string_view head(c.in.data(), end);
    while (!head.empty() && (head.back() == '\n' || head.back() == '\r')) head.remove_suffix(1);
    c.out = wire(answer(head, render_));
    c.in.clear();
    c.phase = Client::Phase::Writing;
    write_to(c);
}

void MetricsServer::write_to(Client& c) {
    while (c.sent < c.out.size()) {
        const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) c.gone = true;
            return;
        }
        c.sent += static_cast<usize>(n);
    }
    // All out: say so (FIN), then read what the client still sends until it closes.
    c.out.clear();
    ::shutdown(c.fd, SHUT_WR);
    c.phase = Client::Phase::Draining;
    drain(c);
}

void MetricsServer::drain(Client& c) {
    char buf[4096];
    for (;;) {
        const ssize_t n = receive(c, buf, sizeof buf);
        if (n < 0) return;
        c.drained += static_cast<usize>(n);
        if (n == 0 || c.drained > kMaxDrained) {
            c.gone = true;
            return;
        }
    }
}

monitor::FleetCompanion serve_run_metrics(MetricsAddress address, monitor::FleetCompanion inner) {
    return [address = std::move(address),
            inner = std::move(inner)](monitor::Fleet& fleet) -> Result<std::shared_ptr<void>, Error> {
        // The metrics stop first: the figures they read are the Fleet's, which outlives both.
        struct Both {
            std::shared_ptr<void> inner;
            std::unique_ptr<MetricsServer> metrics;
            ~Both() { metrics.reset(); }
        };
        auto both = std::make_shared<Both>();
        if (inner) both->inner = DISCO_TRY(inner(fleet));
        monitor::Fleet* f = &fleet;
        auto server = MetricsServer::start({.address = address}, [f] { return fleet_metrics(*f); });
        if (!server) return fail(Error{fmt::format("--metrics {}: {}", to_string(address), server.error().message)});
        both->metrics = std::move(*server);
        // As the daemon does: where it listens (the port, when it was 0).
        fmt::print(stderr, "disco: metrics at {}\n", both->metrics->where());
        return std::shared_ptr<void>(both);
    };
}
}  // namespace disco::control
