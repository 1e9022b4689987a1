// `disco`: the monitor's command line. QEMU users should feel at home:
//   disco run --kernel FILE [--initrd FILE] [--append CMDLINE] [--memory SIZE]
//             [--smp N] [--disk FILE[,readonly][,overlay=OVL]]... [--no-reboot]
//   disco run --vm FILE.json [--vm FILE.json]...   (several VMs: vmm/monitor/fleet.hpp)
//   disco run ... --control PATH                    (the control socket for the run: vmm/control/run_control.hpp)
//   disco run ... --metrics ADDR                    (Prometheus metrics for the run: vmm/control/metrics_server.hpp)
//   disco daemon --config-dir DIR; disco list|status|start|stop   (vmm/control/cli_commands.hpp)
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>

#include "vmm/control/cli_commands.hpp"
#include "vmm/control/metrics_server.hpp"
#include "vmm/control/run_control.hpp"
#include "vmm/monitor/fleet.hpp"
#include "vmm/monitor/footprint.hpp"
#include "vmm/monitor/host_console.hpp"
#include "vmm/monitor/page_scanner.hpp"
#include "vmm/monitor/signal_watch.hpp"
#include "vmm/monitor/stats_document.hpp"
#include "vmm/monitor/vm.hpp"
#include "vmm/util/size.hpp"

namespace {
int fail_line(const std::string& message) {
    std::fprintf(stderr, "disco: %s\n", message.c_str());
    return 2;
}

/// FILE[,readonly][,overlay=OVL] (QEMU's -drive spirit, one option per disk).
/// With an overlay, FILE is the read-only base (configs/disk-overlay-format.md).
disco::Result<disco::board::DiskSpec, disco::Error> parse_disk(const std::string& arg) {
    disco::board::DiskSpec disk;
    const auto comma = arg.find(',');
    disk.path = arg.substr(0, comma);
    if (disk.path.empty()) return disco::fail(disco::Error{fmt::format("--disk '{}': no file name", arg)});
    std::string rest = comma == std::string::npos ? "" : arg.substr(comma + 1);
    while (!rest.empty()) {
        const auto next = rest.find(',');
        const std::string opt = rest.substr(0, next);
        if (opt == "readonly" || opt == "ro" || opt == "readonly=on")
            disk.read_only = true;
        else if (opt.starts_with("overlay=") && opt.size() > 8)
            disk.overlay = opt.substr(8);
        else if (opt != "readonly=off")
            return disco::fail(disco::Error{
                fmt::format("--disk '{}': unknown option '{}' (known: readonly, overlay=FILE)", arg, opt)});
        rest = next == std::string::npos ? "" : rest.substr(next + 1);
    }
    return disk;
}
}  // namespace

