// A fleet VM's state in the two vocabularies the control plane speaks:
// libvirt's (virDomainState and its reasons, the names people who know virsh
// read at once) for Disco's own commands, events and the CLI, and QEMU's
// RunState for the standard QMP commands (query-status), so that existing
// QMP clients see the values they expect. configs/control-schema.md lists
// the mapping.
#pragma once
#include <string_view>

#include "vmm/monitor/fleet.hpp"

namespace disco::control {

struct VmStateNames {
    /// virDomainState, as the constant's name after VIR_DOMAIN_, lower case:
    /// VIR_DOMAIN_RUNNING -> "running", VIR_DOMAIN_SHUTOFF -> "shutoff".
    std::string_view state;
    /// The state's reason (virDomainRunningReason, virDomainShutdownReason,
    /// virDomainShutoffReason), the same way: VIR_DOMAIN_SHUTOFF_DESTROYED -> "destroyed".
    std::string_view reason;
    /// What virsh prints for the state ("shut off", "in shutdown"): the CLI's table.
    std::string_view virsh;
    int state_value, reason_value;  // the libvirt constants themselves
};

VmStateNames libvirt_state(const monitor::FleetVmStatus& vm);

/// QEMU's RunState for query-status, and whether the VM's vCPUs run.
struct RunState {
    std::string_view status;
    bool running;
};

RunState qemu_run_state(const monitor::FleetVmStatus& vm);
}  // namespace disco::control
