"""How the Linux guest images from tools/build-images are booted: the file names, the markers the
initramfs prints, and the command lines for disco and for QEMU's Malta (the reference peer).
Shared by tests/linux/test_boot.py and tools/bench."""
import json
import os
import re
import subprocess
import tempfile
import time

DISCO_KERNEL = "vmlinuz-mips64r2el"  # Debian's mips64r2el zboot ELF
MALTA_KERNEL = "vmlinux-5kc-malta"  # Debian's 5kc-malta kernel, for qemu-system-mips64el -M malta
INITRAMFS = "initramfs.cpio.gz"
ROOTFS = "rootfs.ext4"

READY = r"disco-guest: ready"
PROMPT = r"\n# "
# Output that means the guest is lost: fail at once rather than at the timeout. (Not "BUG:": a
# soft-lockup warning on a loaded host is not fatal.)
FAIL_PATTERNS = (r"Kernel panic", r"Oops\[#\d+\]", r"Attempted to kill init")

# A kernel message on the console ("[   29.23] hrtimer: ..."), which may land in a command's output.
_KERNEL_LOG_LINE = re.compile(r"\[\s*\d+\.\d+\] [^\n]*\n?")


def without_kernel_log(text):
    return _KERNEL_LOG_LINE.sub("", text)


# guest-board.md 5.4: the console is the DT's serial0 (ttyS0); earlycon shows output from
# parse_early_param on; the initramfs's /init is run directly.
DISCO_APPEND = "console=ttyS0,115200n8 earlycon nokaslr rdinit=/init"
MALTA_APPEND = "console=ttyS0 rdinit=/init"


def wait_for_shell(con, first_output_timeout=240, boot_timeout=480, prompt_timeout=120):
    """Waits on a booting guest's console (console.Console) for the shell prompt after READY. A guest
    that never prints anything fails sooner than one that is merely slow."""
    con.expect(r"\S", first_output_timeout)
    con.expect(READY, max(boot_timeout - con.elapsed, 1))
    con.expect(PROMPT, prompt_timeout)


class PtyVmMonitor:
    """`disco run --vm lin.json --control SOCK` booting Debian's kernel and the initramfs shell as VM
    "lin" with its console on a pty, its output in log_path. A context manager: entering starts it
    and waits for the control socket (RuntimeError when disco ends first or 60 s pass); leaving kills
    it if it still runs."""

    def __init__(self, args, tmp, log_path, memory="256M"):
        self.vm = {"name": "lin", "kernel": os.path.join(args.images, DISCO_KERNEL),
                   "initrd": os.path.join(args.images, INITRAMFS), "append": DISCO_APPEND,
                   "memory": memory, "console": {"pty": True}, "reboot": "exit"}
        self.definition = os.path.join(tmp, "lin.json")
        self.sock = os.path.join(tmp, "ctl.sock")
        self.log_path = log_path
        self.disco = args.disco
        self.proc = None
        self._log = None

    def __enter__(self):
        with open(self.definition, "w") as f:
            json.dump(self.vm, f)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([self.disco, "run", "--vm", self.definition, "--control", self.sock],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError(f"disco run ended with {self.proc.returncode}: see {self.log_path}")
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError("the control socket did not appear within 60 s")
            time.sleep(0.1)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        return False


def run_test(args, run, prefix, failures, images=(DISCO_KERNEL, INITRAMFS)):
    """The common body of a Linux test's main(): 77 (skipped, saying why) when args.images lacks an
    image; else run(args, tmp) in a fresh temporary folder named prefix..., with args.images and
    args.disco absolute and args.log_dir made. 0 when it returns, 1 (printing FAIL and the reason)
    when it raises one of `failures` (a tuple of exception types)."""
    missing = missing_images(args.images, list(images))
    if missing:
        print(f"SKIP: {args.images} lacks {', '.join(missing)}: build the guest images with tools/build-images")
        return 77
    args.images = os.path.abspath(args.images)
    args.disco = os.path.abspath(args.disco)
    os.makedirs(args.log_dir, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            run(args, tmp)
    except failures as e:
        print(f"FAIL: {e}")
        return 1
    print("ok")
    return 0


def missing_images(images, names):
    """The names in `names` that are not readable files in the folder `images`."""
    return [n for n in names if not os.access(os.path.join(images, n), os.R_OK)]


def disco_command(disco, images, smp=1, memory="256M", disk=None, append=DISCO_APPEND, no_reboot=True):
    cmd = [disco, "run", "--kernel", os.path.join(images, DISCO_KERNEL),
           "--initrd", os.path.join(images, INITRAMFS), "--append", append,
           "--smp", str(smp), "--memory", memory]
    if disk:
        cmd += ["--disk", disk]
    if no_reboot:
        cmd.append("--no-reboot")
    return cmd


def qemu_malta_command(images, smp=1, memory="256M", append=MALTA_APPEND, qemu="qemu-system-mips64el"):
    # MIPS64R2-generic is the CPU Disco models (the 5kc-malta kernel is built for MIPS64 R2 and
    # also runs on the default 5KEc). No NIC and no VGA: Debian's qemu-system-mips lacks their
    # option ROMs, and neither is needed for a serial console. The monitor is off so that stdin
    # goes to the serial port only.
    return [qemu, "-M", "malta", "-cpu", "MIPS64R2-generic", "-m", memory, "-smp", str(smp),
            "-nographic", "-vga", "none", "-nic", "none", "-monitor", "none", "-serial", "stdio",
            "-no-reboot", "-kernel", os.path.join(images, MALTA_KERNEL),
            "-initrd", os.path.join(images, INITRAMFS), "-append", append]
