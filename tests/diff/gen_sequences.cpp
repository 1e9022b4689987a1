// gen_sequences: seeded generator of random MIPS64 Release 2 instruction
// sequences for the differential tests (see tests/diff/README.md).
//
//   gen_sequences --seed S --count N [--first I] [--nan-pct P] -o out.S [--listing out.lst]
//
// Writes one GNU as file with N sequences (numbered I .. I+N-1) plus the table
// of their initial states, to be linked with tests/diff/harness.S. Sequence k is
// generated from its own stream (seed, k), so `--first k --count 1` reproduces it.
//
// Every emitted instruction has an architecturally defined result for the
// operands it can see: the generator does not know register values, so it
// tracks what is *known* about each register instead (is a GPR a sign-extended
// 32-bit value? are HI/LO defined? is the upper half of an FPR defined?) and
// only picks operands for which the result is defined, or guards at run time
// (division). What is left undefined at the end (HI/LO after MUL, FPR upper
// halves after single/word writes) is overwritten with zero before the dump.

#include <fmt/core.h>
#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace {

// Keep in sync with harness.S.
constexpr int kBufSize = 128;
constexpr int kRecGprs = 26;  // $1..$25, $28

// ---------------------------------------------------------------------------
// A portable PRNG (the standard distributions are not specified bit for bit).
struct Rng {
    uint64_t s[4];
    static uint64_t splitmix(uint64_t& x) {
        uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    Rng(uint64_t seed, uint64_t stream) {
        uint64_t x = seed * 0x9E3779B97F4A7C15ull ^ (stream + 0x632BE59BD9B4E019ull);
        for (auto& v : s) v = splitmix(x);
    }
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t next() {  // xoshiro256**
        uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
        return r;
    }
    uint64_t below(uint64_t n) { return n ? next() % n : 0; }
    int range(int lo, int hi) { return lo + static_cast<int>(below(static_cast<uint64_t>(hi - lo + 1))); }
    bool chance(int pct) { return below(100) < static_cast<uint64_t>(pct); }
    template <class T> const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }
};

uint64_t sext32(uint64_t v) { return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v))); }

// ---------------------------------------------------------------------------
// What the generator knows about the machine state at a program point.
struct Known {
    std::array<bool, 32> word{};  // GPR holds a sign-extended 32-bit value
    bool hi = true, lo = true;    // HI / LO defined
    bool pend = false;            // a MULT/DIV-class result not yet read by MFHI/MFLO:
                                  // MTHI would make LO UNPREDICTABLE, MTLO HI
    std::array<bool, 32> fhi{};   // upper 32 bits of FPR defined
    void meet(const Known& o) {
        for (int i = 0; i < 32; ++i) { word[i] = word[i] && o.word[i]; fhi[i] = fhi[i] && o.fhi[i]; }
        hi = hi && o.hi; lo = lo && o.lo; pend = pend || o.pend;
    }
};

// GPRs a sequence may read and write ($0 only as a source, or as a sink).
const std::vector<int> kGprs = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 28};

std::string R(int r) { return fmt::format("${}", r); }
std::string F(int f) { return fmt::format("$f{}", f); }
std::string CC(int c) { return fmt::format("$fcc{}", c); }

class SeqGen {
public:
    SeqGen(uint64_t seed, uint64_t index, int nan_pct) : rng_(seed, index), idx_(index), nan_pct_(nan_pct) {}

    std::vector<uint64_t> record;    // initial state, harness.S record layout
    std::vector<std::string> lines;  // the sequence's code

    void generate();

private:
    Rng rng_;
    uint64_t idx_;
    int nan_pct_;
    Known k_;
    int nlabels_ = 0;
    std::map<int, std::vector<Known>> incoming_;  // item index -> states branching there
    int nitems_ = 0;

    void emit(const std::string& s) { lines.push_back("\t" + s); }
    std::string item_label(int item) { return fmt::format(".Ls{}_i{}", idx_, item); }
    std::string fresh_label() { return fmt::format(".Ls{}_t{}", idx_, nlabels_++); }

    // -- initial state -----------------------------------------------------
    uint64_t rand_gpr_value();
    uint64_t rand_double_bits();
    uint32_t rand_single_bits();
    uint64_t rand_fpr_value();
    void make_initial_state();

    // -- operand choice ----------------------------------------------------
    int src() { return rng_.chance(6) ? 0 : rng_.pick(kGprs); }
    int dst() { return rng_.chance(2) ? 0 : rng_.pick(kGprs); }
    // a source holding a sign-extended word; makes one if there is none
    int wsrc() {
        std::vector<int> c;
        for (int r : kGprs) if (k_.word[r]) c.push_back(r);
        if (!c.empty()) return rng_.chance(5) ? 0 : rng_.pick(c);
        int r = rng_.pick(kGprs);
        emit(fmt::format("sll {}, {}, 0", R(r), R(rng_.pick(kGprs))));
        k_.word[r] = true;
        return r;
    }
    void setw(int rd, bool w) { if (rd) k_.word[rd] = w; }
    void hilo_result() { k_.hi = k_.lo = true; k_.pend = true; }
    void mthilo(bool h, int r) {
        emit(fmt::format("{} {}", h ? "mthi" : "mtlo", R(r)));
        if (k_.pend) (h ? k_.lo : k_.hi) = false;
        (h ? k_.hi : k_.lo) = true;
    }
    int fpr() { return static_cast<int>(rng_.below(32)); }
    int dfpr() {  // an FPR whose 64 bits are defined; makes one if there is none
        std::vector<int> c;
        for (int f = 0; f < 32; ++f) if (k_.fhi[f]) c.push_back(f);
        if (!c.empty()) return rng_.pick(c);
        int f = fpr();
        emit(fmt::format("mthc1 {}, {}", R(src()), F(f)));
        k_.fhi[f] = true;
        return f;
    }
    int cc() { return static_cast<int>(rng_.below(8)); }
    int off_aligned(int a) { return static_cast<int>(rng_.below(kBufSize / a)) * a; }
    int off_any() { return static_cast<int>(rng_.below(kBufSize)); }

