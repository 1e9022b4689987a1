// The disco-virt board's device tree, generated at VM start from what the VM
// has (guest-kernel/disco-virt.md is the binding). Debian's mips64r2el kernel
// finds every device here and nowhere else (guest-board.md §5).
#pragma once
#include <string>
#include <vector>

#include "vmm/util/result.hpp"
#include "vmm/util/types.hpp"

namespace disco::board {

struct VirtFdtSpec {
    unsigned ncpus = 1;
    u64 memory_bytes = 0;           // total guest RAM (split across the MMIO window)
    std::string bootargs;           // the kernel command line
    u64 initrd_start = 0, initrd_end = 0;  // guest-physical, end exclusive; 0/0 = none
    std::vector<u8> rng_seed;       // /chosen/rng-seed (32-64 bytes from the host's RNG)
    u64 kaslr_seed = 0;
    unsigned virtio_slots = 0;      // virtio-mmio windows to describe (empty ones read DeviceID 0)
};

/// The flattened device tree blob for spec.
Result<std::vector<u8>, Error> build_virt_fdt(const VirtFdtSpec& spec);
}  // namespace disco::board
