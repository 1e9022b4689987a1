// Builds the handler tables from the instruction tables (a missing handler is
// a compile error) and pre-decodes instruction words: field remapping, the
// extension of immediates and bit-field validation happen once here.
#include "vmm/cpu/interp/handlers.hpp"

#include "vmm/cpu/interp/ops_alu.hpp"
#include "vmm/cpu/interp/ops_branch.hpp"
#include "vmm/cpu/interp/ops_fpu.hpp"
#include "vmm/cpu/interp/ops_mem.hpp"
#include "vmm/cpu/interp/ops_system.hpp"

namespace disco::cpu::interp {
namespace {

template <ByteOrder BO>
Decoded decode_for(u32 raw, bool ops64_enabled);

/// Decodes a slot the first time it runs, then runs it.
template <ByteOrder BO>
const Decoded* decode_slot(Cpu& c, const Decoded* d) {
    auto* slot = const_cast<Decoded*>(d);  // slots belong to the Cpu's own code pages
    const auto index = static_cast<usize>(d - c.cur_page->insns);
    *slot = decode_for<BO>(load_guest<BO, u32>(c.cur_page->host + index * 4), c.cur_page->ops64);
    return slot->fn(c, slot);
}

/// The sentinel after a page's last instruction: fall through to the next page.
template <ByteOrder BO>
const Decoded* leave_page(Cpu& c, const Decoded*) {
    c.pc = c.cur_vbase + kPageSize;
    return nullptr;
}

template <ByteOrder BO>
constexpr Handler kTable[kOpCount + 2] = {
#define INST(name, mnem, pattern, operands) &op_##name<BO>,
#define INST64 INST
#include "vmm/cpu/fpu_isa.inc"
#include "vmm/cpu/isa.inc"
#undef INST64
#undef INST
    &op_Invalid<BO>,
    &decode_slot<BO>,
    &leave_page<BO>,
};

/// What a 64-bit operation runs where they are disabled: Reserved
/// Instruction, except that the coprocessor moves check their coprocessor
/// first (Coprocessor Unusable takes priority over Reserved Instruction,
/// MD00091 §6.2.1, "Exception Priority").
template <ByteOrder BO>
Handler ops64_disabled_handler(Op op) {
    switch (op) {
        case Op::DMFC0:
        case Op::DMTC0:
            return &op_Cop0Move64Disabled<BO>;
        case Op::DMFC1:
        case Op::DMTC1:
            return &op_Cop1Move64Disabled<BO>;
        default:
            return &op_Invalid<BO>;
    }
}

constexpr u64 low_mask(unsigned size) { return size >= 64 ? ~0ull : (1ull << size) - 1; }

/// EXT/INS family: position into sa, field mask into imm; false when the
/// combination is not encodable (QEMU raises Reserved Instruction then).
bool decode_bit_field(Op op, Decoded& d) {
    const unsigned lsb = (d.raw >> 6) & 31, msb = (d.raw >> 11) & 31;
    unsigned pos = lsb, size = 0;
    switch (op) {
        case Op::EXT:
            if (lsb + msb > 31) return false;
            size = msb + 1;
            break;
        case Op::DEXT:
            size = msb + 1;
            break;
        case Op::DEXTM:
            size = msb + 33;
            if (pos + size > 64) return false;
            break;
        case Op::DEXTU:
            pos = lsb + 32;
            size = msb + 1;
            if (pos + size > 64) return false;
            break;
        case Op::INS:
        case Op::DINS:
            if (msb < lsb) return false;
            size = msb - lsb + 1;
            break;
        case Op::DINSM:
            size = msb + 32 - lsb + 1;
            break;
        case Op::DINSU:
            if (msb < lsb) return false;
            pos = lsb + 32;
            size = msb - lsb + 1;
            break;
        default:
            return true;
    }
    d.sa = static_cast<u8>(pos);
    d.imm = static_cast<i64>(low_mask(size));
    return true;
}

template <ByteOrder BO>
Decoded decode_for(u32 raw, bool ops64_enabled) {
    const Op op = decode_op(raw);
    const OpInfo& info = op_info(op);
    Decoded d{kTable<BO>[static_cast<unsigned>(op)],
              raw,
              static_cast<u8>(field_rs(raw)),
              static_cast<u8>(field_rt(raw)),
              static_cast<u8>(field_rd(raw)),
              static_cast<u8>(field_sa(raw)),
              field_simm16(raw)};
    for (char ch : info.operands) {
        switch (ch) {
            case 'D':
                if (d.rd == 0) d.rd = 32;
                break;  // writes to $zero are discarded
            case 'T':
                if (d.rt == 0) d.rt = 32;
                break;
            case 'u':
                d.imm = raw & 0xFFFF;
                break;
            case 'b':
                d.imm = field_simm16(raw) * 4;
                break;
            case 'j':
                d.imm = static_cast<i64>((raw & 0x03FFFFFFu) << 2);
                break;
            default:
                break;
        }
    }
    if (!decode_bit_field(op, d)) d.fn = &op_Invalid<BO>;
    if (info.op64 && !ops64_enabled) d.fn = ops64_disabled_handler<BO>(op);
    return d;
}
}  // namespace

const Handler* handler_table(ByteOrder order) {
    return order == ByteOrder::Little ? kTable<ByteOrder::Little> : kTable<ByteOrder::Big>;
}

Decoded make_decoded(ByteOrder order, u32 raw, bool ops64_enabled) {
    return order == ByteOrder::Little ? decode_for<ByteOrder::Little>(raw, ops64_enabled)
                                      : decode_for<ByteOrder::Big>(raw, ops64_enabled);
}
}  // namespace disco::cpu::interp
