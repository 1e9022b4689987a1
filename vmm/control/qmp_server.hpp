// The control socket: a unix stream socket speaking QMP (qmp_commands.hpp
// holds the protocol), served by one thread of its own that polls the
// listening socket, every connection and the event queue. Nothing it does
// waits on a client: sockets are non-blocking, and each connection has bounded
// buffers:
//  - input: one message at most QmpServerOptions::max_request bytes (the
//    framer answers a longer one with an error and skips it; the connection
//    stays usable);
//  - output: once replies not yet read pass a quarter of max_output, the
//    connection's input is no longer read (requests wait in the kernel's
//    socket buffer: the client is slowed, nobody else); if events push it past
//    max_output, the client is stuck and is disconnected, with a log line.
//
// Access: the socket lives in a private folder (created 0700, or 0750 with a
// group; an existing one must belong to the monitor's user and be writable by
// no one else), with mode 0600 (0660 with a group). Each connection's peer
// (SO_PEERCRED) must be the monitor's own uid, root, one of allowed_uids, or
// have the configured group as its group; anyone else is refused: logged
// (uid, gid, pid) and closed at once. At most max_clients connections.
//
// Log lines go to log_fd: "disco: control: ...".
#pragma once
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vmm/control/event_queue.hpp"
#include "vmm/control/qmp_commands.hpp"
#include "vmm/util/result.hpp"

namespace disco::control {

struct QmpServerOptions {
    std::string socket_path = {};
    /// Members of this group (as their primary group) may connect too; the socket is then 0660 and its folder 0750, of
    /// that group.
    std::optional<gid_t> group = std::nullopt;
    /// Users allowed besides the monitor's own and root.
    std::vector<uid_t> allowed_uids = {};
    usize max_request = 64 * 1024;
    usize max_output = 1024 * 1024;
    usize max_clients = 64;
    int log_fd = STDERR_FILENO;
};

class QmpServer {
public:
    /// Creates the folder if need be, binds and listens, and starts serving.
    /// Fails if the folder is not private, the path is taken by something
    /// other than a stale socket, or another monitor answers on it.
    static Result<std::unique_ptr<QmpServer>, Error> start(QmpServerOptions options, QmpCommands& commands,
                                                           EventQueue& events);
    /// Stops serving: sends what it can of the replies and events still
    /// waiting (for a moment), closes every connection, removes the socket.
    ~QmpServer();
    QmpServer(const QmpServer&) = delete;
    QmpServer& operator=(const QmpServer&) = delete;

    const std::string& path() const { return options_.socket_path; }

private:
    struct Client;
    QmpServer(QmpServerOptions options, QmpCommands& commands, EventQueue& events);
    void serve();
    void accept_clients();
    bool allowed(uid_t uid, gid_t gid) const;
    void read_from(Client& c);
    void answer_pending(Client& c);
    void write_to(Client& c);
    void broadcast_events();
    void drop(Client& c, const std::string& why);
    void flush_and_close_all();
    void log(const std::string& line) const;

    QmpServerOptions options_;
    QmpCommands& commands_;
    EventQueue& events_;
    int listen_fd_ = -1, stop_fd_ = -1;
    dev_t socket_dev_ = 0;
    ino_t socket_ino_ = 0;
    std::vector<std::unique_ptr<Client>> clients_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

/// A unix socket path left by a monitor that died (a socket nobody answers
/// on) is removed; nothing there is fine. Fails when the path is something
/// else, or a socket someone serves (the control socket's and the metrics').
Result<void, Error> remove_stale_socket(const std::string& path);

/// A serving thread's end, for the control and metrics servers: sets
/// `stopping`, wakes the thread's poll through its eventfd, joins it.
void stop_serving_thread(std::thread& thread, std::atomic<bool>& stopping, int stop_fd);

/// The next connection on a non-blocking listening socket, itself non-blocking
/// and close-on-exec; -1 when there is none now (why is set if that is an error
/// worth logging).
int accept_connection(int listen_fd, std::string& why);

/// Unlinks the socket at path if it is still the one this server made (same
/// device and inode): a monitor started since may have put its own there.
void unlink_own_socket(const std::string& path, dev_t dev, ino_t ino);

/// Where the monitor's socket is unless told otherwise: /run/disco/qmp.sock
/// for root, else $XDG_RUNTIME_DIR/disco/qmp.sock, else /tmp/disco-UID/qmp.sock.
std::string default_socket_path();
}  // namespace disco::control