int main(int argc, char** argv) {
    // Before any thread exists (signal_watch.hpp): SIGUSR1 prints the VMs' state.
    disco::monitor::block_monitor_signals();
    CLI::App app{"Disco: a virtual machine monitor for MIPS64 guests on NUMA hosts", "disco"};
    app.require_subcommand(1);
    disco::control::ControlSubcommands control(app);  // daemon, list, status, start, stop
    CLI::App* run = app.add_subcommand("run", "Boot one VM and attach its console to this terminal");
    disco::monitor::VmConfig config;
    std::string memory, machine = "virt";
    std::vector<std::string> disks;
    bool stats = false, no_reboot = false;
    run->add_option("-M,--machine", machine,
                    "Board: 'virt' (disco-virt: GIC, CPS SMP, virtio; boots Linux) or 'baremetal' (UART and "
                    "test device, for the bare-metal test kernels)")
        ->check(CLI::IsMember({"virt", "baremetal"}))
        ->capture_default_str();
    run->add_option("-k,--kernel", config.kernel, "Guest kernel: a MIPS64 ELF (e.g. Debian's vmlinuz-*-mips64r2el)");
    run->add_option("-i,--initrd", config.initrd, "Initial ramdisk: a cpio archive, optionally compressed (virt)");
    run->add_option("-a,--append", config.cmdline, "Kernel command line (virt; passed in the device tree)");
    run->add_option("-m,--memory", memory,
                    "Guest RAM, e.g. 512M or 2G (a bare number means MiB); default 256M (virt), 64M (baremetal)");
    run->add_option("--smp", config.smp, "Number of vCPUs, one host thread each (virt: 1-16)")->capture_default_str();
    run->add_option("-d,--disk", disks,
                    "A virtio-blk disk from a raw image FILE[,readonly]; FILE,overlay=OVL: FILE is a read-only "
                    "base and the guest's writes go to the copy-on-write overlay OVL (made if absent; delete it "
                    "to reset the disk); repeat for more (vda, vdb, ...)");
    run->add_option("--numa-sim", config.numa_sim,
                    "Present N simulated NUMA nodes (machine memory split in N pools, vCPUs round-robin); "
                    "0 uses the host's real nodes. With --vm: for the whole fleet, whose VMs share one machine memory")
        ->check(CLI::Range(0u, 64u))
        ->capture_default_str();
    run->add_option("--page-churn", config.page_churn,
                    "Stress the memory layer: migrate, replicate and collapse random guest pages at RATE "
                    "operations per second while the guest runs (with --vm: in every VM)")
        ->check(CLI::Range(0.0, 1e6));
    std::string placement = "home";
    run->add_option("--numa-placement", placement,
                    "Where guest RAM starts out: 'home' (one run on the VM's home node), 'interleave' (page by "
                    "page over the nodes) or 'random' (each page on a random node: NUMA-oblivious first touch, "
                    "for the migration experiment); with --vm: for every VM")
        ->check(CLI::IsMember({"home", "interleave", "random"}))
        ->capture_default_str();
    std::string access_counters = "on";
    run->add_option("--access-counters", access_counters,
                    "Count, per machine page and NUMA node, the vCPUs' soft-TLB misses (the analogue of FLASH's "
                    "per-page cache-miss counters that page migration and replication decide from); 'off' saves "
                    "their small cost. With --stats the total and the hottest page are printed (virt only)")
        ->check(CLI::IsMember({"on", "off"}))
        ->capture_default_str();
    std::string disk_cache = "on";
    run->add_option("--disk-cache", disk_cache,
                    "Read-time sharing (the global disk page cache): a page-aligned 4 KiB read of a read-only "
                    "base image's block maps the one machine page holding it into the guest, copy-on-write, "
                    "instead of copying (with --vm: across the fleet's VMs); 'off' copies every read")
        ->check(CLI::IsMember({"on", "off"}))
        ->capture_default_str();
    run->add_flag("--no-reboot", no_reboot, "End with status 0 when the guest reboots instead of restarting it");
    run->add_option("--max-insns", config.max_insns,
                    "Stop the VM with an error after this many instructions per vCPU (0: no limit)")
        ->capture_default_str();
    std::string stats_file;
    run->add_option("--stats", stats_file,
                    "Print instructions retired, guest MIPS and the memory footprint on stderr when the VM ends; "
                    "with FILE, also write the footprint and sharing figures there as JSON")
        ->expected(0, 1);
    double page_scan = 0;
    run->add_option("--page-scan", page_scan,
                    "Share identical guest pages copy-on-write (within and across VMs), found by hashing at most "
                    "RATE pages per second on one scanner thread (0: off)")
        ->check(CLI::Range(0.0, 1e8));
    std::string control_socket;
    run->add_option("--control", control_socket,
                    "Serve the control socket (QMP, configs/control-schema.md) at PATH for this run's VMs, as "
                    "`disco daemon` does: for disco-numad and scripts. With --kernel the VM is a fleet of one "
                    "named 'vm' whose console is output only");
    std::string metrics;
    run->add_option("--metrics", metrics,
                    "Serve the monitor's figures for Prometheus (GET /metrics, text format 0.0.4) at ADDR: "
                    "unix:PATH or tcp:HOST:PORT, HOST a loopback address (configs/control-schema.md, \"Metrics\"); "
                    "off unless given. With --kernel the VM is a fleet of one named 'vm' whose console is output only");
    std::vector<std::string> vm_files;
    run->add_option("--vm", vm_files,
                    "Instead of --kernel: run the VMs a JSON file defines (configs/vm-schema.md), each with its own "
                    "console; repeat for more");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        return fail_line(e.what());
    }
    if (auto status = control.run()) return *status;
    stats = run->count("--stats") > 0;
    if (!vm_files.empty()) {
        for (const char* one_vm : {"--kernel", "--initrd", "--append", "--memory", "--smp", "--disk", "--machine",
                                   "--no-reboot", "--access-counters"})
            if (run->count(one_vm) > 0)
                return fail_line(fmt::format(
                    "--vm and {} are mutually exclusive (each VM's settings are in its JSON file)", one_vm));
    }
    // --numa-sim and --page-churn apply to the whole fleet: its VMs share one machine memory.
    disco::monitor::FleetOptions fleet_options;
    fleet_options.default_max_insns = config.max_insns;
    fleet_options.stats = stats;
    fleet_options.numa_sim = config.numa_sim;
    fleet_options.page_churn = config.page_churn;
    config.ram_placement = placement == "random"       ? disco::RamPlacement::Random
                           : placement == "interleave" ? disco::RamPlacement::Interleave
                                                       : disco::RamPlacement::Home;
    fleet_options.ram_placement = config.ram_placement;
    fleet_options.page_scan = page_scan;
    fleet_options.stats_file = stats_file;
    fleet_options.disk_cache = disk_cache == "on";
    disco::monitor::FleetCompanion companion;
    if (!control_socket.empty()) {
        auto served = disco::control::serve_run_control(control_socket, fleet_options);
        if (!served) return fail_line(served.error().message);
        companion = std::move(*served);
    }
    if (run->count("--metrics") > 0) {
        auto address = disco::control::parse_metrics_address(metrics);
        if (!address) return fail_line(fmt::format("--metrics {}: {}", metrics, address.error().message));
        companion = disco::control::serve_run_metrics(std::move(*address), std::move(companion));
    }
    if (!vm_files.empty()) return disco::monitor::run_fleet(vm_files, fleet_options, companion);
    if (run->count("--kernel") == 0)
        return fail_line("--kernel is required (or --vm FILE.json for VMs from JSON files)");

    config.access_counters = access_counters == "on";
    config.disk_cache = disk_cache == "on";
    config.machine = machine == "virt" ? disco::monitor::Machine::Virt : disco::monitor::Machine::BareMetal;
    if (memory.empty()) memory = config.machine == disco::monitor::Machine::Virt ? "256M" : "64M";
    auto bytes = disco::parse_size(memory);
    if (!bytes) return fail_line(fmt::format("--memory: {}", bytes.error().message));
    config.memory_bytes = *bytes;
    for (const auto& d : disks) {
        auto disk = parse_disk(d);
        if (!disk) return fail_line(disk.error().message);
        config.disks.push_back(*disk);
    }
    if (config.machine == disco::monitor::Machine::BareMetal &&
        (!config.initrd.empty() || !config.cmdline.empty() || !config.disks.empty()))
        return fail_line("--initrd, --append and --disk need the virt machine (-M virt)");

    if (companion) {
        // A fleet of one, so that the control socket sees it as it sees any fleet's VMs.
        disco::monitor::VmDefinition def;
        def.name = "vm";
        def.config = config;
        def.reboot = no_reboot ? disco::monitor::RebootPolicy::Exit : disco::monitor::RebootPolicy::Restart;
        std::vector<disco::monitor::VmDefinition> defs;
        defs.push_back(std::move(def));
        return disco::monitor::run_fleet(std::move(defs), fleet_options, companion);
    }

    // SIGUSR1: the running VM's vCPU and device state on stderr (a hung guest).
    std::mutex current_mutex;
    disco::monitor::Vm* current = nullptr;
    disco::monitor::SignalWatch dump_on_signal({SIGUSR1}, [&](int) {
        std::lock_guard lock(current_mutex);
        if (current)
            std::fputs(("\ndisco: SIGUSR1: the VM's state\n" + current->describe_state("disco: ")).c_str(), stderr);
    });
    const auto set_current = [&](disco::monitor::Vm* vm) {
        std::lock_guard lock(current_mutex);
        current = vm;
    };
    for (;;) {
        auto vm = disco::monitor::Vm::create(config);
        if (!vm) return fail_line(vm.error().message);
        set_current(vm->get());
        // --page-scan: sharing within the one VM (zero pages, duplicated file pages).
        std::optional<disco::monitor::PageScanner> scanner;
        if (page_scan > 0) scanner.emplace(page_scan).add((*vm)->ram());
        struct ClearCurrent {
            decltype(set_current)& clear;
            ~ClearCurrent() { clear(nullptr); }
        } clear_current{set_current};
        disco::monitor::Vm* const this_vm = vm->get();
        disco::monitor::HostConsole console(
            [this_vm](std::span<const disco::u8> bytes) { this_vm->console_input(bytes); },
            [this_vm] {
                std::fprintf(stderr, "\r\ndisco: terminated by the console (Ctrl-A x)\r\n");
                this_vm->request_exit({disco::monitor::VmExit::Kind::PowerOff, 0});
            });
        if (auto started = console.start(); !started) return fail_line(started.error().message);
        const disco::monitor::VmExit exit = (*vm)->run();
        console.stop();
        const std::pair<std::string, const disco::GuestRam*> measured[] = {{"vm", &(*vm)->ram()}};
        const disco::monitor::Footprint footprint = disco::monitor::measure_footprint(measured);
        if (scanner) scanner->stop();
        std::optional<disco::monitor::AccessSplit> numa;
        if (const disco::MachineMemory* mm = (*vm)->ram().machine_memory()) numa = disco::monitor::count_accesses(*mm);
        std::optional<disco::DiskCacheStats> cache;
        if (const disco::DiskPageCache* c = (*vm)->disk_cache()) cache = c->stats();
        if (!stats_file.empty() &&
            !disco::monitor::write_stats_document(
                stats_file, disco::monitor::stats_document(footprint, footprint, scanner ? &*scanner : nullptr,
                                                           numa ? &*numa : nullptr, cache ? &*cache : nullptr)))
            return fail_line(fmt::format("--stats {}: {}", stats_file, std::strerror(errno)));
        if (stats) {
            std::fprintf(stderr, "disco: %s\n", footprint.summary().c_str());
            if (scanner) std::fprintf(stderr, "disco: %s\n", scanner->summary().c_str());
            if (cache) std::fprintf(stderr, "disco: %s\n", disco::monitor::disk_cache_summary(*cache).c_str());
            const double secs = (*vm)->run_seconds();
            const auto insns = (*vm)->retired_instructions();
            std::fprintf(stderr, "disco: %llu instructions in %.3f s: %.1f guest MIPS\n",
                         static_cast<unsigned long long>(insns), secs, secs > 0 ? insns / secs / 1e6 : 0.0);
            if (const disco::MachineMemory* mm = (*vm)->ram().machine_memory(); mm && config.access_counters)
                std::fprintf(stderr, "disco: access counters: %s\n", mm->access_counters().summary().c_str());
        }
        if (!(*vm)->churn_summary().empty()) std::fprintf(stderr, "disco: %s\n", (*vm)->churn_summary().c_str());
        if (exit.kind != disco::monitor::VmExit::Kind::Reboot) return exit.status;
        if (no_reboot) {
            std::fprintf(stderr, "disco: guest rebooted; exiting (--no-reboot)\n");
            return 0;
        }
        std::fprintf(stderr, "disco: guest rebooted; restarting the VM\n");
    }
}
