#include "vmm/board/virt.hpp"

#include <fmt/format.h>
#include <sys/random.h>

#include "vmm/board/disco_virt_map.hpp"
#include "vmm/board/elf_loader.hpp"
#include "vmm/board/initrd.hpp"
#include "vmm/board/virt_fdt.hpp"
#include "vmm/cpu/cp0.hpp"
#include "vmm/dev/cm_gcr.hpp"
#include "vmm/dev/cpc.hpp"
#include "vmm/dev/gic.hpp"
#include "vmm/dev/goldfish_rtc.hpp"
#include "vmm/dev/syscon.hpp"
#include "vmm/dev/uart16550.hpp"
#include "vmm/dev/virtio/blk.hpp"
#include "vmm/dev/virtio/console.hpp"
#include "vmm/dev/virtio/mmio_transport.hpp"

namespace disco::board {
namespace {
using namespace virt;

Result<void, Error> add_ram(GuestRam& ram, u64 bytes) {
    if (bytes < kMinMemory || bytes > kMaxMemory || bytes % kPageSize)
        return fail(Error{
            fmt::format("memory size {} MiB is out of range for the virt board (64 MiB to 16 GiB)", bytes >> 20)});
    const u64 low = std::min(bytes, kRam0Limit);
    if (auto r = ram.add_region(GuestPhysAddr(kRam0Base), low); !r) return fail(Error{r.error().message()});
    if (bytes > low) {
        if (auto r = ram.add_region(GuestPhysAddr(kRam1Base), bytes - low); !r) return fail(Error{r.error().message()});
    }
    return {};
}

/// Host randomness for the guest's CRNG seed and KASLR (guest-board.md §5.4).
std::vector<u8> random_bytes(usize n) {
    std::vector<u8> out(n);
    usize got = 0;
    while (got < n) {
        const ssize_t r = getrandom(out.data() + got, n - got, 0);
        if (r <= 0) break;
        got += static_cast<usize>(r);
    }
    out.resize(got);
    return out;
}

struct Placement {
    u64 dtb = 0, initrd = 0;
};

/// The DTB and initrd go at the top of low RAM, above the kernel and out of
/// the way of KASLR's copy when RAM allows (guest-board.md §5.2); the DTB
/// must be 8-byte aligned, the initrd page aligned, both below 512 MiB.
Result<Placement, Error> place_boot_data(u64 memory_bytes, const LoadedKernel& kernel, usize initrd_size) {
    const u64 low_end = std::min(memory_bytes, kRam0Limit);
    Placement p;
    p.dtb = low_end - kDtbMaxSize;
    const u64 initrd_pages = (initrd_size + kPageSize - 1) & ~(kPageSize - 1);
    if (initrd_pages > p.dtb) return fail(Error{"memory is too small for the initrd"});
    p.initrd = p.dtb - initrd_pages;
    if (p.initrd < kernel.phys_high)
        return fail(Error{fmt::format("memory ({} MiB) is too small for the kernel ({} MiB) and initrd ({} MiB)",
                                      memory_bytes >> 20, (kernel.phys_high + (1 << 20) - 1) >> 20,
                                      (initrd_pages + (1 << 20) - 1) >> 20)});
    return p;
}

/// Virtio slots: disks first (vda, vdb, ...), then the console; 8 slots in all.
Result<void, Error> add_virtio(GuestRam& ram, MmioBus& mmio, const VirtConfig& config, VirtHooks& hooks,
                               const std::shared_ptr<dev::Gic>& gic, VirtBoard& board) {
    if (config.disks.size() + (config.virtio_console ? 1 : 0) > kVirtioSlots)
        return fail(Error{fmt::format("too many virtio devices: the board has {} slots", kVirtioSlots)});
    std::vector<std::unique_ptr<dev::VirtioDevice>> devices;
    for (const auto& disk : config.disks)
        devices.push_back(
            DISCO_TRY(dev::VirtioBlk::open(disk.path, disk.read_only, {}, disk.overlay, config.disk_cache)));
    if (config.virtio_console) {
        auto console = std::make_unique<dev::VirtioConsole>(hooks.virtio_console_out);
        board.virtio_console = std::shared_ptr<dev::VirtioConsole>(console.get(), [](dev::VirtioConsole*) {});
        devices.push_back(std::move(console));
    }
    for (unsigned slot = 0; slot < kVirtioSlots; ++slot) {
        const u64 base = kVirtioBase + slot * kVirtioStride;
        const unsigned irq = kVirtioIrqBase + slot;
        auto line = [gic, irq](bool level) { gic->set_input(irq, level); };
        std::unique_ptr<dev::VirtioDevice> device = slot < devices.size() ? std::move(devices[slot]) : nullptr;
        auto transport = std::make_shared<dev::VirtioMmio>(ram, std::move(device), line, base);
        DISCO_TRY(mmio.add(GuestPhysAddr(base), kVirtioSize, transport));
        board.devices.push_back(std::move(transport));
    }
    return {};
}
}  // namespace

Result<VirtBoard, Error> build_virt_board(GuestRam& ram, MmioBus& mmio, const VirtConfig& config, VirtHooks hooks) {
    if (config.ncpus < 1 || config.ncpus > kMaxCpus)
        return fail(
            Error{fmt::format("--smp {} is out of range for the virt board (1 to {})", config.ncpus, kMaxCpus)});
    DISCO_TRY(add_ram(ram, config.memory_bytes));
    VirtBoard board;

    auto gic = std::make_shared<dev::Gic>(config.ncpus, kGicTimerHz, hooks.cpu_irq, kGicBase);
    auto gcr = std::make_shared<dev::CmGcr>(config.ncpus, kGcrBase, kGicBase, kCpcBase);
    auto cpc =
        std::make_shared<dev::Cpc>(*gcr, config.ncpus, dev::CoreControl{hooks.start_core, hooks.stop_core}, kCpcBase);
    board.uart =
        std::make_shared<dev::Uart16550>(hooks.serial_out, [gic](bool level) { gic->set_input(kUartIrq, level); });
    auto rtc = std::make_shared<dev::GoldfishRtc>([gic](bool level) { gic->set_input(kRtcIrq, level); }, kRtcBase);
    auto syscon = std::make_shared<dev::Syscon>(hooks.reboot, hooks.poweroff, kSysconBase);
    const std::pair<u64, u64> windows[] = {{kGicBase, kGicSize},   {kGcrBase, kGcrSize}, {kCpcBase, kCpcSize},
                                           {kUartBase, kUartSize}, {kRtcBase, kRtcSize}, {kSysconBase, kSysconSize}};
    const std::shared_ptr<MmioDevice> devices[] = {gic, gcr, cpc, board.uart, rtc, syscon};
    for (usize i = 0; i < std::size(devices); ++i) {
        DISCO_TRY(mmio.add(GuestPhysAddr(windows[i].first), windows[i].second, devices[i]));
        board.devices.push_back(devices[i]);
    }
    DISCO_TRY(add_virtio(ram, mmio, config, hooks, gic, board));

    auto kernel = load_kernel_elf(config.kernel, ram);
    if (!kernel) return fail(Error{kernel.error().message});
    if (kernel->byte_order != ByteOrder::Little)
        return fail(
            Error{fmt::format("kernel {}: big-endian; the virt board runs little-endian guests", config.kernel)});
    board.byte_order = kernel->byte_order;

    std::vector<u8> initrd;
    if (!config.initrd.empty()) initrd = DISCO_TRY(read_initrd(config.initrd));
    const Placement place = DISCO_TRY(place_boot_data(config.memory_bytes, *kernel, initrd.size()));
    if (!initrd.empty()) {
        if (auto r = ram.write(GuestPhysAddr(place.initrd), initrd); !r) return fail(Error{r.error().message()});
    }

    VirtFdtSpec spec;
    spec.ncpus = config.ncpus;
    spec.memory_bytes = config.memory_bytes;
    spec.bootargs = config.cmdline;
    if (!initrd.empty()) {
        spec.initrd_start = place.initrd;
        spec.initrd_end = place.initrd + initrd.size();
    }
    spec.rng_seed = random_bytes(64);
    const auto seed = random_bytes(8);
    for (u8 b : seed) spec.kaslr_seed = spec.kaslr_seed << 8 | b;
    spec.virtio_slots = kVirtioSlots;
    const std::vector<u8> dtb = DISCO_TRY(build_virt_fdt(spec));
    if (dtb.size() > kDtbMaxSize) return fail(Error{"device tree too large"});
    if (auto r = ram.write(GuestPhysAddr(place.dtb), dtb); !r) return fail(Error{r.error().message()});

    // UHI boot protocol (MIPS UHI, "Boot protocol"): a0 = -2, a1 = the DTB's
    // KSEG0 address, a2 = a3 = 0. The core comes out of reset (BEV, ERL).
    board.reset.pc = kernel->entry;
    board.reset.gpr[4] = static_cast<u64>(-2);
    board.reset.gpr[5] = 0xFFFFFFFF80000000ull | place.dtb;
    board.reset.status = cpu::status::BEV | cpu::status::ERL;
    board.reset.cmgcr_base = kGcrBase;
    return board;
}
}  // namespace disco::board
