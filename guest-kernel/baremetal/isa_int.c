/* Integer arithmetic, logic, shifts, HI/LO and the Release 2 bit
 * operations, with MIPS64's rule that 32-bit operations take sign-extended
 * words and sign-extend their results (MD00087). Inputs of 32-bit
 * operations are always valid sign-extended words: anything else is
 * UNPREDICTABLE (QEMU's SRAV and Disco's differ on such input). */
#include "isa.h"

#define OP2(insn, a, b)                                                                           \
    ({                                                                                            \
        uint64_t r_;                                                                              \
        __asm__ volatile(insn " %0, %1, %2" : "=r"(r_) : "r"((uint64_t)(a)), "r"((uint64_t)(b))); \
        r_;                                                                                       \
    })
#define OPI(insn, a, imm)                                                               \
    ({                                                                                  \
        uint64_t r_;                                                                    \
        __asm__ volatile(insn " %0, %1, %2" : "=r"(r_) : "r"((uint64_t)(a)), "i"(imm)); \
        r_;                                                                             \
    })
#define OP1(insn, a)                                                      \
    ({                                                                    \
        uint64_t r_;                                                      \
        __asm__ volatile(insn " %0, %1" : "=r"(r_) : "r"((uint64_t)(a))); \
        r_;                                                               \
    })
#define SX32(v) ((uint64_t)(int64_t)(int32_t)(uint32_t)(v))

/* An instruction that overflows: Ov, and rd keeps its old value. */
#define EXPECT_OV(name, setup, insn)                               \
    do {                                                           \
        uint64_t fpc_, r8_, before_ = exc_record.count;            \
        RUN_FAULTING("li $8, 0x55\n" setup, insn, fpc_, r8_);      \
        check_exception(name, before_, fpc_, EXC_OV, VEC_GENERAL); \
        CHECK(name " leaves rd", r8_, 0x55);                       \
    } while (0)

