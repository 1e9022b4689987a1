// Shared pieces of the interpreter's handlers: the handler signature macro,
// the memory fast path (the ONE place where guest loads and stores touch host
// memory directly), and control transfer with delay slots.
#pragma once
#include "vmm/cpu/cpu.hpp"

namespace disco::cpu::interp {

#define DISCO_HANDLER(name) \
    template <ByteOrder BO> \
    const Decoded* op_##name([[maybe_unused]] Cpu& c, [[maybe_unused]] const Decoded* d)

/// Effective address of base+offset forms (MD00087: 64-bit wrapping add).
inline u64 ea(const Cpu& c, const Decoded* d) { return c.r[d->rs] + static_cast<u64>(d->imm); }

// ---- The memory fast path -------------------------------------------------
// A soft-TLB hit is one compare: the tag holds the virtual page with the low
// bits clear, and the address is masked with ~0xFFF | (size - 1), so a page
// mismatch and a misaligned address both miss and go to the slow path (which
// raises AdEL/AdES for the latter). On a hit, host = va + addend.
template <ByteOrder BO, class T>
inline bool load(Cpu& c, const Decoded* d, u64 va, T& out) {
    const SoftTlbEntry& e = c.stlb[(va >> kPageShift) % kSoftTlbSize];
    if ((va & (~(kPageSize - 1) | (sizeof(T) - 1))) == e.read_tag) [[likely]] {
        out = load_guest<BO, T>(reinterpret_cast<const void*>(va + e.addend));
        return true;
    }
    return c.load_slow<BO, T>(d, va, out);
}

/// Stores and returns the next instruction (d + 1), or nullptr after an
/// exception or a store that hit decoded code.
template <ByteOrder BO, class T>
inline const Decoded* store(Cpu& c, const Decoded* d, u64 va, T value) {
    const SoftTlbEntry& e = c.stlb[(va >> kPageShift) % kSoftTlbSize];
    if ((va & (~(kPageSize - 1) | (sizeof(T) - 1))) == e.write_tag) [[likely]] {
        store_guest<BO, T>(reinterpret_cast<void*>(va + e.addend), value);
        return d + 1;
    }
    return c.store_slow<BO, T>(d, va, value);
}

// ---- Control transfer -------------------------------------------------------
/// Continues at target: on the same page without leaving the handler chain,
/// otherwise through the run loop.
inline const Decoded* go_to(Cpu& c, u64 target) {
    if (((target ^ c.cur_vbase) & ~(kPageSize - 1)) == 0 && (target & 3) == 0)
        return &c.cur_page->insns[(target & (kPageSize - 1)) >> 2];
    c.pc = target;
    return nullptr;
}

/// A branch or jump: runs the delay slot, then goes to target when taken
/// (MD00087 §2.1.3.2, "delay slot"). Branch-likely annuls the slot when not
/// taken. A control transfer inside a delay slot is a Reserved Instruction,
/// as QEMU treats it.
template <bool Likely = false>
inline const Decoded* branch(Cpu& c, const Decoded* d, bool taken, u64 target) {
    if (c.in_delay) [[unlikely]]
        return c.raise(d, Exc::RI);
    const u64 pc = c.pc_of(d);
    const Decoded* slot = d + 1;
    if (slot == c.cur_page->insns + kSlotsPerPage) [[unlikely]] {
        // The slot is on the next page: the run loop executes it.
        if (Likely && !taken) {
            c.pc = pc + 8;
            return nullptr;
        }
        c.pending_delay = true;
        c.delay_target = taken ? target : pc + 8;
        c.pc = pc + 4;
        return nullptr;
    }
    if (Likely && !taken) return d + 2;
    c.delay_target = taken ? target : pc + 8;
    c.in_delay = true;
    const Decoded* next = slot->fn(c, slot);
    c.in_delay = false;
    ++c.slot_insns;
    if (next == nullptr || !taken) return next;
    return go_to(c, target);
}

inline u64 branch_target(const Cpu& c, const Decoded* d) { return c.pc_of(d) + 4 + static_cast<u64>(d->imm); }
}  // namespace disco::cpu::interp
