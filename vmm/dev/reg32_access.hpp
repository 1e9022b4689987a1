// Access-width handling shared by the MIPS CPS blocks (GIC, CM GCR, CPC).
// Their registers are 32-bit words; a 64-bit register is two words, low at
// +0 and high at +4, which is how a CM2 kernel reads it (guest-board.md §2,
// "Discovery, revision and access widths"). A guest may still use any width:
//   - an aligned 8-byte access is the two words, low word first (what a CM3
//     `ld`/`sd` would see on this little-endian board);
//   - an aligned 1- or 2-byte read returns those bytes of the containing word;
//   - a sub-word write, or any unaligned or odd-sized access, is dropped
//     (reads as 0): the CPS manuals define only word accesses, and guessing a
//     partial-write rule could corrupt state.
#pragma once
#include <mutex>

#include "vmm/dev/unimplemented.hpp"
#include "vmm/util/types.hpp"

namespace disco::dev::reg32 {

/// Naturally aligned 1-, 2-, 4- or 8-byte access.
constexpr bool aligned_access(u64 offset, unsigned size) {
    return (size == 1 || size == 2 || size == 4 || size == 8) && offset % size == 0;
}

/// Reads `size` bytes at `offset` through read_word(word_offset) -> u32.
/// Sets `ok` to false when the access is one the block does not define.
template <class ReadWord>
u64 read(u64 offset, unsigned size, bool& ok, ReadWord&& read_word) {
    ok = aligned_access(offset, size);
    if (!ok) return 0;
    if (size == 8) return u64{read_word(offset)} | u64{read_word(offset + 4)} << 32;
    const u32 word = read_word(offset & ~u64{3});
    if (size == 4) return word;
    const unsigned shift = 8 * static_cast<unsigned>(offset & 3);
    return (word >> shift) & (size == 1 ? 0xFFu : 0xFFFFu);
}

/// read() under the device's lock; an access the block does not define is
/// logged once (outside the lock) and reads as zero.
template <class ReadWord>
u64 locked_read(std::mutex& mutex, UnimplementedRegisterLog& log, u64 offset, unsigned size, ReadWord&& read_word) {
    bool ok;
    u64 v;
    {
        std::lock_guard<std::mutex> lock(mutex);
        v = read(offset, size, ok, read_word);
    }
    if (!ok) log.note(offset, size, false);
    return v;
}

/// Writes through write_word(word_offset, u32). Returns false (and writes
/// nothing) for sub-word, unaligned or odd-sized stores.
template <class WriteWord>
bool write(u64 offset, unsigned size, u64 value, WriteWord&& write_word) {
    if (!aligned_access(offset, size) || size < 4) return false;
    write_word(offset, static_cast<u32>(value));
    if (size == 8) write_word(offset + 4, static_cast<u32>(value >> 32));
    return true;
}

/// The word of a 64-bit register that a 32-bit access at `offset` touches.
constexpr u32 word_of(u64 reg, u64 offset) { return static_cast<u32>((offset & 4) ? reg >> 32 : reg); }

/// reg with the word at `offset` replaced by `word`.
constexpr u64 with_word(u64 reg, u64 offset, u32 word) {
    return (offset & 4) ? (reg & 0xFFFF'FFFFull) | u64{word} << 32 : (reg & ~0xFFFF'FFFFull) | word;
}
}  // namespace disco::dev::reg32
