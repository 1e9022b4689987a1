#include "vmm/board/baremetal.hpp"

#include <fmt/format.h>

#include "vmm/board/elf_loader.hpp"
#include "vmm/cpu/cp0.hpp"
#include "vmm/dev/test_exit.hpp"
#include "vmm/dev/uart16550.hpp"

namespace disco::board {

Result<BareMetalBoot, Error> build_baremetal_board(GuestRam& ram, MmioBus& mmio, u64 memory_bytes,
                                                   const std::string& kernel_path, BoardHooks hooks) {
    if (memory_bytes < kMinMemory || memory_bytes > kMaxMemory || memory_bytes % kPageSize)
        return fail(Error{fmt::format("memory size {} is out of range (1 MiB to 64 GiB, whole pages)", memory_bytes)});
    const u64 low = std::min(memory_bytes, kRamLowLimit);
    if (auto r = ram.add_region(GuestPhysAddr(0), low); !r) return fail(Error{r.error().message()});
    if (memory_bytes > low) {
        if (auto r = ram.add_region(GuestPhysAddr(kRamHighBase), memory_bytes - low); !r)
            return fail(Error{r.error().message()});
    }
    auto uart = std::make_shared<dev::Uart16550>(std::move(hooks.console_out), std::move(hooks.uart_irq));
    DISCO_TRY(mmio.add(GuestPhysAddr(kUartBase), kUartSize, uart));
    auto test = std::make_shared<dev::TestExit>(std::move(hooks.exit));
    DISCO_TRY(mmio.add(GuestPhysAddr(kTestDeviceBase), kTestDeviceSize, test));

    auto kernel = load_kernel_elf(kernel_path, ram);
    if (!kernel) return fail(Error{kernel.error().message});

    BareMetalBoot boot{kernel->byte_order, {}};
    boot.reset.pc = kernel->entry;
    // UHI-style hand-over: a0 = -2 says "a1 holds a device tree", here none (0).
    boot.reset.gpr[4] = static_cast<u64>(-2);
    boot.reset.gpr[5] = 0;
    // Kernel mode with 64-bit segments enabled and boot-time exception vectors;
    // the guest sets EBase and clears BEV before it takes exceptions.
    boot.reset.status = cpu::status::BEV | cpu::status::CU0 | cpu::status::KX | cpu::status::SX | cpu::status::UX;
    return boot;
}
}  // namespace disco::board