void test_alu(void) {
    /* add/sub families: results, sign extension, overflow traps */
    CHECK("add", OP2("add", 1, 2), 3);
    CHECK("add negative", OP2("add", -5ll, 3), -2ll);
    CHECK("addi", OPI("addi", 5, -7), -2ll);
    CHECK("addu sign-extends", OP2("addu", 0x7fffffff, 1), 0xffffffff80000000ull);
    CHECK("addu wraps", OP2("addu", -1ll, 1), 0);
    CHECK("addiu", OPI("addiu", 0, -1), ~0ull);
    CHECK("addiu sign-extends", OPI("addiu", 0x7fffffff, 1), 0xffffffff80000000ull);
    CHECK("sub", OP2("sub", 3, 5), -2ll);
    CHECK("subu sign-extends", OP2("subu", 0, 1), ~0ull);
    CHECK("subu wraps to positive", OP2("subu", SX32(0x80000000), 1), 0x7fffffff);
    CHECK("dadd", OP2("dadd", 0x7fffffff, 1), 0x80000000ull);
    CHECK("daddi", OPI("daddi", 0x7fffffff, 1), 0x80000000ull);
    CHECK("daddu", OP2("daddu", 0x7fffffff, 1), 0x80000000ull);
    CHECK("daddu wraps", OP2("daddu", ~0ull, 1), 0);
    CHECK("daddiu", OPI("daddiu", 0x8000000000000000ull, -1), 0x7fffffffffffffffull);
    CHECK("dsub", OP2("dsub", 0, 1), ~0ull);
    CHECK("dsubu wraps", OP2("dsubu", 0x8000000000000000ull, 1), 0x7fffffffffffffffull);
    EXPECT_OV("add overflow", "li $9, 0x7fffffff", "add $8, $9, $9");
    EXPECT_OV("add negative overflow", "li $9, -0x80000000\n li $10, -1", "add $8, $9, $10");
    EXPECT_OV("addi overflow", "li $9, 0x7fffffff", "addi $8, $9, 1");
    EXPECT_OV("sub overflow", "li $9, -0x80000000\n li $10, 1", "sub $8, $9, $10");
    EXPECT_OV("dadd overflow", "dli $9, 0x7fffffffffffffff", "dadd $8, $9, $9");
    EXPECT_OV("daddi overflow", "dli $9, 0x7fffffffffffffff", "daddi $8, $9, 1");
    EXPECT_OV("dsub overflow", "dli $9, 0x8000000000000000\n li $10, 1", "dsub $8, $9, $10");
    CHECK("add no overflow at the limit",
          EXPECT_NO_EXC("add limit", "li $9, 0x7ffffffe\n li $10, 1", "add $8, $9, $10"), 0x7fffffff);
    /* logic */
    CHECK("and", OP2("and", 0xff00ff00ff00ff00ull, 0x0ff00ff00ff00ff0ull), 0x0f000f000f000f00ull);
    CHECK("or", OP2("or", 0xff00000000000000ull, 0x00000000000000ffull), 0xff000000000000ffull);
    CHECK("xor", OP2("xor", ~0ull, 0x5555555555555555ull), 0xaaaaaaaaaaaaaaaaull);
    CHECK("nor", OP2("nor", 0, 0), ~0ull);
    CHECK("nor mixed", OP2("nor", 0xf0, 0x0f00), ~0xff0ull);
    CHECK("andi zero-extends", OPI("andi", ~0ull, 0xffff), 0xffff);
    CHECK("ori zero-extends", OPI("ori", 0, 0x8000), 0x8000);
    CHECK("xori zero-extends", OPI("xori", ~0ull, 0xffff), 0xffffffffffff0000ull);
    uint64_t r;
    __asm__("lui %0, 0x8000" : "=r"(r));
    CHECK("lui sign-extends", r, 0xffffffff80000000ull);
    __asm__("lui %0, 0x7fff" : "=r"(r));
    CHECK("lui", r, 0x7fff0000);
    /* 32-bit shifts */
    CHECK("sll into the sign bit", OPI("sll", 1, 31), 0xffffffff80000000ull);
    CHECK("sll 0 sign-extends", OPI("sll", 0xffffffffull, 0), ~0ull);
    CHECK("sll drops upper bits", OPI("sll", 0x0000000012345678ull, 8), 0x34567800);
    CHECK("srl", OPI("srl", SX32(0x80000000), 4), 0x08000000);
    CHECK("srl 0", OPI("srl", SX32(0x80000000), 0), SX32(0x80000000));
    CHECK("sra", OPI("sra", SX32(0x80000000), 4), 0xfffffffff8000000ull);
    CHECK("sra 31", OPI("sra", SX32(0x80000000), 31), ~0ull);
    CHECK("sllv", OP2("sllv", 0x40000000, 1), 0xffffffff80000000ull);
    CHECK("sllv uses rs[4:0]", OP2("sllv", 1, 33), 2);
    CHECK("srlv", OP2("srlv", SX32(0x80000000), 36), 0x08000000);
    CHECK("srav", OP2("srav", SX32(0x80000000), 4), 0xfffffffff8000000ull);
    CHECK("srav uses rs[4:0]", OP2("srav", SX32(0x80000000), 0x24), 0xfffffffff8000000ull);
    CHECK("rotr", OPI("rotr", SX32(0x80000001), 4), 0x18000000);
    CHECK("rotr sign-extends", OPI("rotr", 1, 1), 0xffffffff80000000ull);
    CHECK("rotr 0", OPI("rotr", SX32(0x87654321), 0), SX32(0x87654321));
    CHECK("rotrv", OP2("rotrv", 0x12345678, 8), 0x78123456);
    CHECK("rotrv uses rs[4:0]", OP2("rotrv", 0x12345678, 40), 0x78123456);
    /* 64-bit shifts */
    CHECK("dsll", OPI("dsll", 1, 31), 0x80000000ull);
    CHECK("dsll 63 via dsll32", OPI("dsll32", 1, 31), 0x8000000000000000ull);
    CHECK("dsll32", OPI("dsll32", 1, 4), 1ull << 36);
    CHECK("dsrl", OPI("dsrl", ~0ull, 28), 0xfffffffffull);
    CHECK("dsrl32", OPI("dsrl32", ~0ull, 0), 0xffffffffull);
    CHECK("dsrl32 28", OPI("dsrl32", ~0ull, 28), 0xf);
    CHECK("dsra", OPI("dsra", 0x8000000000000000ull, 4), 0xf800000000000000ull);
    CHECK("dsra32", OPI("dsra32", 0x8000000000000000ull, 0), 0xffffffff80000000ull);
    CHECK("dsra32 31", OPI("dsra32", 0x4000000000000000ull, 31), 0);
    CHECK("dsllv uses rs[5:0]", OP2("dsllv", 1, 65), 2);
    CHECK("dsllv 63", OP2("dsllv", 1, 63), 0x8000000000000000ull);
    CHECK("dsrlv", OP2("dsrlv", 0x8000000000000000ull, 63), 1);
    CHECK("dsrav", OP2("dsrav", 0x8000000000000000ull, 63), ~0ull);
    CHECK("drotr", OPI("drotr", 0x0123456789abcdefull, 4), 0xf0123456789abcdeull);
    CHECK("drotr32", OPI("drotr32", 0x1122334455667788ull, 0), 0x5566778811223344ull);
    CHECK("drotr32 8", OPI("drotr32", 0x1122334455667788ull, 8), 0x4455667788112233ull);
    CHECK("drotrv", OP2("drotrv", 0x0123456789abcdefull, 4), 0xf0123456789abcdeull);
    CHECK("drotrv uses rs[5:0]", OP2("drotrv", 0x0123456789abcdefull, 68), 0xf0123456789abcdeull);
    /* set on less than */
    CHECK("slt", OP2("slt", -1ll, 0), 1);
    CHECK("slt equal", OP2("slt", 5, 5), 0);
    CHECK("sltu", OP2("sltu", -1ll, 0), 0);
    CHECK("sltu 64-bit", OP2("sltu", 0x100000000ull, 0x200000000ull), 1);
    CHECK("slti", OPI("slti", -2ll, -1), 1);
    CHECK("slti false", OPI("slti", 0, -1), 0);
    CHECK("sltiu compares with the sign-extended immediate", OPI("sltiu", 5, -1), 1);
    CHECK("sltiu", OPI("sltiu", 0xffffffffffff8000ull, -0x8000), 0);
    /* conditional moves */
    CHECK("movz moves", ({
              uint64_t d_ = 7;
              __asm__("movz %0, %1, %2" : "+r"(d_) : "r"(9ull), "r"(0ull));
              d_;
          }),
          9);
    CHECK("movz keeps", ({
              uint64_t d_ = 7;
              __asm__("movz %0, %1, %2" : "+r"(d_) : "r"(9ull), "r"(1ull << 40));
              d_;
          }),
          7);
    CHECK("movn keeps", ({
              uint64_t d_ = 7;
              __asm__("movn %0, %1, %2" : "+r"(d_) : "r"(9ull), "r"(0ull));
              d_;
          }),
          7);
    CHECK("movn moves on a 64-bit value", ({
              uint64_t d_ = 7;
              __asm__("movn %0, %1, %2" : "+r"(d_) : "r"(9ull), "r"(1ull << 40));
              d_;
          }),
          9);
    /* writes to $0 are discarded */
    __asm__ volatile(".set noat\n li $1, 5\n addu $0, $1, $1\n move %0, $0\n.set at" : "=r"(r)::"$1");
    CHECK("$0 stays zero", r, 0);
}

