#!/usr/bin/env python3
"""Boots two Linux VMs from one `disco run --vm a.json --vm b.json` (Debian's stock kernel and the
initramfs from tools/build-images) and checks that they are two separate machines running at the
same time:

  - each runs `disco.run="nproc; ...; echo vm-NAME-done"` and ends: vm-a powers off, vm-b reboots,
    which its "reboot": "exit" makes the end of that VM; the process exits 0;
  - each console went to its own log: NAME's log holds vm-NAME-done and its own vCPU count
    (vm-a has 1 vCPU, vm-b 2), and nothing of the other VM;
  - each wrote a marker to its own virtio disk (/dev/vda), and the host finds each marker on that
    VM's disk image only;
  - they overlapped: the whole run took clearly less than the two VMs' run times added up
    (`--stats` prints each VM's).

With --case churn: the logs case with --numa-sim 2 --page-churn 300 (both VMs in one machine memory
while their pages move).

With --case pty: one VM's console is a pty and the other's a log. The log VM runs its command and
powers off while the pty VM stays up; the test then types a shell command on the pty VM's
/dev/pts/N, reads the answer, and powers it off from its shell: the process exits 0.

  test_fleet.py --disco PATH --images DIR [--case logs|pty|churn] [--log-dir DIR] [--timeout S]

Exit status 0 passed, 1 failed, 77 skipped (the images are not built: run tools/build-images).
The consoles are kept in DIR/linux-fleet-vm-NAME.log.
"""
import argparse
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest  # noqa: E402

SKIP = 77
DISK_BYTES = 1 << 20
VCPUS = {"a": 1, "b": 2}


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


def write_vm(folder, images, name, vcpus, pty=False, end="poweroff"):
    """vm-NAME.json; its disk and log are named relative to the file's folder. A pty VM runs the
    console shell instead of a command; the others end with `end` (poweroff or reboot)."""
    command = f"nproc; echo disk-of-vm-{name} > /dev/vda && sync; echo vm-{name}-done"
    run = "" if pty else f' disco.run="{command}" disco.end={end}'
    vm = {
        "name": f"vm-{name}",
        "kernel": os.path.join(images, guest.DISCO_KERNEL),
        "initrd": os.path.join(images, guest.INITRAMFS),
        "append": guest.DISCO_APPEND + run,
        "memory": "256M",
        "smp": vcpus,
        "disks": [{"path": f"disk-{name}.img"}],
        "console": {"pty": True} if pty else {"log": f"vm-{name}.log"},
        "reboot": "exit",
    }
    with open(os.path.join(folder, f"disk-{name}.img"), "wb") as f:
        f.truncate(DISK_BYTES)
    path = os.path.join(folder, f"vm-{name}.json")
    with open(path, "w") as f:
        json.dump(vm, f, indent=2)
    return path


def keep_log(args, folder, name, kept_as):
    log = os.path.join(folder, f"vm-{name}.log")
    if os.path.exists(log):
        shutil.copyfile(log, os.path.join(args.log_dir, kept_as))


def check_vm(folder, name, other):
    log = open(os.path.join(folder, f"vm-{name}.log"), errors="replace").read()
    tail = log[-2000:]
    lines = [line.strip() for line in guest.without_kernel_log(log).splitlines()]
    check(f"vm-{name}-done" in lines, f"vm-{name}'s log lacks vm-{name}-done; it ends with:\n{tail}")
    done = lines.index(f"vm-{name}-done")
    check(done > 0 and lines[done - 1] == str(VCPUS[name]),
          f"vm-{name}: nproc printed {lines[done - 1] if done else None!r}, expected {VCPUS[name]}")
    check("disco-guest: exit status 0" in lines, f"vm-{name}'s command did not exit 0; its log ends with:\n{tail}")
    check(f"vm-{other}-done" not in log, f"vm-{name}'s log holds vm-{other}'s output")
    for pattern in guest.FAIL_PATTERNS:
        check(not re.search(pattern, log), f"vm-{name}'s log matches {pattern!r}:\n{tail}")
    with open(os.path.join(folder, f"disk-{name}.img"), "rb") as f:
        head = f.read(64)
    check(head.startswith(f"disk-of-vm-{name}\n".encode()),
          f"disk-{name}.img starts with {head[:24]!r}, not vm-{name}'s marker")


_ESCAPE = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\r")


class Pty:
    """The user's end of a VM's /dev/pts/N: send, and wait for a pattern in what came back."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self.seen = b""
        self.matched = 0  # what earlier expects consumed

    def expect(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while True:
            m = re.compile(pattern.encode()).search(_ESCAPE.sub(b"", self.seen), self.matched)
            if m:
                self.matched = m.end()
                return
            left = deadline - time.monotonic()
            check(left > 0, f"the pty never showed {pattern!r}; it ends with:\n"
                            f"{_ESCAPE.sub(b'', self.seen)[-1500:].decode(errors='replace')}")
            if select.select([self.fd], [], [], min(left, 0.5))[0]:
                self.seen += os.read(self.fd, 4096)

    def send(self, text):
        os.write(self.fd, text.encode())


class Stderr:
    """The fleet's stderr, collected line by line on a thread."""

    def __init__(self, stream):
        self.lines, self.lock = [], threading.Lock()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for line in stream:
            with self.lock:
                self.lines.append(line)

    def text(self):
        with self.lock:
            return "".join(self.lines)

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            time.sleep(0.1)
        raise Failure(f"stderr never showed {pattern!r}:\n{self.text()}")


