#include "vmm/control/metrics_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "vmm/control/numa_commands.hpp"
#include "vmm/control/version.hpp"
#include "vmm/control/vm_state.hpp"

namespace disco::control {
namespace {
bool name_char(char c, bool first, bool colon) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
    if (c == ':') return colon;
    return !first && c >= '0' && c <= '9';
}

bool valid_name(std::string_view name, bool colon) {
    if (name.empty()) return false;
    for (usize i = 0; i < name.size(); ++i)
        if (!name_char(name[i], i == 0, colon)) return false;
    return true;
}

/// The text format's escapes: backslash and line feed always, the double quote in label values.
std::string escaped(std::string_view text, bool quote) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (c == '"' && quote)
            out += "\\\"";
        else
            out += c;
    }
    return out;
}

std::string_view type_name(MetricType t) { return t == MetricType::Counter ? "counter" : "gauge"; }
}  // namespace

bool valid_metric_name(std::string_view name) { return valid_name(name, true); }
bool valid_label_name(std::string_view name) { return valid_name(name, false); }
std::string escape_label_value(std::string_view value) { return escaped(value, true); }
std::string escape_help(std::string_view text) { return escaped(text, false); }

std::string metric_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", value);  // the shortest text that reads back the same (fmt's default)
}

void MetricFamily::add(const MetricLabels& labels, u64 value) { add_text(labels, fmt::format("{}", value)); }
void MetricFamily::add(const MetricLabels& labels, double value) { add_text(labels, metric_value(value)); }

void MetricFamily::add_text(const MetricLabels& labels, std::string value) {
    samples_ += name_;
    if (!labels.empty()) {
        samples_ += '{';
        for (usize i = 0; i < labels.size(); ++i) {
            if (i) samples_ += ',';
            samples_ += fmt::format("{}=\"{}\"", labels[i].first, escape_label_value(labels[i].second));
        }
        samples_ += '}';
    }
    samples_ += ' ';
    samples_ += value;
    samples_ += '\n';
}

std::string MetricFamily::text() const {
    if (samples_.empty()) return {};
    return fmt::format("# HELP {} {}\n# TYPE {} {}\n{}", name_, escape_help(help_), name_, type_name(type_), samples_);
}

MetricFamily& Exposition::family(const std::string& name, MetricType type, const std::string& help) {
    for (MetricFamily& f : families_)
        if (f.name() == name) return f;
    return families_.emplace_back(name, type, help);
}

std::string Exposition::text() const {
    std::string out;
    for (const MetricFamily& f : families_) out += f.text();
    return out;
}

// ---- The Fleet's figures -------------------------------------------------------

