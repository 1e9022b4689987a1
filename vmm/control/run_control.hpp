// `disco run ... --control PATH`: the daemon's control socket
// (configs/control-schema.md) for the VMs of one `disco run`, so that a NUMA
// daemon (disco-numad) or a script can watch and steer them as it would
// `disco daemon`'s. QMP's quit stops every VM (the run then ends as on SIGTERM).
#pragma once
#include <memory>
#include <string>

#include "vmm/monitor/fleet.hpp"

namespace disco::control {

/// Sets options.on_state_change (VM_STATE events) and returns the companion
/// that serves `socket_path` once the fleet's VMs have started. Fails when the
/// event queue cannot be made.
Result<monitor::FleetCompanion, Error> serve_run_control(const std::string& socket_path,
                                                         monitor::FleetOptions& options);
}  // namespace disco::control
