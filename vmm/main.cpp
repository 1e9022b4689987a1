// `disco`: the monitor's command line. QEMU users should feel at home:
//   disco run --kernel FILE [--memory SIZE] [--smp N]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "vmm/monitor/vm.hpp"
#include "vmm/util/size.hpp"

namespace {
int fail_line(const std::string& message) {
    std::fprintf(stderr, "disco: %s\n", message.c_str());
    return 2;
}
}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Disco: a virtual machine monitor for MIPS64 guests on NUMA hosts", "disco"};
    app.require_subcommand(1);
    CLI::App* run = app.add_subcommand("run", "Boot one VM and attach its console to this terminal");
    disco::monitor::VmConfig config;
    std::string memory = "64M";
    bool stats = false;
    run->add_option("-k,--kernel", config.kernel, "Guest kernel: a MIPS64 ELF (the ELF header picks the byte order)")
        ->required();
    run->add_option("-m,--memory", memory, "Guest RAM, e.g. 64M or 2G (a bare number means MiB)")
        ->capture_default_str();
    run->add_option("--smp", config.smp, "Number of vCPUs (1-64), one host thread each")->capture_default_str();
    run->add_option("--max-insns", config.max_insns,
                    "Stop the VM with an error after this many instructions per vCPU (0: no limit)")
        ->capture_default_str();
    run->add_flag("--stats", stats, "Print instructions retired and guest MIPS on stderr when the VM ends");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        return fail_line(e.what());
    }

    auto bytes = disco::parse_size(memory);
    if (!bytes) return fail_line(fmt::format("--memory: {}", bytes.error().message));
    config.memory_bytes = *bytes;

    auto vm = disco::monitor::Vm::create(config);
    if (!vm) return fail_line(vm.error().message);
    const int status = (*vm)->run();
    if (stats) {
        const double secs = (*vm)->run_seconds();
        const auto insns = (*vm)->retired_instructions();
        std::fprintf(stderr, "disco: %llu instructions in %.3f s: %.1f guest MIPS\n",
                     static_cast<unsigned long long>(insns), secs, secs > 0 ? insns / secs / 1e6 : 0.0);
    }
    return status;
}
