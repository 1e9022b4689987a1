#include "numad/monitor_client.hpp"

#include <errno.h>
#include <fmt/format.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <utility>

namespace disco::numad {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

}  // namespace

Result<MonitorClient, ClientError> MonitorClient::connect(const std::string& path, ClientOptions options) {
    sockaddr_un addr{};
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
        return fail(ClientError{
            ClientError::Kind::connect,
            fmt::format("socket path '{}' is empty or longer than {} bytes", path, sizeof(addr.sun_path) - 1),
            {}});
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(ClientError{ClientError::Kind::connect, fmt::format("socket: {}", strerror(errno)), {}});
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path.data(), path.size());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        const int err = errno;
        ::close(fd);
        return fail(
            ClientError{ClientError::Kind::connect, fmt::format("cannot connect to {}: {}", path, strerror(err)), {}});
    }
    MonitorClient client(fd, options);
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) client.peer_pid_ = cred.pid;
    if (auto r = client.handshake(); !r) return fail(std::move(r).error());
    return client;
}

MonitorClient::MonitorClient(MonitorClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      options_(other.options_),
      buffer_(std::move(other.buffer_)),
      next_id_(other.next_id_),
      events_skipped_(other.events_skipped_),
      peer_pid_(other.peer_pid_),
      package_(std::move(other.package_)) {}

MonitorClient& MonitorClient::operator=(MonitorClient&& other) noexcept {
    if (this != &other) {
        close_socket();
        fd_ = std::exchange(other.fd_, -1);
        options_ = other.options_;
        buffer_ = std::move(other.buffer_);
        next_id_ = other.next_id_;
        events_skipped_ = other.events_skipped_;
        peer_pid_ = other.peer_pid_;
        package_ = std::move(other.package_);
    }
    return *this;
}

MonitorClient::~MonitorClient() { close_socket(); }

void MonitorClient::close_socket() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
}

ClientError MonitorClient::broken(ClientError::Kind kind, std::string message) {
    close_socket();
    return ClientError{kind, std::move(message), {}};
}

Result<void, ClientError> MonitorClient::handshake() {
    const auto deadline = Clock::now() + options_.timeout;
    json greeting = DISCO_TRY(read_message(deadline));
    if (!greeting.contains("QMP") || !greeting["QMP"].is_object())
        return fail(broken(
            ClientError::Kind::protocol,
            fmt::format("the socket's first message is not a QMP greeting: {}", greeting.dump().substr(0, 200))));
    const json& qmp = greeting["QMP"];
    if (auto v = qmp.find("version"); v != qmp.end() && v->is_object()) {
        if (auto p = v->find("package"); p != v->end() && p->is_string()) package_ = p->get<std::string>();
    }
    // No capability is asked for: the monitor offers none (control-schema.md), and QMP forbids
    // enabling one that is not offered.
    DISCO_TRY(execute("qmp_capabilities"));
    return {};
}

Result<void, ClientError> MonitorClient::send_line(const std::string& text, Clock::time_point deadline) {
    std::size_t sent = 0;
    while (sent < text.size()) {
        pollfd p{fd_, POLLOUT, 0};
        const int ready = ::poll(&p, 1, remaining_ms(deadline));
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) return fail(broken(ClientError::Kind::io, fmt::format("poll: {}", strerror(errno))));
        if (ready == 0) return fail(broken(ClientError::Kind::timeout, "the monitor did not take the request in time"));
        const ssize_t n = ::send(fd_, text.data() + sent, text.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            return fail(broken(ClientError::Kind::closed, "the monitor closed the connection"));
        if (n < 0) return fail(broken(ClientError::Kind::io, fmt::format("send: {}", strerror(errno))));
        sent += static_cast<std::size_t>(n);
    }
    return {};
}

Result<json, ClientError> MonitorClient::read_message(Clock::time_point deadline) {
    if (fd_ < 0) return fail(ClientError{ClientError::Kind::closed, "not connected", {}});
    for (;;) {
        // The server ends every message with CRLF and writes compact JSON, so a message is one
        // line; blank lines between messages are tolerated.
        if (auto eol = buffer_.find('\n'); eol != std::string::npos) {
            std::string line = buffer_.substr(0, eol);
            buffer_.erase(0, eol + 1);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.find_first_not_of(" \t") == std::string::npos) continue;
            if (line.size() > options_.max_message) break;  // reported below
            json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
            if (message.is_discarded() || !message.is_object())
                return fail(broken(
                    ClientError::Kind::protocol,
                    fmt::format("the monitor sent something that is not a JSON object: {}", line.substr(0, 200))));
            return message;
        }
        if (buffer_.size() > options_.max_message) break;
        pollfd p{fd_, POLLIN, 0};
        const int ready = ::poll(&p, 1, remaining_ms(deadline));
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) return fail(broken(ClientError::Kind::io, fmt::format("poll: {}", strerror(errno))));
        if (ready == 0) return fail(broken(ClientError::Kind::timeout, "no reply from the monitor in time"));
        char chunk[65536];
        const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return fail(broken(ClientError::Kind::closed, "the monitor closed the connection"));
        if (n < 0) return fail(broken(ClientError::Kind::io, fmt::format("recv: {}", strerror(errno))));
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
    return fail(broken(
        ClientError::Kind::too_large,
        fmt::format("the monitor sent a message longer than {} bytes; connection dropped", options_.max_message)));
}

Result<json, ClientError> MonitorClient::execute(const std::string& command, const json& arguments) {
    if (fd_ < 0) return fail(ClientError{ClientError::Kind::closed, "not connected", {}});
    const auto deadline = Clock::now() + options_.timeout;
    const std::uint64_t id = next_id_++;
    json request = {{"execute", command}, {"id", id}};
    if (!arguments.empty()) request["arguments"] = arguments;
    DISCO_TRY(send_line(request.dump() + "\n", deadline));
    for (;;) {
        json message = DISCO_TRY(read_message(deadline));
        if (message.contains("event")) {
            ++events_skipped_;
            continue;
        }
        const bool is_reply = message.contains("return") || message.contains("error");
        if (!is_reply)
            return fail(broken(
                ClientError::Kind::protocol,
                fmt::format("the monitor sent neither a reply nor an event: {}", message.dump().substr(0, 200))));
        // QMP: drop replies with an id that is not ours. An error without an id answers the
        // request in flight (the server could not read its id); there is only ever one.
        const auto it = message.find("id");
        const bool ours = it != message.end() ? *it == json(id) : message.contains("error");
        if (!ours) continue;
        if (auto r = message.find("return"); r != message.end()) return *r;
        const json& error = message["error"];
        std::string cls = "GenericError", desc = error.dump();
        if (error.is_object()) {
            if (auto c = error.find("class"); c != error.end() && c->is_string()) cls = c->get<std::string>();
            if (auto d = error.find("desc"); d != error.end() && d->is_string()) desc = d->get<std::string>();
        }
        return fail(ClientError{ClientError::Kind::command, fmt::format("{}: {}: {}", command, cls, desc), cls});
    }
}

}  // namespace disco::numad
