#include "vmm/control/qmp_server.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>

#include "vmm/control/qmp_framer.hpp"

namespace disco::control {
namespace {
std::string errno_text() { return std::strerror(errno); }

Error error(std::string message) { return Error{"control socket: " + std::move(message)}; }

/// The socket's folder: made private, or checked to be.
Result<void, Error> private_folder(const std::filesystem::path& dir, std::optional<gid_t> group) {
    const mode_t mode = group ? 0750 : 0700;
    if (::mkdir(dir.c_str(), mode) == 0) {
        // mkdir's mode passes through the umask; set it exactly, and the group.
        if (group && ::chown(dir.c_str(), static_cast<uid_t>(-1), *group) != 0)
            return fail(error(fmt::format("cannot give {} to group {}: {}", dir.string(), *group, errno_text())));
        if (::chmod(dir.c_str(), mode) != 0)
            return fail(error(fmt::format("cannot chmod {}: {}", dir.string(), errno_text())));
        return {};
    }
    if (errno != EEXIST) return fail(error(fmt::format("cannot create {}: {}", dir.string(), errno_text())));
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) return fail(error(fmt::format("{}: {}", dir.string(), errno_text())));
    if (!S_ISDIR(st.st_mode)) return fail(error(fmt::format("{} is not a folder", dir.string())));
    // Whoever may write to the folder may replace the socket: only its owner, who must be us.
    if (st.st_uid != ::geteuid())
        return fail(error(
            fmt::format("{} belongs to uid {}, not to this monitor's uid {}", dir.string(), st.st_uid, ::geteuid())));
    if (st.st_mode & 022)
        return fail(error(fmt::format("{} is writable by others (mode {:04o}): it must be private", dir.string(),
                                      st.st_mode & 07777)));
    return {};
}

/// A reply or event on the wire: compact JSON and CRLF, as QEMU sends. Strings
/// that are not UTF-8 (a path, a name a client sent) go out with U+FFFD.
std::string wire(const json& message) { return message.dump(-1, ' ', false, json::error_handler_t::replace) + "\r\n"; }
}  // namespace

struct QmpServer::Client {
    Client(int fd_, ucred peer_, usize max_request, QmpCommands& commands)
        : fd(fd_), peer(peer_), framer(max_request), session(commands) {}
    ~Client() { ::close(fd); }
    usize unsent() const { return out.size() - sent; }

    int fd;
    ucred peer;
    QmpFramer framer;
    QmpSession session;
    std::deque<QmpFramer::Piece> pending;  // read, not yet answered (output was full)
    std::string out;
    usize sent = 0;
    bool eof = false;   // the client will send no more (it may still read)
    bool gone = false;  // closed; removed after this round
};

QmpServer::QmpServer(QmpServerOptions options, QmpCommands& commands, EventQueue& events)
    : options_(std::move(options)), commands_(commands), events_(events) {}

std::string default_socket_path() {
    if (::geteuid() == 0) return "/run/disco/qmp.sock";
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg == '/')
        return fmt::format("{}/disco/qmp.sock", xdg);
    return fmt::format("/tmp/disco-{}/qmp.sock", ::geteuid());
}

// A path left by a monitor that died is a socket nobody answers on.
Result<void, Error> remove_stale_socket(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return {};
        return fail(Error{fmt::format("{}: {}", path, errno_text())});
    }
    if (!S_ISSOCK(st.st_mode)) return fail(Error{fmt::format("{} exists and is not a socket", path)});
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) return fail(Error{fmt::format("socket: {}", errno_text())});
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const bool answered = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(probe);
    if (answered) return fail(Error{fmt::format("another monitor is serving {}", path)});
    if (::unlink(path.c_str()) != 0)
        return fail(Error{fmt::format("cannot remove the stale {}: {}", path, errno_text())});
    return {};
}

