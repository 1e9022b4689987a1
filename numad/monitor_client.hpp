// A small blocking client of the monitor's control socket (configs/control-schema.md "Wire
// format", QMP's framing: ecosystem.md §A1). One request at a time: connect, read the greeting,
// negotiate with qmp_capabilities, then execute commands by id. Events that arrive between
// replies are skipped (counted), replies with an id that is not ours are dropped as QMP asks.
// Every wait has a deadline and every message a size bound, so a monitor that hangs or floods
// the socket costs the daemon one clear error, not a hang or unbounded memory.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "vmm/util/result.hpp"

namespace disco::numad {

/// The client's one error type. `kind` says what a caller may do about it: a `command` error is
/// the monitor refusing one request (the connection is fine); every other kind means the
/// connection is unusable and the client has closed it.
struct ClientError {
    enum class Kind { connect, io, timeout, closed, protocol, too_large, command };
    Kind kind;
    std::string message;
    std::string error_class;  // QMP's class for `command` ("GenericError", "CommandNotFound")
};

struct ClientOptions {
    std::chrono::milliseconds timeout{5000};  // per request: send and the whole reply
    std::size_t max_message = 4u << 20;       // a hot-pages reply of 4096 pages is ~0.6 MiB
};

class MonitorClient {
public:
    /// Connects to the unix socket at `path` and negotiates; the client is ready for execute().
    static Result<MonitorClient, ClientError> connect(const std::string& path, ClientOptions options = {});

    MonitorClient(MonitorClient&& other) noexcept;
    MonitorClient& operator=(MonitorClient&& other) noexcept;
    MonitorClient(const MonitorClient&) = delete;
    MonitorClient& operator=(const MonitorClient&) = delete;
    ~MonitorClient();

    /// Runs one command and returns its `return` value.
    Result<nlohmann::json, ClientError> execute(const std::string& command,
                                                const nlohmann::json& arguments = nlohmann::json::object());

    bool connected() const { return fd_ >= 0; }
    /// The monitor's pid from SO_PEERCRED (0 when unknown).
    pid_t peer_pid() const { return peer_pid_; }
    /// The greeting's "package" string, e.g. "disco 0.1.0".
    const std::string& server_package() const { return package_; }
    std::uint64_t events_skipped() const { return events_skipped_; }

private:
    MonitorClient(int fd, ClientOptions options) : fd_(fd), options_(options) {}
    ClientError broken(ClientError::Kind kind, std::string message);
    Result<void, ClientError> send_line(const std::string& text, std::chrono::steady_clock::time_point deadline);
    Result<nlohmann::json, ClientError> read_message(std::chrono::steady_clock::time_point deadline);
    Result<void, ClientError> handshake();
    void close_socket();

    int fd_ = -1;
    ClientOptions options_;
    std::string buffer_;  // bytes read but not yet framed
    std::uint64_t next_id_ = 1;
    std::uint64_t events_skipped_ = 0;
    pid_t peer_pid_ = 0;
    std::string package_;
};

}  // namespace disco::numad
