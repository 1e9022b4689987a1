#include "vmm/control/run_control.hpp"

#include <fmt/format.h>

#include "vmm/control/event_queue.hpp"
#include "vmm/control/qmp_commands.hpp"
#include "vmm/control/qmp_server.hpp"

namespace disco::control {
namespace {
/// What serves the socket: the server goes first (its last words use the queue and the commands).
struct RunControl {
    std::shared_ptr<EventQueue> events;
    std::unique_ptr<QmpCommands> commands;
    std::unique_ptr<QmpServer> server;
    ~RunControl() { server.reset(); }
};
}  // namespace

Result<monitor::FleetCompanion, Error> serve_run_control(const std::string& socket_path,
                                                         monitor::FleetOptions& options) {
    auto made = EventQueue::create();
    if (!made) return fail(made.error());
    std::shared_ptr<EventQueue> events = std::move(*made);
    options.on_state_change = [events](const monitor::FleetVmStatus& vm) { events->push(vm_state_event(vm)); };
    return monitor::FleetCompanion(
        [events, socket_path](monitor::Fleet& fleet) -> Result<std::shared_ptr<void>, Error> {
            auto control = std::make_shared<RunControl>();
            control->events = events;
            monitor::Fleet* f = &fleet;
            control->commands = std::make_unique<QmpCommands>(
                fleet, ControlOptions{.on_quit = [f] { f->stop_all(); }, .events = events.get()});
            auto server = QmpServer::start({.socket_path = socket_path}, *control->commands, *events);
            if (!server) return fail(Error{fmt::format("--control {}: {}", socket_path, server.error().message)});
            control->server = std::move(*server);
            return std::shared_ptr<void>(control);
        });
}
}  // namespace disco::control