Result<std::unique_ptr<QmpServer>, Error> QmpServer::start(QmpServerOptions options, QmpCommands& commands,
                                                           EventQueue& events) {
    const std::filesystem::path path(options.socket_path);
    sockaddr_un addr{};
    if (options.socket_path.empty() || options.socket_path.size() >= sizeof addr.sun_path)
        return fail(error(fmt::format("the path '{}' is empty or longer than {} bytes", options.socket_path,
                                      sizeof addr.sun_path - 1)));
    DISCO_TRY(private_folder(path.parent_path().empty() ? "." : path.parent_path(), options.group));
    if (auto cleared = remove_stale_socket(options.socket_path); !cleared) return fail(error(cleared.error().message));

    std::unique_ptr<QmpServer> server(new QmpServer(std::move(options), commands, events));
    const std::string& where = server->options_.socket_path;
    server->listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (server->listen_fd_ < 0) return fail(error(fmt::format("socket: {}", errno_text())));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, where.c_str(), where.size() + 1);
    if (::bind(server->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return fail(error(fmt::format("cannot bind {}: {}", where, errno_text())));
    // bind() made the file with the umask's mode: set it before anyone can
    // connect (the private folder keeps others out meanwhile).
    const mode_t mode = server->options_.group ? 0660 : 0600;
    if (server->options_.group && ::chown(where.c_str(), static_cast<uid_t>(-1), *server->options_.group) != 0)
        return fail(error(fmt::format("cannot give {} to group {}: {}", where, *server->options_.group, errno_text())));
    if (::chmod(where.c_str(), mode) != 0) return fail(error(fmt::format("cannot chmod {}: {}", where, errno_text())));
    struct stat st {};
    if (::stat(where.c_str(), &st) != 0) return fail(error(fmt::format("{}: {}", where, errno_text())));
    server->socket_dev_ = st.st_dev;
    server->socket_ino_ = st.st_ino;
    if (::listen(server->listen_fd_, 64) != 0) return fail(error(fmt::format("listen: {}", errno_text())));
    server->stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (server->stop_fd_ < 0) return fail(error(fmt::format("eventfd: {}", errno_text())));
    server->thread_ = std::thread([s = server.get()] { s->serve(); });
    return server;
}

void stop_serving_thread(std::thread& thread, std::atomic<bool>& stopping, int stop_fd) {
    if (!thread.joinable()) return;
    stopping.store(true);
    const u64 one = 1;
    [[maybe_unused]] const ssize_t n = ::write(stop_fd, &one, sizeof one);
    thread.join();
}

int accept_connection(int listen_fd, std::string& why) {
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    // No one waiting, or one who left before being accepted: not worth a line.
    if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        why = fmt::format("accept: {}", errno_text());
    return fd;
}

void unlink_own_socket(const std::string& path, dev_t dev, ino_t ino) {
    struct stat st {};
    if (ino != 0 && ::lstat(path.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) ::unlink(path.c_str());
}

QmpServer::~QmpServer() {
    stop_serving_thread(thread_, stopping_, stop_fd_);
    clients_.clear();
    if (listen_fd_ >= 0) {
        ::close(listen_fd_);
        unlink_own_socket(options_.socket_path, socket_dev_, socket_ino_);
    }
    if (stop_fd_ >= 0) ::close(stop_fd_);
}

void QmpServer::log(const std::string& line) const {
    const std::string text = fmt::format("disco: control: {}\n", line);
    [[maybe_unused]] const ssize_t n = ::write(options_.log_fd, text.data(), text.size());
}

bool QmpServer::allowed(uid_t uid, gid_t gid) const {
    if (uid == ::geteuid() || uid == 0) return true;
    if (std::find(options_.allowed_uids.begin(), options_.allowed_uids.end(), uid) != options_.allowed_uids.end())
        return true;
    return options_.group && gid == *options_.group;
}

void QmpServer::serve() {
    std::vector<pollfd> fds;
    while (!stopping_.load()) {
        fds.clear();
        fds.push_back({stop_fd_, POLLIN, 0});
        fds.push_back({events_.fd(), POLLIN, 0});
        fds.push_back({listen_fd_, POLLIN, 0});
        const usize soft_limit = options_.max_output / 4;
        for (const auto& c : clients_) {
            short want = 0;
            if (!c->eof && c->pending.empty() && c->unsent() < soft_limit) want |= POLLIN;
            if (c->unsent() > 0) want |= POLLOUT;
            fds.push_back({c->fd, want, 0});
        }
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            log(fmt::format("poll: {}; no longer serving", errno_text()));
            break;
        }
        if (fds[0].revents) break;
        if (fds[2].revents & POLLIN) accept_clients();
        // Clients accepted just now are not in fds: only the first ones are polled.
        const usize polled = fds.size() - 3;
        for (usize i = 0; i < polled && i < clients_.size(); ++i) {
            Client& c = *clients_[i];
            const short got = fds[i + 3].revents;
            if (got & POLLERR) c.gone = true;
            if (!c.gone && !c.eof && (got & (POLLIN | POLLHUP))) read_from(c);
            if (!c.gone) answer_pending(c);
            if (!c.gone && (got & POLLOUT)) write_to(c);
            // A client that has said all it will and been answered is done.
            if (c.eof && c.pending.empty() && c.unsent() == 0) c.gone = true;
        }
        if (fds[1].revents & POLLIN) broadcast_events();
        std::erase_if(clients_, [](const auto& c) { return c->gone; });
    }
    flush_and_close_all();
}

void QmpServer::accept_clients() {
    for (;;) {
        std::string why;
        const int fd = accept_connection(listen_fd_, why);
        if (fd < 0) {
            if (!why.empty()) log(why);
            return;
        }
        ucred peer{};
        socklen_t len = sizeof peer;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) {
            log(fmt::format("refused a connection: SO_PEERCRED: {}", errno_text()));
            ::close(fd);
            continue;
        }
        if (!allowed(peer.uid, peer.gid)) {
            log(fmt::format("refused a connection from uid {} gid {} pid {}: not an allowed user or group", peer.uid,
                            peer.gid, peer.pid));
            ::close(fd);
            continue;
        }
        if (clients_.size() >= options_.max_clients) {
            log(fmt::format("refused a connection from uid {} pid {}: already {} connections", peer.uid, peer.pid,
                            clients_.size()));
            ::close(fd);
            continue;
        }
        auto client = std::make_unique<Client>(fd, peer, options_.max_request, commands_);
        client->out = wire(QmpSession::greeting());
        write_to(*client);
        if (!client->gone) clients_.push_back(std::move(client));
    }
}

