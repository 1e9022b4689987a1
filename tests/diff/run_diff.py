#!/usr/bin/env python3
"""Differential test runner: Disco's CPU against QEMU's user-mode emulator.

Two ways to run it:

  1. On prebuilt programs (what meson's `diff-*` tests do):
       run_diff.py --seed S --linux L.elf --baremetal B.elf --listing L.lst \
                   --qemu qemu-mips64el --disco build/vmm/disco

  2. On a fresh random batch (for developers), built here in a temporary folder:
       tests/diff/run_diff.py --seed $RANDOM --count 5000 [--big-endian]
     It uses build/tests/diff/gen_sequences and build/vmm/disco by default
     (--build-dir, --gen, --disco to change), and the Debian cross compilers.

  --malta runs the bare-metal variant (built with -DDIFF_MALTA) under QEMU's
  system emulator (qemu-system-mips64[el] -M malta) instead of disco: a check of
  the harness itself, and of QEMU user mode against QEMU system mode.

  --qemu-only runs only the QEMU side and checks that every sequence ran and
  printed a well-formed line (useful for checking the generator itself).

The comparison is line by line on "@D <index> v v v ..." lines (see harness.S);
on a mismatch it prints the seed, the sequence index, the sequence's code and
initial state from the generator's listing, and the fields that differ, then
exits 1.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

GPRS = [f"${r}" for r in list(range(1, 26)) + [28]]
FIELDS = (GPRS + ["ra-rel", "hi", "lo"] + [f"$f{i}" for i in range(32)] + ["fcsr"]
          + [f"buf[{8 * i}..{8 * i + 7}]" for i in range(16)])
FCSR_CAUSE_MASK = 0x3F000

CFLAGS = ["-march=mips64r2", "-mabi=64", "-mno-abicalls", "-fno-pic", "-G0", "-static",
          "-nostdlib", "-no-pie", "-Wa,--fatal-warnings", "-Wl,--build-id=none"]


def die(msg):
    print(f"run_diff: {msg}", file=sys.stderr)
    sys.exit(2)


def build_batch(args, workdir):
    """Generate, assemble and link both variants of a fresh batch."""
    gen = args.gen or os.path.join(args.build_dir, "tests", "diff", "gen_sequences")
    if not os.path.exists(gen):
        die(f"generator not found: {gen} (build it with meson, or pass --gen)")
    cc = args.cc or ("mips64-linux-gnuabi64-gcc" if args.big_endian else "mips64el-linux-gnuabi64-gcc")
    if not shutil.which(cc):
        die(f"cross compiler not found: {cc}")
    seqs = os.path.join(workdir, "seqs.S")
    lst = os.path.join(workdir, "seqs.lst")
    subprocess.run([gen, "--seed", str(args.seed), "--first", str(args.first), "--count", str(args.count),
                    "--nan-pct", str(args.nan_pct), "-o", seqs, "--listing", lst], check=True)
    harness = os.path.join(HERE, "harness.S")
    lin = os.path.join(workdir, "diff-linux.elf")
    bm = os.path.join(workdir, "diff-baremetal.elf")
    subprocess.run([cc] + CFLAGS + ["-o", lin, harness, seqs], check=True)
    if not args.qemu_only:
        subprocess.run([cc] + CFLAGS + ["-DDIFF_MALTA" if args.malta else "-DDIFF_BAREMETAL", "-T", os.path.join(HERE, "baremetal.ld"),
                                        "-o", bm, harness, seqs], check=True)
    return lin, bm, lst


def run(cmd, timeout):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode("latin-1"), f"timed out after {timeout}s"
    except OSError as e:
        return None, "", f"cannot run {cmd[0]}: {e}"
    return p.returncode, p.stdout.decode("latin-1"), p.stderr.decode("latin-1")


def parse(out):
    """-> ({index: [values]}, ordered indices, end count or None, exception line or None, bad lines)"""
    lines, order, end, exc, bad = {}, [], None, None, []
    for raw in out.splitlines():
        at = raw.find("@")  # tolerate a prefix (e.g. a log tag) before the marker
        if at < 0:
            continue
        line = raw[at:].strip()
        parts = line.split()
        try:
            if parts[0] == "@D":
                idx = int(parts[1], 16)
                vals = [int(v, 16) for v in parts[2:]]
                if len(vals) != len(FIELDS):
                    bad.append(line)
                    continue
                lines[idx] = vals
                order.append(idx)
            elif parts[0] == "@END":
                end = int(parts[1], 16)
            elif parts[0] == "@EXC":
                exc = parts[1:]
        except (ValueError, IndexError):
            bad.append(line)
    return lines, order, end, exc, bad


def listing_section(lst_path, first, idx):
    """The generator's listing for sequence number (first + idx)."""
    if not lst_path or not os.path.exists(lst_path):
        return "(no listing)"
    want = f"### seq {first + idx}"
    out, on = [], False
    with open(lst_path) as f:
        for line in f:
            if line.startswith("### seq "):
                if on:
                    break
                on = line.strip() == want
            if on:
                out.append(line.rstrip("\n"))
    return "\n".join(out) if out else f"(sequence {first + idx} not in {lst_path})"