    // -- items -------------------------------------------------------------
    // Single instructions (allowed in a delay slot).
    void single();
    void alu();
    void shift();
    void bitop();
    void muldiv_single();
    void loadstore_single();
    void fpu_single();
    void misc();
    // Compound items (several instructions; never in a delay slot).
    void compound();
    void divide();
    void llsc();
    void unaligned_pair();
    void ctc1_item();
    void indexed_fp();
    void fp_nan_guarded();
    // Branches: emit the branch (and its delay slot), record the target.
    void branch(int item);
};

// ---------------------------------------------------------------------------
uint64_t SeqGen::rand_gpr_value() {
    switch (rng_.below(10)) {
    case 0: return static_cast<uint64_t>(static_cast<int64_t>(rng_.range(-16, 16)));
    case 1: case 2: case 3: return sext32(rng_.next());
    case 4: {
        static const uint64_t sp[] = {0x7fffffffull, 0xffffffff80000000ull, ~0ull, 0, 1, 0x8000000000000000ull,
                                      0x7fffffffffffffffull, 0xffffffffull, 0x80000000ull, 0x100000000ull,
                                      0xffffffff7fffffffull, 0x00000000fffffffeull};
        return sp[rng_.below(std::size(sp))];
    }
    case 5: return 1ull << rng_.below(64);
    case 6: return rng_.below(kBufSize);  // small: shift amounts, offsets
    case 7: return sext32(rng_.next() & (rng_.next() | rng_.next()));
    default: return rng_.next();
    }
}

uint64_t SeqGen::rand_double_bits() {
    uint64_t sign = rng_.below(2) << 63;
    if (rng_.chance(nan_pct_)) {  // legacy MIPS NaNs: quiet has fraction MSB clear
        uint64_t frac = rng_.chance(50) ? (0x7ffffffffffffull & (rng_.next() | 1)) : (0x8000000000000ull | (rng_.next() & 0x7ffffffffffffull));
        return sign | 0x7ff0000000000000ull | frac;
    }
    switch (rng_.below(12)) {
    case 0: return sign;                                     // zero
    case 1: return sign | 0x7ff0000000000000ull;             // infinity
    case 2: return sign | (rng_.next() & 0xfffffffffffffull); // subnormal
    case 3: {                                                // small integer
        double d = static_cast<double>(rng_.range(-100, 100));
        uint64_t b; std::memcpy(&b, &d, 8); return b;
    }
    case 4: {  // halves / exact ties for rounding
        double d = static_cast<double>(rng_.range(-40, 40)) + 0.5;
        uint64_t b; std::memcpy(&b, &d, 8); return b;
    }
    case 5: return sign | (static_cast<uint64_t>(rng_.range(1, 2046)) << 52) | (rng_.next() & 0xfffffffffffffull);
    case 6: return sign | (static_cast<uint64_t>(rng_.range(1100, 1100 + 62)) << 52) | (rng_.next() & 0xfffffffffffffull); // near int64 range
    case 7: return sign | (static_cast<uint64_t>(rng_.range(1, 40)) << 52) | (rng_.next() & 0xfffffffffffffull);          // tiny
    case 8: return sign | (static_cast<uint64_t>(rng_.range(2000, 2046)) << 52) | (rng_.next() & 0xfffffffffffffull);     // huge
    default: return sign | (static_cast<uint64_t>(rng_.range(1000, 1050)) << 52) | (rng_.next() & 0xfffffffffffffull);
    }
}

uint32_t SeqGen::rand_single_bits() {
    uint32_t sign = static_cast<uint32_t>(rng_.below(2)) << 31;
    if (rng_.chance(nan_pct_)) {
        uint32_t frac = rng_.chance(50) ? (0x3fffffu & (static_cast<uint32_t>(rng_.next()) | 1)) : (0x400000u | (static_cast<uint32_t>(rng_.next()) & 0x3fffffu));
        return sign | 0x7f800000u | frac;
    }
    uint32_t frac = static_cast<uint32_t>(rng_.next()) & 0x7fffffu;
    switch (rng_.below(10)) {
    case 0: return sign;
    case 1: return sign | 0x7f800000u;
    case 2: return sign | frac;
    case 3: {
        float f = static_cast<float>(rng_.range(-100, 100));
        uint32_t b; std::memcpy(&b, &f, 4); return b;
    }
    case 4: {
        float f = static_cast<float>(rng_.range(-40, 40)) + 0.5f;
        uint32_t b; std::memcpy(&b, &f, 4); return b;
    }
    case 5: return sign | (static_cast<uint32_t>(rng_.range(1, 254)) << 23) | frac;
    case 6: return sign | (static_cast<uint32_t>(rng_.range(150, 190)) << 23) | frac;
    case 7: return sign | (static_cast<uint32_t>(rng_.range(1, 20)) << 23) | frac;
    default: return sign | (static_cast<uint32_t>(rng_.range(110, 145)) << 23) | frac;
    }
}

uint64_t SeqGen::rand_fpr_value() {
    switch (rng_.below(4)) {
    case 0: case 1: return rand_double_bits();
    case 2: return (static_cast<uint64_t>(rand_single_bits()) << 32) | rand_single_bits();
    default: return (rng_.next() & 0xffffffff00000000ull) | rand_single_bits();
    }
}

