// fpu-oracle: differential test of vmm/cpu/fpu against QEMU.
//
//   fpu_oracle QEMU ORACLE [--seed N] [--scale X] [--max-report N]
//
// Generates seeded test cases (cases.cpp), runs each through
// disco::cpu::fpu::execute()/read_control()/write_control() and, in one
// `QEMU -cpu MIPS64R2-generic ORACLE` process, through the real instruction
// (oracle.c), then compares outcome, FCSR, GPR (CFC1) and all 32 FPRs bit for
// bit. Exit 0 when all agree, 1 on a mismatch, 77 (skip) without QEMU/oracle.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/fpu-oracle/cases.hpp"
#include "vmm/cpu/fpu/fpu.hpp"

using namespace fpu_oracle;
namespace fpu = disco::cpu::fpu;

namespace {

Result run_ours(const Case& c) {
    fpu::FpuState s;
    s.fr = c.mode & 1;
    s.fcsr = static_cast<u32>(c.fcsr) & fpu::fcsr::kWritableMask;  // as the oracle's CTC1 leaves it
    for (int i = 0; i < 32; ++i) s.fpr[i] = s.fr ? c.fpr[i] : (c.fpr[i] & 0xFFFFFFFF);
    Result r;
    r.gpr = c.gpr;
    fpu::Outcome o;
    const unsigned rs = (c.insn >> 21) & 31, rd = (c.insn >> 11) & 31;
    if ((c.insn >> 26) == 0x11 && rs == 2) {  // CFC1 $3, rd
        r.gpr = static_cast<u64>(static_cast<i64>(static_cast<i32>(fpu::read_control(s, rd))));
        o = fpu::Outcome::Ok;
    } else if ((c.insn >> 26) == 0x11 && rs == 6) {  // CTC1 $3, rd
        o = fpu::write_control(s, rd, static_cast<u32>(c.gpr));
    } else {
        o = fpu::execute(s, c.insn, c.gpr);
    }
    r.outcome = o == fpu::Outcome::Ok ? 0 : o == fpu::Outcome::FloatingPointException ? 1 : 2;
    r.fcsr = s.fcsr;
    for (int i = 0; i < 32; ++i) r.fpr[i] = s.fr ? s.fpr[i] : (s.fpr[i] & 0xFFFFFFFF);
    return r;
}

bool same(const Result& a, const Result& b) {
    return a.outcome == b.outcome && a.fcsr == b.fcsr && a.gpr == b.gpr && std::memcmp(a.fpr, b.fpr, sizeof a.fpr) == 0;
}

const char* outcome_name(u32 o) {
    switch (o) {
        case 0:
            return "ok";
        case 1:
            return "FPE";
        case 2:
            return "RI";
        default:
            return "signal?";
    }
}

void report(u64 seed, size_t index, const Case& c, const Result& ours, const Result& qemu) {
    fmt::print("MISMATCH seed={:#x} case={} {}\n", seed, index, mnemonic(c.insn));
    fmt::print("  in:   FR={} fcsr={:#010x} gpr=$3={:#x}\n", c.mode & 1, c.fcsr, c.gpr);
    const unsigned fields[] = {(c.insn >> 21) & 31, (c.insn >> 16) & 31, (c.insn >> 11) & 31, (c.insn >> 6) & 31};
    for (unsigned f : fields) fmt::print("        $f{:<2}={:#018x}", f, c.fpr[f]);
    fmt::print("\n  ours: {:<4} fcsr={:#010x} gpr={:#x}\n", outcome_name(ours.outcome), ours.fcsr, ours.gpr);
    fmt::print("  qemu: {:<4} fcsr={:#010x} gpr={:#x}\n", outcome_name(qemu.outcome), qemu.fcsr, qemu.gpr);
    for (int i = 0; i < 32; ++i)
        if (ours.fpr[i] != qemu.fpr[i])
            fmt::print("  $f{:<2} ours={:#018x} qemu={:#018x} (in {:#018x})\n", i, ours.fpr[i], qemu.fpr[i], c.fpr[i]);
}

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return q + "'";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        fmt::print(stderr, "usage: {} QEMU ORACLE [--seed N] [--scale X] [--max-report N]\n", argv[0]);
        return 2;
    }
    const std::string qemu = argv[1], oracle = argv[2];
    u64 seed = 0x5EED0F9ull;
    double scale = 1.0;
    int max_report = 20;
    if (const char* e = std::getenv("FPU_ORACLE_SEED")) seed = std::strtoull(e, nullptr, 0);
    for (int i = 3; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--seed")
            seed = std::strtoull(argv[i + 1], nullptr, 0);
        else if (a == "--scale")
            scale = std::strtod(argv[i + 1], nullptr);
        else if (a == "--max-report")
            max_report = std::atoi(argv[i + 1]);
    }
    if (access(qemu.c_str(), X_OK) != 0 || access(oracle.c_str(), R_OK) != 0) {
        fmt::print("fpu-oracle: skipped ({} or {} missing)\n", qemu, oracle);
        return 77;
    }

    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<Case> cases = generate(seed, scale);
    fmt::print("fpu-oracle: seed={:#x} scale={} cases={}\n", seed, scale, cases.size());

    char in_path[] = "/tmp/fpu-oracle-in-XXXXXX";
    char out_path[] = "/tmp/fpu-oracle-out-XXXXXX";
    const int in_fd = mkstemp(in_path), out_fd = mkstemp(out_path);
    if (in_fd < 0 || out_fd < 0) return 2;
    FILE* in = fdopen(in_fd, "wb");
    std::fwrite(cases.data(), sizeof(Case), cases.size(), in);
    std::fclose(in);
    close(out_fd);
    const std::string cmd =
        quote(qemu) + " -cpu MIPS64R2-generic " + quote(oracle) + " < " + in_path + " > " + out_path;
    const int rc = std::system(cmd.c_str());
    std::vector<Result> theirs(cases.size());
    FILE* out = std::fopen(out_path, "rb");
    const size_t got = out ? std::fread(theirs.data(), sizeof(Result), theirs.size(), out) : 0;
    if (out) std::fclose(out);
    unlink(in_path);
    unlink(out_path);
    if (rc != 0 || got != cases.size()) {
        fmt::print("fpu-oracle: the oracle failed (status {}, {} of {} results)\n", rc, got, cases.size());
        return 1;
    }

    size_t bad = 0;
    size_t outcomes[4] = {}, causes[6] = {};  // coverage: how often each outcome / Cause bit was seen
    for (size_t i = 0; i < cases.size(); ++i) {
        const Result ours = run_ours(cases[i]);
        if (!same(ours, theirs[i]) && bad++ < static_cast<size_t>(max_report))
            report(seed, i, cases[i], ours, theirs[i]);
        ++outcomes[theirs[i].outcome & 3];
        for (int b = 0; b < 6; ++b) causes[b] += (theirs[i].fcsr >> (12 + b)) & 1;
    }
    fmt::print("fpu-oracle: outcomes ok={} FPE={} RI={}; Cause I={} U={} O={} Z={} V={} E={}\n", outcomes[0],
               outcomes[1], outcomes[2], causes[0], causes[1], causes[2], causes[3], causes[4], causes[5]);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("fpu-oracle: {} cases, {} mismatches, {:.1f} s\n", cases.size(), bad, secs);
    return bad ? 1 : 0;
}