namespace {
using monitor::FleetVmEnd;
using monitor::FleetVmState;
using monitor::FleetVmStatus;
constexpr MetricType kCounter = MetricType::Counter, kGauge = MetricType::Gauge;

std::string_view machine_label(monitor::Machine m) { return m == monitor::Machine::Virt ? "virt" : "baremetal"; }

/// The libvirt state names a Disco VM can be in (vm_state.hpp's mapping asked
/// about every state and every way of ending), each once: disco_vm_state's
/// enumeration, so that a VM's series are the same whatever its state.
std::vector<std::string> libvirt_states() {
    std::vector<FleetVmStatus> each;
    // Every FleetVmState up to Ended, the last.
    for (int s = 0; s <= static_cast<int>(FleetVmState::Ended); ++s) {
        FleetVmStatus vm;
        vm.state = static_cast<FleetVmState>(s);
        each.push_back(vm);
    }
    for (auto why : {FleetVmEnd::Why::PowerOff, FleetVmEnd::Why::GuestStatus, FleetVmEnd::Why::Error,
                     FleetVmEnd::Why::StartFailed, FleetVmEnd::Why::Stopped}) {
        FleetVmStatus ended;
        ended.state = FleetVmState::Ended;
        ended.end = FleetVmEnd{.why = why};
        each.push_back(ended);
    }
    std::vector<std::string> names;
    for (const FleetVmStatus& vm : each) {
        const std::string name(libvirt_state(vm).state);
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    return names;
}

void add_split(MetricFamily& f, MetricLabels labels, const monitor::AccessSplit& s) {
    labels.emplace_back("kind", "local");
    f.add(labels, s.local);
    labels.back().second = "remote";
    f.add(labels, s.remote);
}

void vm_figures(Exposition& e, monitor::Fleet& fleet) {
    const std::vector<FleetVmStatus> vms = fleet.statuses();
    e.family("disco_monitor_vms", kGauge, "VMs the monitor holds, whatever their state").add({}, u64(vms.size()));
    auto& info = e.family("disco_vm_info", kGauge, "A VM the monitor holds (always 1), with its board");
    auto& state = e.family("disco_vm_state", kGauge,
                           "The VM's libvirt domain state (virDomainState's name): 1 for the state it is in, 0 for "
                           "the others");
    auto& vcpus = e.family("disco_vm_vcpus", kGauge, "The VM's vCPUs");
    auto& memory = e.family("disco_vm_memory_bytes", kGauge, "The VM's guest RAM as defined");
    auto& home = e.family("disco_vm_vcpu_home_node", kGauge, "The NUMA node a running VM's vCPU calls home");
    const std::vector<std::string> states = libvirt_states();
    for (const FleetVmStatus& vm : vms) {
        info.add({{"vm", vm.name}, {"machine", std::string(machine_label(vm.machine))}}, u64(1));
        const std::string_view now = libvirt_state(vm).state;
        for (const std::string& s : states) state.add({{"vm", vm.name}, {"state", s}}, u64(s == now));
        vcpus.add({{"vm", vm.name}}, u64(vm.vcpus));
        memory.add({{"vm", vm.name}}, vm.memory_bytes);
        for (usize i = 0; i < vm.vcpu_nodes.size(); ++i)
            home.add({{"vm", vm.name}, {"vcpu", std::to_string(i)}}, u64(vm.vcpu_nodes[i]));
    }
}

void footprint_figures(Exposition& e, monitor::Fleet& fleet) {
    const monitor::Footprint f = fleet.footprint();
    auto& pages = e.family("disco_vm_guest_pages", kGauge, "A running VM's guest RAM pages");
    auto& used =
        e.family("disco_vm_guest_pages_used", kGauge, "A running VM's guest pages that host memory backs (written)");
    auto& priv = e.family("disco_vm_frames_private", kGauge, "Machine frames that only this running VM's pages map");
    auto& on_shared = e.family("disco_vm_pages_on_shared", kGauge,
                               "A running VM's guest pages whose machine frame other guest pages map too");
    for (const monitor::VmFootprint& v : f.vms) {
        const MetricLabels vm = {{"vm", v.name}};
        pages.add(vm, v.guest_pages);
        used.add(vm, v.guest_pages_used);
        priv.add(vm, v.frames_private);
        on_shared.add(vm, v.pages_on_shared);
    }
    e.family("disco_page_size_bytes", kGauge, "The size of a guest page and of a machine frame").add({}, kPageSize);
    e.family("disco_machine_frames_in_use", kGauge, "Machine frames in use, replicas included")
        .add({}, f.machine_frames_in_use);
    e.family("disco_machine_frames_used", kGauge, "Machine frames in use that host memory backs")
        .add({}, f.machine_frames_used);
    e.family("disco_pages_shared", kGauge, "Machine frames that more than one guest page maps (KSM's pages_shared)")
        .add({}, f.pages_shared);
    e.family("disco_pages_sharing", kGauge,
             "Guest pages mapping a shared frame beyond its first: the frames sharing saves (KSM's pages_sharing)")
        .add({}, f.pages_sharing);
    e.family("disco_memory_saved_bytes", kGauge, "Memory that sharing saves: pages_sharing times the page size")
        .add({}, f.bytes_saved());
}

/// Per VM (instructions, frames per node, accesses) and per node.
void running_and_node_figures(Exposition& e, monitor::Fleet& fleet) {
    const auto mm = fleet.machine_memory();
    auto& insns = e.family("disco_vm_instructions_total", kCounter,
                           "Guest instructions a running VM's vCPUs retired since it (re)started, as of their last "
                           "time slice");
    auto& node_frames = e.family("disco_vm_node_frames", kGauge,
                                 "A running VM's machine frames on each NUMA node (each replica of a page counted)");
    std::map<u32, std::string> names;
    fleet.for_each_running([&](const std::string& name, u32 id, monitor::Vm& vm) {
        names[id] = name;
        insns.add({{"vm", name}}, vm.retired_instructions());
        if (!mm) return;
        const std::vector<u64> per_node = vm_frames_per_node(vm.ram(), *mm);
        for (usize n = 0; n < per_node.size(); ++n)
            node_frames.add({{"vm", name}, {"node", std::to_string(n)}}, per_node[n]);
    });
    monitor::AccessReport report;
    const monitor::AccessSplit since = fleet.sample_accesses(false, [&](const MachineMemory& m) {
        report = monitor::read_access_report(m, 0, std::nullopt);
        return report.all;
    });
    if (!mm) return;
    add_split(e.family("disco_accesses_total", kCounter,
                       "Counted accesses (vCPU soft-TLB misses) since the monitor started, local when the frame is on "
                       "the vCPU's node, else remote"),
              {}, since);
    auto& vm_acc = e.family("disco_vm_accesses_total", kCounter,
                            "A running VM's counted accesses since the access counters were last reset (disco-numad "
                            "resets them each interval), local or remote; a shared frame counts for each of its VMs");
    for (const auto& [id, name] : names) {
        const auto it = report.per_vm.find(id);
        add_split(vm_acc, {{"vm", name}}, it == report.per_vm.end() ? monitor::AccessSplit{} : it->second);
    }
    auto& node_acc = e.family("disco_node_accesses_total", kCounter,
                              "Counted accesses by the vCPUs of each NUMA node since the access counters were last "
                              "reset, local or remote");
    for (usize n = 0; n < report.per_node.size(); ++n)
        add_split(node_acc, {{"node", std::to_string(n)}}, report.per_node[n]);

    auto& node_info = e.family("disco_node_info", kGauge,
                               "A NUMA node of the machine memory (always 1): the host node it stands for (-1: none) "
                               "and whether it is simulated");
    auto& capacity = e.family("disco_node_frames_capacity", kGauge, "Machine frames the node's pool can hold");
    auto& free = e.family("disco_node_frames_free", kGauge, "Machine frames free in the node's pool");
    auto& in_use = e.family("disco_node_frames_in_use", kGauge, "Machine frames in use in the node's pool");
    auto& fallback = e.family("disco_node_fallback_allocations_total", kCounter,
                              "Allocations that preferred this node but were served by another");
    auto& foreign = e.family("disco_node_foreign_allocations_total", kCounter,
                             "Frames this node handed out for allocations that preferred another node");
    for (NodeId n = 0; n < mm->node_count(); ++n) {
        const MetricLabels node = {{"node", std::to_string(n)}};
        const NumaNode& ni = mm->node_info(n);
        node_info.add({{"node", std::to_string(n)},
                       {"host_node", std::to_string(ni.host_node)},
                       {"simulated", ni.simulated ? "true" : "false"}},
                      u64(1));
        const NodeStats st = mm->node_stats(n);
        capacity.add(node, st.frames_total);
        free.add(node, st.frames_free);
        in_use.add(node, st.frames_in_use);
        fallback.add(node, st.fallback_allocations);
        foreign.add(node, st.foreign_allocations);
    }
}

void cache_and_scan_figures(Exposition& e, const monitor::Fleet& fleet) {
    if (const auto c = fleet.disk_cache_stats()) {
        const auto figure = [&](const char* name, MetricType type, const char* help, u64 value) {
            e.family(fmt::format("disco_disk_cache_{}", name), type, help).add({}, value);
        };
        figure("hits_total", kCounter, "Disk page cache lookups that found their block", c->hits);
        figure("loads_total", kCounter, "Lookups that missed and cached the block read into a new frame", c->loads);
        figure("refused_total", kCounter, "Lookups that missed and could not cache: full of entries guests map",
               c->refused);
        figure("evictions_total", kCounter, "Entries dropped to make room", c->evictions);
        figure("entries", kGauge, "Entries now (one machine frame each)", c->frames_held);
        figure("entries_max", kGauge, "Entries the cache holds at most", c->capacity);
        figure("frames_only_cached", kGauge, "Entries whose frame no guest page maps (what the cache costs)",
               c->frames_only_cached);
        figure("pages_mapped_total", kCounter, "Guest pages pointed at a cached frame instead of a copy",
               c->pages_mapped);
        figure("pages_copied_total", kCounter, "Cacheable reads that were copied instead", c->pages_copied);
        figure("images_refused_total", kCounter, "Base images that changed under the monitor (their entries dropped)",
               c->images_refused);
    }
    if (const auto s = fleet.scan_stats()) {
        const auto figure = [&](const char* name, const char* help, auto value) {
            e.family(fmt::format("disco_page_scan_{}", name), kCounter, help).add({}, value);
        };
        figure("pages_scanned_total", "Guest pages the content scanner hashed", s->pages_scanned);
        figure("passes_total", "Complete passes over every VM's RAM", s->passes);
        figure("merged_total", "Pages merged copy-on-write with an identical one", s->merged);
        figure("not_identical_total", "Same hash, different bytes (or changed meanwhile)", s->not_identical);
        figure("busy_total", "Pages being moved, pinned or written: tried again next pass", s->busy);
        figure("cpu_seconds_total", "CPU time the scanner thread used", s->cpu_seconds);
    }
}
}  // namespace

std::string fleet_metrics(monitor::Fleet& fleet) {
    Exposition e;
    e.family("disco_build_info", kGauge, "The monitor's version (always 1)").add({{"version", DISCO_VERSION}}, u64(1));
    vm_figures(e, fleet);
    running_and_node_figures(e, fleet);
    footprint_figures(e, fleet);
    cache_and_scan_figures(e, fleet);
    return e.text();
}
}  // namespace disco::control
