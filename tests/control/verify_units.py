#!/usr/bin/env python3
"""`systemd-analyze verify` must accept the disco unit with nothing to say (a warning is a failure).

  verify_units.py --unit BUILD/vmm/control/disco.service --disco BUILD/vmm/disco

The unit names the installed binary; verify checks that ExecStart= is executable, so the check runs
on a copy that names the build's. Exit status 0 passed, 1 failed, 77 skipped (no systemd-analyze).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--unit", required=True)
    p.add_argument("--disco", required=True)
    a = p.parse_args()
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        print("verify_units: systemd-analyze is not installed; skipped")
        return 77
    with open(a.unit) as f:
        text = f.read()
    lines = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    if len(lines) != 1 or " daemon " not in lines[0]:
        print(f"verify_units: expected one ExecStart= running `disco daemon`, got {lines}")
        return 1
    installed = lines[0][len("ExecStart="):].split()[0]
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "disco.service")
        with open(copy, "w") as f:
            f.write(text.replace(installed, os.path.abspath(a.disco), 1))
        r = subprocess.run([analyze, "verify", copy], capture_output=True, text=True, timeout=60)
    said = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or said:
        print(f"verify_units: systemd-analyze verify said (status {r.returncode}):\n{said}")
        return 1
    print("verify_units: systemd-analyze verify accepts disco.service")
    return 0


if __name__ == "__main__":
    sys.exit(main())