void SeqGen::make_initial_state() {
    record.clear();
    for (int i = 0; i < kBufSize / 8; ++i) record.push_back(rng_.chance(20) ? rand_double_bits() : rand_gpr_value());
    // FCSR: rounding mode, sometimes sticky flags and condition codes; no enables/causes.
    uint64_t fcsr = rng_.below(4);
    if (rng_.chance(30)) fcsr |= (rng_.below(32) << 2);
    if (rng_.chance(50)) fcsr |= rng_.below(2) << 23 | (rng_.below(128) << 25);
    record.push_back(fcsr);
    record.push_back(rand_gpr_value());  // HI
    record.push_back(rand_gpr_value());  // LO
    for (int f = 0; f < 32; ++f) { record.push_back(rand_fpr_value()); k_.fhi[f] = true; }
    k_.word.fill(false);
    k_.word[0] = true;
    for (int r : kGprs) {
        uint64_t v = rand_gpr_value();
        record.push_back(v);
        k_.word[r] = sext32(v) == v;
    }
    k_.hi = k_.lo = true;
}

// ---------------------------------------------------------------------------
void SeqGen::alu() {
    int rd = dst();
    switch (rng_.below(24)) {
    case 0: case 1: { static const std::vector<std::string> ops = {"daddu", "dsubu"};
        emit(fmt::format("{} {}, {}, {}", rng_.pick(ops), R(rd), R(src()), R(src()))); setw(rd, false); break; }
    case 2: case 3: { static const std::vector<std::string> ops = {"and", "or", "xor", "nor"};
        int a = src(), b = src(); bool w = k_.word[a] && k_.word[b];
        emit(fmt::format("{} {}, {}, {}", rng_.pick(ops), R(rd), R(a), R(b))); setw(rd, w); break; }
    case 4: { static const std::vector<std::string> ops = {"slt", "sltu"};
        emit(fmt::format("{} {}, {}, {}", rng_.pick(ops), R(rd), R(src()), R(src()))); setw(rd, true); break; }
    case 5: case 6: { static const std::vector<std::string> ops = {"addu", "subu"};
        int a = wsrc(), b = wsrc();
        emit(fmt::format("{} {}, {}, {}", rng_.pick(ops), R(rd), R(a), R(b))); setw(rd, true); break; }
    case 7: { int a = wsrc();
        emit(fmt::format("addiu {}, {}, {}", R(rd), R(a), rng_.range(-32768, 32767))); setw(rd, true); break; }
    case 8: emit(fmt::format("daddiu {}, {}, {}", R(rd), R(src()), rng_.range(-32768, 32767))); setw(rd, false); break;
    case 9: emit(fmt::format("andi {}, {}, {}", R(rd), R(src()), rng_.below(65536))); setw(rd, true); break;
    case 10: case 11: { static const std::vector<std::string> ops = {"ori", "xori"};
        int a = src(); bool w = k_.word[a];
        emit(fmt::format("{} {}, {}, {}", rng_.pick(ops), R(rd), R(a), rng_.below(65536))); setw(rd, w); break; }
    case 12: { static const std::vector<std::string> ops = {"slti", "sltiu"};
        emit(fmt::format("{} {}, {}, {}", rng_.pick(ops), R(rd), R(src()), rng_.range(-32768, 32767))); setw(rd, true); break; }
    case 13: emit(fmt::format("lui {}, {}", R(rd), rng_.below(65536))); setw(rd, true); break;
    case 14: { static const std::vector<std::string> ops = {"movz", "movn"};
        int a = src(); bool w = k_.word[a] && k_.word[rd];
        emit(fmt::format("{} {}, {}, {}", rng_.pick(ops), R(rd), R(a), R(src()))); setw(rd, w); break; }
    case 15: {  // MOVF/MOVT on a GPR
        int a = src(); bool w = k_.word[a] && k_.word[rd];
        emit(fmt::format("{} {}, {}, {}", rng_.chance(50) ? "movf" : "movt", R(rd), R(a), CC(cc()))); setw(rd, w); break; }
    case 16: {  // non-overflowing forms of the trapping adds
        int a = wsrc();
        switch (rng_.below(4)) {
        case 0: emit(fmt::format("add {}, {}, $0", R(rd), R(a))); setw(rd, true); break;
        case 1: emit(fmt::format("addi {}, $0, {}", R(rd), rng_.range(-32768, 32767))); setw(rd, true); break;
        case 2: { int b = src(); bool w = k_.word[b]; emit(fmt::format("dadd {}, {}, $0", R(rd), R(b))); setw(rd, w); break; }
        default: emit(fmt::format("dsub {}, {}, $0", R(rd), R(a))); setw(rd, true); break;
        }
        break; }
    case 17: { static const std::vector<std::string> ops = {"clz", "clo"};
        int a = wsrc(); emit(fmt::format("{} {}, {}", rng_.pick(ops), R(rd), R(a))); setw(rd, true); break; }
    case 18: { static const std::vector<std::string> ops = {"dclz", "dclo"};
        emit(fmt::format("{} {}, {}", rng_.pick(ops), R(rd), R(src()))); setw(rd, true); break; }
    case 19: { int a = wsrc(), b = wsrc();  // MUL: HI/LO become UNPREDICTABLE
        emit(fmt::format("mul {}, {}, {}", R(rd), R(a), R(b))); setw(rd, true); k_.hi = k_.lo = false; break; }
    default: shift(); break;
    }
}

void SeqGen::shift() {
    int rd = dst();
    switch (rng_.below(8)) {
    case 0: emit(fmt::format("sll {}, {}, {}", R(rd), R(src()), rng_.below(32))); setw(rd, true); break;
    case 1: { static const std::vector<std::string> ops = {"srl", "sra", "rotr"};
        int a = wsrc(); emit(fmt::format("{} {}, {}, {}", rng_.pick(ops), R(rd), R(a), rng_.below(32))); setw(rd, true); break; }
    case 2: { static const std::vector<std::string> ops = {"sllv", "srlv", "srav", "rotrv"};
        int a = wsrc(); emit(fmt::format("{} {}, {}, {}", rng_.pick(ops), R(rd), R(a), R(src()))); setw(rd, true); break; }
    case 3: case 4: { static const std::vector<std::string> ops = {"dsll", "dsrl", "dsra", "drotr", "dsll32", "dsrl32", "dsra32", "drotr32"};
        const std::string& op = rng_.pick(ops);
        emit(fmt::format("{} {}, {}, {}", op, R(rd), R(src()), rng_.below(32))); setw(rd, op == "dsra32"); break; }
    default: { static const std::vector<std::string> ops = {"dsllv", "dsrlv", "dsrav", "drotrv"};
        emit(fmt::format("{} {}, {}, {}", rng_.pick(ops), R(rd), R(src()), R(src()))); setw(rd, false); break; }
    }
}

