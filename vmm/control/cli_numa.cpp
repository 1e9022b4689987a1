#include "vmm/control/cli_numa.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstdio>

#include "vmm/control/qmp_commands.hpp"

namespace disco::control {
namespace {
std::string vendor_command(std::string_view name) { return std::string(kVendorPrefix) + std::string(name); }

int refuse(const std::string& message) {
    std::fprintf(stderr, "disco: %s\n", message.c_str());
    return 1;
}

/// Decimal, or hexadecimal after 0x.
std::optional<u64> parse_address(const std::string& text) {
    const bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
    const char* begin = text.data() + (hex ? 2 : 0);
    const char* end = text.data() + text.size();
    u64 value = 0;
    const auto [stop, ec] = std::from_chars(begin, end, value, hex ? 16 : 10);
    if (ec != std::errc() || stop != end || begin == end) return std::nullopt;
    return value;
}

std::string joined(const json& list) {
    std::string out;
    for (const auto& v : list) out += (out.empty() ? "" : " ") + v.dump();
    return out;
}

std::string count(const json& object, const char* key) { return std::to_string(object.value(key, 0ull)); }

std::string mib_of_pages(u64 pages, u64 page_size) {
    return fmt::format("{:.1f} MiB", static_cast<double>(pages * page_size) / (1 << 20));
}

/// `label` + " N" for each of `nodes` nodes: the headings of per-node columns.
void add_node_headings(std::vector<std::string>& heading, const char* label, usize nodes) {
    for (usize n = 0; n < nodes; ++n) heading.push_back(fmt::format("{} {}", label, n));
}

/// A per-node list's cells, padded with "-" to `nodes` (a list shorter than the node count).
void add_node_cells(std::vector<std::string>& row, const json& list, usize nodes) {
    for (usize n = 0; n < nodes; ++n) row.push_back(list.is_array() && n < list.size() ? list[n].dump() : "-");
}

std::string percent_local(const json& split) {
    const u64 local = split.value("local", 0ull), remote = split.value("remote", 0ull);
    if (local + remote == 0) return "0 local, 0 remote";
    return fmt::format("{} local, {} remote ({:.1f}% local)", local, remote,
                       100.0 * static_cast<double>(local) / static_cast<double>(local + remote));
}

void print_stats(const json& f) {
    const u64 page = f.value("page_size", 4096ull);
    std::vector<std::vector<std::string>> rows{
        {"Name", "Guest pages", "Used", "Private frames", "Pages on shared frames"}};
    for (const auto& vm : f["vms"])
        rows.push_back({vm.value("name", ""), count(vm, "guest_pages"), count(vm, "guest_pages_used"),
                        count(vm, "frames_private"), count(vm, "pages_on_shared")});
    print_columns(rows);
    const u64 in_use = f.value("machine_frames_in_use", 0ull);
    std::printf("\nMachine frames in use:  %llu (%s), %llu of them backed by host memory\n",
                static_cast<unsigned long long>(in_use), mib_of_pages(in_use, page).c_str(),
                static_cast<unsigned long long>(f.value("machine_frames_used", 0ull)));
    std::printf("pages_shared:           %s (frames that several guest pages map)\n", count(f, "pages_shared").c_str());
    std::printf("pages_sharing:          %s (guest pages on them beyond the first)\n",
                count(f, "pages_sharing").c_str());
    std::printf("Saved by sharing:       %.1f MiB\n", static_cast<double>(f.value("bytes_saved", 0ull)) / (1 << 20));
}

void print_numa(const json& n) {
    const usize node_count = n["nodes"].size();
    std::vector<std::vector<std::string>> nodes{{"Node", "Frames", "Free", "In use", "Distances"}};
    for (const auto& node : n["nodes"])
        nodes.push_back({count(node, "node"), count(node, "frames_total"), count(node, "frames_free"),
                         count(node, "frames_in_use"), joined(node["distances"])});
    print_columns(nodes);
    std::printf("(%zu %s nodes; distances to each node in turn, 10 = local)\n\n", node_count,
                n.value("simulated", false) ? "simulated" : "host");
    std::vector<std::vector<std::string>> vms{{"Name", "vCPU nodes"}};
    add_node_headings(vms[0], "Frames on node", node_count);
    for (const auto& vm : n["vms"]) {
        vms.push_back({vm.value("name", ""), joined(vm["vcpu_nodes"])});
        add_node_cells(vms.back(), vm["frames_per_node"], node_count);
    }
    if (vms.size() == 1)
        std::puts("No VM is running.");
    else
        print_columns(vms);
}

void print_hot(const json& h) {
    std::printf("Accesses since the last reset: %s\n", percent_local(h["accesses"]).c_str());
    std::printf("Accesses since the start:      %s\n", percent_local(h["since_start"]).c_str());
    for (const auto& vm : h["vms"])
        std::printf("  VM %s: %s\n", vm.value("name", "").c_str(), percent_local(vm).c_str());
    std::puts("");
    if (h["pages"].empty()) {
        std::puts("No page was accessed since the last reset.");
        return;
    }
    const usize nodes = h.value("nodes", 0u);
    std::vector<std::vector<std::string>> rows{{"VM", "GPA", "Home", "State", "Written"}};
    add_node_headings(rows[0], "From node", nodes);
    rows[0].push_back("Total");
    for (const auto& p : h["pages"]) {
        rows.push_back({p.value("vm", ""), fmt::format("{:#x}", p.value("gpa", 0ull)), count(p, "home"),
                        p.value("state", ""), p.value("written", false) ? "yes" : "no"});
        add_node_cells(rows.back(), p["counts"], nodes);
        rows.back().push_back(count(p, "total"));
    }
    print_columns(rows);
}
}  // namespace

int run_numa_client(const NumaClientRequest& request, const ClientOptions& options) {
    json args = json::object();
    if (!request.vm.empty()) args["vm"] = request.vm;
    const bool page_op = request.action == "migrate" || request.action == "replicate" || request.action == "collapse";
    u64 gpa = 0;
    if (page_op) {
        const auto parsed = parse_address(request.gpa);
        if (!parsed) {
            std::fprintf(stderr, "disco: GPA '%s' is not an address (decimal, or hexadecimal after 0x)\n",
                         request.gpa.c_str());
            return 2;
        }
        gpa = *parsed;
        args["gpa"] = gpa;
    }
    std::string command;
    if (request.action == "stats") {
        command = "memory";
    } else if (request.action == "numa") {
        command = "numa";
    } else if (request.action == "hot") {
        command = "hot-pages";
        args["limit"] = request.limit;
    } else if (request.action == "migrate") {
        command = "page-migrate";
        args["node"] = request.node;
    } else if (page_op) {
        command = "page-" + request.action;
    } else {
        return refuse(fmt::format("unknown numa command '{}'", request.action));
    }
    auto value = ask_monitor(vendor_command(command), args, options);
    if (!value) return refuse(value.error().message);
    if (options.json) {
        print_json(*value);
        return 0;
    }
    if (request.action == "stats")
        print_stats(*value);
    else if (request.action == "numa")
        print_numa(*value);
    else if (request.action == "hot")
        print_hot(*value);
    else if (request.action == "migrate")
        std::printf("Page %#llx of VM %s is on node %u now\n", static_cast<unsigned long long>(gpa), request.vm.c_str(),
                    (*value).value("node", 0u));
    else if (request.action == "replicate")
        std::printf("Page %#llx of VM %s is replicated on nodes %s\n", static_cast<unsigned long long>(gpa),
                    request.vm.c_str(), joined((*value)["nodes"]).c_str());
    else
        std::printf("Page %#llx of VM %s has one copy again\n", static_cast<unsigned long long>(gpa),
                    request.vm.c_str());
    return 0;
}
}  // namespace disco::control