void QmpServer::read_from(Client& c) {
    char buf[64 * 1024];
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        drop(c, fmt::format("read: {}", errno_text()));
        return;
    }
    if (n == 0) {
        c.eof = true;  // answered in full before the connection closes
        return;
    }
    std::vector<QmpFramer::Piece> pieces;
    c.framer.feed(std::string_view(buf, static_cast<usize>(n)), pieces);
    for (auto& p : pieces) c.pending.push_back(std::move(p));
}

void QmpServer::answer_pending(Client& c) {
    const usize soft_limit = options_.max_output / 4;
    while (!c.pending.empty() && c.unsent() < soft_limit) {
        QmpFramer::Piece piece = std::move(c.pending.front());
        c.pending.pop_front();
        json reply;
        switch (piece.kind) {
            case QmpFramer::Piece::Kind::Text:
                reply = c.session.handle_text(piece.text);
                break;
            case QmpFramer::Piece::Kind::Oversized:
                reply = error_reply("GenericError", fmt::format("JSON parse error, a message longer than {} bytes "
                                                                "(the rest of it is skipped)",
                                                                options_.max_request));
                break;
            case QmpFramer::Piece::Kind::Reset:
                reply = error_reply("GenericError", "JSON parse error, message abandoned at a control character");
                break;
        }
        c.out += wire(reply);
    }
    write_to(c);
}

void QmpServer::write_to(Client& c) {
    while (c.unsent() > 0) {
        const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.unsent(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            if (errno != EPIPE && errno != ECONNRESET) log(fmt::format("write: {}", errno_text()));
            c.gone = true;
            return;
        }
        c.sent += static_cast<usize>(n);
    }
    if (c.sent == c.out.size()) {
        c.out.clear();
        c.sent = 0;
    } else if (c.sent > c.out.size() / 2) {
        c.out.erase(0, c.sent);
        c.sent = 0;
    }
}

void QmpServer::broadcast_events() {
    for (const json& event : events_.take()) {
        const std::string text = wire(event);
        for (auto& c : clients_) {
            if (c->gone || !c->session.negotiated()) continue;  // QMP: no events before negotiation
            c->out += text;
            if (c->unsent() > options_.max_output)
                drop(*c, fmt::format("more than {} bytes of replies and events unread", options_.max_output));
            else
                write_to(*c);
        }
    }
}

void QmpServer::drop(Client& c, const std::string& why) {
    log(fmt::format("disconnected uid {} pid {}: {}", c.peer.uid, c.peer.pid, why));
    c.gone = true;
}

void QmpServer::flush_and_close_all() {
    // What was said before the stop (quit's reply, the last events) goes out
    // if the clients read it within a moment; nobody holds the monitor longer.
    broadcast_events();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    for (;;) {
        std::vector<pollfd> fds;
        for (const auto& c : clients_)
            if (!c->gone && c->unsent() > 0) fds.push_back({c->fd, POLLOUT, 0});
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (fds.empty() || left.count() <= 0) break;
        if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) <= 0) break;
        for (auto& c : clients_)
            if (!c->gone && c->unsent() > 0) write_to(*c);
    }
    clients_.clear();
}
}  // namespace disco::control
