#!/usr/bin/env python3
"""Two Linux VMs booted in one fleet from the same read-only base disk, each with its own
copy-on-write overlay (configs/disk-overlay-format.md), and the base left alone:

  run 1 (both at once): vm-a reads the base's marker from /dev/vda, writes its own marker over it
        and syncs; vm-b, a little later, still reads the base's marker; both read the base through
        the global disk page cache: `--stats FILE` reports disk-cache hits and, at the peak, guest
        pages sharing one machine page (pages_sharing > 0), and each page-aligned read was mapped;
  run 2: vm-a, booted again on its overlay, reads back its own marker; vm-b still the base's;
  then: the base image's SHA-256 is what it was before the runs;
  run 3: the base's mtime is changed: vm-a fails to start, and the fleet says why in one line
        naming the overlay; after deleting vm-a's overlay (the documented reset), vm-a boots and
        reads the base's marker again.

The guest prints what it read upper-cased (`tr a-z A-Z`), so that the kernel command line, which
holds the command, never matches what the test looks for.

  test_overlay.py --disco PATH --images DIR [--log-dir DIR] [--timeout S]

Exit status 0 passed, 1 failed, 77 skipped (the images are not built: run tools/build-images).
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "control"))
import guest  # noqa: E402
from qmp_client import Qmp, QmpError  # noqa: E402

SKIP = 77
BASE_MARKER = b"base-marker-0001"
BASE_BYTES = 4 << 20


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_vm(folder, images, name, command):
    vm = {
        "name": f"vm-{name}",
        "kernel": os.path.join(images, guest.DISCO_KERNEL),
        "initrd": os.path.join(images, guest.INITRAMFS),
        "append": guest.DISCO_APPEND + f' disco.run="{command}; echo vm-{name}-done" disco.end=reboot',
        "memory": "128M",
        "disks": [{"path": "base.img", "overlay": f"{name}.ovl"}],
        "console": {"log": f"vm-{name}.log"},
        "reboot": "exit",
    }
    path = os.path.join(folder, f"vm-{name}.json")
    with open(path, "w") as f:
        json.dump(vm, f, indent=2)
    return path


READ = "head -c 16 /dev/vda | tr a-z A-Z; echo"
WRITE_A = "echo ovl-of-vm-a-000 > /dev/vda && sync"


def poll_sharing(sock, proc, seen):
    """Appends the monitor's pages_sharing to `seen` every 0.25 s while `proc` runs."""
    q = None
    while proc.poll() is None:
        try:
            q = q or Qmp(sock, timeout=10)
            seen.append(q.ok("__com.disco-project_memory")["pages_sharing"])
        except (OSError, QmpError):
            q = None  # not up yet, or going away
        time.sleep(0.25)