def listing_first(lst_path):
    if lst_path and os.path.exists(lst_path):
        with open(lst_path) as f:
            m = re.search(r"--first (\d+)", f.readline())
            if m:
                return int(m.group(1))
    return 0


def report_exc(exc, first, seed, lst):
    seq = int(exc[0], 16) if exc else -1
    names = ["cause", "epc", "badvaddr", "status"]
    desc = " ".join(f"{n}={v}" for n, v in zip(names, exc[1:]))
    code = (int(exc[1], 16) >> 2) & 0x1F if len(exc) > 1 else -1
    print(f"THE BARE-METAL SIDE TOOK AN EXCEPTION in seed {seed} sequence {first + seq}: {desc} (ExcCode {code})")
    print(listing_section(lst, first, seq))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, help="fresh batch: number of sequences")
    ap.add_argument("--first", type=int, default=0, help="fresh batch: index of the first sequence")
    ap.add_argument("--big-endian", action="store_true", help="fresh batch: mips64 (big-endian)")
    ap.add_argument("--nan-pct", type=int, default=3, help="fresh batch: percent of NaN FP inputs")
    ap.add_argument("--linux", help="prebuilt Linux (qemu-user) variant")
    ap.add_argument("--baremetal", help="prebuilt bare-metal (disco) variant")
    ap.add_argument("--listing", help="prebuilt batch's listing file")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("--gen", help="gen_sequences executable")
    ap.add_argument("--cc", help="cross compiler")
    ap.add_argument("--qemu", help="qemu user emulator (default qemu-mips64el / qemu-mips64)")
    ap.add_argument("--qemu-cpu", default="MIPS64R2-generic")
    ap.add_argument("--disco", help="disco executable (default BUILD/vmm/disco)")
    ap.add_argument("--memory", default="64M")
    ap.add_argument("--malta", action="store_true", help="run the bare-metal side on qemu-system -M malta, not disco")
    ap.add_argument("--qemu-only", action="store_true", help="run only QEMU and check its output")
    ap.add_argument("--ignore-fcsr-cause", action="store_true", help="mask FCSR cause bits in the comparison")
    ap.add_argument("--max-report", type=int, default=3, help="print at most this many mismatching sequences")
    ap.add_argument("--timeout", type=int, default=500)
    ap.add_argument("--keep", help="fresh batch: build in this folder and keep it")
    args = ap.parse_args()

    tmp = None
    if args.linux:
        if not args.qemu_only and not args.baremetal:
            die("--linux needs --baremetal (or --qemu-only)")
        lin, bm, lst = args.linux, args.baremetal, args.listing
        first = listing_first(lst)
    else:
        if args.count is None:
            die("give --count for a fresh batch, or --linux/--baremetal for a prebuilt one")
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            workdir = args.keep
        else:
            tmp = tempfile.TemporaryDirectory(prefix="disco-diff-")
            workdir = tmp.name
        lin, bm, lst = build_batch(args, workdir)
        first = args.first

    qemu = args.qemu or ("qemu-mips64" if args.big_endian else "qemu-mips64el")
    rc, qout, qerr = run([qemu, "-cpu", args.qemu_cpu, lin], args.timeout)
    qlines, qorder, qend, _, qbad = parse(qout)
    if rc != 0 or qend is None or qbad:
        print(f"QEMU run failed (rc={rc}) for seed {args.seed}: {qerr.strip()}")
        if qbad:
            print(f"malformed lines: {qbad[:3]}")
        last = qorder[-1] + 1 if qorder else 0
        print(f"last complete sequence: {first + last - 1}; the next one is probably at fault:")
        print(listing_section(lst, first, last))
        return 1
    if qend != len(qlines) or qorder != list(range(len(qlines))):
        print(f"QEMU output inconsistent: @END {qend}, {len(qlines)} sequence lines")
        return 1
    expected = args.count if not args.linux else None
    if expected is None and lst and os.path.exists(lst):
        with open(lst) as f:
            expected = sum(1 for line in f if line.startswith("### seq "))
    if expected is not None and qend != expected:
        print(f"QEMU ran {qend} sequences, expected {expected}")
        return 1

    if args.qemu_only:
        print(f"seed {args.seed}: QEMU ran {qend} sequences, output well-formed")
        return 0

    if args.malta:
        other = "malta"
        cmd = ["qemu-system-mips64" if args.big_endian else "qemu-system-mips64el", "-M", "malta",
               "-cpu", args.qemu_cpu, "-m", "256M", "-nographic", "-no-reboot", "-serial", "stdio",
               "-monitor", "none", "-kernel", bm]
    else:
        other = "disco"
        cmd = [args.disco or os.path.join(args.build_dir, "vmm", "disco"), "run", "-M", "baremetal", "--kernel", bm,
               "--memory", args.memory]
    rc, dout, derr = run(cmd, args.timeout)
    dlines, dorder, dend, dexc, dbad = parse(dout)

    mismatches = []
    for idx in range(qend):
        d = dlines.get(idx)
        if d is None:
            continue
        q = qlines[idx]
        diffs = []
        for name, a, b in zip(FIELDS, q, d):
            if name == "fcsr" and args.ignore_fcsr_cause:
                a &= ~FCSR_CAUSE_MASK
                b &= ~FCSR_CAUSE_MASK
            if a != b:
                diffs.append((name, a, b))
        if diffs:
            mismatches.append((idx, diffs))

    status = 0
    for n, (idx, diffs) in enumerate(mismatches[:args.max_report]):
        print(f"=== MISMATCH seed {args.seed} sequence {first + idx} "
              f"(reproduce: tests/diff/run_diff.py --seed {args.seed} --first {first + idx} --count 1"
              f"{' --big-endian' if args.big_endian else ''}{' --nan-pct ' + str(args.nan_pct) if args.nan_pct != 3 else ''})")
        print(listing_section(lst, first, idx))
        print(f"{'field':<14} {'qemu':>18} {other:>18}")
        for name, a, b in diffs:
            print(f"{name:<14} {a:018x} {b:018x}")
    if mismatches:
        print(f"{len(mismatches)} of {qend} sequences differ (seed {args.seed})")
        status = 1
    missing = [i for i in range(qend) if i not in dlines]
    if dexc:
        report_exc(dexc, first, args.seed, lst)
        status = 1
    elif missing or dend != qend or dbad:
        print(f"{other} did not complete (rc={rc}, @END {dend}, {len(missing)} sequences missing, "
              f"{len(dbad)} malformed lines): {derr.strip()[-2000:]}")
        if missing:
            print(f"first missing sequence {first + missing[0]}:")
            print(listing_section(lst, first, missing[0]))
        status = 1
    elif rc != 0:
        print(f"{other} exited with status {rc}: {derr.strip()[-2000:]}")
        status = 1
    if status == 0:
        print(f"seed {args.seed}: {qend} sequences, {other} and QEMU agree")
    return status


if __name__ == "__main__":
    sys.exit(main())