void SeqGen::bitop() {
    int rd = dst();
    switch (rng_.below(11)) {
    case 0: emit(fmt::format("{} {}, {}", rng_.chance(50) ? "seb" : "seh", R(rd), R(src()))); setw(rd, true); break;
    case 1: { int a = wsrc(); emit(fmt::format("wsbh {}, {}", R(rd), R(a))); setw(rd, true); break; }
    case 2: emit(fmt::format("{} {}, {}", rng_.chance(50) ? "dsbh" : "dshd", R(rd), R(src()))); setw(rd, false); break;
    case 3: { int pos = rng_.range(0, 31), size = rng_.range(1, 32 - pos);
        emit(fmt::format("ext {}, {}, {}, {}", R(rd), R(src()), pos, size)); setw(rd, true); break; }
    case 4: {  // INS reads and writes rt, which must hold a word
        int rt = wsrc(); int pos = rng_.range(0, 31), size = rng_.range(1, 32 - pos);
        emit(fmt::format("ins {}, {}, {}, {}", R(rt), R(src()), pos, size)); setw(rt, true); break; }
    case 5: { int pos = rng_.range(0, 31), size = rng_.range(1, 32);
        emit(fmt::format("dext {}, {}, {}, {}", R(rd), R(src()), pos, size)); setw(rd, size < 32); break; }
    case 6: { int pos = rng_.range(0, 31), size = rng_.range(33, 64 - pos);
        emit(fmt::format("dextm {}, {}, {}, {}", R(rd), R(src()), pos, size)); setw(rd, false); break; }
    case 7: { int pos = rng_.range(32, 63), size = rng_.range(1, 64 - pos);
        emit(fmt::format("dextu {}, {}, {}, {}", R(rd), R(src()), pos, size)); setw(rd, size < 32); break; }
    case 8: { int pos = rng_.range(0, 31), size = rng_.range(1, 32 - pos);
        emit(fmt::format("dins {}, {}, {}, {}", R(rd), R(src()), pos, size)); setw(rd, false); break; }
    case 9: { int pos = rng_.range(0, 31), size = rng_.range(33 - pos, 64 - pos);
        emit(fmt::format("dinsm {}, {}, {}, {}", R(rd), R(src()), pos, size)); setw(rd, false); break; }
    default: { int pos = rng_.range(32, 63), size = rng_.range(1, 64 - pos);
        emit(fmt::format("dinsu {}, {}, {}, {}", R(rd), R(src()), pos, size)); setw(rd, false); break; }
    }
}

void SeqGen::muldiv_single() {
    switch (rng_.below(9)) {
    case 0: case 1: { static const std::vector<std::string> ops = {"mult", "multu"};
        int a = wsrc(), b = wsrc(); emit(fmt::format("{} {}, {}", rng_.pick(ops), R(a), R(b))); hilo_result(); break; }
    case 2: case 3: { static const std::vector<std::string> ops = {"dmult", "dmultu"};
        emit(fmt::format("{} {}, {}", rng_.pick(ops), R(src()), R(src()))); hilo_result(); break; }
    case 4: case 5: {
        static const std::vector<std::string> ops = {"madd", "maddu", "msub", "msubu"};
        if (!k_.hi || !k_.lo) { int a = wsrc(), b = wsrc(); emit(fmt::format("{} {}, {}", rng_.chance(50) ? "mult" : "multu", R(a), R(b))); hilo_result(); break; }
        int a = wsrc(), b = wsrc(); emit(fmt::format("{} {}, {}", rng_.pick(ops), R(a), R(b))); hilo_result(); break; }
    case 6: {
        int rd = dst();
        bool h = rng_.chance(50);
        if (!(h ? k_.hi : k_.lo)) { mthilo(h, src()); break; }
        emit(fmt::format("{} {}", h ? "mfhi" : "mflo", R(rd))); setw(rd, false); k_.pend = false; break; }
    default: mthilo(rng_.chance(50), src()); break;
    }
}

void SeqGen::loadstore_single() {
    const std::string b = "($30)";
    switch (rng_.below(14)) {
    case 0: case 1: { int rd = dst();
        switch (rng_.below(7)) {
        case 0: emit(fmt::format("lb {}, {}{}", R(rd), off_any(), b)); setw(rd, true); break;
        case 1: emit(fmt::format("lbu {}, {}{}", R(rd), off_any(), b)); setw(rd, true); break;
        case 2: emit(fmt::format("lh {}, {}{}", R(rd), off_aligned(2), b)); setw(rd, true); break;
        case 3: emit(fmt::format("lhu {}, {}{}", R(rd), off_aligned(2), b)); setw(rd, true); break;
        case 4: emit(fmt::format("lw {}, {}{}", R(rd), off_aligned(4), b)); setw(rd, true); break;
        case 5: emit(fmt::format("lwu {}, {}{}", R(rd), off_aligned(4), b)); setw(rd, false); break;
        default: emit(fmt::format("ld {}, {}{}", R(rd), off_aligned(8), b)); setw(rd, false); break;
        }
        break; }
    case 2: case 3: {
        switch (rng_.below(4)) {
        case 0: emit(fmt::format("sb {}, {}{}", R(src()), off_any(), b)); break;
        case 1: emit(fmt::format("sh {}, {}{}", R(src()), off_aligned(2), b)); break;
        case 2: emit(fmt::format("sw {}, {}{}", R(src()), off_aligned(4), b)); break;
        default: emit(fmt::format("sd {}, {}{}", R(src()), off_aligned(8), b)); break;
        }
        break; }
    case 4: { int rd = dst();  // LWL always writes a sign-extended word
        emit(fmt::format("lwl {}, {}{}", R(rd), off_any(), b)); setw(rd, true); break; }
    case 5: { int rd = dst();
        emit(fmt::format("{} {}, {}{}", rng_.chance(50) ? "ldl" : "ldr", R(rd), off_any(), b)); setw(rd, false); break; }
    case 6: case 7: { static const std::vector<std::string> ops = {"swl", "swr", "sdl", "sdr"};
        emit(fmt::format("{} {}, {}{}", rng_.pick(ops), R(src()), off_any(), b)); break; }
    case 8: emit(fmt::format("pref {}, {}{}", rng_.chance(50) ? 0 : 1, off_any(), b)); break;
    case 9: { int f = fpr(); emit(fmt::format("lwc1 {}, {}{}", F(f), off_aligned(4), b)); k_.fhi[f] = false; break; }
    case 10: { int f = fpr(); emit(fmt::format("ldc1 {}, {}{}", F(f), off_aligned(8), b)); k_.fhi[f] = true; break; }
    case 11: emit(fmt::format("swc1 {}, {}{}", F(fpr()), off_aligned(4), b)); break;
    case 12: emit(fmt::format("sdc1 {}, {}{}", F(dfpr()), off_aligned(8), b)); break;
    default: emit(fmt::format("sd {}, {}{}", R(src()), off_aligned(8), b)); break;
    }
}

