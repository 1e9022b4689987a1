// Branches and jumps (MD00087 Vol. II): every one has a delay slot; the
// "likely" forms annul it when not taken; the link forms write the return
// address before the slot runs, as the architecture orders it.
#pragma once
#include "vmm/cpu/interp/common.hpp"

namespace disco::cpu::interp {

inline i64 sreg(const Cpu& c, unsigned r) { return static_cast<i64>(c.r[r]); }

#define BRANCH(name, cond, likely, link)                         \
    DISCO_HANDLER(name) {                                        \
        const bool taken = (cond);                               \
        if (link) c.r[31] = c.pc_of(d) + 8;                      \
        return branch<likely>(c, d, taken, branch_target(c, d)); \
    }
BRANCH(BEQ, c.r[d->rs] == c.r[d->rt], false, false)
BRANCH(BNE, c.r[d->rs] != c.r[d->rt], false, false)
BRANCH(BLEZ, sreg(c, d->rs) <= 0, false, false)
BRANCH(BGTZ, sreg(c, d->rs) > 0, false, false)
BRANCH(BEQL, c.r[d->rs] == c.r[d->rt], true, false)
BRANCH(BNEL, c.r[d->rs] != c.r[d->rt], true, false)
BRANCH(BLEZL, sreg(c, d->rs) <= 0, true, false)
BRANCH(BGTZL, sreg(c, d->rs) > 0, true, false)
BRANCH(BLTZ, sreg(c, d->rs) < 0, false, false)
BRANCH(BGEZ, sreg(c, d->rs) >= 0, false, false)
BRANCH(BLTZL, sreg(c, d->rs) < 0, true, false)
BRANCH(BGEZL, sreg(c, d->rs) >= 0, true, false)
BRANCH(BLTZAL, sreg(c, d->rs) < 0, false, true)
BRANCH(BGEZAL, sreg(c, d->rs) >= 0, false, true)
BRANCH(BLTZALL, sreg(c, d->rs) < 0, true, true)
BRANCH(BGEZALL, sreg(c, d->rs) >= 0, true, true)
#undef BRANCH

/// J/JAL: the target keeps the upper bits of the delay slot's address.
inline u64 jump_target(const Cpu& c, const Decoded* d) {
    return ((c.pc_of(d) + 4) & ~0x0FFFFFFFull) | static_cast<u64>(d->imm);
}
DISCO_HANDLER(J) { return branch(c, d, true, jump_target(c, d)); }
DISCO_HANDLER(JAL) {
    const u64 target = jump_target(c, d);
    c.r[31] = c.pc_of(d) + 8;
    return branch(c, d, true, target);
}
DISCO_HANDLER(JR) { return branch(c, d, true, c.r[d->rs]); }
DISCO_HANDLER(JALR) {
    const u64 target = c.r[d->rs];  // read before the link: rd may equal rs
    c.r[d->rd] = c.pc_of(d) + 8;
    return branch(c, d, true, target);
}
}  // namespace disco::cpu::interp
