// The `disco` subcommands that talk to a running monitor over its control
// socket (configs/control-schema.md):
//   disco list                 every VM: name, state, vCPUs, memory, console
//   disco status NAME          one VM in detail
//   disco start NAME           start a VM that is shut off
//   disco stop NAME            stop a running VM and wait until it has stopped
//   disco suspend NAME         pause a running VM (QMP stop)
//   disco resume NAME          let a paused VM run again (QMP cont)
//   disco shutdown NAME        ask its guest to power off (QMP system_powerdown)
// A human table by default; --json prints the reply's value for scripts.
// Exit status 0 on success, 1 when the monitor refuses (its message on
// stderr) or cannot be reached.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vmm/util/result.hpp"

namespace disco::control {

struct ClientOptions {
    std::string socket_path;  // "" = default_socket_path()
    bool json = false;
    /// Seconds for the whole exchange, including stop's wait for the VM to end.
    double timeout_s = 30;
};

/// `command` is "list", "status", "start", "stop", "suspend", "resume" or
/// "shutdown" (virsh's verbs); `vm` names the VM (not for list).
int run_client(const std::string& command, const std::string& vm, const ClientOptions& options);

/// One command over a fresh negotiated connection: the reply's value, or why
/// not (the monitor's refusal, or no monitor).
Result<nlohmann::json, Error> ask_monitor(const std::string& command, const nlohmann::json& args,
                                          const ClientOptions& options);
/// A table: the first row is the heading, underlined; columns padded to their widest cell.
void print_columns(const std::vector<std::vector<std::string>>& rows);
/// A reply's value as indented JSON (--json).
void print_json(const nlohmann::json& value);
}  // namespace disco::control
