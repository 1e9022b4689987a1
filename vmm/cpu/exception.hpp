// Architected exception codes (MIPS64 PRA, MD00091 §9.2, Cause.ExcCode) and
// the memory access kinds that select among them.
#pragma once
#include "vmm/util/types.hpp"

namespace disco::cpu {
enum class Exc : u8 {
    Int = 0,
    Mod = 1,
    TLBL = 2,
    TLBS = 3,
    AdEL = 4,
    AdES = 5,
    IBE = 6,
    DBE = 7,
    Sys = 8,
    Bp = 9,
    RI = 10,
    CpU = 11,
    Ov = 12,
    Tr = 13,
    FPE = 15,
    TLBRI = 19,
    TLBXI = 20,
    MCheck = 24,
};

enum class Access : u8 { Load, Store, Fetch };

const char* exc_name(Exc e);
}  // namespace disco::cpu
