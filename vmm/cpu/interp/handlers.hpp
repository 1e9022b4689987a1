// The handler table of the pre-decoded interpreter, per guest byte order.
#pragma once
#include "vmm/cpu/cpu.hpp"
#include "vmm/cpu/decoder.hpp"

namespace disco::cpu::interp {
/// Index of the lazy-decode stub and of the leave-the-page sentinel in the table.
constexpr unsigned kDecodeStub = kOpCount;
constexpr unsigned kLeavePage = kOpCount + 1;
/// kOpCount handlers (one per Op) followed by the stub and the sentinel.
const Handler* handler_table(ByteOrder order);
/// Decodes one instruction word into its pre-decoded form; with ops64_enabled
/// false, a 64-bit operation decodes to its Reserved Instruction form.
Decoded make_decoded(ByteOrder order, u32 raw, bool ops64_enabled = true);
}  // namespace disco::cpu::interp
