#include "vmm/control/cli_client.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <nlohmann/json.hpp>

#include "vmm/control/qmp_commands.hpp"
#include "vmm/control/qmp_server.hpp"

namespace disco::control {
namespace {
using Clock = std::chrono::steady_clock;

/// A blocking QMP client with one deadline for everything it does.
class QmpClient {
public:
    explicit QmpClient(Clock::time_point deadline) : deadline_(deadline) {}
    ~QmpClient() {
        if (fd_ >= 0) ::close(fd_);
    }

    Result<void, Error> connect(const std::string& path) {
        sockaddr_un addr{};
        if (path.size() >= sizeof addr.sun_path) return fail(Error{fmt::format("socket path too long: {}", path)});
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) return fail(Error{fmt::format("socket: {}", std::strerror(errno))});
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            return fail(Error{fmt::format("cannot connect to the monitor at {}: {}", path, std::strerror(errno))});
        const json greeting = DISCO_TRY(read_message());
        if (!greeting.contains("QMP")) return fail(Error{fmt::format("{} did not greet as a QMP monitor", path)});
        const json reply = DISCO_TRY(execute("qmp_capabilities", json::object()));
        if (reply.contains("error")) return fail(Error{reply["error"].value("desc", "negotiation refused")});
        return {};
    }

    /// The reply to one command (events that come first are kept for wait_for).
    Result<json, Error> execute(const std::string& command, const json& args) {
        const int id = ++last_id_;
        json request = {{"execute", command}, {"id", id}};
        if (!args.empty()) request["arguments"] = args;
        DISCO_TRY(send(request.dump() + "\n"));
        for (;;) {
            json message = DISCO_TRY(read_message());
            if (message.contains("event")) {
                events_.push_back(std::move(message));
                continue;
            }
            if (message.value("id", json()) == id) return message;
        }
    }

    /// Waits for an event matching `match` (one already received counts).
    template <class Match>
    Result<json, Error> wait_for(Match match) {
        for (;;) {
            while (!events_.empty()) {
                json event = std::move(events_.front());
                events_.pop_front();
                if (match(event)) return event;
            }
            json message = DISCO_TRY(read_message());
            if (message.contains("event")) events_.push_back(std::move(message));
        }
    }

private:
    Result<void, Error> send(const std::string& text) {
        usize done = 0;
        while (done < text.size()) {
            const ssize_t n = ::send(fd_, text.data() + done, text.size() - done, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                return fail(Error{fmt::format("writing to the monitor: {}", std::strerror(errno))});
            }
            done += static_cast<usize>(n);
        }
        return {};
    }

    /// The next line the monitor sends, as JSON (the server ends each message with CRLF).
    Result<json, Error> read_message() {
        for (;;) {
            if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
                const std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                json message = json::parse(line, nullptr, false);
                if (message.is_discarded() || !message.is_object())
                    return fail(Error{"the monitor sent something that is not a QMP message"});
                return message;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
            if (left.count() <= 0) return fail(Error{"the monitor did not answer in time"});
            pollfd p{fd_, POLLIN, 0};
            const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
            if (ready < 0 && errno != EINTR) return fail(Error{fmt::format("poll: {}", std::strerror(errno))});
            if (ready <= 0) continue;
            char buf[16 * 1024];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(Error{fmt::format("reading from the monitor: {}", std::strerror(errno))});
            if (n == 0) return fail(Error{"the monitor closed the connection"});
            buffer_.append(buf, static_cast<usize>(n));
        }
    }

    Clock::time_point deadline_;
    int fd_ = -1;
    int last_id_ = 0;
    std::string buffer_;
    std::deque<json> events_;
};

std::string mib(const json& bytes) { return fmt::format("{} MiB", bytes.get<u64>() >> 20); }

/// virsh's words for a state.
std::string state_words(const json& vm) {
    const std::string state = vm.value("state", "");
    if (state == "shutoff") return "shut off";
    if (state == "shutdown") return "in shutdown";
    return state;
}

void print_table(const json& vms) {
    std::vector<std::vector<std::string>> rows{{"Name", "State", "vCPUs", "Memory", "Console"}};
    for (const auto& vm : vms)
        rows.push_back({vm.value("name", ""), state_words(vm), std::to_string(vm.value("vcpus", 0)),
                        mib(vm.value("memory", json(0))), vm.value("console", "")});
    print_columns(rows);
}

void print_info(const json& vm) {
    const auto row = [](std::string_view key, const std::string& value) {
        std::printf("%-14s %s\n", fmt::format("{}:", key).c_str(), value.c_str());
    };
    row("Name", vm.value("name", ""));
    row("State", fmt::format("{} ({})", state_words(vm), vm.value("reason", "")));
    row("Machine", vm.value("machine", ""));
    row("vCPUs", std::to_string(vm.value("vcpus", 0)));
    row("Memory", mib(vm.value("memory", json(0))));
    row("Console", vm.value("console", ""));
    if (vm.contains("vcpu-nodes")) {
        std::string nodes;
        for (const auto& n : vm["vcpu-nodes"]) nodes += (nodes.empty() ? "" : " ") + std::to_string(n.get<unsigned>());
        row("vCPU nodes", nodes);
    }
    if (vm.contains("exit-status")) row("Exit status", std::to_string(vm["exit-status"].get<int>()));
    if (vm.contains("source")) row("Defined in", vm["source"].get<std::string>());
}

int refuse(const std::string& message) {
    std::fprintf(stderr, "disco: %s\n", message.c_str());
    return 1;
}

/// The reply's value, or the monitor's error message.
Result<json, Error> value_of(Result<json, Error> reply) {
    if (!reply) return fail(reply.error());
    if (reply->contains("error")) return fail(Error{(*reply)["error"].value("desc", "the monitor refused")});
    return (*reply)["return"];
}

std::string vendor_command(std::string_view name) { return std::string(kVendorPrefix) + std::string(name); }

Clock::time_point deadline_of(const ClientOptions& options) {
    return Clock::now() + std::chrono::milliseconds(static_cast<long long>(std::max(options.timeout_s, 0.1) * 1000));
}

std::string socket_of(const ClientOptions& options) {
    return options.socket_path.empty() ? default_socket_path() : options.socket_path;
}
}  // namespace

