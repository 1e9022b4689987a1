#!/usr/bin/env python3
"""Runs `disco run` and checks its exit status and output.

  check_run.py --expect-status N [--expect-stdout TEXT] [--expect-stderr TEXT]
               [--timeout S] -- DISCO ARGS...
"""
import argparse
import subprocess
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--expect-status", type=int, required=True)
    p.add_argument("--expect-stdout", action="append", default=[])
    p.add_argument("--expect-stderr", action="append", default=[])
    p.add_argument("--stderr-lines", type=int, help="exact number of lines expected on stderr")
    p.add_argument("--timeout", type=float, default=240)
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.command[1:] if a.command and a.command[0] == "--" else a.command
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        sys.exit(f"FAIL: {' '.join(cmd)} did not finish in {a.timeout} s")
    problems = []
    if r.returncode != a.expect_status:
        problems.append(f"exit status {r.returncode}, expected {a.expect_status}")
    for t in a.expect_stdout:
        if t not in r.stdout:
            problems.append(f"stdout lacks {t!r}")
    for t in a.expect_stderr:
        if t not in r.stderr:
            problems.append(f"stderr lacks {t!r}")
    if a.stderr_lines is not None and len(r.stderr.splitlines()) != a.stderr_lines:
        problems.append(f"stderr has {len(r.stderr.splitlines())} lines, expected {a.stderr_lines}")
    print(f"$ {' '.join(cmd)}\n--- stdout\n{r.stdout[-4000:]}--- stderr\n{r.stderr[-4000:]}")
    if problems:
        sys.exit("FAIL: " + "; ".join(problems))
    print("ok")


if __name__ == "__main__":
    main()
