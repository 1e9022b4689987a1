// Loads a guest kernel from an ELF64 MIPS executable (either byte order) into
// guest RAM by physical address. The file is untrusted input: every offset and
// size is checked against the file and the guest's RAM with overflow-safe
// arithmetic, nothing is written to RAM until every segment has been checked,
// and each problem gives one line naming the file.
#pragma once
#include <optional>
#include <string>

#include "vmm/mem/endian.hpp"
#include "vmm/mem/guest_ram.hpp"
#include "vmm/util/result.hpp"

namespace disco::board {

struct LoadedKernel {
    u64 entry = 0;  // virtual, as the ELF header gives it
    ByteOrder byte_order = ByteOrder::Little;
    u64 phys_low = 0, phys_high = 0;  // guest-physical extent loaded, [low, high)
};

struct LoadError {
    enum class Kind {
        Unreadable,              // cannot open, stat or read; not a regular file
        Empty,                   // zero bytes
        NotElf,                  // no ELF magic
        NotElf64,                // ELFCLASS32 or unknown class
        BadIdent,                // unknown byte order or ELF version
        Truncated,               // header or program header table past the end of the file
        NotMips,                 // e_machine != EM_MIPS
        NotExecutable,           // e_type != ET_EXEC
        BadProgramHeaders,       // e_phentsize wrong or the table unreadable
        NoLoadSegments,          // no PT_LOAD with p_memsz > 0
        SegmentOutsideFile,      // [p_offset, p_offset + p_filesz) not inside the file
        FileSizeExceedsMemSize,  // p_filesz > p_memsz
        SegmentNotUnmapped,      // address outside kseg0/kseg1/xkphys/low physical
        SegmentOutsideRam,       // physical range not wholly inside one RAM region
        EntryOutsideSegments,    // e_entry not inside any loaded segment
    };
    Kind kind;
    std::string message;  // one line: "kernel PATH: problem"
};

/// Guest-physical address of a MIPS64 address that needs no TLB: kseg0/kseg1
/// (low 29 bits), xkphys (low 36 bits), or a value below 0x80000000 taken as
/// physical. nullopt for anything else.
std::optional<u64> unmapped_to_physical(u64 address);

/// Loads every PT_LOAD segment of the ELF64 EM_MIPS ET_EXEC file at path into
/// ram (p_paddr if nonzero, else p_vaddr, made physical as above), zeroing
/// each segment's p_memsz - p_filesz tail.
Result<LoadedKernel, LoadError> load_kernel_elf(const std::string& path, GuestRam& ram);
}  // namespace disco::board
