#!/usr/bin/env python3
"""`disco console NAME`: a terminal attached to a running Linux VM's console through the control
socket, as `virsh console` is. `disco run --vm lin.json --control SOCK` boots Debian's kernel and
the initramfs shell with a pty console; then, each `disco console` on a terminal of its own (a pty,
as a person's would be):

  - the first attach gets the guest shell: a typed command runs and its answer comes back; Ctrl-A x
    leaves with status 0 while the VM goes on;
  - a second attach reaches the same shell (state kept: a variable set in the first); `poweroff`
    typed there ends the VM, and the client sees it and ends with status 0; the run exits 0;
  - a VM that does not exist is one line and status 1.

  test_attach.py --disco PATH --images DIR [--log-dir DIR] [--timeout S]

Exit status 0 passed, 1 failed, 77 skipped (the images are not built: run tools/build-images).
"""
import argparse
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from console import Console, ConsoleError, kill_consoles_on_signals  # noqa: E402
import guest  # noqa: E402



class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


def attach(args, sock, log_name):
    return Console([args.disco, "console", "lin", "--socket", sock],
                   log_path=os.path.join(args.log_dir, log_name), fail_patterns=guest.FAIL_PATTERNS)


def reach_shell(con, timeout):
    """Types a marker command until the shell runs it: the guest may still be booting when the
    client attaches, and what it printed before is gone (nobody read the pty). Reads with read_for,
    not expect: an expect that times out kills the client."""
    deadline = time.monotonic() + timeout
    marker = re.compile(r"\nATTACHED\n")
    while True:
        start = con.pos
        con.send("echo AT''TACHED\r")
        con.read_for(5)
        m = marker.search(con.text, start)
        if m:
            con.pos = m.end()
            return
        check(time.monotonic() < deadline, f"no shell ran the marker command within {timeout} s")


def run(args, tmp):
    with guest.PtyVmMonitor(args, tmp, os.path.join(args.log_dir, "linux-attach-monitor.log")) as vm:
        monitor, sock = vm.proc, vm.sock
        ghost = subprocess.run([args.disco, "console", "ghost", "--socket", sock], capture_output=True, text=True,
                               timeout=30)
        check(ghost.returncode == 1 and ghost.stderr.strip() == "disco: No VM named 'ghost'",
              f"console of a VM that does not exist: status {ghost.returncode}, {ghost.stderr!r}")

        with attach(args, sock, "linux-attach-1.log") as con:
            con.expect(r"connected to VM lin's console \(/dev/pts/\d+\)", 30)
            reach_shell(con, args.timeout)
            con.send("X=$((6*7)); echo answer-$X\r")
            con.expect(r"\nanswer-42\r?\n", 60)
            con.send("\x01x")  # Ctrl-A x: leave
            con.expect(r"left VM lin's console", 30)
            status = con.wait_exit(30)
            check(status == 0, f"leaving the console: status {status}")
        check(monitor.poll() is None, "the VM ended when its console was left")
        print("first attach: command ran, left with Ctrl-A x", flush=True)

        with attach(args, sock, "linux-attach-2.log") as con:
            con.expect(r"connected to VM lin's console", 30)
            con.send("echo again-$X\r")
            con.expect(r"\nagain-42\r?\n", 60)
            con.send("poweroff\r")
            con.expect(r"disco: (VM lin is shut off|VM lin's console closed)", 120)
            status = con.wait_exit(30)
            check(status == 0, f"the client after the VM powered off: status {status}")
        print("second attach: same shell, poweroff seen by the client", flush=True)
        check(monitor.wait(60) == 0, f"disco run ended with {monitor.returncode}, expected 0")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--disco", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--log-dir", default=".")
    p.add_argument("--timeout", type=float, default=480, help="seconds for the boot to reach the shell")
    args = p.parse_args()
    kill_consoles_on_signals()
    return guest.run_test(args, run, "disco-attach-", (ConsoleError, Failure, RuntimeError, subprocess.TimeoutExpired))


if __name__ == "__main__":
    sys.exit(main())
