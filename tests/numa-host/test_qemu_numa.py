#!/usr/bin/env python3
"""Disco on real NUMA nodes: a QEMU x86_64 guest with two nodes runs this host's disco binary.

  test_qemu_numa.py --images DIR [--disco PATH] [--pages N] [--qemu PROGRAM] [--log-dir DIR]

The guest is Debian's amd64 kernel with the initramfs of guest-kernel/x86-numa/ (built by
tools/build-images --x86-numa into DIR; $DISCO_IMAGES, when set, is the folder instead, as for
tools/build-images). Its /init starts `disco run --vm t.json --control SOCK` without --numa-sim, so
that machine memory is split over the guest kernel's two real nodes (each node's slice mbind()-bound
to it), moves N guest pages of the MIPS toucher guest from node 0 to node 1 with
`disco numa migrate`, and prints the kernel's /proc/PID/numa_maps lines of the machine-memory memfd
and disco's own frames per node before and after. Checked here:

  - the guest kernel saw 2 nodes, and every page of each slice is on that slice's node;
  - all N migrations succeeded; node 1 holds exactly N more pages of the mapping (the copies), node
    0 at least as many as before and at most N more (a copy reads its source frame, which tmpfs
    backs then if the guest never wrote it; freed frames stay backed in disco's pools, so node 0
    never shrinks: vmm/mem/machine_memory.hpp, "Zeroing");
  - disco's `numa` frames per node moved by N from node 0 to node 1;
  - disco ended with status 0 on SIGTERM.

Exit status 0 passed, 1 failed, 77 skipped (no qemu-system-x86_64, no images, or images holding
another disco binary than --disco: each says so on a "SKIP: " line).
"""
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time

KERNEL = "vmlinuz-amd64"
INITRD = "x86-numa-initramfs.cpio.gz"
KEY = "x86-numa-build-key"
# QEMU's q35 with 1 GiB in two 512 MiB nodes, one CPU each (SRAT from QEMU's ACPI tables). TCG, so
# that the test runs where KVM does not; -nic none: no option ROM to find.
QEMU_ARGS = ["-M", "q35", "-m", "1G", "-smp", "2", "-accel", "tcg", "-nographic", "-no-reboot", "-nic", "none",
             "-object", "memory-backend-ram,id=m0,size=512M", "-object", "memory-backend-ram,id=m1,size=512M",
             "-numa", "node,nodeid=0,cpus=0,memdev=m0", "-numa", "node,nodeid=1,cpus=1,memdev=m1"]


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def skip(why):
    print(f"SKIP: {why}")
    return 77


def node_counts(text, where):
    """'N0=12 N1=3' -> {0: 12, 1: 3}."""
    counts = {int(n): int(v) for n, v in re.findall(r"\bN(\d+)=(\d+)", text)}
    check(set(counts) == {0, 1}, f"{where}: '{text}' does not give N0 and N1")
    return counts


def parse(console):
    """The guest's NUMA-* lines: {key: [value, ...]} in order."""
    lines = {}
    for line in console.splitlines():
        # SeaBIOS's output and terminal resets (ESC c, ESC [ ...) may share the first line
        # ("Booting from ROM...NUMA-NODES 2"): a key counts where it starts a word.
        m = re.search(r"(?:^|(?<=[\s.]))(NUMA-[A-Z-]+)(?: (.*))?$",
                      re.sub(r"\x1b(\[[0-9;?]*[A-Za-z]|c)", "", line).strip())
        if m:
            lines.setdefault(m.group(1), []).append((m.group(2) or "").strip())
    return lines


def one(lines, key):
    check(len(lines.get(key, [])) == 1, f"the guest printed {len(lines.get(key, []))} {key} lines, not 1")
    return lines[key][0]


def check_slices(maps, when):
    """Each numa_maps line is one node's slice, bound to it (bind:N): all its pages on node N."""
    check(len(maps) == 2, f"{when}: {len(maps)} numa_maps lines for the machine memory, not 2 (one per node)")
    bound = []
    for line in maps:
        m = re.search(r"\bbind:(\d+)\b", line)
        check(m is not None, f"{when}: a machine-memory slice is not bound to a node: {line}")
        bound.append(int(m.group(1)))
        on = {int(n) for n, v in re.findall(r"\bN(\d+)=(\d+)", line) if int(v)}
        check(on <= {bound[-1]}, f"{when}: pages of node {bound[-1]}'s slice lie on nodes {sorted(on)}: {line}")
    check(sorted(bound) == [0, 1], f"{when}: the slices are bound to nodes {bound}, not 0 and 1")


def frames(text, where):
    parts = text.split(",")
    check(len(parts) == 2 and all(p.isdigit() for p in parts), f"{where}: '{text}' is not two frame counts")
    return [int(p) for p in parts]


