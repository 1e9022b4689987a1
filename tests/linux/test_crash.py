#!/usr/bin/env python3
"""Crash consistency of a disk overlay under a real guest (configs/disk-overlay-format.md, "Crash
safety"): a Linux guest writes 4 KiB records to /dev/vda (a scratch base image with a per-run
overlay, `--disk base.img,overlay=vm.ovl`) in a write+sync loop, and the monitor is killed with
SIGKILL at a random moment. Then, each cycle:

  - the overlay opens (tests/disk/overlay_crash --dump reads it through OverlayDisk, read-only);
  - every block holds its latest write the guest acknowledged (or a later one the guest may have
    issued), every 512-byte sector is wholly the base's or wholly one write's, for that block;
  - the commit generation never goes back, and it advanced when an acknowledged write was the
    first to its block (so the guest's flushes reached the overlay);
  - the base image is unchanged;

and the next cycle boots the guest on the same overlay again, with higher write numbers.

The guest's loop, for seq = FIRST, FIRST + 1, ...: record seq goes to block position(seq) (odd seq:
one of HOT blocks, rewritten in place again and again; even seq: one of the other blocks, in steps
that spread each cycle's over them: mostly first writes, some rewrites), `dd ... conv=fsync` (the kernel sends a virtio-blk FLUSH once the write is
done), then `ACK <seq>` on the console. Each 64-byte line of a record names seq, block and line.
ACKs are sequential, so every seq up to the last ACK the host read was acknowledged; the guest may
be a little past it (an ACK still on its way, the next dd running). The ACK is spelled A''CK in the
shell line, so that its echo never matches.

  test_crash.py --disco PATH --checker PATH --images DIR [--cycles N] [--seed S] [--log-dir DIR]

Exit status 0 passed, 1 failed (with the seed to run it again), 77 skipped (the images are not
built: run tools/build-images). The console transcripts are kept in DIR/linux-crash-N.log.
"""
import argparse
import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from console import Console, ConsoleError, kill_consoles_on_signals  # noqa: E402
import guest  # noqa: E402

SKIP = 77
BLOCK = 4096
SECTOR = 512
LINE = 64
BLOCKS = 1024  # a 4 MiB scratch disk
HOT = 16  # blocks 0 .. HOT-1 take the odd writes
COLD_STEP = 509  # the even writes go round the other blocks in steps of this many (a prime)
SEQ_STRIDE = 1_000_000  # cycle c's writes are numbered from c * SEQ_STRIDE
# How far past the last ACK the host read the guest can have got when it was killed: the ACKs still
# on their way to the console, plus the write in flight. Generous; one ACK and one write is usual.
AHEAD = 16
MIN_ACKS = 3  # a cycle that writes is killed only after this many ACKs
ACK = re.compile(r"(?<=\n)ACK (\d{10})(?=\n)")


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


