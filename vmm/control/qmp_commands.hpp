// The control protocol apart from its transport: what a QMP connection may
// say and what it gets back (configs/control-schema.md is the schema). The
// socket server (qmp_server.hpp), the unit tests and the fuzz target all drive
// it the same way: a QmpSession per connection, fed one message at a time.
//
// Vocabulary: QMP's standard commands where Disco can honour them, with their
// upstream names and replies, and Disco's own under the downstream prefix QMP
// prescribes for vendor extensions, "__RFQDN_" (qapi-code-gen, "Naming rules
// and reserved names"): __com.disco-project_vm-list, ... (kVendorPrefix).
//
// Every request is checked in full (its members, each argument's name and
// type, the VM it names) before it has any effect; a bad one gets an error
// reply and the session goes on.
//
// Threads: QmpCommands is shared by every session and may be used from any
// thread (its state is the Fleet's, which locks; and the EventQueue's). A
// QmpSession belongs to one connection.
#pragma once
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/control/event_queue.hpp"
#include "vmm/monitor/fleet.hpp"

namespace disco::control {

using json = nlohmann::json;

/// The downstream prefix of Disco's commands and events.
inline constexpr std::string_view kVendorPrefix = "__com.disco-project_";

/// Messages deeper than this are refused before they are parsed.
inline constexpr unsigned kMaxNesting = 64;

struct ControlOptions {
    /// Relative paths in a created VM's definition are taken from here (the daemon's config folder).
    std::filesystem::path base_dir = ".";
    /// The most VMs the monitor holds; a create beyond it is refused.
    usize max_vms = 64;
    /// quit: ask the monitor to stop every VM and exit (returns at once).
    std::function<void()> on_quit;
    /// Where the commands' own events go (SHUTDOWN, STOP, RESUME, POWERDOWN, the
    /// page operations'); may be null (no events).
    EventQueue* events = nullptr;
};

/// The __com.disco-project_VM_STATE event for a VM's new status.
json vm_state_event(const monitor::FleetVmStatus& vm);

class QmpCommands {
public:
    QmpCommands(monitor::Fleet& fleet, ControlOptions options);

    /// Runs a command of a negotiated session: `args` is an object (maybe
    /// empty). Returns the reply without its id: {"return": ...} or
    /// {"error": {"class", "desc"}}.
    json execute(std::string_view command, const json& args);
    /// Every command's name (query-commands).
    std::vector<std::string> names() const;

    /// The greeting's and query-version's version object.
    static json version();

private:
    monitor::Fleet& fleet_;
    ControlOptions options_;
};

class QmpSession {
public:
    explicit QmpSession(QmpCommands& commands) : commands_(commands) {}

    /// What the server sends first: {"QMP": {"version": ..., "capabilities": []}}.
    static json greeting();

    /// One message as text (what the framer cut out): its reply, always an object.
    json handle_text(std::string_view text);
    /// One parsed message: its reply (the request's "id" echoed when it has one).
    json handle(const json& request);
    /// Whether qmp_capabilities has been accepted: events go only to such sessions.
    bool negotiated() const { return negotiated_; }

private:
    QmpCommands& commands_;
    bool negotiated_ = false;
};

/// An error reply without id: {"error": {"class": cls, "desc": desc}}.
json error_reply(std::string_view cls, std::string desc);
}  // namespace disco::control
