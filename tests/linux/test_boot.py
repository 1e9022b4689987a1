#!/usr/bin/env python3
"""Boots Debian's stock mips64r2el kernel with the busybox initramfs from tools/build-images on
`disco run` and checks one thing per case:

  smp1      1 vCPU: shell prompt, `nproc` is 1, shell arithmetic works, `poweroff` exits 0
  smp4      the same on 4 vCPUs: `nproc` is 4
  mtstress  /bin/mtstress (threads contending on shared memory) prints OK on 4 vCPUs
  disk      --disk: the guest writes a file to an ext4 copy of rootfs.ext4 and powers off;
            debugfs on the host reads the file back
  reboot    `reboot` under --no-reboot ends the process with status 0

  test_boot.py --disco PATH --images DIR --case NAME [--log-dir DIR] [--pipes]

Exit status 0 passed, 1 failed, 77 skipped (the images are not built: run tools/build-images).
The console transcript is kept in DIR/linux-NAME.log.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from console import Console, ConsoleError, ConsoleTimeout, kill_consoles_on_signals  # noqa: E402
import guest  # noqa: E402

SKIP = 77
# The disk case's shell line prints this when a step fails; the line itself spells it FAIL""ED, so
# that the shell's echo of the line does not match.
DISK_FAILED = "disk-test: FAILED"


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


def boot(con, args):
    guest.wait_for_shell(con, args.first_output_timeout, args.boot_timeout, args.cmd_timeout)
    print(f"shell prompt after {con.elapsed:.1f} s")


def shell(con, args, line, timeout=None):
    """Runs a shell command line; returns its output without any kernel messages mixed in."""
    return guest.without_kernel_log(con.command(line, guest.PROMPT, timeout or args.cmd_timeout)).strip()


# Without a power-off driver (the disco-virt board has none, guest-board.md 6.6) the kernel halts
# instead; Malta has one.
POWER_OFF_MESSAGE = r"reboot: (Power down|System halted)"


def power_off(con, args, command="poweroff", message=POWER_OFF_MESSAGE):
    con.sendline(command)
    try:
        status = con.wait_exit(args.cmd_timeout)
    except ConsoleTimeout:
        if re.search(message, con.text):
            raise
        raise Failure(f"`{command}`: no exit within {args.cmd_timeout:g} s and the kernel never printed {message!r}: "
                      f"the guest did not act on it (busybox's {command} only signals PID 1; the image's /init "
                      "must act on that signal)") from None
    check(status == 0, f"`{command}` ended the process with status {status}, expected 0")
    check(re.search(message, con.text), f"`{command}`: the kernel never printed {message!r}")


def case_smp(con, args, vcpus, _disk):
    boot(con, args)
    nproc = shell(con, args, "nproc")
    check(nproc == str(vcpus), f"nproc printed {nproc!r}, expected {vcpus}")
    answer = shell(con, args, "echo $((6*7))")
    check(answer == "42", f"echo $((6*7)) printed {answer!r}, expected 42")
    power_off(con, args)


def case_mtstress(con, args, _vcpus, _disk):
    boot(con, args)
    out = shell(con, args, "mtstress", args.mtstress_timeout)
    last = out.splitlines()[-1] if out else ""
    check(last.endswith("OK"), f"mtstress printed {out!r}; its last line should end in OK")
    power_off(con, args)


def case_disk(con, args, _vcpus, disk):
    boot(con, args)
    con.sendline("mount -t ext4 /dev/vda /mnt && echo hello-from-guest > /mnt/hello.txt && sync && "
                 "umount /mnt && poweroff || echo " + DISK_FAILED.replace("FAILED", 'FAIL""ED'))
    status = con.wait_exit(args.cmd_timeout)
    check(status == 0, f"the guest's poweroff after writing the disk ended with status {status}, expected 0")
    r = subprocess.run(["debugfs", "-R", "cat /hello.txt", disk], capture_output=True, text=True, timeout=60)
    print(f"$ debugfs -R 'cat /hello.txt' {disk}\n{r.stdout}{r.stderr}")
    check(r.returncode == 0 and "hello-from-guest" in r.stdout,
          "the file the guest wrote is not on the disk image (debugfs cat /hello.txt)")


def case_reboot(con, args, _vcpus, _disk):
    boot(con, args)
    power_off(con, args, command="reboot", message=r"reboot: Restarting system")


# name: (vCPUs, check)
CASES = {
    "smp1": (1, case_smp),
    "smp4": (4, case_smp),
    "mtstress": (4, case_mtstress),
    "disk": (1, case_disk),
    "reboot": (1, case_reboot),
}


def needed_images(case):
    names = [guest.DISCO_KERNEL, guest.INITRAMFS]
    return names + [guest.ROOTFS] if case == "disk" else names


def run_case(args, disk):
    vcpus, body = CASES[args.case]
    cmd = guest.disco_command(args.disco, args.images, smp=vcpus, memory=args.memory, disk=disk)
    log = os.path.join(args.log_dir, f"linux-{args.case}.log")
    if os.path.exists(log):
        os.remove(log)
    print(f"$ {' '.join(cmd)}\n(console transcript: {log})", flush=True)
    fail_patterns = guest.FAIL_PATTERNS + ((DISK_FAILED,) if disk else ())
    with Console(cmd, log_path=log, use_pty=not args.pipes, fail_patterns=fail_patterns) as con:
        try:
            body(con, args, vcpus, disk)
        except Failure:
            print(f"--- last console output\n{con.tail()}")
            raise
    print(f"ok ({con.elapsed:.1f} s)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--disco", required=True, help="the disco executable")
    p.add_argument("--images", required=True, help="the folder tools/build-images writes")
    p.add_argument("--case", required=True, choices=sorted(CASES))
    p.add_argument("--log-dir", default=".", help="where linux-CASE.log goes")
    p.add_argument("--pipes", action="store_true", help="console on pipes instead of a pseudo-terminal")
    p.add_argument("--memory", default="256M")
    p.add_argument("--first-output-timeout", type=float, default=240, help="seconds to the first console output")
    p.add_argument("--boot-timeout", type=float, default=480, help="seconds to the ready marker")
    p.add_argument("--cmd-timeout", type=float, default=120, help="seconds for each shell command")
    p.add_argument("--mtstress-timeout", type=float, default=300)
    args = p.parse_args()
    kill_consoles_on_signals()

    missing = guest.missing_images(args.images, needed_images(args.case))
    if missing:
        print(f"SKIP: {args.images} lacks {', '.join(missing)}: build the guest images with tools/build-images")
        return SKIP
    if args.case == "disk" and not shutil.which("debugfs"):
        print("SKIP: debugfs not found (Debian package e2fsprogs)")
        return SKIP
    os.makedirs(args.log_dir, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="disco-linux-") as tmp:
            disk = None
            if args.case == "disk":
                disk = os.path.join(tmp, guest.ROOTFS)
                shutil.copyfile(os.path.join(args.images, guest.ROOTFS), disk)
            run_case(args, disk)
    except (ConsoleError, Failure, subprocess.TimeoutExpired) as e:
        print(f"FAIL ({args.case}): {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