void SeqGen::fpu_single() {
    static const std::vector<std::string> conds = {"f", "un", "eq", "ueq", "olt", "ult", "ole", "ule",
                                                   "sf", "ngle", "seq", "ngl", "lt", "nge", "le", "ngt"};
    bool d = rng_.chance(55);
    const char* fm = d ? "d" : "s";
    auto srcf = [&]() { return d ? dfpr() : fpr(); };
    auto wr = [&](int f, bool full) { k_.fhi[f] = full; };
    switch (rng_.below(22)) {
    case 0: case 1: case 2: case 3: { static const std::vector<std::string> ops = {"add", "sub", "mul", "div"};
        int a = srcf(), c = srcf(), fd = fpr();
        emit(fmt::format("{}.{} {}, {}, {}", rng_.pick(ops), fm, F(fd), F(a), F(c))); wr(fd, d); break; }
    case 4: { static const std::vector<std::string> ops = {"sqrt", "mov"};  // ABS/NEG: fp_nan_guarded()
        int a = srcf(), fd = fpr();
        emit(fmt::format("{}.{} {}, {}", rng_.pick(ops), fm, F(fd), F(a))); wr(fd, d); break; }
    case 5: case 6: { static const std::vector<std::string> ops = {"madd", "msub"};  // NMADD/NMSUB: fp_nan_guarded()
        int a = srcf(), c = srcf(), e = srcf(), fd = fpr();
        emit(fmt::format("{}.{} {}, {}, {}, {}", rng_.pick(ops), fm, F(fd), F(a), F(c), F(e))); wr(fd, d); break; }
    case 7: case 8: {  // conversions
        int fd = fpr();
        switch (rng_.below(8)) {
        case 0: emit(fmt::format("cvt.s.d {}, {}", F(fd), F(dfpr()))); wr(fd, false); break;
        case 1: emit(fmt::format("cvt.d.s {}, {}", F(fd), F(fpr()))); wr(fd, true); break;
        case 2: emit(fmt::format("cvt.{}.w {}, {}", fm, F(fd), F(fpr()))); wr(fd, d); break;
        case 3: emit(fmt::format("cvt.{}.l {}, {}", fm, F(fd), F(dfpr()))); wr(fd, d); break;
        case 4: emit(fmt::format("cvt.w.{} {}, {}", fm, F(fd), F(srcf()))); wr(fd, false); break;
        default: emit(fmt::format("cvt.l.{} {}, {}", fm, F(fd), F(srcf()))); wr(fd, true); break;
        }
        break; }
    case 9: case 10: { static const std::vector<std::string> ops = {"round", "trunc", "ceil", "floor"};
        int fd = fpr(); bool l = rng_.chance(50); int a = srcf();
        emit(fmt::format("{}.{}.{} {}, {}", rng_.pick(ops), l ? "l" : "w", fm, F(fd), F(a))); wr(fd, l); break; }
    case 11: case 12: { int a = srcf(), c = srcf();
        emit(fmt::format("c.{}.{} {}, {}, {}", rng_.pick(conds), fm, CC(cc()), F(a), F(c))); break; }
    case 13: {  // conditional FP moves: the result is defined only if both were
        int a = srcf(), fd = fpr(); bool full = d && k_.fhi[fd];
        switch (rng_.below(2)) {
        case 0: emit(fmt::format("{}.{} {}, {}, {}", rng_.chance(50) ? "movf" : "movt", fm, F(fd), F(a), CC(cc()))); break;
        default: emit(fmt::format("{}.{} {}, {}, {}", rng_.chance(50) ? "movz" : "movn", fm, F(fd), F(a), R(src()))); break;
        }
        wr(fd, full); break; }
    case 14: { int rd = dst(); emit(fmt::format("mfc1 {}, {}", R(rd), F(fpr()))); setw(rd, true); break; }
    case 15: { int f = fpr(); emit(fmt::format("mtc1 {}, {}", R(src()), F(f))); wr(f, false); break; }
    case 16: { int rd = dst(); emit(fmt::format("dmfc1 {}, {}", R(rd), F(dfpr()))); setw(rd, false); break; }
    case 17: { int f = fpr(); emit(fmt::format("dmtc1 {}, {}", R(src()), F(f))); wr(f, true); break; }
    case 18: { int rd = dst(); emit(fmt::format("mfhc1 {}, {}", R(rd), F(dfpr()))); setw(rd, true); break; }
    case 19: { int f = fpr(); emit(fmt::format("mthc1 {}, {}", R(src()), F(f))); wr(f, true); break; }
    case 20: { static const int ctl[] = {25, 26, 28, 31}; int rd = dst();
        emit(fmt::format("cfc1 {}, ${}", R(rd), ctl[rng_.below(4)])); setw(rd, true); break; }
    default: { int a = srcf(), c = srcf();
        emit(fmt::format("c.{}.{} {}, {}, {}", rng_.pick(conds), fm, CC(cc()), F(a), F(c))); break; }
    }
}

