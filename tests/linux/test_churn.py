#!/usr/bin/env python3
"""A Linux guest under page churn produces the same output as without it.

Boots Debian's kernel on 4 vCPUs twice, each time running the same workload
through the initramfs' disco.run (the guest powers off at its end): once plainly,
once with --numa-sim 4 --page-churn RATE, so that the monitor migrates,
replicates and collapses random guest pages while the guest runs. The
workload's output must be identical, the guest must power off with status 0,
and the monitor must report that it really moved pages.

  test_churn.py --disco PATH --images DIR [--rate 1000]
Exit status 77 (skipped) when the images are missing.
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest  # noqa: E402

# Deterministic output only (mtstress's retry counts vary run to run: keep its verdict).
WORKLOAD = ("seq 1 200000 | sort -r | md5sum; md5sum /bin/busybox; "
            "mtstress | grep -o 'OK$'; dd if=/dev/zero bs=1M count=24 2>/dev/null | gzip -1 | md5sum")
START, END = "disco-guest: ready", "disco-guest: exit status"
CHURN = re.compile(r"page churn: (\d+) operations: (\d+) migrated, (\d+) replicated, (\d+) collapsed")


def run(args, extra):
    append = f'console=ttyS0 quiet nokaslr disco.run="{WORKLOAD}" disco.end=poweroff'
    cmd = guest.disco_command(args.disco, args.images, smp=4, memory="256M", append=append) + extra
    print("$ " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                       timeout=args.timeout)
    out = r.stdout.replace("\r", "")
    if r.returncode != 0:
        sys.exit(f"FAIL: status {r.returncode}\n{out[-3000:]}\n{r.stderr[-2000:]}")
    if START not in out or END not in out:
        sys.exit(f"FAIL: the workload did not run to its end\n{out[-3000:]}")
    body = out.split(START, 1)[1].split(END, 1)[0]
    lines = [ln for ln in body.splitlines() if ln.strip() and not ln.startswith("[")]
    return lines, out.split(END, 1)[1].splitlines()[0], r.stderr


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--disco", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--rate", default="1000")
    p.add_argument("--timeout", type=float, default=900)
    args = p.parse_args()
    missing = guest.missing_images(args.images, [guest.DISCO_KERNEL, guest.INITRAMFS])
    if missing:
        print(f"SKIP: {args.images} lacks {', '.join(missing)} (tools/build-images builds them)")
        return 77
    plain, plain_status, _ = run(args, [])
    churned, churned_status, stderr = run(args, ["--numa-sim", "4", "--page-churn", args.rate])
    print("plain:   " + " | ".join(plain) + f" | status{plain_status}")
    print("churned: " + " | ".join(churned) + f" | status{churned_status}")
    m = CHURN.search(stderr)
    if not m:
        sys.exit(f"FAIL: the monitor printed no page-churn summary\n{stderr[-2000:]}")
    print(m.group(0))
    if plain != churned or plain_status != churned_status:
        sys.exit("FAIL: the guest's output differs under page churn")
    if plain_status.strip() != "0" or len(plain) < 4 or "OK" not in plain:
        sys.exit(f"FAIL: the workload itself failed: {plain} status {plain_status}")
    if int(m.group(2)) == 0 or int(m.group(3)) == 0 or int(m.group(4)) == 0:
        sys.exit("FAIL: no page was migrated, replicated or collapsed")
    print("ok: same output with and without page churn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