def run_fleet(args, folder, files, run, expect_status=0, extra=(), sharing_seen=None):
    sharing_seen = [] if sharing_seen is None else sharing_seen
    for f in files:  # fresh logs for this run
        log = os.path.join(folder, os.path.basename(f).replace(".json", ".log"))
        if os.path.exists(log):
            os.remove(log)
    cmd = [os.path.abspath(args.disco), "run"] + list(extra) + sum((["--vm", f] for f in files), [])
    sock = os.path.join(folder, f"ctl-{run}.sock")
    cmd += ["--control", sock]
    print(f"$ {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Asking for the memory figures while the VMs run also feeds --stats's peak (the footprint is
    # otherwise measured only when a VM ends, when its guest may have let its cached pages go).
    most_sharing = threading.Thread(target=poll_sharing, args=(sock, proc, sharing_seen), daemon=True)
    most_sharing.start()
    try:
        _, stderr = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    most_sharing.join(5)
    r = subprocess.CompletedProcess(cmd, proc.returncode, "", stderr)
    print(r.stderr, end="")
    print(f"run {run}: {time.monotonic() - start:.1f} s", flush=True)
    for f in files:
        name = os.path.basename(f).replace(".json", "")
        log = os.path.join(folder, f"{name}.log")
        if os.path.exists(log):
            shutil.copyfile(log, os.path.join(args.log_dir, f"linux-overlay-run{run}-{name}.log"))
    check(r.returncode == expect_status, f"run {run}: exit status {r.returncode}, expected {expect_status}")
    return r.stderr


def lines_of(folder, name):
    log = open(os.path.join(folder, f"vm-{name}.log"), errors="replace").read()
    for pattern in guest.FAIL_PATTERNS:
        check(not re.search(pattern, log), f"vm-{name}'s log matches {pattern!r}:\n{log[-2000:]}")
    lines = [line.strip() for line in guest.without_kernel_log(log).splitlines()]
    check(f"vm-{name}-done" in lines, f"vm-{name}'s log lacks vm-{name}-done; it ends with:\n{log[-2000:]}")
    return lines


def run(args, tmp, images):
    base = os.path.join(tmp, "base.img")
    with open(base, "wb") as f:
        f.write(BASE_MARKER + b"\n")
        f.truncate(BASE_BYTES)
    os.chmod(base, 0o444)  # nothing may write it (disco opens it read-only anyway)
    before = sha256(base)
    want_base, want_a = BASE_MARKER.decode().upper(), "OVL-OF-VM-A-000"

    # Run 1: vm-a writes, vm-b (started together, reading after a pause) does not see it.
    # vm-a lives on until after vm-b's read, so that the footprint, asked for while both run, sees
    # both VMs mapping the cached base blocks that neither wrote.
    # Each holds /dev/vda open (fd 3) while it sleeps: Linux drops a block device's page cache
    # when its last opener closes it, and the pages it frees are soon reused (written: private).
    a = write_vm(tmp, images, "a", f"exec 3</dev/vda; {READ}; {WRITE_A}; {READ}; sleep 8")
    b = write_vm(tmp, images, "b", f"exec 3</dev/vda; sleep 3; {READ}; sleep 3")
    stats_file = os.path.join(tmp, "stats-1.json")
    sharing = []
    run_fleet(args, tmp, [a, b], 1, extra=["--stats", stats_file], sharing_seen=sharing)
    print(f"run 1: pages_sharing while the VMs ran: at most {max(sharing, default=None)} in {len(sharing)} samples")
    with open(stats_file) as f:
        stats = json.load(f)
    print(f"run 1: disk_cache {stats.get('disk_cache')}, peak pages_sharing {stats['peak']['pages_sharing']}")
    cache = stats.get("disk_cache")
    check(cache is not None, "run 1: --stats has no disk_cache figures")
    check(cache["hits"] > 0 and cache["loads"] > 0, f"run 1: no disk-cache hits: {cache}")
    check(cache["pages_mapped"] > cache["loads"], f"run 1: the VMs did not both map cached blocks: {cache}")
    check(stats["peak"]["pages_sharing"] > 0, f"run 1: no guest pages shared a machine page: {stats['peak']}")
    la, lb = lines_of(tmp, "a"), lines_of(tmp, "b")
    check(want_base in la and want_a in la, f"run 1: vm-a read {la[-6:]}, expected the base's marker then its own")
    check(la.index(want_base) < la.index(want_a), "run 1: vm-a read its own marker before the base's")
    check(want_base in lb and want_a not in lb, f"run 1: vm-b read {lb[-4:]}: it must see the base only")
    check(os.path.exists(os.path.join(tmp, "a.ovl")) and os.path.exists(os.path.join(tmp, "b.ovl")),
          "the overlays were not created")

    # Run 2: each VM on its own overlay again.
    a = write_vm(tmp, images, "a", READ)
    b = write_vm(tmp, images, "b", READ)
    run_fleet(args, tmp, [a, b], 2)
    la, lb = lines_of(tmp, "a"), lines_of(tmp, "b")
    check(want_a in la and want_base not in la, f"run 2: vm-a read {la[-4:]}, expected its own marker")
    check(want_base in lb and want_a not in lb, f"run 2: vm-b read {lb[-4:]}, expected the base's marker")
    check(sha256(base) == before, "the base image changed")

    # Run 3: a changed base refuses the VM, with the reason; deleting its overlay resets it.
    os.utime(base, (time.time(), time.time() + 10))
    err = run_fleet(args, tmp, [a], 3, expect_status=2)
    reason = re.search(r"disco: vm vm-a: disk overlay \S*a\.ovl: its base \S*base\.img changed since the overlay "
                       r"was made from it: modified .*\n", err)
    check(reason, f"run 3: stderr does not say why vm-a failed:\n{err}")
    os.remove(os.path.join(tmp, "a.ovl"))
    run_fleet(args, tmp, [a], 4)
    la = lines_of(tmp, "a")
    check(want_base in la and want_a not in la, f"after the reset vm-a read {la[-4:]}, expected the base's marker")
    check(sha256(base) == before, "the base image changed")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--disco", required=True, help="the disco executable")
    p.add_argument("--images", required=True, help="the folder tools/build-images writes")
    p.add_argument("--log-dir", default=".", help="where linux-overlay-*.log go")
    p.add_argument("--timeout", type=float, default=900, help="seconds for each run")
    args = p.parse_args()
    missing = guest.missing_images(args.images, [guest.DISCO_KERNEL, guest.INITRAMFS])
    if missing:
        print(f"SKIP: {args.images} lacks {', '.join(missing)}: build the guest images with tools/build-images")
        return SKIP
    images = os.path.abspath(args.images)
    os.makedirs(args.log_dir, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="disco-overlay-") as tmp:
            run(args, tmp, images)
    except (Failure, subprocess.TimeoutExpired) as e:
        print(f"FAIL: {e}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