void SeqGen::misc() {
    switch (rng_.below(6)) {
    case 0: emit("nop"); break;
    case 1: emit(rng_.chance(50) ? "ssnop" : "ehb"); break;
    case 2: emit("sync"); break;
    case 3: { int r = src(); static const std::vector<std::string> ops = {"tne", "tlt", "tltu"};
        emit(fmt::format("{} {}, {}", rng_.pick(ops), R(r), R(r))); break; }  // never traps
    case 4: emit(fmt::format("tlti $0, {}", rng_.range(-32768, 0))); break;  // 0 < negative: never
    default: emit(fmt::format("tgeiu $0, {}", rng_.range(1, 32767))); break; // 0 >= positive: never
    }
}

void SeqGen::single() {
    switch (rng_.below(20)) {
    case 0: case 1: case 2: case 3: case 4: case 5: alu(); break;
    case 6: case 7: bitop(); break;
    case 8: case 9: muldiv_single(); break;
    case 10: case 11: case 12: loadstore_single(); break;
    case 13: case 14: case 15: case 16: case 17: fpu_single(); break;
    case 18: shift(); break;
    default: misc(); break;
    }
}

// ---------------------------------------------------------------------------
void SeqGen::divide() {
    static const std::vector<std::string> ops = {"div", "divu", "ddiv", "ddivu"};
    const std::string& op = rng_.pick(ops);
    bool word = (op == "div" || op == "divu");
    int a = word ? wsrc() : src();
    int b = 0;
    for (int tries = 0; b == 0 && tries < 8; ++tries) b = word ? wsrc() : rng_.pick(kGprs);
    if (b == 0) return;
    // a scratch register distinct from both operands
    int t;
    do t = rng_.pick(kGprs); while (t == a || t == b);
    std::string skip = fresh_label(), go = fresh_label();
    emit(fmt::format("beq {}, $0, {}", R(b), skip));
    emit("nop");
    bool sgn = (op == "div" || op == "ddiv");
    if (sgn) {  // skip INT_MIN / -1
        emit(fmt::format("{} {}, {}, 1", word ? "addiu" : "daddiu", R(t), R(b)));
        emit(fmt::format("bne {}, $0, {}", R(t), go));
        emit(fmt::format("lui {}, 0x8000", R(t)));
        if (!word) emit(fmt::format("dsll32 {}, {}, 0", R(t), R(t)));
        emit(fmt::format("beq {}, {}, {}", R(a), R(t), skip));
        emit("nop");
        lines.push_back(go + ":");
    }
    emit(fmt::format("{} $0, {}, {}", op, R(a), R(b)));
    lines.push_back(skip + ":");
    k_.pend = true;  // if it ran
    if (sgn) setw(t, word);
    // HI/LO: defined if the division ran, unchanged if it was skipped; so they
    // are known to be defined only if they were before.
}

void SeqGen::llsc() {
    bool dw = rng_.chance(40);
    int off = off_aligned(dw ? 8 : 4);
    int rt = dst(), rs = rng_.pick(kGprs);
    emit(fmt::format("{} {}, {}($30)", dw ? "lld" : "ll", R(rt), off));
    setw(rt, !dw);
    int n = rng_.range(0, 3);
    for (int i = 0; i < n; ++i) alu();  // register-only work between LL and SC
    emit(fmt::format("{} {}, {}($30)", dw ? "scd" : "sc", R(rs), off));
    setw(rs, true);
}

void SeqGen::unaligned_pair() {
    // Right part first, then left part: the final LWL sign-extends the whole word.
    int rd = dst();
    switch (rng_.below(3)) {
    case 0: { int a = rng_.range(0, kBufSize - 4);
        emit(fmt::format("lwr {}, {}($30)", R(rd), a));
        emit(fmt::format("lwl {}, {}($30)", R(rd), a + 3)); setw(rd, true); break; }
    case 1: { int a = rng_.range(0, kBufSize - 8);
        emit(fmt::format("ldr {}, {}($30)", R(rd), a));
        emit(fmt::format("ldl {}, {}($30)", R(rd), a + 7)); setw(rd, false); break; }
    default: {  // a lone LWR leaves bits 63..32 UNPREDICTABLE unless it loaded bit 31: normalise
        emit(fmt::format("lwr {}, {}($30)", R(rd), off_any()));
        emit(fmt::format("sll {}, {}, 0", R(rd), R(rd))); setw(rd, true); break; }
    }
    if (rng_.chance(50)) {  // and an unaligned store pair
        int a = rng_.range(0, kBufSize - 8); int s = src();
        if (rng_.chance(50)) { emit(fmt::format("swr {}, {}($30)", R(s), a)); emit(fmt::format("swl {}, {}($30)", R(s), a + 3)); }
        else { emit(fmt::format("sdr {}, {}($30)", R(s), a)); emit(fmt::format("sdl {}, {}($30)", R(s), a + 7)); }
    }
}