#define HILO(insn_seq, a, b, hi, lo)                          \
    __asm__ volatile(insn_seq "\n mfhi %0\n mflo %1"          \
                     : "=r"(hi), "=r"(lo)                     \
                     : "r"((uint64_t)(a)), "r"((uint64_t)(b)) \
                     : "hi", "lo")

void test_muldiv(void) {
    uint64_t hi, lo;
    CHECK("mul", OP2("mul", 0x10000, 0x10000), 0);
    CHECK("mul signed", OP2("mul", -3ll, 5), -15ll);
    CHECK("mul sign-extends", OP2("mul", 0x7fffffff, 2), 0xfffffffffffffffeull);
    HILO("mult %2, %3", -2ll, 3, hi, lo);
    CHECK("mult lo", lo, -6ll);
    CHECK("mult hi", hi, ~0ull);
    HILO("mult %2, %3", 0x40000000, 0x40000000, hi, lo);
    CHECK("mult hi sign-extended", hi, 0x10000000);
    CHECK("mult lo", lo, 0);
    HILO("mult %2, %3", SX32(0x80000000), SX32(0x80000000), hi, lo);
    CHECK("mult min*min hi", hi, 0x40000000);
    HILO("multu %2, %3", SX32(0xffffffff), 2, hi, lo);
    CHECK("multu lo sign-extends", lo, 0xfffffffffffffffeull);
    CHECK("multu hi", hi, 1);
    HILO("multu %2, %3", SX32(0xffffffff), SX32(0xffffffff), hi, lo);
    CHECK("multu hi sign-extends", hi, 0xfffffffffffffffeull);
    CHECK("multu lo", lo, 1);
    HILO("div $0, %2, %3", 7, -2ll, hi, lo);
    CHECK("div quotient truncates", lo, -3ll);
    CHECK("div remainder has the dividend's sign", hi, 1);
    HILO("div $0, %2, %3", -7ll, 2, hi, lo);
    CHECK("div negative quotient", lo, -3ll);
    CHECK("div negative remainder", hi, -1ll);
    HILO("divu $0, %2, %3", SX32(0xffffffff), 2, hi, lo);
    CHECK("divu", lo, 0x7fffffff);
    CHECK("divu remainder", hi, 1);
    HILO("divu $0, %2, %3", SX32(0xfffffffe), SX32(0xffffffff), hi, lo);
    CHECK("divu remainder sign-extends", hi, 0xfffffffffffffffeull);
    CHECK("divu quotient", lo, 0);
    HILO("ddiv $0, %2, %3", -100ll, 7, hi, lo);
    CHECK("ddiv", lo, -14ll);
    CHECK("ddiv remainder", hi, -2ll);
    HILO("ddivu $0, %2, %3", ~0ull, 0x10, hi, lo);
    CHECK("ddivu", lo, 0x0fffffffffffffffull);
    CHECK("ddivu remainder", hi, 15);
    EXPECT_NO_EXC("div by zero", "li $9, 5", "div $0, $9, $0");
    EXPECT_NO_EXC("ddivu by zero", "li $9, 5", "ddivu $0, $9, $0");
    HILO("dmult %2, %3", -1ll, -1ll, hi, lo);
    CHECK("dmult", lo, 1);
    CHECK("dmult hi", hi, 0);
    HILO("dmult %2, %3", 0x8000000000000000ull, 2, hi, lo);
    CHECK("dmult hi negative", hi, ~0ull);
    CHECK("dmult lo", lo, 0);
    HILO("dmultu %2, %3", ~0ull, ~0ull, hi, lo);
    CHECK("dmultu hi", hi, 0xfffffffffffffffeull);
    CHECK("dmultu lo", lo, 1);
    HILO("mthi $0\n mtlo $0\n madd %2, %3\n madd %2, %3", 0x10000, 0x8000, hi, lo);
    CHECK("madd hi", hi, 1);
    CHECK("madd lo", lo, 0);
    HILO("mthi $0\n mtlo $0\n madd %2, %3", -1ll, 1, hi, lo);
    CHECK("madd negative hi", hi, ~0ull);
    CHECK("madd negative lo", lo, ~0ull);
    HILO("li $8, -1\n mthi $0\n mtlo $8\n maddu %2, %3", 1, 1, hi, lo);
    CHECK("maddu carries into hi", hi, 1);
    CHECK("maddu lo", lo, 0);
    HILO("mthi $0\n mtlo $0\n msub %2, %3", 2, 3, hi, lo);
    CHECK("msub hi", hi, ~0ull);
    CHECK("msub lo", lo, -6ll);
    HILO("mthi $0\n mtlo $0\n msubu %2, %3", 1, 1, hi, lo);
    CHECK("msubu lo", lo, ~0ull);
    CHECK("msubu hi", hi, ~0ull);
    HILO("mthi %2\n mtlo %3", 0x123456789abcdef0ull, 0x0fedcba987654321ull, hi, lo);
    CHECK("mthi/mfhi keep 64 bits", hi, 0x123456789abcdef0ull);
    CHECK("mtlo/mflo keep 64 bits", lo, 0x0fedcba987654321ull);
}

