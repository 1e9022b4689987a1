// Integer arithmetic, logic, shifts, multiply/divide and the Release 2 bit
// operations (MD00087 Vol. II). 32-bit operations produce sign-extended
// results (MD00087 §2.2, "32-bit operations on a 64-bit processor").
#pragma once
#include <bit>

#include "vmm/cpu/interp/common.hpp"

namespace disco::cpu::interp {

#define ALU_RD(name, expr)                                         \
    DISCO_HANDLER(name) {                                          \
        [[maybe_unused]] const u64 s = c.r[d->rs], t = c.r[d->rt]; \
        c.r[d->rd] = (expr);                                       \
        return d + 1;                                              \
    }
#define ALU_RT(name, expr)                         \
    DISCO_HANDLER(name) {                          \
        [[maybe_unused]] const u64 s = c.r[d->rs]; \
        const u64 imm = static_cast<u64>(d->imm);  \
        c.r[d->rt] = (expr);                       \
        return d + 1;                              \
    }

inline u32 lo32(u64 v) { return static_cast<u32>(v); }
inline u64 rotr32(u32 v, unsigned n) { return sext32(std::rotr(v, static_cast<int>(n))); }

// Shifts by sa (the sa field is pre-decoded; *32 forms add 32).
DISCO_HANDLER(SLL) {
    c.r[d->rd] = sext32(lo32(c.r[d->rt]) << d->sa);
    return d + 1;
}
DISCO_HANDLER(SRL) {
    c.r[d->rd] = sext32(lo32(c.r[d->rt]) >> d->sa);
    return d + 1;
}
DISCO_HANDLER(ROTR) {
    c.r[d->rd] = rotr32(lo32(c.r[d->rt]), d->sa);
    return d + 1;
}
DISCO_HANDLER(SRA) {
    c.r[d->rd] = sext32(static_cast<u32>(static_cast<i32>(lo32(c.r[d->rt])) >> d->sa));
    return d + 1;
}
ALU_RD(SLLV, sext32(lo32(t) << (s & 31)))
ALU_RD(SRLV, sext32(lo32(t) >> (s & 31)))
ALU_RD(ROTRV, rotr32(lo32(t), s & 31))
ALU_RD(SRAV, sext32(static_cast<u32>(static_cast<i32>(lo32(t)) >> (s & 31))))
ALU_RD(DSLLV, t << (s & 63))
ALU_RD(DSRLV, t >> (s & 63))
ALU_RD(DROTRV, std::rotr(t, static_cast<int>(s & 63)))
ALU_RD(DSRAV, static_cast<u64>(static_cast<i64>(t) >> (s & 63)))
DISCO_HANDLER(DSLL) {
    c.r[d->rd] = c.r[d->rt] << d->sa;
    return d + 1;
}
DISCO_HANDLER(DSRL) {
    c.r[d->rd] = c.r[d->rt] >> d->sa;
    return d + 1;
}
DISCO_HANDLER(DROTR) {
    c.r[d->rd] = std::rotr(c.r[d->rt], d->sa);
    return d + 1;
}
DISCO_HANDLER(DSRA) {
    c.r[d->rd] = static_cast<u64>(static_cast<i64>(c.r[d->rt]) >> d->sa);
    return d + 1;
}
DISCO_HANDLER(DSLL32) {
    c.r[d->rd] = c.r[d->rt] << (d->sa + 32);
    return d + 1;
}
DISCO_HANDLER(DSRL32) {
    c.r[d->rd] = c.r[d->rt] >> (d->sa + 32);
    return d + 1;
}
DISCO_HANDLER(DROTR32) {
    c.r[d->rd] = std::rotr(c.r[d->rt], d->sa + 32);
    return d + 1;
}
DISCO_HANDLER(DSRA32) {
    c.r[d->rd] = static_cast<u64>(static_cast<i64>(c.r[d->rt]) >> (d->sa + 32));
    return d + 1;
}

// Register ALU.
DISCO_HANDLER(ADD) {
    i32 res;
    if (__builtin_add_overflow(static_cast<i32>(c.r[d->rs]), static_cast<i32>(c.r[d->rt]), &res))
        return c.raise(d, Exc::Ov);
    c.r[d->rd] = sext32(static_cast<u32>(res));
    return d + 1;
}
ALU_RD(ADDU, sext32(s + t))
DISCO_HANDLER(SUB) {
    i32 res;
    if (__builtin_sub_overflow(static_cast<i32>(c.r[d->rs]), static_cast<i32>(c.r[d->rt]), &res))
        return c.raise(d, Exc::Ov);
    c.r[d->rd] = sext32(static_cast<u32>(res));
    return d + 1;
}
ALU_RD(SUBU, sext32(s - t))
ALU_RD(AND, s& t)
ALU_RD(OR, s | t)
ALU_RD(XOR, s ^ t)
ALU_RD(NOR, ~(s | t))
ALU_RD(SLT, static_cast<i64>(s) < static_cast<i64>(t) ? 1 : 0)
ALU_RD(SLTU, s < t ? 1 : 0)
DISCO_HANDLER(DADD) {
    i64 res;
    if (__builtin_add_overflow(static_cast<i64>(c.r[d->rs]), static_cast<i64>(c.r[d->rt]), &res))
        return c.raise(d, Exc::Ov);
    c.r[d->rd] = static_cast<u64>(res);
    return d + 1;
}
ALU_RD(DADDU, s + t)
DISCO_HANDLER(DSUB) {
    i64 res;
    if (__builtin_sub_overflow(static_cast<i64>(c.r[d->rs]), static_cast<i64>(c.r[d->rt]), &res))
        return c.raise(d, Exc::Ov);
    c.r[d->rd] = static_cast<u64>(res);
    return d + 1;
}
ALU_RD(DSUBU, s - t)
ALU_RD(MOVZ, t == 0 ? s : c.r[d->rd])
ALU_RD(MOVN, t != 0 ? s : c.r[d->rd])

// Immediate ALU (imm is pre-extended: signed for i, zero for u).
DISCO_HANDLER(ADDI) {
    i32 res;
    if (__builtin_add_overflow(static_cast<i32>(c.r[d->rs]), static_cast<i32>(d->imm), &res))
        return c.raise(d, Exc::Ov);
    c.r[d->rt] = sext32(static_cast<u32>(res));
    return d + 1;
}
ALU_RT(ADDIU, sext32(s + imm))
ALU_RT(SLTI, static_cast<i64>(s) < static_cast<i64>(imm) ? 1 : 0)
ALU_RT(SLTIU, s < imm ? 1 : 0)
ALU_RT(ANDI, s& imm)
ALU_RT(ORI, s | imm)
ALU_RT(XORI, s ^ imm)
ALU_RT(LUI, sext32(imm << 16))
DISCO_HANDLER(DADDI) {
    i64 res;
    if (__builtin_add_overflow(static_cast<i64>(c.r[d->rs]), d->imm, &res)) return c.raise(d, Exc::Ov);
    c.r[d->rt] = static_cast<u64>(res);
    return d + 1;
}
ALU_RT(DADDIU, s + imm)

// HI/LO.
DISCO_HANDLER(MFHI) {
    c.r[d->rd] = c.hi;
    return d + 1;
}
DISCO_HANDLER(MTHI) {
    c.hi = c.r[d->rs];
    return d + 1;
}
DISCO_HANDLER(MFLO) {
    c.r[d->rd] = c.lo;
    return d + 1;
}
DISCO_HANDLER(MTLO) {
    c.lo = c.r[d->rs];
    return d + 1;
}

inline void set_hilo32(Cpu& c, u64 product) {
    c.lo = sext32(product);
    c.hi = sext32(product >> 32);
}
DISCO_HANDLER(MULT) {
    set_hilo32(c, static_cast<u64>(static_cast<i64>(static_cast<i32>(c.r[d->rs])) * static_cast<i32>(c.r[d->rt])));
    return d + 1;
}
DISCO_HANDLER(MULTU) {
    set_hilo32(c, static_cast<u64>(lo32(c.r[d->rs])) * lo32(c.r[d->rt]));
    return d + 1;
}
DISCO_HANDLER(DMULT) {
    const __int128 p = static_cast<__int128>(static_cast<i64>(c.r[d->rs])) * static_cast<i64>(c.r[d->rt]);
    c.lo = static_cast<u64>(p);
    c.hi = static_cast<u64>(p >> 64);
    return d + 1;
}
DISCO_HANDLER(DMULTU) {
    const unsigned __int128 p = static_cast<unsigned __int128>(c.r[d->rs]) * c.r[d->rt];
    c.lo = static_cast<u64>(p);
    c.hi = static_cast<u64>(p >> 64);
    return d + 1;
}
// Division by zero and INT_MIN / -1 are UNPREDICTABLE (MD00087 DIV); like
// QEMU's MIPS64R2-generic we divide by 1 instead, which never traps the host.
DISCO_HANDLER(DIV) {
    const i32 a = static_cast<i32>(c.r[d->rs]);
    i32 b = static_cast<i32>(c.r[d->rt]);
    if (b == 0 || (a == INT32_MIN && b == -1)) b = 1;
    c.lo = sext32(static_cast<u32>(a / b));
    c.hi = sext32(static_cast<u32>(a % b));
    return d + 1;
}
DISCO_HANDLER(DIVU) {
    const u32 a = lo32(c.r[d->rs]);
    u32 b = lo32(c.r[d->rt]);
    if (b == 0) b = 1;
    c.lo = sext32(a / b);
    c.hi = sext32(a % b);
    return d + 1;
}
DISCO_HANDLER(DDIV) {
    const i64 a = static_cast<i64>(c.r[d->rs]);
    i64 b = static_cast<i64>(c.r[d->rt]);
    if (b == 0 || (a == INT64_MIN && b == -1)) b = 1;
    c.lo = static_cast<u64>(a / b);
    c.hi = static_cast<u64>(a % b);
    return d + 1;
}
DISCO_HANDLER(DDIVU) {
    const u64 a = c.r[d->rs];
    u64 b = c.r[d->rt];
    if (b == 0) b = 1;
    c.lo = a / b;
    c.hi = a % b;
    return d + 1;
}

// SPECIAL2.
inline u64 hilo64(const Cpu& c) { return (c.hi << 32) | lo32(c.lo); }
DISCO_HANDLER(MADD) {
    const i64 p = static_cast<i64>(static_cast<i32>(c.r[d->rs])) * static_cast<i32>(c.r[d->rt]);
    set_hilo32(c, hilo64(c) + static_cast<u64>(p));
    return d + 1;
}
DISCO_HANDLER(MADDU) {
    set_hilo32(c, hilo64(c) + static_cast<u64>(lo32(c.r[d->rs])) * lo32(c.r[d->rt]));
    return d + 1;
}
DISCO_HANDLER(MSUB) {
    const i64 p = static_cast<i64>(static_cast<i32>(c.r[d->rs])) * static_cast<i32>(c.r[d->rt]);
    set_hilo32(c, hilo64(c) - static_cast<u64>(p));
    return d + 1;
}
DISCO_HANDLER(MSUBU) {
    set_hilo32(c, hilo64(c) - static_cast<u64>(lo32(c.r[d->rs])) * lo32(c.r[d->rt]));
    return d + 1;
}
// MUL leaves HI/LO unchanged, as QEMU does (the manual says UNPREDICTABLE).
ALU_RD(MUL, sext32(static_cast<u64>(static_cast<i64>(static_cast<i32>(s)) * static_cast<i32>(t))))
ALU_RD(CLZ, static_cast<u64>(std::countl_zero(lo32(s))))
ALU_RD(CLO, static_cast<u64>(std::countl_one(lo32(s))))
ALU_RD(DCLZ, static_cast<u64>(std::countl_zero(s)))
ALU_RD(DCLO, static_cast<u64>(std::countl_one(s)))

// SPECIAL3 bit fields: the decoder stores the field mask in imm and the
// position in sa, and rejects impossible pos/size combinations.
DISCO_HANDLER(EXT) {
    c.r[d->rt] = sext32((c.r[d->rs] >> d->sa) & static_cast<u64>(d->imm));
    return d + 1;
}
DISCO_HANDLER(DEXT) {
    c.r[d->rt] = (c.r[d->rs] >> d->sa) & static_cast<u64>(d->imm);
    return d + 1;
}
DISCO_HANDLER(DEXTM) {
    c.r[d->rt] = (c.r[d->rs] >> d->sa) & static_cast<u64>(d->imm);
    return d + 1;
}
DISCO_HANDLER(DEXTU) {
    c.r[d->rt] = (c.r[d->rs] >> d->sa) & static_cast<u64>(d->imm);
    return d + 1;
}
inline u64 insert(u64 into, u64 from, unsigned pos, u64 mask) {
    return (into & ~(mask << pos)) | ((from & mask) << pos);
}
DISCO_HANDLER(INS) {
    c.r[d->rt] = sext32(insert(c.r[d->rt], c.r[d->rs], d->sa, static_cast<u64>(d->imm)));
    return d + 1;
}
DISCO_HANDLER(DINS) {
    c.r[d->rt] = insert(c.r[d->rt], c.r[d->rs], d->sa, static_cast<u64>(d->imm));
    return d + 1;
}
DISCO_HANDLER(DINSM) {
    c.r[d->rt] = insert(c.r[d->rt], c.r[d->rs], d->sa, static_cast<u64>(d->imm));
    return d + 1;
}
DISCO_HANDLER(DINSU) {
    c.r[d->rt] = insert(c.r[d->rt], c.r[d->rs], d->sa, static_cast<u64>(d->imm));
    return d + 1;
}
ALU_RD(WSBH, sext32(((lo32(t) & 0x00FF00FFu) << 8) | ((lo32(t) >> 8) & 0x00FF00FFu)))
ALU_RD(SEB, sext8(t))
ALU_RD(SEH, sext16(t))
ALU_RD(DSBH, ((t & 0x00FF00FF00FF00FFull) << 8) | ((t >> 8) & 0x00FF00FF00FF00FFull))
ALU_RD(DSHD, std::rotr(((t & 0x0000FFFF0000FFFFull) << 16) | ((t >> 16) & 0x0000FFFF0000FFFFull), 32))

#undef ALU_RD
#undef ALU_RT
}  // namespace disco::cpu::interp