void SeqGen::ctc1_item() {
    int t = rng_.pick(kGprs);
    switch (rng_.below(4)) {
    case 0: case 1: {  // FCSR: RM, flags, FCCs; never enables, causes or FS
        uint32_t v = static_cast<uint32_t>(rng_.below(4));
        if (rng_.chance(40)) v |= static_cast<uint32_t>(rng_.below(32)) << 2;
        if (rng_.chance(50)) v |= static_cast<uint32_t>(rng_.below(2)) << 23 | static_cast<uint32_t>(rng_.below(128)) << 25;
        emit(fmt::format("lui {}, {:#x}", R(t), v >> 16));
        emit(fmt::format("ori {}, {}, {:#x}", R(t), R(t), v & 0xffff));
        emit(fmt::format("ctc1 {}, $31", R(t)));
        break; }
    case 2:  // FCCR
        emit(fmt::format("ori {}, $0, {:#x}", R(t), rng_.below(256)));
        emit(fmt::format("ctc1 {}, $25", R(t)));
        break;
    default:  // FENR: rounding mode only / FEXR: flags only
        if (rng_.chance(50)) {
            emit(fmt::format("ori {}, $0, {}", R(t), rng_.below(4)));
            emit(fmt::format("ctc1 {}, $28", R(t)));
        } else {
            emit(fmt::format("ori {}, $0, {:#x}", R(t), rng_.below(32) << 2));
            emit(fmt::format("ctc1 {}, $26", R(t)));
        }
        break;
    }
    setw(t, true);
}

void SeqGen::indexed_fp() {
    int t = rng_.pick(kGprs);
    int op = static_cast<int>(rng_.below(4));
    bool dw = op == 1 || op == 3;
    emit(fmt::format("daddiu {}, $0, {}", R(t), off_aligned(dw ? 8 : 4)));
    setw(t, true);
    switch (op) {
    case 0: { int f = fpr(); emit(fmt::format("lwxc1 {}, {}($30)", F(f), R(t))); k_.fhi[f] = false; break; }
    case 1: { int f = fpr(); emit(fmt::format("ldxc1 {}, {}($30)", F(f), R(t))); k_.fhi[f] = true; break; }
    case 2: emit(fmt::format("swxc1 {}, {}($30)", F(fpr()), R(t))); break;
    default: emit(fmt::format("sdxc1 {}, {}($30)", F(dfpr()), R(t))); break;
    }
}

// Legacy-NaN corners where QEMU and the architecture part ways: ABS/NEG are
// arithmetic when ABS2008=0 (a NaN operand signals Invalid; QEMU just flips the
// sign bit), and the sign of a NaN coming out of NMADD/NMSUB. Guard at run time
// with C.UN: ABS/NEG run only on a non-NaN operand, a NaN NMADD/NMSUB result is
// replaced with zero.
void SeqGen::fp_nan_guarded() {
    bool d = rng_.chance(55);
    const char* fm = d ? "d" : "s";
    auto srcf = [&]() { return d ? dfpr() : fpr(); };
    int c = cc();
    std::string skip = fresh_label();
    if (rng_.chance(50)) {
        int a = srcf(), fd = fpr();
        emit(fmt::format("c.un.{} {}, {}, {}", fm, CC(c), F(a), F(a)));
        emit(fmt::format("bc1t {}, {}", CC(c), skip));
        emit("nop");
        emit(fmt::format("{}.{} {}, {}", rng_.chance(50) ? "abs" : "neg", fm, F(fd), F(a)));
        lines.push_back(skip + ":");
        if (!(d && k_.fhi[fd])) k_.fhi[fd] = false;  // written or not: defined only if both were
    } else {
        int a = srcf(), b = srcf(), e = srcf(), fd = fpr();
        emit(fmt::format("{}.{} {}, {}, {}, {}", rng_.chance(50) ? "nmadd" : "nmsub", fm, F(fd), F(a), F(b), F(e)));
        emit(fmt::format("c.un.{} {}, {}, {}", fm, CC(c), F(fd), F(fd)));
        emit(fmt::format("bc1f {}, {}", CC(c), skip));
        emit("nop");
        emit(fmt::format("{} $0, {}", d ? "dmtc1" : "mtc1", F(fd)));
        lines.push_back(skip + ":");
        k_.fhi[fd] = d;
    }
}

void SeqGen::compound() {
    switch (rng_.below(7)) {
    case 6: fp_nan_guarded(); break;
    case 0: case 1: divide(); break;
    case 2: llsc(); break;
    case 3: unaligned_pair(); break;
    case 4: ctc1_item(); break;
    default: indexed_fp(); break;
    }
}

// ---------------------------------------------------------------------------
void SeqGen::branch(int item) {
    // target: a later item boundary (after the delay slot), or the end
    int lo = item + 2, hi = std::min(nitems_, item + 8);
    int target = lo > hi ? nitems_ : rng_.range(lo, hi);
    std::string L = item_label(target);
    bool likely = false;
    bool link = false;
    std::string br;
    switch (rng_.below(16)) {
    case 0: case 1: br = fmt::format("{} {}, {}, ", rng_.chance(50) ? "beq" : "bne", R(src()), R(src())); break;
    case 2: case 3: { static const std::vector<std::string> ops = {"blez", "bgtz", "bltz", "bgez"};
        br = fmt::format("{} {}, ", rng_.pick(ops), R(src())); break; }
    case 4: br = fmt::format("{} {}, {}, ", rng_.chance(50) ? "beql" : "bnel", R(src()), R(src())); likely = true; break;
    case 5: { static const std::vector<std::string> ops = {"blezl", "bgtzl", "bltzl", "bgezl"};
        br = fmt::format("{} {}, ", rng_.pick(ops), R(src())); likely = true; break; }
    case 6: br = fmt::format("{} {}, ", rng_.chance(50) ? "bltzal" : "bgezal", R(src())); link = true; break;
    case 7: br = fmt::format("{} {}, ", rng_.chance(50) ? "bltzall" : "bgezall", R(src())); link = true; likely = true; break;
    case 8: br = "bal "; link = true; break;
    case 9: br = "b "; break;
    case 10: case 11: br = fmt::format("{} {}, ", rng_.chance(50) ? "bc1t" : "bc1f", CC(cc())); break;
    case 12: br = fmt::format("{} {}, ", rng_.chance(50) ? "bc1tl" : "bc1fl", CC(cc())); likely = true; break;
    case 13: br = rng_.chance(50) ? "j " : "jal "; break;
    default: {  // JR / JALR through k0, target computed PC-relatively
        std::string here = fresh_label();
        emit(fmt::format("bal {}", here));
        emit("nop");
        lines.push_back(here + ":");
        emit(fmt::format("daddiu $26, $31, {} - {}", L, here));
        br = rng_.chance(50) ? "jr $26" : "jalr $31, $26";
        L.clear();
        break; }
    }
    size_t at = lines.size();
    emit(br + L);
    Known before = k_;
    single();  // delay slot
    // Operand fix-ups (sll/mthc1) that single() put before its instruction go
    // before the branch, so that exactly one instruction is in the delay slot.
    if (lines.size() > at + 2) {
        std::vector<std::string> fix(lines.begin() + static_cast<long>(at) + 1, lines.end() - 1);
        std::string ds = lines.back();
        lines.resize(at + 1);
        lines.insert(lines.begin() + static_cast<long>(at), fix.begin(), fix.end());
        lines.push_back(ds);
    }
    incoming_[target].push_back(k_);
    if (likely) k_ = before;  // not taken: the delay slot was nullified
    (void)link;
}

