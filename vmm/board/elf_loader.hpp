// Loads a guest kernel from an ELF64 file (either byte order) into guest RAM
// by physical address. Every field of the file is untrusted: sizes and
// offsets are checked against the file and the guest's RAM, with overflow-safe
// arithmetic, and each problem gives one line naming the file.
#pragma once
#include <string>

#include "vmm/mem/endian.hpp"
#include "vmm/mem/guest_ram.hpp"
#include "vmm/util/result.hpp"

namespace disco::board {

struct LoadedKernel {
    u64 entry = 0;  // virtual, as the ELF header gives it
    ByteOrder byte_order = ByteOrder::Little;
    u64 phys_low = 0, phys_high = 0;  // extent loaded [low, high)
};

struct LoadError {
    std::string message;
};

/// Guest-physical address of an address in an unmapped MIPS64 segment
/// (kseg0/kseg1, xkphys, or a plain physical address below 2 GiB).
Result<u64, LoadError> unmapped_to_physical(u64 address);

Result<LoadedKernel, LoadError> load_kernel_elf(const std::string& path, GuestRam& ram);
}  // namespace disco::board