def position(seq):
    """The block record seq goes to (the guest's shell loop computes the same)."""
    if seq % 2:
        return ((seq * 2654435761) >> 7) & (HOT - 1)
    return HOT + (seq // 2 * COLD_STEP) % (BLOCKS - HOT)


def record_line(seq, block, line):
    return b"seq %010d blk %05d line %02d %29s|\n" % (seq, block, line, b"")


def base_line(block, line):
    return b"base   blk %05d line %02d %37s|\n" % (block, line, b"")


# record_line and the awk below must agree; the loop must too with position().
GUEST_LOOP = (
    "s={first}; while :; do "
    "if [ $((s%2)) = 1 ]; then p=$((((s*2654435761)>>7)&{hot_mask})); "
    "else p=$(({hot}+(s/2*{step})%{cold})); fi; "
    "awk -v s=$s -v p=$p 'BEGIN{{for(i=0;i<64;i++)printf \"seq %010d blk %05d line %02d %29s|\\n\",s,p,i,\"\"}}'"
    " >/tmp/r && dd if=/tmp/r of=/dev/vda bs=4096 seek=$p count=1 conv=fsync 2>/tmp/dd.err || break; "
    "printf 'A''CK %010d\\n' $s; s=$((s+1)); done; cat /tmp/dd.err; echo DD-F''AILED"
)


def make_base(path):
    with open(path, "wb") as f:
        for b in range(BLOCKS):
            f.write(b"".join(base_line(b, i) for i in range(BLOCK // LINE)))
    os.chmod(path, 0o444)


def sector_version(data, block, sector):
    """0 if the sector is the base's, else the seq of the write it wholly holds; None if neither."""
    lines = [data[i:i + LINE] for i in range(0, SECTOR, LINE)]
    first = sector * (SECTOR // LINE)
    if all(ln == base_line(block, first + i) for i, ln in enumerate(lines)):
        return 0
    m = re.match(rb"seq (\d{10}) ", lines[0])
    if not m:
        return None
    seq = int(m.group(1))
    if seq == 0 or any(ln != record_line(seq, block, first + i) for i, ln in enumerate(lines)):
        return None
    return seq


class Checker:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.base = os.path.join(tmp, "base.img")
        self.ovl = os.path.join(tmp, "vm.ovl")
        make_base(self.base)
        with open(self.base, "rb") as f:
            self.base_hash = hashlib.sha256(f.read()).hexdigest()
        self.floor = [0] * (BLOCKS * BLOCK // SECTOR)  # per sector: the oldest version it may hold
        self.generation = 0

    def read_overlay(self, cycle):
        out = os.path.join(self.tmp, "disk.img")
        r = subprocess.run([self.args.checker, "--dump", self.base, self.ovl, out], capture_output=True, text=True,
                           timeout=120)
        check(r.returncode == 0, f"after the kill the overlay does not open: {r.stdout}{r.stderr}".strip())
        m = re.match(r"generation (\d+) clusters (\d+) size (\d+)", r.stdout)
        check(m and int(m.group(3)) == BLOCKS * BLOCK, f"the checker printed {r.stdout!r}")
        with open(out, "rb") as f:
            data = f.read()
        os.remove(out)
        return int(m.group(1)), int(m.group(2)), data

    def verify(self, cycle, first, last_ack):
        """Checks the overlay after cycle's kill; the guest acknowledged first .. last_ack."""
        with open(self.base, "rb") as f:
            check(hashlib.sha256(f.read()).hexdigest() == self.base_hash, "the base image changed")
        # Which blocks were the base's before this cycle, for the generation check.
        spb = BLOCK // SECTOR
        fresh_before = {b for b in range(BLOCKS) if not any(self.floor[b * spb:(b + 1) * spb])}
        first_writes = set()
        for seq in range(first, last_ack + 1):
            b = position(seq)
            if b in fresh_before:
                first_writes.add(b)
            for s in range(b * spb, (b + 1) * spb):
                self.floor[s] = max(self.floor[s], seq)
        generation, clusters, data = self.read_overlay(cycle)
        issued_max = last_ack + AHEAD if last_ack >= first else first + AHEAD
        observed = []
        for s in range(len(self.floor)):
            b, within = divmod(s, spb)
            v = sector_version(data[s * SECTOR:(s + 1) * SECTOR], b, within)
            check(v is not None, f"block {b} sector {within} holds neither the base nor any one record: "
                  f"{data[s * SECTOR:s * SECTOR + LINE]!r}")
            if v < self.floor[s]:
                lost = self.floor[s]
                raise Failure(f"block {b} sector {within} lost write {lost} "
                              f"({'acknowledged in this cycle' if lost >= first else 'there when last checked'}); "
                              f"it holds {f'the older write {v}' if v else 'the base'} "
                              f"(overlay generation {generation})")
            if v > self.floor[s]:
                check(first <= v <= issued_max,
                      f"block {b} sector {within} holds write {v}, which this cycle ({first} .. ~{issued_max}) "
                      "did not issue")
                check(position(v) == b, f"block {b} sector {within} holds write {v}, which went to block "
                      f"{position(v)}")
            observed.append(v)
        check(generation >= self.generation,
              f"the overlay's commit generation went back from {self.generation} to {generation}")
        check(not first_writes or generation > self.generation,
              f"the guest acknowledged first writes to {len(first_writes)} blocks after a flush, but the commit "
              f"generation stayed at {generation}: its flushes made no commit")
        written = sum(1 for b in range(BLOCKS) if any(observed[b * spb:(b + 1) * spb]))
        check(clusters >= written, f"{written} blocks hold records but the overlay maps {clusters} clusters")
        print(f"cycle {cycle}: acknowledged {max(last_ack - first + 1, 0)} writes ({len(first_writes)} first "
              f"writes to a block); overlay generation {self.generation} -> {generation}, {clusters} clusters, "
              f"{written} blocks written: ok", flush=True)
        self.floor = observed  # what the reopened overlay holds, it holds from now on
        self.generation = generation


def run_cycle(args, checker, rng, cycle):
    first = cycle * SEQ_STRIDE
    # Most cycles are killed while writing, a random time after a few ACKs; now and then one is
    # killed while it boots (opening the overlay, reading the disk).
    during_boot = rng.random() < 0.15
    delay = rng.uniform(0, args.boot_kill_max if during_boot else args.max_delay)
    cmd = guest.disco_command(args.disco, args.images, memory="128M", disk=f"{checker.base},overlay={checker.ovl}")
    log = os.path.join(args.log_dir, f"linux-crash-{cycle}.log")
    if os.path.exists(log):
        os.remove(log)
    con = Console(cmd, log_path=log, fail_patterns=guest.FAIL_PATTERNS + (r"DD-FAILED",))
    start = time.monotonic()
    with con:
        if during_boot:
            con.read_for(delay)
            what = f"killed while booting, {delay:.1f} s after the start"
        else:
            guest.wait_for_shell(con, args.first_output_timeout, args.boot_timeout, args.cmd_timeout)
            booted = con.elapsed
            con.sendline(GUEST_LOOP.format(first=first, hot=HOT, hot_mask=HOT - 1, step=COLD_STEP, cold=BLOCKS - HOT))
            for _ in range(MIN_ACKS):
                con.expect(ACK.pattern, args.cmd_timeout)
            con.read_for(delay)
            what = f"booted in {booted:.1f} s, killed {delay:.1f} s after {MIN_ACKS} ACKs"
        os.kill(con.proc.pid, signal.SIGKILL)
        status = con.wait_exit(30)  # the rest of the output: ACKs the pty still held count
        check(status == -signal.SIGKILL, f"cycle {cycle}: disco ended with status {status} before the kill")
        acks = [int(x) for x in ACK.findall(con.text)]
    # A kernel message landing inside an ACK line hides that ACK; the later ones still count.
    check(acks == sorted(set(acks)) and all(a >= first for a in acks),
          f"cycle {cycle}: the ACKs are out of order: {acks[:20]}")
    last_ack = acks[-1] if acks else first - 1
    print(f"cycle {cycle}: {what}; {len(acks)} ACKs ({time.monotonic() - start:.1f} s)", flush=True)
    checker.verify(cycle, first, last_ack)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--disco", required=True, help="the disco executable")
    p.add_argument("--checker", required=True, help="tests/disk/overlay_crash (its --dump mode reads the overlay)")
    p.add_argument("--images", required=True, help="the folder tools/build-images writes")
    p.add_argument("--cycles", type=int, default=6, help="boots killed and checked")
    p.add_argument("--seed", type=int, default=None, help="the random kill times (default: from the clock)")
    p.add_argument("--max-delay", type=float, default=4.0, help="seconds: the most a kill waits after the ACKs")
    p.add_argument("--boot-kill-max", type=float, default=8.0, help="seconds: the latest kill of a boot-time cycle")
    p.add_argument("--log-dir", default=".", help="where linux-crash-N.log go")
    p.add_argument("--first-output-timeout", type=float, default=240)
    p.add_argument("--boot-timeout", type=float, default=480)
    p.add_argument("--cmd-timeout", type=float, default=120)
    args = p.parse_args()
    if args.cycles < 1:
        p.error("--cycles must be at least 1")
    kill_consoles_on_signals()
    missing = guest.missing_images(args.images, [guest.DISCO_KERNEL, guest.INITRAMFS])
    if missing:
        print(f"SKIP: {args.images} lacks {', '.join(missing)}: build the guest images with tools/build-images")
        return SKIP
    args.images = os.path.abspath(args.images)
    seed = args.seed if args.seed is not None else time.time_ns() % (1 << 32)
    print(f"linux crash test: {args.cycles} cycles, seed {seed}", flush=True)
    rng = random.Random(seed)
    os.makedirs(args.log_dir, exist_ok=True)
    start = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="disco-crash-") as tmp:
            checker = Checker(args, tmp)
            for cycle in range(1, args.cycles + 1):
                run_cycle(args, checker, rng, cycle)
    except (ConsoleError, Failure, subprocess.TimeoutExpired) as e:
        print(f"FAIL (seed {seed}, rerun with --seed {seed}): {e}")
        return 1
    print(f"ok: {args.cycles} kills, {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
