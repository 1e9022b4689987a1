#include "vmm/board/virt_fdt.hpp"

#include <fmt/format.h>

#include "vmm/board/disco_virt_map.hpp"
#include "vmm/board/fdt_writer.hpp"

namespace disco::board {
namespace {
using namespace virt;

// Interrupt specifier cells of the MIPS GIC binding: <type number flags>.
constexpr u32 kGicShared = 0, kGicLocal = 1;
constexpr u32 kIrqLevelHigh = 4, kIrqNone = 0;

/// reg = <base size> in the root's 2+2 cells (RAM may pass 4 GiB).
void reg64(FdtWriter& w, u64 base, u64 size) {
    w.prop_cells("reg", {static_cast<u32>(base >> 32), static_cast<u32>(base), static_cast<u32>(size >> 32),
                         static_cast<u32>(size)});
}

void write_chosen(FdtWriter& w, const VirtFdtSpec& s) {
    w.begin_node("chosen");
    w.prop_string("bootargs", s.bootargs);
    w.prop_string("stdout-path", "serial0:115200n8");
    if (s.initrd_end > s.initrd_start) {
        // Physical addresses, end exclusive (Documentation/devicetree/usage-model).
        w.prop_u64("linux,initrd-start", s.initrd_start);
        w.prop_u64("linux,initrd-end", s.initrd_end);
    }
    if (!s.rng_seed.empty()) w.prop_bytes("rng-seed", s.rng_seed);
    w.prop_u64("kaslr-seed", s.kaslr_seed);
    w.end_node();
}

void write_cpus(FdtWriter& w, const VirtFdtSpec& s, u32 cpu_clock) {
    w.begin_node("cpus");
    w.prop_u32("#address-cells", 1);
    w.prop_u32("#size-cells", 0);
    for (unsigned i = 0; i < s.ncpus; ++i) {
        w.begin_node(fmt::format("cpu@{}", i));
        w.prop_string("device_type", "cpu");
        w.prop_string("compatible", "mti,mips64r2");
        w.prop_u32("reg", i);
        // Linux takes the CP0 timer frequency from cpu@0's clock (halved);
        // without it no timer is probed and boot hangs (guest-board.md §1.5).
        w.prop_u32("clocks", cpu_clock);
        w.end_node();
    }
    w.end_node();
}

void write_memory(FdtWriter& w, const VirtFdtSpec& s) {
    w.begin_node("memory@0");
    w.prop_string("device_type", "memory");
    const u64 low = std::min(s.memory_bytes, kRam0Limit);
    const u64 high = s.memory_bytes - low;
    std::vector<u32> cells{0, 0, static_cast<u32>(low >> 32), static_cast<u32>(low)};
    if (high) {
        for (u64 v : {kRam1Base, high}) {
            cells.push_back(static_cast<u32>(v >> 32));
            cells.push_back(static_cast<u32>(v));
        }
    }
    w.prop_cells("reg", cells);
    w.end_node();
}

void write_gic(FdtWriter& w, u32 gic) {
    w.begin_node(fmt::format("interrupt-controller@{:x}", kGicBase));
    w.prop_string("compatible", "mti,gic");
    reg64(w, kGicBase, kGicSize);
    w.prop_empty("interrupt-controller");
    w.prop_u32("#interrupt-cells", 3);
    w.prop_u32("#address-cells", 0);
    w.prop_u32("phandle", gic);
    w.begin_node("timer");
    w.prop_string("compatible", "mti,gic-timer");
    w.prop_cells("interrupts", {kGicLocal, 1, kIrqNone});  // GIC_LOCAL 1 = COMPARE
    w.prop_u32("clock-frequency", static_cast<u32>(kGicTimerHz));
    w.end_node();
    w.end_node();
}

void write_device(FdtWriter& w, std::string_view name, std::string_view compatible, u64 base, u64 size,
                  int shared_irq) {
    w.begin_node(fmt::format("{}@{:x}", name, base));
    w.prop_string("compatible", compatible);
    reg64(w, base, size);
    if (shared_irq >= 0) w.prop_cells("interrupts", {kGicShared, static_cast<u32>(shared_irq), kIrqLevelHigh});
}
}  // namespace

Result<std::vector<u8>, Error> build_virt_fdt(const VirtFdtSpec& s) {
    FdtWriter w;
    const u32 gic = w.allocate_phandle(), cpu_clock = w.allocate_phandle(), syscon = w.allocate_phandle();
    w.prop_u32("#address-cells", 2);
    w.prop_u32("#size-cells", 2);
    w.prop_string("compatible", "disco,virt");
    w.prop_string("model", "Disco virtual board (disco-virt)");
    w.prop_u32("interrupt-parent", gic);  // default parent; Linux finds the IPI domain through it

    w.begin_node("aliases");
    w.prop_string("serial0", fmt::format("/serial@{:x}", kUartBase));
    w.end_node();
    write_chosen(w, s);

    w.begin_node("cpu-clock");
    w.prop_string("compatible", "fixed-clock");
    w.prop_u32("#clock-cells", 0);
    w.prop_u32("clock-frequency", static_cast<u32>(kCpuClockHz));
    w.prop_u32("phandle", cpu_clock);
    w.end_node();
    write_cpus(w, s, cpu_clock);
    write_memory(w, s);
    write_gic(w, gic);

    write_device(w, "cpc", "mti,mips-cpc", kCpcBase, kCpcSize, -1);
    w.end_node();
    write_device(w, "syscon", "syscon", kSysconBase, kSysconSize, -1);
    w.prop_u32("phandle", syscon);
    w.end_node();
    // Reboot through syscon (the kernel's syscon-reboot driver); poweroff is
    // described too, though Debian's build lacks its driver (guest-board.md §6.6).
    for (auto [node, compatible, offset] : {std::tuple{"reboot", "syscon-reboot", 0u},
                                            std::tuple{"poweroff", "syscon-poweroff", 4u}}) {
        w.begin_node(node);
        w.prop_string("compatible", compatible);
        w.prop_u32("regmap", syscon);
        w.prop_u32("offset", offset);
        w.prop_u32("value", 1);
        w.end_node();
    }
    write_device(w, "rtc", "google,goldfish-rtc", kRtcBase, kRtcSize, static_cast<int>(kRtcIrq));
    w.end_node();
    write_device(w, "serial", "ns16550a", kUartBase, kUartSize, static_cast<int>(kUartIrq));
    w.prop_u32("reg-shift", 0);
    w.prop_u32("reg-io-width", 1);
    w.prop_u32("clock-frequency", static_cast<u32>(kUartClockHz));
    w.end_node();
    for (unsigned i = 0; i < s.virtio_slots && i < kVirtioSlots; ++i) {
        write_device(w, "virtio", "virtio,mmio", kVirtioBase + i * kVirtioStride, kVirtioSize,
                     static_cast<int>(kVirtioIrqBase + i));
        w.prop_empty("dma-coherent");  // no cache maintenance needed: our DMA is coherent
        w.end_node();
    }
    return w.finish();
}
}  // namespace disco::board