def case_pty(args, tmp, images):
    files = [write_vm(tmp, images, "a", VCPUS["a"], pty=True), write_vm(tmp, images, "b", VCPUS["b"])]
    cmd = [os.path.abspath(args.disco), "run", "--vm", files[0], "--vm", files[1]]
    print(f"$ {' '.join(cmd)}", flush=True)
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    err = Stderr(p.stderr)
    try:
        pts = err.wait_for(r"disco: vm vm-a console on (/dev/pts/\d+)\n", 30).group(1)
        con = Pty(pts)
        con.expect(guest.READY, args.timeout)
        con.expect(guest.PROMPT, 120)
        # The log VM ends on its own; the pty VM goes on.
        err.wait_for(r"disco: vm vm-b ended: powered off \(status 0\)", args.timeout)
        check(p.poll() is None, "the fleet ended with one VM still up")
        con.send("echo $((6*7))\r")
        con.expect(r"\n42\n# ", 120)  # the answer, then the next prompt
        con.send("poweroff\r")
        status = p.wait(120)
        err.thread.join(10)
        print(err.text(), end="")
        check(status == 0, f"exit status {status}, expected 0")
        check("disco: vm vm-a ended: powered off (status 0)" in err.text(), "stderr does not report vm-a powering off")
        keep_log(args, tmp, "b", "linux-fleet-pty-vm-b.log")
        check_vm(tmp, "b", "a")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def case_logs(args, tmp, images, extra=()):
    # vm-b ends by rebooting, which its "reboot": "exit" turns into the end of the VM.
    files = [write_vm(tmp, images, "a", VCPUS["a"]), write_vm(tmp, images, "b", VCPUS["b"], end="reboot")]
    cmd = [os.path.abspath(args.disco), "run", "--stats", *extra] + sum((["--vm", f] for f in files), [])
    print(f"$ {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=args.timeout)
    wall = time.monotonic() - start
    print(r.stderr, end="")
    for name in VCPUS:
        keep_log(args, tmp, name, f"linux-fleet-vm-{name}.log")
    check(r.returncode == 0, f"exit status {r.returncode}, expected 0")
    for name in VCPUS:
        check(f"disco: vm vm-{name} ended: powered off (status 0)" in r.stderr,
              f"stderr does not report vm-{name} powering off")
    check('disco: vm vm-b rebooted; not restarting it ("reboot": "exit")' in r.stderr,
          "stderr does not report vm-b's reboot")
    check_vm(tmp, "a", "b")
    check_vm(tmp, "b", "a")
    runs = [float(s) for s in re.findall(r"disco: vm vm-\w: \d+ instructions in ([\d.]+) s", r.stderr)]
    check(len(runs) == 2, f"--stats printed {len(runs)} VM run times, expected 2")
    if extra:
        moved = re.findall(r"disco: vm vm-\w: page churn: (\d+) operations", r.stderr)
        check(len(moved) == 2 and all(int(n) > 0 for n in moved), "the page churn did not run in both VMs")
    print(f"wall {wall:.1f} s; VM run times {runs[0]:.1f} s + {runs[1]:.1f} s = {sum(runs):.1f} s")
    check(wall < 0.75 * sum(runs),
          f"the run took {wall:.1f} s, the VMs {runs[0]:.1f} s and {runs[1]:.1f} s: they did not overlap")


def case_churn(args, tmp, images):
    """The logs case with both VMs in one machine memory of 2 simulated nodes while the monitor
    migrates, replicates and collapses their pages: each VM still sees only its own data, and
    every frame is back in its pool at the end (the monitor checks and fails otherwise)."""
    case_logs(args, tmp, images, extra=("--numa-sim", "2", "--page-churn", "300"))


CASES = {"logs": case_logs, "pty": case_pty, "churn": case_churn}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--disco", required=True, help="the disco executable")
    p.add_argument("--images", required=True, help="the folder tools/build-images writes")
    p.add_argument("--case", default="logs", choices=sorted(CASES))
    p.add_argument("--log-dir", default=".", help="where linux-fleet-vm-NAME.log go")
    p.add_argument("--timeout", type=float, default=900, help="seconds for the whole run")
    args = p.parse_args()

    missing = guest.missing_images(args.images, [guest.DISCO_KERNEL, guest.INITRAMFS])
    if missing:
        print(f"SKIP: {args.images} lacks {', '.join(missing)}: build the guest images with tools/build-images")
        return SKIP
    images = os.path.abspath(args.images)
    os.makedirs(args.log_dir, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="disco-fleet-") as tmp:
            CASES[args.case](args, tmp, images)
    except (Failure, subprocess.TimeoutExpired) as e:
        print(f"FAIL ({args.case}): {e}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