void SeqGen::generate() {
    make_initial_state();
    nitems_ = rng_.range(10, 30);
    lines.push_back(fmt::format("diff_seq_{}:", idx_));
    emit("jal diff_load_state");
    emit("nop");
    for (int item = 0; item <= nitems_; ++item) {
        auto it = incoming_.find(item);
        if (it != incoming_.end()) {
            lines.push_back(item_label(item) + ":");
            for (const Known& s : it->second) k_.meet(s);
            incoming_.erase(it);
        }
        if (item == nitems_) break;
        uint64_t kind = rng_.below(100);
        if (kind < 14 && item + 1 < nitems_ && !incoming_.count(item + 1)) { branch(item); ++item; }  // the delay slot is item+1
        else if (kind < 30) compound();
        else single();
    }
    // Normalise: ra relative to a label of this sequence (k1), undefined HI/LO and FPR upper halves.
    std::string here = fresh_label();
    emit("move $27, $31");
    emit(fmt::format("bal {}", here));
    emit("nop");
    lines.push_back(here + ":");
    emit("dsubu $27, $27, $31");
    if (!k_.hi || !k_.lo) {
        if (k_.pend) emit("mfhi $0");  // read the pending result first (see Known::pend)
        if (!k_.hi) emit("mthi $0");
        if (!k_.lo) emit("mtlo $0");
    }
    for (int f = 0; f < 32; ++f) if (!k_.fhi[f]) emit(fmt::format("mthc1 $0, {}", F(f)));
    emit("jal diff_dump_state");
    emit("nop");
}

[[noreturn]] void usage() {
    std::fprintf(stderr, "usage: gen_sequences --seed S --count N [--first I] [--nan-pct P] -o OUT.S [--listing OUT.lst]\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    uint64_t seed = 0, first = 0, count = 0;
    int nan_pct = 3;
    bool have_seed = false, have_count = false;
    std::string out, listing;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string { if (i + 1 >= argc) usage(); return argv[++i]; };
        if (a == "--seed") { seed = std::strtoull(val().c_str(), nullptr, 0); have_seed = true; }
        else if (a == "--count") { count = std::strtoull(val().c_str(), nullptr, 0); have_count = true; }
        else if (a == "--first") first = std::strtoull(val().c_str(), nullptr, 0);
        else if (a == "--nan-pct") nan_pct = std::atoi(val().c_str());
        else if (a == "-o") out = val();
        else if (a == "--listing") listing = val();
        else usage();
    }
    if (!have_seed || !have_count || out.empty()) usage();

    std::string text, data, lst;
    text += fmt::format("# Generated by gen_sequences --seed {} --first {} --count {}. Do not edit.\n", seed, first, count);
    text += "\t.set noreorder\n\t.set noat\n\t.set nomacro\n\t.text\n\t.globl diff_run_all\ndiff_run_all:\n";
    data += "\t.data\n\t.balign 8\n\t.globl diff_states\ndiff_states:\n";
    lst += fmt::format("# gen_sequences --seed {} --first {} --count {}\n", seed, first, count);
    for (uint64_t k = first; k < first + count; ++k) {
        SeqGen g(seed, k, nan_pct);
        g.generate();
        lst += fmt::format("### seq {}\n", k);
        static const char* names[] = {"fcsr", "hi", "lo"};
        lst += "# initial:";
        for (int i = 0; i < 3; ++i) lst += fmt::format(" {}={:016x}", names[i], g.record[16 + i]);
        lst += "\n# initial gpr:";
        for (int i = 0; i < kRecGprs; ++i) lst += fmt::format(" ${}={:016x}", kGprs[i], g.record[51 + i]);
        lst += "\n# initial fpr:";
        for (int i = 0; i < 32; ++i) lst += fmt::format(" $f{}={:016x}", i, g.record[19 + i]);
        lst += "\n# initial buf:";
        for (int i = 0; i < 16; ++i) lst += fmt::format(" {:016x}", g.record[i]);
        lst += "\n";
        for (const auto& l : g.lines) { text += l; text += '\n'; lst += l; lst += '\n'; }
        data += fmt::format("# seq {}\n", k);
        for (size_t i = 0; i < g.record.size(); i += 4) {
            data += "\t.dword ";
            for (size_t j = i; j < std::min(i + 4, g.record.size()); ++j) data += fmt::format("{}{:#018x}", j > i ? ", " : "", g.record[j]);
            data += '\n';
        }
    }
    text += "\tj diff_done\n\tnop\n\n";
    auto write = [](const std::string& path, const std::string& s) {
        FILE* f = std::fopen(path.c_str(), "wb");
        if (!f || std::fwrite(s.data(), 1, s.size(), f) != s.size() || std::fclose(f) != 0) {
            std::fprintf(stderr, "gen_sequences: cannot write %s\n", path.c_str());
            std::exit(1);
        }
    };
    write(out, text + data);
    if (!listing.empty()) write(listing, lst);
    return 0;
}
