#include "vmm/control/qmp_commands.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "vmm/control/numa_commands.hpp"
#include "vmm/control/version.hpp"
#include "vmm/control/vm_state.hpp"

namespace disco::control {
namespace {
using monitor::Fleet;
using monitor::FleetVmState;
using monitor::FleetVmStatus;

json ok(json value = json::object()) { return {{"return", std::move(value)}}; }
json generic(std::string desc) { return error_reply("GenericError", std::move(desc)); }

/// A client's string in a message: quoted, cut to a sensible length.
std::string cited(std::string_view s) {
    constexpr usize kMax = 64;
    return s.size() <= kMax ? fmt::format("'{}'", s) : fmt::format("'{}...'", s.substr(0, kMax));
}

std::string vendor(std::string_view name) { return std::string(kVendorPrefix) + std::string(name); }

// ---- Arguments ------------------------------------------------------------

enum class ArgType { String, Bool, Object, StringList, Int, IntList, ObjectList };

struct ArgSpec {
    std::string_view name;
    ArgType type;
    bool required;
};

std::string_view type_name(ArgType t) {
    switch (t) {
        case ArgType::String:
            return "string";
        case ArgType::Bool:
            return "boolean";
        case ArgType::Object:
            return "object";
        case ArgType::StringList:
            return "array of strings";
        case ArgType::Int:
            return "integer";
        case ArgType::IntList:
            return "array of integers";
        case ArgType::ObjectList:
            return "array of objects";
    }
    return "?";
}

bool has_type(const json& v, ArgType t) {
    switch (t) {
        case ArgType::String:
            return v.is_string();
        case ArgType::Bool:
            return v.is_boolean();
        case ArgType::Object:
            return v.is_object();
        case ArgType::StringList:
            return v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); });
        case ArgType::Int:
            return v.is_number_integer();
        case ArgType::IntList:
            return v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_number_integer(); });
        case ArgType::ObjectList:
            return v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_object(); });
    }
    return false;
}

/// QMP's argument rules: no unknown names, the declared types, the required ones present.
std::optional<json> check_args(const json& args, std::span<const ArgSpec> specs) {
    for (const auto& [key, value] : args.items()) {
        const auto spec = std::find_if(specs.begin(), specs.end(), [&](const ArgSpec& s) { return s.name == key; });
        if (spec == specs.end()) return generic(fmt::format("Parameter {} is unexpected", cited(key)));
        if (!has_type(value, spec->type))
            return generic(
                fmt::format("Invalid parameter type for {}, expected: {}", cited(key), type_name(spec->type)));
    }
    for (const ArgSpec& s : specs)
        if (s.required && !args.contains(s.name)) return generic(fmt::format("Parameter {} is missing", cited(s.name)));
    return std::nullopt;
}

// ---- What the replies say about a VM -----------------------------------------

std::string_view machine_name(monitor::Machine m) { return m == monitor::Machine::Virt ? "virt" : "baremetal"; }

json vm_info(const FleetVmStatus& vm) {
    const VmStateNames names = libvirt_state(vm);
    json info = {{"name", vm.name},
                 {"state", names.state},
                 {"reason", names.reason},
                 {"machine", machine_name(vm.machine)},
                 {"vcpus", vm.vcpus},
                 {"memory", vm.memory_bytes},
                 {"console", vm.console.empty() ? "stdio" : vm.console}};
    if (!vm.source.empty()) info["source"] = vm.source;
    if (vm.end) info["exit-status"] = vm.end->status;
    if (!vm.vcpu_nodes.empty()) info["vcpu-nodes"] = vm.vcpu_nodes;
    return info;
}

// ---- Commands -----------------------------------------------------------------

struct Context {
    Fleet& fleet;
    const ControlOptions& options;
    const QmpCommands& commands;
};

/// The VM a command is about: "vm" when given, else the only one there is.
std::expected<FleetVmStatus, json> target_vm(Context& c, const json& args) {
    if (args.contains("vm")) {
        const std::string& name = args["vm"].get_ref<const std::string&>();
        if (auto st = c.fleet.status(name)) return *st;
        return std::unexpected(generic(fmt::format("No VM named {}", cited(name))));
    }
    auto all = c.fleet.statuses();
    if (all.size() == 1) return all.front();
    if (all.empty()) return std::unexpected(generic("The monitor has no VMs"));
    return std::unexpected(generic(fmt::format("The monitor has {} VMs: name one with argument 'vm'", all.size())));
}