def verify(console, pages):
    lines = parse(console)
    if "NUMA-TEST-FAIL" in lines:
        raise Failure(f"the guest says: {lines['NUMA-TEST-FAIL'][0]}")
    check(one(lines, "NUMA-NODES") == "2", f"the guest kernel sees {one(lines, 'NUMA-NODES')} nodes, not 2")
    check(one(lines, "NUMA-REQUESTED") == str(pages), f"the guest asked for {one(lines, 'NUMA-REQUESTED')} moves")
    migrated = one(lines, "NUMA-MIGRATED")
    check(migrated == str(pages), f"{migrated} of {pages} migrations succeeded")

    check_slices(lines.get("NUMA-MAPS-BEFORE", []), "before")
    check_slices(lines.get("NUMA-MAPS-AFTER", []), "after")
    before = node_counts(one(lines, "NUMA-BEFORE"), "NUMA-BEFORE")
    after = node_counts(one(lines, "NUMA-AFTER"), "NUMA-AFTER")
    check(after[1] - before[1] == pages,
          f"numa_maps: node 1 went from {before[1]} to {after[1]} pages, not {pages} more")
    check(0 <= after[0] - before[0] <= pages,
          f"numa_maps: node 0 went from {before[0]} to {after[0]} pages (expected 0 to {pages} more)")

    f_before = frames(one(lines, "NUMA-FRAMES-BEFORE"), "NUMA-FRAMES-BEFORE")
    f_after = frames(one(lines, "NUMA-FRAMES-AFTER"), "NUMA-FRAMES-AFTER")
    check(f_after == [f_before[0] - pages, f_before[1] + pages],
          f"disco numa: frames per node {f_before} -> {f_after}, not {pages} moved from node 0 to node 1")
    check(one(lines, "NUMA-DISCO-EXIT") == "0", f"disco run ended with status {one(lines, 'NUMA-DISCO-EXIT')}")
    check("NUMA-TEST-DONE" in lines, "no NUMA-TEST-DONE")
    return before, after, f_before, f_after


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="where tools/build-images --x86-numa put the images")
    p.add_argument("--disco", help="the disco binary under test: the images must hold this one")
    p.add_argument("--pages", type=int, default=64, help="guest pages to move (default 64)")
    p.add_argument("--qemu", default="qemu-system-x86_64")
    p.add_argument("--timeout", type=int, default=480, help="seconds for the whole guest run (default 480)")
    p.add_argument("--log-dir", help="write the guest's console there (numa-host-qemu.log)")
    a = p.parse_args()
    images = os.environ.get("DISCO_IMAGES") or a.images
    if a.pages < 1:
        print("test_qemu_numa: --pages must be at least 1")
        return 2
    qemu = shutil.which(a.qemu)
    if not qemu:
        return skip(f"{a.qemu} is not installed (tools/setup installs qemu-system-x86)")
    missing = [n for n in (KERNEL, INITRD, KEY) if not os.access(os.path.join(images, n), os.R_OK)]
    if missing:
        return skip(f"no {', '.join(missing)} in {images} (build them: tools/build-images --x86-numa)")
    if a.disco:
        with open(a.disco, "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        with open(os.path.join(images, KEY)) as f:
            held = [line.split()[1] for line in f if line.startswith("disco ")]
        if held != [want]:
            return skip(f"{os.path.join(images, INITRD)} holds another disco binary than {a.disco} "
                        f"(rebuild it: tools/build-images --x86-numa --disco {a.disco})")

    cmd = [qemu, *QEMU_ARGS, "-kernel", os.path.join(images, KERNEL), "-initrd", os.path.join(images, INITRD),
           "-append", f"console=ttyS0 panic=-1 quiet disco.pages={a.pages}"]
    print("test_qemu_numa: " + " ".join(cmd), flush=True)
    start = time.monotonic()
    timed_out = False
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=a.timeout)
        console = proc.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        console, timed_out = (e.stdout or b"").decode(errors="replace"), True
    elapsed = time.monotonic() - start
    if a.log_dir:
        with open(os.path.join(a.log_dir, "numa-host-qemu.log"), "w") as f:
            f.write(console)
    try:
        check(not timed_out or "NUMA-TEST-DONE" in console, f"the guest did not finish within {a.timeout} s")
        before, after, f_before, f_after = verify(console, a.pages)
    except Failure as e:
        print(f"test_qemu_numa: FAILED: {e}\n--- guest console (end)\n{console[-4000:]}")
        return 1
    print(f"test_qemu_numa: {a.pages} pages moved from node 0 to node 1 in {elapsed:.0f} s: numa_maps "
          f"N0={before[0]} N1={before[1]} -> N0={after[0]} N1={after[1]}; disco's frames {f_before} -> {f_after}")
    print("test_qemu_numa: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
