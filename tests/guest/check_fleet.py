#!/usr/bin/env python3
"""`disco run --vm ...` end to end with bare-metal guests: several VMs from JSON files in one
process, each console in its own log; the exit status; SIGTERM; the command line's refusals.

  check_fleet.py --disco PATH --hello ELF --isa ELF --bench ELF

Exit status 0 passed, 1 failed.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time


class Failure(Exception):
    pass


def check(condition, what, result=None):
    if not condition:
        if result is not None:
            what += f"\n--- stdout\n{result.stdout[-3000:]}--- stderr\n{result.stderr[-3000:]}"
        raise Failure(what)


def write_vm(folder, name, kernel, **fields):
    """A bare-metal VM file whose log is NAME.log, both relative to the folder."""
    vm = {"name": name, "machine": "baremetal", "kernel": kernel, "console": {"log": f"{name}.log"}}
    vm.update(fields)
    path = os.path.join(folder, f"{name}.json")
    with open(path, "w") as f:
        json.dump(vm, f)
    return path


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def run(disco, args, timeout=120):
    return subprocess.run([disco, "run"] + args, capture_output=True, text=True, timeout=timeout)


def case_three_vms(a, tmp):
    files = [write_vm(tmp, "hello", a.hello), write_vm(tmp, "isa", a.isa, smp=2),
             write_vm(tmp, "limited", a.bench, max_insns=100000)]
    r = run(a.disco, sum((["--vm", f] for f in files), []))
    check(r.returncode == 1, f"exit status {r.returncode}, expected 1 (the limited VM's)", r)
    check("Hello from the disco bare-metal guest" in read(os.path.join(tmp, "hello.log")), "hello.log lacks the greeting", r)
    check("RESULT: PASS" in read(os.path.join(tmp, "isa.log")), "isa.log lacks RESULT: PASS", r)
    for line in ("disco: vm hello ended: guest exit status 0 (status 0)",
                 "disco: vm isa ended: guest exit status 0 (status 0)",
                 "disco: vm limited ended: stopped by the monitor after an error (status 1)",
                 f"disco: vm isa console in {os.path.join(tmp, 'isa.log')}"):
        check(line in r.stderr, f"stderr lacks {line!r}", r)
    check(r.stdout == "", "a fleet of log consoles printed on stdout", r)


def case_all_good(a, tmp):
    r = run(a.disco, ["--vm", write_vm(tmp, "one", a.hello), "--vm", write_vm(tmp, "two", a.isa), "--stats"])
    check(r.returncode == 0, f"exit status {r.returncode}, expected 0", r)
    check("disco: vm two: " in r.stderr and "guest MIPS" in r.stderr, "--stats printed nothing per VM", r)


def case_fleet_file(a, tmp):
    fleet = {"vms": [{"name": f"f{i}", "machine": "baremetal", "kernel": a.hello, "console": {"log": f"f{i}.log"}}
                     for i in range(3)]}
    path = os.path.join(tmp, "fleet.json")
    with open(path, "w") as f:
        json.dump(fleet, f)
    r = run(a.disco, ["--vm", path])
    check(r.returncode == 0, f"exit status {r.returncode}, expected 0", r)
    for i in range(3):
        check("Hello from" in read(os.path.join(tmp, f"f{i}.log")), f"f{i}.log lacks the greeting", r)


def case_sigterm(a, tmp):
    files = [write_vm(tmp, "long1", a.bench), write_vm(tmp, "long2", a.bench)]
    p = subprocess.Popen([a.disco, "run", "--vm", files[0], "--vm", files[1]], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        raise Failure("SIGTERM did not end the fleet within 30 s")
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    check(r.returncode == 0, f"exit status {r.returncode} after SIGTERM, expected 0", r)
    for line in ("disco: SIGTERM: stopping every VM", "disco: vm long1 ended: stopped (status 0)",
                 "disco: vm long2 ended: stopped (status 0)"):
        check(line in r.stderr, f"stderr lacks {line!r}", r)


def case_refusals(a, tmp):
    good = write_vm(tmp, "ok", a.hello)
    bad = write_vm(tmp, "bad", a.hello, smp="four")
    cases = [
        (["--vm", good, "--kernel", a.hello], "--vm and --kernel are mutually exclusive"),
        (["--vm", good, "-M", "baremetal"], "--vm and --machine are mutually exclusive"),
        (["--vm", good, "--memory", "64M"], "--vm and --memory are mutually exclusive"),
        (["--vm", good, "--smp", "2"], "--vm and --smp are mutually exclusive"),
        (["--vm", good, "--access-counters", "off"], "--vm and --access-counters are mutually exclusive"),
        (["--vm", bad], f'{bad}: field "smp": expected an integer from 1 to 64, got "four"'),
        (["--vm", good, "--vm", good], f'{good}: field "name": "ok" is already used by {good}'),
        (["--vm", os.path.join(tmp, "missing.json")], "missing.json: cannot read: No such file or directory"),
        ([], "--kernel is required"),
    ]
    for args, message in cases:
        r = run(a.disco, args)
        check(r.returncode == 2, f"{args}: exit status {r.returncode}, expected 2", r)
        check(message in r.stderr, f"{args}: stderr lacks {message!r}", r)
        check(len(r.stderr.splitlines()) == 1, f"{args}: stderr has {len(r.stderr.splitlines())} lines, expected 1", r)
    check(not os.path.exists(os.path.join(tmp, "bad.log")), "a refused file still started its VM")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--disco", required=True)
    p.add_argument("--hello", required=True)
    p.add_argument("--isa", required=True)
    p.add_argument("--bench", required=True)
    a = p.parse_args()
    # The VM files live in a temporary folder and resolve relative paths against it.
    for name in ("disco", "hello", "isa", "bench"):
        setattr(a, name, os.path.abspath(getattr(a, name)))
    failed = 0
    for case in (case_three_vms, case_all_good, case_fleet_file, case_sigterm, case_refusals):
        with tempfile.TemporaryDirectory(prefix="disco-fleet-") as tmp:
            try:
                case(a, tmp)
                print(f"ok {case.__name__}")
            except (Failure, subprocess.TimeoutExpired) as e:
                print(f"FAIL {case.__name__}: {e}")
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