#define DISCO_TARGET(var)                 \
    auto var##_r = target_vm(c, args);    \
    if (!var##_r) return var##_r.error(); \
    const FleetVmStatus& var = *var##_r

json cmd_query_version(Context&, const json&) { return ok(QmpCommands::version()); }

json cmd_query_commands(Context& c, const json&) {
    json list = json::array();
    for (const auto& name : c.commands.names()) list.push_back({{"name", name}});
    return ok(std::move(list));
}

json cmd_query_status(Context& c, const json& args) {
    DISCO_TARGET(vm);
    const RunState rs = qemu_run_state(vm);
    return ok({{"running", rs.running}, {"status", rs.status}, {vendor("state"), libvirt_state(vm).state}});
}

/// Running or paused: a VM whose guest exists and that nobody is stopping.
bool live(const FleetVmStatus& vm) { return vm.state == FleetVmState::Running || vm.state == FleetVmState::Paused; }

json cmd_system_reset(Context& c, const json& args) {
    DISCO_TARGET(vm);
    if (!live(vm) || !c.fleet.reset(vm.name)) return generic(fmt::format("VM {} is not running", cited(vm.name)));
    return ok();
}

void announce(Context& c, const char* event) {
    // QMP's STOP, RESUME and POWERDOWN carry no data; VM_STATE names the VM.
    if (c.options.events) c.options.events->push(make_event(event, nullptr));
}

json cmd_stop(Context& c, const json& args) {
    DISCO_TARGET(vm);
    if (vm.state == FleetVmState::Paused) return generic(fmt::format("VM {} is paused already", cited(vm.name)));
    if (vm.state != FleetVmState::Running) return generic(fmt::format("VM {} is not running", cited(vm.name)));
    if (auto paused = c.fleet.pause(vm.name); !paused) return generic(paused.error().message);
    announce(c, "STOP");
    return ok();
}

json cmd_cont(Context& c, const json& args) {
    DISCO_TARGET(vm);
    if (vm.state != FleetVmState::Paused) return generic(fmt::format("VM {} is not paused", cited(vm.name)));
    if (auto resumed = c.fleet.resume(vm.name); !resumed) return generic(resumed.error().message);
    announce(c, "RESUME");
    return ok();
}

json cmd_system_powerdown(Context& c, const json& args) {
    DISCO_TARGET(vm);
    if (vm.machine != monitor::Machine::Virt)
        return generic(
            fmt::format("VM {} is bare-metal: system_powerdown is not supported (no guest OS to ask)", cited(vm.name)));
    if (!live(vm)) return generic(fmt::format("VM {} is not running", cited(vm.name)));
    if (auto asked = c.fleet.powerdown(vm.name); !asked) return generic(asked.error().message);
    announce(c, "POWERDOWN");
    return ok();
}

json cmd_quit(Context& c, const json&) {
    if (!c.options.on_quit) return generic("This monitor cannot be told to quit");
    c.options.on_quit();
    if (c.options.events)
        c.options.events->push(make_event("SHUTDOWN", {{"guest", false}, {"reason", "host-qmp-quit"}}));
    return ok();
}

json cmd_query_cpus_fast(Context& c, const json& args) {
    DISCO_TARGET(vm);
    // vCPUs exist while the VM runs (a Vm holds them); before and after, none.
    json cpus = json::array();
    for (unsigned i = 0; i < vm.vcpu_nodes.size(); ++i) {
        json cpu = {{"cpu-index", i},
                    {"qom-path", fmt::format("/machine/cpu[{}]", i)},
                    {"props", {{"core-id", i}, {"node-id", vm.vcpu_nodes[i]}}}};
        // The host thread that runs it (QEMU's "thread-id"), once that thread has started.
        if (i < vm.vcpu_thread_ids.size() && vm.vcpu_thread_ids[i] > 0) cpu["thread-id"] = vm.vcpu_thread_ids[i];
        cpus.push_back(std::move(cpu));
    }
    return ok(std::move(cpus));
}

json cmd_query_memory_size_summary(Context& c, const json& args) {
    DISCO_TARGET(vm);
    return ok({{"base-memory", vm.memory_bytes}});
}

json cmd_vm_list(Context& c, const json&) {
    json list = json::array();
    for (const auto& vm : c.fleet.statuses()) list.push_back(vm_info(vm));
    return ok(std::move(list));
}

json cmd_vm_info(Context& c, const json& args) {
    DISCO_TARGET(vm);
    return ok(vm_info(vm));
}

json cmd_vm_create(Context& c, const json& args) {
    const json& definition = args["definition"];
    if (definition.contains("vms"))
        return generic("Argument 'definition' must be one VM, not a fleet ({\"vms\": [...]})");
    if (c.fleet.statuses().size() >= c.options.max_vms)
        return generic(fmt::format("The monitor already holds {} VMs, its most", c.options.max_vms));
    auto defs = monitor::parse_vm_json(definition.dump(-1, ' ', false, json::error_handler_t::replace), "definition",
                                       c.options.base_dir);
    if (!defs) return generic(defs.error().message);
    monitor::VmDefinition def = std::move(defs->front());  // an object holds one VM
    def.source.clear();                                    // no file: it came through the control socket
    const std::string name = def.name;
    if (auto added = c.fleet.add(std::move(def)); !added) return generic(added.error().message);
    if (args.value("start", true)) {
        if (auto started = c.fleet.start(name); !started) {
            (void)c.fleet.remove(name);  // an error has no effect
            return generic(started.error().message);
        }
    }
    auto st = c.fleet.status(name);
    if (!st) return generic(fmt::format("VM {} went away at once", cited(name)));
    return ok(vm_info(*st));
}

json cmd_vm_start(Context& c, const json& args) {
    DISCO_TARGET(vm);
    if (auto started = c.fleet.start(vm.name); !started) return generic(started.error().message);
    return ok();
}

json cmd_vm_stop(Context& c, const json& args) {
    DISCO_TARGET(vm);
    if (vm.state == FleetVmState::Stopping) return ok();  // already on its way
    if (!live(vm)) return generic(fmt::format("VM {} is not running", cited(vm.name)));
    (void)c.fleet.stop(vm.name);
    return ok();
}

json cmd_vm_destroy(Context& c, const json& args) {
    DISCO_TARGET(vm);
    if (auto removed = c.fleet.remove(vm.name); !removed) return generic(removed.error().message);
    return ok();
}

/// A NUMA command (numa_commands.hpp): its value, or the error as GenericError.
template <NumaResult (*Run)(monitor::Fleet&, EventQueue*, const json&)>
json cmd_numa(Context& c, const json& args) {
    NumaResult r = Run(c.fleet, c.options.events, args);
    if (!r) return generic(std::move(r.error()));
    return ok(std::move(*r));
}

struct CommandSpec {
    std::string name;
    std::vector<ArgSpec> args;
    json (*run)(Context&, const json&);
};

const std::vector<CommandSpec>& command_table() {
    static const std::vector<CommandSpec> table = [] {
        const ArgSpec vm_optional{"vm", ArgType::String, false};
        const ArgSpec vm_required{"vm", ArgType::String, true};
        return std::vector<CommandSpec>{
            // Standard QMP: "vm" is optional (a plain QMP client names none:
            // then the monitor's only VM is meant).
            {"query-version", {}, cmd_query_version},
            {"query-commands", {}, cmd_query_commands},
            {"query-status", {vm_optional}, cmd_query_status},
            {"system_reset", {vm_optional}, cmd_system_reset},
            {"stop", {vm_optional}, cmd_stop},
            {"cont", {vm_optional}, cmd_cont},
            {"system_powerdown", {vm_optional}, cmd_system_powerdown},
            {"quit", {}, cmd_quit},
            {"query-cpus-fast", {vm_optional}, cmd_query_cpus_fast},
            {"query-memory-size-summary", {vm_optional}, cmd_query_memory_size_summary},
            // Disco's: a VM is always named.
            {vendor("vm-list"), {}, cmd_vm_list},
            {vendor("vm-info"), {vm_required}, cmd_vm_info},
            {vendor("vm-create"),
             {{"definition", ArgType::Object, true}, {"start", ArgType::Bool, false}},
             cmd_vm_create},
            {vendor("vm-start"), {vm_required}, cmd_vm_start},
            {vendor("vm-stop"), {vm_required}, cmd_vm_stop},
            {vendor("vm-destroy"), {vm_required}, cmd_vm_destroy},
            // NUMA and memory (numa_commands.hpp).
            {vendor("hot-pages"),
             {vm_optional, {"limit", ArgType::Int, false}, {"reset", ArgType::Bool, false}},
             cmd_numa<numa_hot_pages>},
            {vendor("page-migrate"),
             {vm_required, {"gpa", ArgType::Int, true}, {"node", ArgType::Int, true}},
             cmd_numa<numa_page_migrate>},
            {vendor("pages-migrate"),
             {vm_required, {"gpas", ArgType::IntList, true}, {"node", ArgType::Int, true}},
             cmd_numa<numa_pages_migrate>},
            {vendor("resolve-addresses"), {{"samples", ArgType::ObjectList, true}}, cmd_numa<numa_resolve_addresses>},
            {vendor("page-replicate"), {vm_required, {"gpa", ArgType::Int, true}}, cmd_numa<numa_page_replicate>},
            {vendor("page-collapse"), {vm_required, {"gpa", ArgType::Int, true}}, cmd_numa<numa_page_collapse>},
            {vendor("numa"), {vm_optional}, cmd_numa<numa_topology>},
            {vendor("memory"), {vm_optional}, cmd_numa<numa_memory>},
            {vendor("vcpu-pin"),
             {vm_required, {"vcpu", ArgType::Int, true}, {"node", ArgType::Int, true}},
             cmd_numa<numa_vcpu_pin>},
        };
    }();
    return table;
}

/// Brackets open at the deepest point of the text (strings skipped).
unsigned nesting_depth(std::string_view text) {
    unsigned depth = 0, deepest = 0;
    bool in_string = false, escape = false;
    for (const char ch : text) {
        if (in_string) {
            if (escape)
                escape = false;
            else if (ch == '\\')
                escape = true;
            else if (ch == '"')
                in_string = false;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '{' || ch == '[') {
            deepest = std::max(deepest, ++depth);
        } else if ((ch == '}' || ch == ']') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}
}  // namespace

json error_reply(std::string_view cls, std::string desc) {
    return {{"error", {{"class", cls}, {"desc", std::move(desc)}}}};
}

json vm_state_event(const FleetVmStatus& vm) {
    const VmStateNames names = libvirt_state(vm);
    json data = {{"vm", vm.name}, {"state", names.state}, {"reason", names.reason}};
    if (vm.end) data["exit-status"] = vm.end->status;
    return make_event(vendor("VM_STATE"), std::move(data));
}

QmpCommands::QmpCommands(Fleet& fleet, ControlOptions options) : fleet_(fleet), options_(std::move(options)) {}

json QmpCommands::version() {
    // QMP's version object is QEMU's; a client reads the numbers, and "package" says whose they are.
    return {{"qemu", {{"major", DISCO_VERSION_MAJOR}, {"minor", DISCO_VERSION_MINOR}, {"micro", DISCO_VERSION_MICRO}}},
            {"package", "disco " DISCO_VERSION}};
}

std::vector<std::string> QmpCommands::names() const {
    std::vector<std::string> out{"qmp_capabilities"};
    for (const auto& c : command_table()) out.push_back(c.name);
    return out;
}

json QmpCommands::execute(std::string_view command, const json& args) {
    const auto& table = command_table();
    const auto it = std::find_if(table.begin(), table.end(), [&](const CommandSpec& c) { return c.name == command; });
    if (it == table.end())
        return error_reply("CommandNotFound", fmt::format("The command {} has not been found", cited(command)));
    if (auto bad = check_args(args, it->args)) return *bad;
    Context c{fleet_, options_, *this};
    return it->run(c, args);
}

json QmpSession::greeting() {
    return {{"QMP", {{"version", QmpCommands::version()}, {"capabilities", json::array()}}}};
}

json QmpSession::handle_text(std::string_view text) {
    if (nesting_depth(text) > kMaxNesting)
        return generic(fmt::format("JSON parse error, nesting deeper than {}", kMaxNesting));
    json request;
    try {
        request = json::parse(text);
    } catch (const json::exception& e) {
        // nlohmann's what() is "[json.exception.parse_error.101] parse error at ...": keep the part after "] ".
        std::string_view why = e.what();
        if (const auto end = why.find("] "); end != std::string_view::npos) why.remove_prefix(end + 2);
        if (why.size() > 200) why = why.substr(0, 200);
        return generic(fmt::format("JSON parse error, {}", why));
    }
    return handle(request);
}

json QmpSession::handle(const json& request) {
    if (!request.is_object()) return generic("QMP input must be a JSON object");
    json reply = [&]() -> json {
        for (const auto& [key, value] : request.items())
            if (key != "execute" && key != "arguments" && key != "id")
                return generic(fmt::format("QMP input member {} is unexpected", cited(key)));
        if (!request.contains("execute")) return generic("QMP input lacks member 'execute'");
        const json& execute = request["execute"];
        if (!execute.is_string()) return generic("QMP input member 'execute' must be a string");
        static const json no_args = json::object();
        const json& args = request.contains("arguments") ? request["arguments"] : no_args;
        if (!args.is_object()) return generic("QMP input member 'arguments' must be an object");
        const std::string& command = execute.get_ref<const std::string&>();

        if (command == "qmp_capabilities") {
            if (negotiated_)
                return error_reply("CommandNotFound", "Capabilities negotiation is already complete, command ignored");
            static const std::array<ArgSpec, 1> specs{ArgSpec{"enable", ArgType::StringList, false}};
            if (auto bad = check_args(args, specs)) return *bad;
            // The greeting offers no capability, so none may be enabled.
            if (args.contains("enable") && !args["enable"].empty())
                return generic(fmt::format("Capability {} not available",
                                           cited(args["enable"].front().get_ref<const std::string&>())));
            negotiated_ = true;
            return ok();
        }
        if (!negotiated_)
            return error_reply("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'");
        // A command that fails in a way nobody foresaw answers this request, and the monitor goes on.
        try {
            return commands_.execute(command, args);
        } catch (const std::exception& e) {
            return generic(fmt::format("Internal error in {}: {}", cited(command), e.what()));
        }
    }();
    if (request.contains("id")) reply["id"] = request["id"];
    return reply;
}
}  // namespace disco::control
