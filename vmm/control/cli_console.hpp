// `disco console NAME`: this terminal on a running VM's console, as `virsh
// console` does for libvirt's domains. The monitor names the console in
// vm-info (configs/control-schema.md):
//   * a pty (/dev/pts/N, {"pty": true}): both ways, the terminal in raw mode
//     as `disco run` puts it (monitor/host_console.hpp); Ctrl-A x leaves, the
//     VM goes on;
//   * a log file ({"log": FILE}): what it holds, then what the guest writes
//     next, read-only (Ctrl-C leaves);
//   * stdio: refused, the console is the monitor's own terminal.
// It ends, status 0, when the user leaves or the VM stops running; status 1
// when the monitor refuses or the console cannot be opened.
#pragma once
#include <string>

#include "vmm/control/cli_client.hpp"

namespace disco::control {

int run_console_client(const std::string& vm, const ClientOptions& options);
}  // namespace disco::control