void print_columns(const std::vector<std::vector<std::string>>& rows) {
    std::vector<usize> width;
    for (const auto& r : rows) {
        width.resize(std::max(width.size(), r.size()));
        for (usize i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    }
    usize total = 1;  // the leading space
    for (usize i = 0; i < width.size(); ++i) total += width[i] + (i + 1 < width.size() ? 3 : 0);
    for (usize n = 0; n < rows.size(); ++n) {
        std::string line = " ";
        for (usize i = 0; i < rows[n].size(); ++i)
            line += i + 1 < rows[n].size() ? fmt::format("{:<{}}   ", rows[n][i], width[i]) : rows[n][i];
        std::puts(line.c_str());
        if (n == 0) std::puts(std::string(total, '-').c_str());
    }
}

void print_json(const nlohmann::json& value) {
    std::puts(value.dump(2, ' ', false, json::error_handler_t::replace).c_str());
}

Result<nlohmann::json, Error> ask_monitor(const std::string& command, const nlohmann::json& args,
                                          const ClientOptions& options) {
    QmpClient client(deadline_of(options));
    DISCO_TRY(client.connect(socket_of(options)));
    return value_of(client.execute(command, args));
}

int run_client(const std::string& command, const std::string& vm, const ClientOptions& options) {
    QmpClient client(deadline_of(options));
    if (auto connected = client.connect(socket_of(options)); !connected) return refuse(connected.error().message);
    const json name_arg = {{"vm", vm}};

    if (command == "list") {
        auto vms = value_of(client.execute(vendor_command("vm-list"), json::object()));
        if (!vms) return refuse(vms.error().message);
        if (options.json)
            print_json(*vms);
        else
            print_table(*vms);
        return 0;
    }
    if (command == "status") {
        auto info = value_of(client.execute(vendor_command("vm-info"), name_arg));
        if (!info) return refuse(info.error().message);
        if (options.json)
            print_json(*info);
        else
            print_info(*info);
        return 0;
    }
    if (command == "start" || command == "stop") {
        auto done = value_of(client.execute(vendor_command("vm-" + command), name_arg));
        if (!done) return refuse(done.error().message);
        if (command == "stop") {
            // The VM ends on its own threads: wait for the event that says it has.
            auto ended = client.wait_for([&](const json& e) {
                return e.value("event", "") == vendor_command("VM_STATE") && e.contains("data") &&
                       e["data"].value("vm", "") == vm && e["data"].value("state", "") == "shutoff";
            });
            if (!ended) return refuse(fmt::format("VM {} did not stop: {}", vm, ended.error().message));
        }
        auto info = value_of(client.execute(vendor_command("vm-info"), name_arg));
        if (!info) return refuse(info.error().message);
        if (options.json)
            print_json(*info);
        else
            std::printf("VM %s %s: %s\n", vm.c_str(), command == "start" ? "started" : "stopped",
                        state_words(*info).c_str());
        return 0;
    }
    // virsh's suspend, resume and shutdown, on QMP's standard commands.
    const std::pair<std::string_view, std::string_view> verbs[] = {
        {"suspend", "stop"}, {"resume", "cont"}, {"shutdown", "system_powerdown"}};
    for (const auto& [verb, qmp] : verbs) {
        if (command != verb) continue;
        auto done = value_of(client.execute(std::string(qmp), name_arg));
        if (!done) return refuse(done.error().message);
        auto info = value_of(client.execute(vendor_command("vm-info"), name_arg));
        if (!info) return refuse(info.error().message);
        if (options.json)
            print_json(*info);
        else if (verb == "shutdown")
            std::printf("VM %s is shutting down: its guest was asked to power off\n", vm.c_str());
        else
            std::printf("VM %s %s: %s\n", vm.c_str(), verb == "suspend" ? "suspended" : "resumed",
                        state_words(*info).c_str());
        return 0;
    }
    return refuse(fmt::format("unknown control command '{}'", command));
}
}  // namespace disco::control
