#include "vmm/control/vm_state.hpp"

// Only the enums: nothing of libvirt is linked.
#include <libvirt/libvirt.h>

namespace disco::control {

VmStateNames libvirt_state(const monitor::FleetVmStatus& vm) {
    using monitor::FleetVmEnd;
    using monitor::FleetVmState;
    switch (vm.state) {
        case FleetVmState::Defined:
            // A defined domain that never ran is shut off, for no particular reason.
            return {"shutoff", "unknown", "shut off", VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_UNKNOWN};
        case FleetVmState::Running:
            return {"running", "booted", "running", VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_BOOTED};
        case FleetVmState::Paused:
            // QMP stop (virsh suspend): paused by the user.
            return {"paused", "user", "paused", VIR_DOMAIN_PAUSED, VIR_DOMAIN_PAUSED_USER};
        case FleetVmState::Stopping:
            return {"shutdown", "user", "in shutdown", VIR_DOMAIN_SHUTDOWN, VIR_DOMAIN_SHUTDOWN_USER};
        case FleetVmState::Ended:
            break;
    }
    // An ended VM holds no vCPUs or memory any more: shut off, and the reason says how it got there.
    const FleetVmEnd::Why why = vm.end ? vm.end->why : FleetVmEnd::Why::PowerOff;
    switch (why) {
        case FleetVmEnd::Why::PowerOff:
        case FleetVmEnd::Why::GuestStatus:
            return {"shutoff", "shutdown", "shut off", VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_SHUTDOWN};
        case FleetVmEnd::Why::Stopped:
            return {"shutoff", "destroyed", "shut off", VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_DESTROYED};
        case FleetVmEnd::Why::Error:
            return {"shutoff", "crashed", "shut off", VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_CRASHED};
        case FleetVmEnd::Why::StartFailed:
            return {"shutoff", "failed", "shut off", VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_FAILED};
    }
    return {"nostate", "unknown", "no state", VIR_DOMAIN_NOSTATE, 0};
}

RunState qemu_run_state(const monitor::FleetVmStatus& vm) {
    using monitor::FleetVmEnd;
    using monitor::FleetVmState;
    switch (vm.state) {
        case FleetVmState::Defined:
            return {"prelaunch", false};
        case FleetVmState::Running:
        case FleetVmState::Stopping:  // its vCPUs run until it has ended
            return {"running", true};
        case FleetVmState::Paused:
            return {"paused", false};
        case FleetVmState::Ended:
            break;
    }
    if (vm.end && (vm.end->why == FleetVmEnd::Why::Error || vm.end->why == FleetVmEnd::Why::StartFailed))
        return {"internal-error", false};
    return {"shutdown", false};
}
}  // namespace disco::control
