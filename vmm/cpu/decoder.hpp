// The declarative decoder: isa.inc and fpu_isa.inc are the one description of
// the instruction set; this turns them into an Op enum, a matcher and a
// disassembler (after dynarmic's decoder tables). Decoding happens once per
// instruction slot of a code page, so clarity wins over speed here.
#pragma once
#include <string>
#include <string_view>

#include "vmm/util/types.hpp"

namespace disco::cpu {

enum class Op : u16 {
#define INST(name, mnem, pattern, operands) name,
#define INST64 INST
#include "vmm/cpu/fpu_isa.inc"
#include "vmm/cpu/isa.inc"
#undef INST64
#undef INST
    Invalid,  // no entry matches: Reserved Instruction
};
constexpr unsigned kOpCount = static_cast<unsigned>(Op::Invalid) + 1;

struct OpInfo {
    std::string_view mnemonic;
    std::string_view pattern;
    std::string_view operands;
    u32 mask;   // bits fixed by the pattern
    u32 match;  // their values
    bool op64;  // a 64-bit operation (INST64): RI where Status.UX/SX disable them
};

/// Table entry for an op (Op::Invalid has an empty pattern).
const OpInfo& op_info(Op op);
/// The op an instruction word encodes, or Op::Invalid.
Op decode_op(u32 raw);
/// "addiu $sp, $sp, -32"-style text; pc resolves branch and jump targets.
std::string disassemble(u32 raw, u64 pc);

/// Instruction fields (MD00087 §2: R, I and J formats).
constexpr unsigned field_rs(u32 raw) { return (raw >> 21) & 31; }
constexpr unsigned field_rt(u32 raw) { return (raw >> 16) & 31; }
constexpr unsigned field_rd(u32 raw) { return (raw >> 11) & 31; }
constexpr unsigned field_sa(u32 raw) { return (raw >> 6) & 31; }
constexpr unsigned field_funct(u32 raw) { return raw & 63; }
constexpr i64 field_simm16(u32 raw) { return static_cast<i16>(raw & 0xFFFF); }
}  // namespace disco::cpu
