// The metrics endpoint (configs/control-schema.md, "Metrics"): `GET /metrics`
// over HTTP/1.x, answered with the monitor's figures in Prometheus's text
// format (metrics_text.hpp). Off unless asked for (`--metrics ADDR`), and
// only local: a unix socket, or TCP on a loopback address.
//
// One thread of its own polls the listening socket and every connection;
// nothing it does waits on a client. Each connection is bounded:
//  - its request head (request line and header fields, RFC 9112 §2.1) is at
//    most max_head bytes (beyond: 431, RFC 6585 §5);
//  - it has `deadline` from being accepted to being closed, whatever it does
//    or fails to do meanwhile (sends nothing, reads nothing);
//  - at most max_clients are open; one more is closed at once.
// Replies, each with Content-Length and "Connection: close", and the
// connection then closed (after the client's unread bytes are drained, so
// that the reply is not lost to a reset):
//  - GET (or HEAD) /metrics: 200, Content-Type kMetricsContentType, the text;
//  - another path: 404; another method: 405 with Allow; a head that is not
//    HTTP/1.x: 400.
// The unix socket is made 0600 (before it listens: no one else may connect in
// between) and removed when the server stops, if it is still ours.
//
// Log lines go to log_fd: "disco: metrics: ...".
#pragma once
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "vmm/monitor/fleet.hpp"
#include "vmm/util/result.hpp"

namespace disco::control {

/// Where the endpoint listens: `unix:PATH` or `tcp:HOST:PORT`.
struct MetricsAddress {
    enum class Kind { Unix, Tcp } kind = Kind::Unix;
    std::string path;  // Unix
    /// Tcp: a numeric loopback address (127.0.0.0/8 or ::1; "localhost" is 127.0.0.1), without brackets.
    std::string host;
    u16 port = 0;  // Tcp; 0: any free port (MetricsServer::port() says which)
    bool ipv6 = false;
};

/// "unix:PATH" or "tcp:HOST:PORT" ("tcp:[::1]:PORT"), as parse_metrics_address reads it.
std::string to_string(const MetricsAddress& address);

/// The address in one of its forms: unix:PATH; tcp:HOST:PORT with HOST
/// 127.x.y.z, localhost, ::1 or [::1]. Anything else, or a HOST that is not
/// a loopback address, is refused with a line naming the problem.
Result<MetricsAddress, Error> parse_metrics_address(std::string_view text);

struct MetricsServerOptions {
    MetricsAddress address;
    usize max_head = 8 * 1024;
    std::chrono::milliseconds deadline{2000};
    usize max_clients = 16;
    int log_fd = STDERR_FILENO;
};

class MetricsServer {
public:
    /// The reply body for GET /metrics; called on the server's thread.
    using Render = std::function<std::string()>;

    /// Binds and listens, and starts serving. Fails when the address cannot
    /// be bound (in use; a path taken by something that is not a stale socket).
    static Result<std::unique_ptr<MetricsServer>, Error> start(MetricsServerOptions options, Render render);
    /// Stops serving, closes every connection, removes the unix socket.
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    /// The TCP port listened on (the one the kernel chose for port 0); 0 for a unix socket.
    u16 port() const { return port_; }
    /// "unix:PATH" or "tcp:HOST:PORT" (the port bound), for log lines.
    std::string where() const;

private:
    struct Client;
    MetricsServer(MetricsServerOptions options, Render render);
    void serve();
    void accept_clients();
    static ssize_t receive(Client& c, char* buf, usize size);
    void read_from(Client& c);
    void respond(Client& c, usize end);
    void write_to(Client& c);
    void drain(Client& c);
    void log(const std::string& line) const;

    MetricsServerOptions options_;
    Render render_;
    int listen_fd_ = -1, stop_fd_ = -1;
    u16 port_ = 0;
    dev_t socket_dev_ = 0;
    ino_t socket_ino_ = 0;
    std::vector<std::unique_ptr<Client>> clients_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

/// `disco run ... --metrics ADDR`: the companion (fleet.hpp) that serves the
/// fleet's figures at `address` once its VMs have started, beside `inner`
/// (another companion, such as --control's; may be empty).
monitor::FleetCompanion serve_run_metrics(MetricsAddress address, monitor::FleetCompanion inner);
}  // namespace disco::control
