#!/usr/bin/env python3
"""QMP stop / cont and system_powerdown on Debian's stock kernel. `disco run --vm lin.json --control
SOCK` boots the initramfs shell with a pty console (read and typed here directly on /dev/pts/N);
then, over the control socket:

  - a busy loop runs in the guest: the monitor process uses CPU;
  - `stop`: the process uses almost no CPU over 2 s (/proc/PID/stat utime+stime), a command typed on
    the console produces no output at all (not even its echo), query-status says "paused";
  - `cont`: the command's output arrives;
  - `disco shutdown lin`, which is `system_powerdown` (magic SysRq on the serial console: BREAK +
    s, u, o): the POWERDOWN event comes at once, the guest prints its SysRq lines (sync, remount read-only, power off) and powers
    off; disco exits 0 and the VM's last state is shutoff/shutdown.

  test_pause.py --disco PATH --images DIR [--log-dir DIR] [--timeout S]

Exit status 0 passed, 1 failed, 77 skipped (the images are not built: run tools/build-images).
"""
import argparse
import os
import re
import select
import subprocess
import sys
import time
import tty

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "control"))
import guest  # noqa: E402
from qmp_client import Qmp, QmpError  # noqa: E402

V = "__com.disco-project_"
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


class Pty:
    """The VM's console from the far side of its pty: what the guest prints, what we type. Matching
    runs on the output with escape sequences and carriage returns removed; everything read goes to
    the log file as it arrives."""

    def __init__(self, path, log_path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.log = open(log_path, "ab", buffering=0)
        self.raw = ""
        self.pos = 0  # matching resumes here

    @property
    def text(self):
        return _ESCAPE.sub("", self.raw).replace("\r", "")

    def _read(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if ready:
            data = os.read(self.fd, 65536)
            self.log.write(data)
            self.raw += data.decode(errors="replace")
            for p in guest.FAIL_PATTERNS:
                if re.search(p, self.text):
                    raise Failure(f"the guest printed {p!r}:\n{self.text[-2000:]}")

    def expect(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while True:
            m = re.compile(pattern).search(self.text, self.pos)
            if m:
                self.pos = m.end()
                return m
            if time.monotonic() > deadline:
                raise Failure(f"no {pattern!r} on the console within {timeout} s; last output:\n{self.text[-2000:]}")
            self._read(deadline - time.monotonic())

    def read_for(self, seconds):
        """What arrives within `seconds` (cleaned)."""
        before = len(self.text)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        return self.text[before:]

    def send(self, text):
        os.write(self.fd, text.encode())

    def close(self):
        os.close(self.fd)
        self.log.close()


def process_ticks(pid):
    """utime + stime of the whole process, in clock ticks (proc(5): fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def ticks_over(pid, seconds):
    before = process_ticks(pid)
    time.sleep(seconds)
    return process_ticks(pid) - before


def run(args, tmp):
    con = None
    with guest.PtyVmMonitor(args, tmp, os.path.join(args.log_dir, "linux-pause-monitor.log")) as vm:
        monitor, sock = vm.proc, vm.sock
        try:
            q = Qmp(sock, timeout=60)
            pts = q.ok(V + "vm-info", {"vm": "lin"})["console"]
            check(pts.startswith("/dev/pts/"), f"console {pts}")
            con = Pty(pts, os.path.join(args.log_dir, "linux-pause-console.log"))
            con.expect(guest.READY, args.timeout)
            con.expect(guest.PROMPT, 120)
            con.send("echo st''arted\r")
            con.expect(r"\nstarted(?=\n)", 60)
            con.expect(guest.PROMPT, 60)

            # A guest that keeps its vCPU busy: the monitor uses CPU.
            con.send("while :; do :; done &\r")
            con.expect(guest.PROMPT, 60)
            busy = ticks_over(monitor.pid, 2)
            check(busy >= 30, f"a busy guest's monitor used only {busy} ticks in 2 s")

            check(q.ok("stop") == {}, "stop")
            check(q.ok("query-status") == {"running": False, "status": "paused", V + "state": "paused"},
                  "query-status while paused")
            con.read_for(0.5)  # what the guest printed before it parked
            paused = ticks_over(monitor.pid, 2)
            check(paused <= 10, f"the paused VM's monitor used {paused} ticks in 2 s (busy: {busy})")
            con.send("echo PAU''SED-$((6*7))\r")
            seen = con.read_for(3)
            check(seen == "", f"a paused guest answered: {seen!r}")
            print(f"paused: {paused} ticks in 2 s (running busy: {busy}); typed command held back", flush=True)

            check(q.ok("cont") == {}, "cont")
            con.expect(r"\nPAUSED-42(?=\n)", 60)
            con.expect(guest.PROMPT, 60)
            check(q.ok("query-status")["status"] == "running", "query-status after cont")
            con.send("kill $!\r")
            con.expect(guest.PROMPT, 60)
            print("resumed: the typed command ran", flush=True)

            # disco shutdown is QMP system_powerdown; this connection sees its POWERDOWN event.
            r = subprocess.run([args.disco, "shutdown", "lin", "--socket", sock], capture_output=True, text=True,
                               timeout=60)
            check(r.returncode == 0 and "VM lin is shutting down" in r.stdout, f"disco shutdown: {r.stdout} {r.stderr}")
            q.wait_event(lambda e: e["event"] == "POWERDOWN", timeout=5)
            for line in (r"Emergency Sync", r"Emergency Remount R/O", r"Power Off"):
                con.expect(r"(?i)sysrq ?: " + line, 60)
            e = q.wait_event(lambda e: e["event"] == V + "VM_STATE" and e["data"]["state"] == "shutoff", timeout=120)
            check(e["data"]["reason"] == "shutdown" and e["data"]["exit-status"] == 0, f"the VM's end: {e}")
            try:
                status = monitor.wait(60)
            except subprocess.TimeoutExpired:
                raise Failure("disco run did not exit within 60 s of the guest's power-off")
            check(status == 0, f"disco run ended with {status}, expected 0")
            print("powerdown: SysRq sync, remount, power off; disco exited 0", flush=True)
        except QmpError as e:
            raise Failure(f"QMP: {e}")
        finally:
            if con:
                con.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--disco", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--log-dir", default=".")
    p.add_argument("--timeout", type=float, default=480, help="seconds for the boot to reach the shell")
    args = p.parse_args()
    return guest.run_test(args, run, "disco-pause-", (Failure, OSError, RuntimeError, subprocess.TimeoutExpired))


if __name__ == "__main__":
    sys.exit(main())