void test_bitops(void) {
    uint64_t r;
    CHECK("clz", OP1("clz", 0x00010000), 15);
    CHECK("clz 0", OP1("clz", 0), 32);
    CHECK("clz sign bit", OP1("clz", SX32(0x80000000)), 0);
    CHECK("clo", OP1("clo", SX32(0xffff0000)), 16);
    CHECK("clo all", OP1("clo", ~0ull), 32);
    CHECK("clo 0", OP1("clo", 0), 0);
    CHECK("dclz", OP1("dclz", 1), 63);
    CHECK("dclz 0", OP1("dclz", 0), 64);
    CHECK("dclz 2^40", OP1("dclz", 1ull << 40), 23);
    CHECK("dclo", OP1("dclo", ~0ull), 64);
    CHECK("dclo partial", OP1("dclo", 0xfff0000000000000ull), 12);
    CHECK("dclo 0", OP1("dclo", 0), 0);
    __asm__("ext %0, %1, 4, 8" : "=r"(r) : "r"(0xabcd1234ull));
    CHECK("ext", r, 0x23);
    __asm__("ext %0, %1, 0, 32" : "=r"(r) : "r"(SX32(0x80000001)));
    CHECK("ext 32 bits sign-extends", r, SX32(0x80000001));
    __asm__("ext %0, %1, 31, 1" : "=r"(r) : "r"(SX32(0x80000000)));
    CHECK("ext top bit", r, 1);
    __asm__("dext %0, %1, 8, 32" : "=r"(r) : "r"(0x1122334455667788ull));
    CHECK("dext", r, 0x44556677);
    __asm__("dext %0, %1, 0, 1" : "=r"(r) : "r"(~0ull));
    CHECK("dext 1 bit", r, 1);
    __asm__("dextm %0, %1, 4, 40" : "=r"(r) : "r"(0x1122334455667788ull));
    CHECK("dextm", r, 0x3445566778ull);
    __asm__("dextm %0, %1, 0, 64" : "=r"(r) : "r"(0x8122334455667788ull));
    CHECK("dextm whole", r, 0x8122334455667788ull);
    __asm__("dextu %0, %1, 40, 16" : "=r"(r) : "r"(0x1122334455667788ull));
    CHECK("dextu", r, 0x2233);
    __asm__("dextu %0, %1, 32, 32" : "=r"(r) : "r"(0x8122334455667788ull));
    CHECK("dextu upper word", r, 0x81223344);
    r = ~0ull;
    __asm__("ins %0, %1, 8, 8" : "+r"(r) : "r"(0ull));
    CHECK("ins", r, 0xffffffffffff00ffull);
    r = 0;
    __asm__("ins %0, %1, 31, 1" : "+r"(r) : "r"(1ull));
    CHECK("ins into bit 31 sign-extends", r, 0xffffffff80000000ull);
    r = 0x7fffffff;
    __asm__("ins %0, %1, 0, 32" : "+r"(r) : "r"(0x5a5a5a5aull));
    CHECK("ins whole word", r, 0x5a5a5a5a);
    r = 0;
    __asm__("dins %0, %1, 28, 8" : "+r"(r) : "r"(0xffull));
    CHECK("dins", r, 0xff0000000ull);
    r = ~0ull;
    __asm__("dins %0, %1, 0, 4" : "+r"(r) : "r"(0ull));
    CHECK("dins keeps the rest", r, 0xfffffffffffffff0ull);
    r = 0;
    __asm__("dinsm %0, %1, 16, 40" : "+r"(r) : "r"(~0ull));
    CHECK("dinsm", r, 0x00ffffffffff0000ull);
    r = 0;
    __asm__("dinsu %0, %1, 48, 8" : "+r"(r) : "r"(0xabull));
    CHECK("dinsu", r, 0x00ab000000000000ull);
    r = 0x1111111111111111ull;
    __asm__("dinsu %0, %1, 32, 32" : "+r"(r) : "r"(0xabcdef01ull));
    CHECK("dinsu upper word", r, 0xabcdef0111111111ull);
    CHECK("seb", OP1("seb", 0x80), 0xffffffffffffff80ull);
    CHECK("seb positive", OP1("seb", 0x1234567f), 0x7f);
    CHECK("seh", OP1("seh", 0x8000), 0xffffffffffff8000ull);
    CHECK("seh positive", OP1("seh", 0x12347fff), 0x7fff);
    CHECK("wsbh", OP1("wsbh", 0x11223344), 0x22114433);
    CHECK("wsbh sign-extends", OP1("wsbh", 0x00800000), 0xffffffff80000000ull);
    CHECK("dsbh", OP1("dsbh", 0x1122334455667788ull), 0x2211443366558877ull);
    CHECK("dshd", OP1("dshd", 0x1122334455667788ull), 0x7788556633441122ull);
    CHECK("dsbh+dshd = byte swap", ({
              uint64_t t_ = OP1("dsbh", 0x0102030405060708ull);
              OP1("dshd", t_);
          }),
          0x0807060504030201ull);
}
