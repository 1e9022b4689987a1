#include "vmm/control/numa_commands.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "vmm/control/qmp_commands.hpp"

namespace disco::control {
namespace {
using monitor::Fleet;
using monitor::Vm;

/// hot-pages' limit: the default, and the most one reply carries.
constexpr u64 kDefaultHotPages = 256, kMaxHotPages = 4096;

std::string vendor(std::string_view name) { return std::string(kVendorPrefix) + std::string(name); }

std::string cited(const std::string& s) {
    constexpr usize kMax = 64;
    return s.size() <= kMax ? fmt::format("'{}'", s) : fmt::format("'{}...'", s.substr(0, kMax));
}

void emit(EventQueue* events, std::string_view name, json data) {
    if (events) events->push(make_event(vendor(name), std::move(data)));
}

/// An integer argument within [lo, hi] (the type was checked before).
std::expected<u64, std::string> int_arg(const json& args, const char* name, u64 lo, u64 hi) {
    const json& v = args[name];
    if (v.is_number_unsigned() || v.get<i64>() >= 0) {
        const u64 x = v.get<u64>();
        if (x >= lo && x <= hi) return x;
    }
    return std::unexpected(fmt::format("Parameter '{}' must be between {} and {}", name, lo, hi));
}

/// The named VM: known, else an error. nullopt when "vm" is not given.
std::expected<std::optional<std::string>, std::string> vm_filter(const Fleet& fleet, const json& args) {
    if (!args.contains("vm")) return std::nullopt;
    const std::string& name = args["vm"].get_ref<const std::string&>();
    if (!fleet.status(name)) return std::unexpected(fmt::format("No VM named {}", cited(name)));
    return name;
}

/// The guest page of argument "gpa": page-aligned (whether it is RAM the page operation says).
std::expected<u64, std::string> gpa_page(const json& args) {
    const json& v = args["gpa"];
    if (!v.is_number_unsigned() && v.get<i64>() < 0) return std::unexpected("Parameter 'gpa' must not be negative");
    const u64 gpa = v.get<u64>();
    if (gpa % kPageSize)
        return std::unexpected(fmt::format("Parameter 'gpa' {:#x} is not page-aligned ({} bytes)", gpa, kPageSize));
    return gpa >> kPageShift;
}

/// Runs op on the named VM's live Vm; the VM must exist and run.
std::expected<void, std::string> on_running(Fleet& fleet, const json& args, const std::function<void(Vm&)>& op) {
    const std::string& name = args["vm"].get_ref<const std::string&>();
    if (!fleet.status(name)) return std::unexpected(fmt::format("No VM named {}", cited(name)));
    if (!fleet.with_running(name, op)) return std::unexpected(fmt::format("VM {} is not running", cited(name)));
    return {};
}

std::string_view state_name(u32 state) {
    if (state & page_state::kMoving) return "moving";
    if (state & page_state::kShared) return "shared";
    if (state & page_state::kReplicated) return "replicated";
    return "private";
}

/// The nodes of the frames node views show for the page (one per replica, or the one frame).
std::vector<NodeId> nodes_showing(const GuestRam& ram, u64 ppage) {
    std::set<NodeId> nodes;
    const MachineMemory* mm = ram.machine_memory();
    for (unsigned view = 0; mm && view < ram.view_count(); ++view)
        if (auto f = mm->frame_of(ram.host_page(GuestPhysAddr(ppage << kPageShift), view)))
            nodes.insert(mm->node_of(*f));
    return {nodes.begin(), nodes.end()};
}

json split_json(const monitor::AccessSplit& s) { return {{"local", s.local}, {"remote", s.remote}}; }

/// A page operation's refusal in the request's terms: the GuestRam's words
/// name the guest page by number, the client gave its address.
std::string op_refusal(const PageOpError& e, u64 ppage) {
    const u64 gpa = ppage << kPageShift;
    if (e.kind == PageOpError::Kind::NotRam) return fmt::format("gpa {:#x} is not RAM", gpa);
    return fmt::format("gpa {:#x}: {}", gpa, e.message);
}

/// Argument "node": one of the machine's nodes.
std::expected<NodeId, std::string> node_arg(const Fleet& fleet, const json& args) {
    const auto mm = fleet.machine_memory();
    const unsigned nodes = mm ? mm->node_count() : 1;
    const json& v = args["node"];
    if (!v.is_number_unsigned() && v.get<i64>() < 0) return std::unexpected("Parameter 'node' must not be negative");
    const u64 node = v.get<u64>();
    if (node >= nodes) return std::unexpected(fmt::format("no node {} (the machine has {})", node, nodes));
    return static_cast<NodeId>(node);
}
}  // namespace

NumaResult numa_hot_pages(Fleet& fleet, EventQueue*, const json& args) {
    const auto only = vm_filter(fleet, args);
    if (!only) return std::unexpected(only.error());
    u64 limit = kDefaultHotPages;
    if (args.contains("limit")) {
        auto l = int_arg(args, "limit", 1, kMaxHotPages);
        if (!l) return std::unexpected(l.error());
        limit = *l;
    }
    const bool reset = args.value("reset", false);

    // The running VMs' reverse-map ids, for names (and the filter).
    std::map<u32, std::string> names;
    std::optional<u32> only_id;
    fleet.for_each_running([&](const std::string& name, u32 id, Vm&) {
        names[id] = name;
        if (*only && **only == name) only_id = id;
    });
    const auto mm = fleet.machine_memory();
    json reply = {{"nodes", mm ? mm->node_count() : 0},
                  {"simulated", mm && mm->node_info(0).simulated},
                  {"accesses", split_json({})},
                  {"since_start", split_json({})},
                  {"vms", json::array()},
                  {"pages", json::array()}};
    monitor::AccessReport report;
    // A filter naming a VM that is not running: no page is its (the counts still reset).
    const std::optional<u32> pages_of = *only ? std::optional<u32>(only_id.value_or(0)) : std::nullopt;
    const monitor::AccessSplit since = fleet.sample_accesses(reset, [&](const MachineMemory& m) {
        report = monitor::read_access_report(m, limit, pages_of);
        return report.all;
    });
    reply["accesses"] = split_json(report.all);
    reply["since_start"] = split_json(since);
    for (const auto& [id, name] : names) {
        if (*only && **only != name) continue;
        const auto it = report.per_vm.find(id);
        const monitor::AccessSplit s = it == report.per_vm.end() ? monitor::AccessSplit{} : it->second;
        reply["vms"].push_back({{"name", name}, {"local", s.local}, {"remote", s.remote}});
    }
    // Each page's placement and state, from its VM's pmap (if the VM still runs).
    json& pages = reply["pages"];
    fleet.for_each_running([&](const std::string& name, u32 id, Vm& vm) {
        for (const auto& p : report.pages) {
            if (p.vm_id != id) continue;
            const auto state = vm.ram().state_of(p.gppage);
            const auto home = vm.ram().node_of(p.gppage);
            if (!state || !home) continue;
            pages.push_back({{"vm", name},
                             {"gpa", p.gppage << kPageShift},
                             {"home", *home},
                             {"state", state_name(*state)},
                             {"written", p.written},
                             {"counts", p.counts},
                             {"total", p.total}});
        }
    });
    // Hottest first again (the pass above went VM by VM).
    std::stable_sort(pages.begin(), pages.end(),
                     [](const json& a, const json& b) { return a["total"].get<u64>() > b["total"].get<u64>(); });
    return reply;
}

NumaResult numa_resolve_addresses(Fleet& fleet, EventQueue*, const json& args) {
    const json& samples = args["samples"];
    if (samples.empty() || samples.size() > kMaxResolveBatch)
        return std::unexpected(fmt::format("Parameter 'samples' must hold 1 to {} samples", kMaxResolveBatch));
    struct Sample {
        u64 addr = 0;
        std::optional<int> tid;
    };
    std::vector<Sample> wanted;
    for (const json& s : samples) {
        if (!s.is_object() || !s.contains("addr"))
            return std::unexpected("Parameter 'samples': each sample must be an object {addr, tid?}");
        Sample w;
        for (const auto& [key, value] : s.items()) {
            if (key != "addr" && key != "tid")
                return std::unexpected(fmt::format("Parameter 'samples': a sample's {} is unexpected", cited(key)));
            if (!value.is_number_integer())
                return std::unexpected(fmt::format("Parameter 'samples': a sample's '{}' must be an integer", key));
            const auto v =
                int_arg(s, key.c_str(), key == "tid" ? 1 : 0, key == "tid" ? std::numeric_limits<int>::max() : ~0ull);
            if (!v) return std::unexpected("Parameter 'samples': " + v.error());
            if (key == "addr")
                w.addr = *v;
            else
                w.tid = static_cast<int>(*v);
        }
        wanted.push_back(w);
    }
    json pages = json::array();
    const auto mm = fleet.machine_memory();
    if (!mm) return json{{"pages", std::move(pages)}, {"unresolved", wanted.size()}};
    // Frames first (lock-free); then which vCPU thread each TID is (in any VM: a vCPU may touch
    // another VM's shared frame), then each running VM's users among the frames.
    std::vector<std::optional<MachineMemory::HostAddressOwner>> owners;
    for (const Sample& w : wanted) owners.push_back(mm->resolve_host_address(w.addr));
    std::map<int, unsigned> homes;  // host TID -> the vCPU's home node
    fleet.for_each_running([&](const std::string&, u32, Vm& vm) {
        for (unsigned i = 0; i < vm.vcpu_count(); ++i)
            if (const int tid = vm.vcpu_thread_id(i); tid > 0) homes[tid] = vm.home_node(i);
    });
    std::vector<bool> resolved(wanted.size(), false);
    fleet.for_each_running([&](const std::string& name, u32 id, Vm& vm) {
        for (usize i = 0; i < wanted.size(); ++i) {
            if (!owners[i]) continue;
            for (const FrameUser& u : owners[i]->users) {
                if (u.vm != id) continue;
                const auto state = vm.ram().state_of(u.gppage);
                if (!state) continue;  // unmapped since
                json page = {{"vm", name},
                             {"gpa", u.gppage << kPageShift},
                             {"node", owners[i]->node},
                             {"state", state_name(*state)}};
                if (const auto it = wanted[i].tid ? homes.find(*wanted[i].tid) : homes.end(); it != homes.end())
                    page["accessor_node"] = it->second;
                pages.push_back(std::move(page));
                resolved[i] = true;
            }
        }
    });
    const auto unresolved = std::count(resolved.begin(), resolved.end(), false);
    return json{{"pages", std::move(pages)}, {"unresolved", unresolved}};
}

NumaResult numa_page_migrate(Fleet& fleet, EventQueue* events, const json& args) {
    const auto ppage = gpa_page(args);
    if (!ppage) return std::unexpected(ppage.error());
    const auto node = node_arg(fleet, args);
    if (!node) return std::unexpected(node.error());
    std::optional<PageOpError> error;
    NodeId from = 0;
    auto done = on_running(fleet, args, [&](Vm& vm) {
        if (auto f = vm.ram().node_of(*ppage)) from = *f;
        if (auto r = vm.ram().migrate(*ppage, *node); !r) error = r.error();
    });
    if (!done) return std::unexpected(done.error());
    if (error) return std::unexpected(op_refusal(*error, *ppage));
    const u64 gpa = *ppage << kPageShift;
    emit(events, "PAGE_MIGRATED", {{"vm", args["vm"]}, {"gpa", gpa}, {"from", from}, {"to", *node}});
    return json{{"node", *node}};
}

NumaResult numa_pages_migrate(Fleet& fleet, EventQueue* events, const json& args) {
    const json& gpas = args["gpas"];
    if (gpas.empty() || gpas.size() > kMaxMigrateBatch)
        return std::unexpected(fmt::format("Parameter 'gpas' must hold 1 to {} addresses", kMaxMigrateBatch));
    std::vector<u64> ppages;
    for (const json& gpa : gpas) {
        const auto ppage = gpa_page(json{{"gpa", gpa}});
        if (!ppage) return std::unexpected(ppage.error());
        ppages.push_back(*ppage);
    }
    const auto node = node_arg(fleet, args);
    if (!node) return std::unexpected(node.error());
    std::vector<Result<void, PageOpError>> results;
    auto done = on_running(fleet, args, [&](Vm& vm) { results = vm.ram().migrate_many(ppages, *node); });
    if (!done) return std::unexpected(done.error());
    json migrated = json::array(), failed = json::array();
    for (usize i = 0; i < ppages.size(); ++i) {
        if (results[i])
            migrated.push_back(ppages[i] << kPageShift);
        else
            failed.push_back({{"gpa", ppages[i] << kPageShift}, {"desc", op_refusal(results[i].error(), ppages[i])}});
    }
    if (!migrated.empty()) emit(events, "PAGES_MIGRATED", {{"vm", args["vm"]}, {"to", *node}, {"gpas", migrated}});
    return json{{"node", *node}, {"migrated", std::move(migrated)}, {"failed", std::move(failed)}};
}

NumaResult numa_page_replicate(Fleet& fleet, EventQueue* events, const json& args) {
    const auto ppage = gpa_page(args);
    if (!ppage) return std::unexpected(ppage.error());
    std::optional<PageOpError> error;
    std::vector<NodeId> nodes;
    auto done = on_running(fleet, args, [&](Vm& vm) {
        if (auto r = vm.ram().replicate(*ppage); !r)
            error = r.error();
        else
            nodes = nodes_showing(vm.ram(), *ppage);
    });
    if (!done) return std::unexpected(done.error());
    if (error) return std::unexpected(op_refusal(*error, *ppage));
    emit(events, "PAGE_REPLICATED", {{"vm", args["vm"]}, {"gpa", *ppage << kPageShift}, {"nodes", nodes}});
    return json{{"nodes", nodes}};
}

NumaResult numa_page_collapse(Fleet& fleet, EventQueue* events, const json& args) {
    const auto ppage = gpa_page(args);
    if (!ppage) return std::unexpected(ppage.error());
    std::optional<PageOpError> error;
    auto done = on_running(fleet, args, [&](Vm& vm) {
        if (auto r = vm.ram().collapse(*ppage); !r) error = r.error();
    });
    if (!done) return std::unexpected(done.error());
    if (error) return std::unexpected(op_refusal(*error, *ppage));
    emit(events, "PAGE_COLLAPSED", {{"vm", args["vm"]}, {"gpa", *ppage << kPageShift}});
    return json::object();
}

NumaResult numa_topology(Fleet& fleet, EventQueue*, const json& args) {
    const auto only = vm_filter(fleet, args);
    if (!only) return std::unexpected(only.error());
    const auto mm = fleet.machine_memory();
    json nodes = json::array();
    const unsigned n = mm ? mm->node_count() : 0;
    for (NodeId i = 0; i < n; ++i) {
        const NodeStats st = mm->node_stats(i);
        json distances = json::array();
        for (NodeId j = 0; j < n; ++j) distances.push_back(mm->distance(i, j));
        nodes.push_back({{"node", i},
                         {"frames_total", st.frames_total},
                         {"frames_free", st.frames_free},
                         {"frames_in_use", st.frames_in_use},
                         {"distances", std::move(distances)}});
    }
    json vms = json::array();
    fleet.for_each_running([&](const std::string& name, u32, Vm& vm) {
        if (*only && **only != name) return;
        std::vector<unsigned> vcpu_nodes;
        for (unsigned i = 0; i < vm.vcpu_count(); ++i) vcpu_nodes.push_back(vm.home_node(i));
        vms.push_back(
            {{"name", name}, {"vcpu_nodes", vcpu_nodes}, {"frames_per_node", vm_frames_per_node(vm.ram(), *mm)}});
    });
    return json{{"nodes", std::move(nodes)}, {"simulated", mm && mm->node_info(0).simulated}, {"vms", std::move(vms)}};
}

std::vector<u64> vm_frames_per_node(const GuestRam& ram, const MachineMemory& mm) {
    const unsigned n = mm.node_count();
    std::vector<u64> per_node(n, 0);
    ram.for_each_frame([&](u64 ppage, MachineFrame frame, u32 state) {
        if (!(state & page_state::kReplicated)) {
            if (mm.contains(frame)) ++per_node[mm.node_of(frame)];
            return;
        }
        for (NodeId node : nodes_showing(ram, ppage))  // each replica once (the primary among them)
            if (node < n) ++per_node[node];
    });
    return per_node;
}

NumaResult numa_memory(Fleet& fleet, EventQueue*, const json& args) {
    const auto only = vm_filter(fleet, args);
    if (!only) return std::unexpected(only.error());
    json figures = fleet.footprint().to_json();
    if (*only) {
        json& vms = figures["vms"];
        vms.erase(std::remove_if(vms.begin(), vms.end(), [&](const json& v) { return v["name"] != **only; }),
                  vms.end());
    }
    return figures;
}

NumaResult numa_vcpu_pin(Fleet& fleet, EventQueue*, const json& args) {
    const auto vcpu = int_arg(args, "vcpu", 0, 4095);
    if (!vcpu) return std::unexpected(vcpu.error());
    const auto node = int_arg(args, "node", 0, MachineMemory::kMaxNodes);
    if (!node) return std::unexpected(node.error());
    std::optional<Error> error;
    auto done = on_running(fleet, args, [&](Vm& vm) {
        if (auto r = vm.pin_vcpu(static_cast<unsigned>(*vcpu), static_cast<unsigned>(*node)); !r) error = r.error();
    });
    if (!done) return std::unexpected(done.error());
    if (error) return std::unexpected(error->message);
    return json::object();
}
}  // namespace disco::control
