// Test-case generation for the FPU oracle comparison: which instructions,
// with which register files, FCSRs and operand values.
#pragma once
#include <random>
#include <string>
#include <vector>

#include "vmm/util/types.hpp"

namespace fpu_oracle {
using namespace disco;

/// One test case; the layout matches oracle.c's input record.
struct Case {
    u32 insn = 0;
    u32 mode = 1;  // bit 0: Status.FR
    u64 fcsr = 0;
    u64 gpr = 0;  // GPR $3 (rt of MOVZ/MOVN/CTC1/CFC1)
    u64 fpr[32] = {};
};
static_assert(sizeof(Case) == 280);

/// One result; the layout matches oracle.c's output record.
struct Result {
    u32 outcome = 0;  // 0 ok, 1 FPE, 2 RI, 3 other
    u32 pad = 0;
    u64 fcsr = 0;
    u64 gpr = 0;
    u64 fpr[32] = {};
};
static_assert(sizeof(Result) == 280);

/// The instruction word's kind of the register operands, to place values.
enum class Kind : u8 { S, D, W, L, PS };

/// What an opcode under test reads, so its operands can be chosen well.
struct OpSpec {
    u32 base;      // the instruction word with zero register fields
    Kind src;      // format of fs/ft/fr
    bool cop1x;    // fd, fr, fs, ft
    bool control;  // CTC1 / CFC1
    int weight;    // cases per (FR, RM, FS) combination
};

std::vector<OpSpec> op_specs();
/// Generates cases for every op spec x FR x RM x FS; `scale` multiplies weights.
std::vector<Case> generate(u64 seed, double scale);
/// A readable form of the instruction word.
std::string mnemonic(u32 insn);

}  // namespace fpu_oracle
