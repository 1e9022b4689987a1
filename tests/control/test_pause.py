#!/usr/bin/env python3
"""QMP stop / cont / system_powerdown and query-cpus-fast's thread-id, end to end over the socket.

  test_pause.py --disco PATH

`disco daemon` runs two bare-metal VMs: "spin", whose vCPU never sleeps (`1: b 1b`, written here as an
ELF), and "idle" (a WAIT loop). Over QMP: query-cpus-fast's thread-id is a thread of the daemon
(/proc/PID/task/TID) that uses CPU; `stop` parks it (no CPU over a second, query-status "paused",
vm-info paused/user, events VM_STATE and STOP), `cont` wakes it (RESUME, CPU again); the errors
(stop of a paused or a shut-off VM, cont of a running one, system_powerdown of a bare-metal VM, a
standard command without "vm" when there are two); `disco suspend|resume|shutdown` and `disco list`;
vm-stop, system_reset and quit of a paused VM; then SIGTERM ends a `disco run --control` whose only
VM is paused (exit status 0).

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp_client import Qmp, QmpError  # noqa: E402
import qmp_client  # noqa: E402
from tiny_guests import IDLE, SPIN, elf  # noqa: E402

V = "__com.disco-project_"


class Failure(Exception):
    pass


def eventually(probe, what, timeout=15):
    return qmp_client.eventually(probe, what, timeout, failure=Failure, interval=0.05)


def check(cond, what):
    if not cond:
        raise Failure(what)


def cpu_ticks(pid, tid):
    """utime + stime of one thread, in clock ticks (proc(5))."""
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15; this list starts at field 3


def ticks_over(pid, tid, seconds):
    before = cpu_ticks(pid, tid)
    time.sleep(seconds)
    return cpu_ticks(pid, tid) - before


def spins(pid, tid):
    """Whether the thread uses CPU: 20 ticks (0.2 s at 100 Hz) within 10 s, however loaded the host."""
    before = cpu_ticks(pid, tid)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if cpu_ticks(pid, tid) - before >= 20:
            return True
        time.sleep(0.05)
    return False


def thread_id(q, vm):
    def probe():
        cpus = q.ok("query-cpus-fast", {"vm": vm})
        return cpus and cpus[0].get("thread-id")
    return eventually(probe, f"query-cpus-fast of {vm} with a thread-id")


def error_of(q, command, arguments=None):
    r = q.execute(command, arguments)
    check("error" in r, f"{command} {arguments} did not fail: {r}")
    check(r["error"]["class"] == "GenericError", f"{command}: {r}")
    return r["error"]["desc"]


def take_events(q, settle=0.3):
    """The events that came so far (after waiting `settle` s for stragglers), as names."""
    try:
        q.wait_event(lambda e: False, timeout=settle)  # matches nothing: reads what comes meanwhile
    except QmpError:
        pass
    names = []
    for e in q.events:
        if e["event"] == V + "VM_STATE":
            names.append(f"VM_STATE {e['data']['vm']} {e['data']['state']}/{e['data']['reason']}")
        else:
            check("data" not in e, f"{e['event']} carries data: {e}")
            names.append(e["event"])
    q.events.clear()
    return names


def state(q, vm):
    info = q.ok(V + "vm-info", {"vm": vm})
    return info["state"], info["reason"]


def cli(a, sock, *args):
    return subprocess.run([a.disco, *args, "--socket", sock], capture_output=True, text=True, timeout=60)


def case_daemon(a, tmp):
    cfg = os.path.join(tmp, "vms")
    os.makedirs(cfg)
    for name, words in (("spin", SPIN), ("idle", IDLE)):
        with open(os.path.join(cfg, f"{name}.elf"), "wb") as f:
            f.write(elf(words))
        with open(os.path.join(cfg, f"{name}.json"), "w") as f:
            json.dump({"name": name, "machine": "baremetal", "kernel": f"{name}.elf", "memory": "16M",
                       "console": {"log": f"{name}.log"}}, f)
    sock = os.path.join(tmp, "run", "qmp.sock")
    log_path = os.path.join(tmp, "daemon.log")
    log = open(log_path, "w+")
    d = subprocess.Popen([a.disco, "daemon", "--config-dir", cfg, "--socket", sock, "--machine-memory", "1G"],
                         stdout=log, stderr=log)

    def daemon_log():
        log.flush()
        with open(log_path, errors="replace") as f:
            return f.read()

    try:
        eventually(lambda: os.path.exists(sock) or d.poll() is not None, "the control socket")
        check(d.poll() is None, f"the daemon exited: {daemon_log()}")
        q = Qmp(sock)
        eventually(lambda: state(q, "spin")[0] == "running", "spin running")
        tid = thread_id(q, "spin")
        check(os.path.isdir(f"/proc/{d.pid}/task/{tid}"), f"thread-id {tid} is no thread of the daemon {d.pid}")
        check(spins(d.pid, tid), "the spinning vCPU thread used no CPU")
        idle_tid = thread_id(q, "idle")
        check(idle_tid != tid and os.path.isdir(f"/proc/{d.pid}/task/{idle_tid}"), f"idle's thread-id {idle_tid}")
        take_events(q, 0.1)

        # Two VMs: a standard command must name one.
        check("name one with argument 'vm'" in error_of(q, "stop"), "stop without vm")
        check(q.ok("stop", {"vm": "spin"}) == {}, "stop")
        check(q.ok("query-status", {"vm": "spin"}) == {"running": False, "status": "paused", V + "state": "paused"},
              "query-status of a paused VM")
        check(state(q, "spin") == ("paused", "user"), f"vm-info {state(q, 'spin')}")
        check(take_events(q) == ["VM_STATE spin paused/user", "STOP"], "stop's events")
        spent = ticks_over(d.pid, tid, 1.0)
        check(spent <= 1, f"a paused vCPU thread used {spent} ticks in 1 s")
        check(q.ok("query-cpus-fast", {"vm": "spin"})[0]["thread-id"] == tid, "thread-id while paused")
        check(error_of(q, "stop", {"vm": "spin"}) == "VM 'spin' is paused already", "stop twice")
        check("not supported" in error_of(q, "system_powerdown", {"vm": "spin"}), "powerdown of bare-metal")
        check(q.ok("cont", {"vm": "spin"}) == {}, "cont")
        check(take_events(q) == ["VM_STATE spin running/booted", "RESUME"], "cont's events")
        check(spins(d.pid, tid), "the resumed vCPU thread used no CPU")
        check(error_of(q, "cont", {"vm": "spin"}) == "VM 'spin' is not paused", "cont of a running VM")
        check(q.ok("query-status", {"vm": "idle"})["status"] == "running", "idle kept running")

        # The CLI's verbs (virsh's).
        r = cli(a, sock, "suspend", "spin")
        check(r.returncode == 0 and "VM spin suspended: paused" in r.stdout, f"suspend: {r.stdout} {r.stderr}")
        r = cli(a, sock, "list")
        check(any(line.split()[:2] == ["spin", "paused"] for line in r.stdout.splitlines()), f"list {r.stdout}")
        r = cli(a, sock, "suspend", "spin")
        check(r.returncode == 1 and "paused already" in r.stderr, f"suspend twice: {r.returncode} {r.stderr}")
        r = cli(a, sock, "status", "spin", "--json")
        check(r.returncode == 0 and json.loads(r.stdout)["state"] == "paused", f"status: {r.stdout}")
        r = cli(a, sock, "resume", "spin", "--json")
        check(r.returncode == 0 and json.loads(r.stdout)["state"] == "running", f"resume: {r.stdout} {r.stderr}")
        r = cli(a, sock, "resume", "spin")
        check(r.returncode == 1 and "not paused" in r.stderr, f"resume twice: {r.stderr}")
        r = cli(a, sock, "shutdown", "idle")
        check(r.returncode == 1 and "not supported" in r.stderr, f"shutdown of bare-metal: {r.stderr}")
        r = cli(a, sock, "suspend", "ghost")
        check(r.returncode == 1 and "No VM named 'ghost'" in r.stderr, f"suspend ghost: {r.stderr}")
        take_events(q, 0.1)

        # A reset of a paused VM keeps it paused; vm-stop ends it; a stopped VM cannot be paused.
        q.ok("stop", {"vm": "spin"})
        check(q.ok("system_reset", {"vm": "spin"}) == {}, "system_reset of a paused VM")
        eventually(lambda: "vm spin rebooted; restarting it" in daemon_log(), "the reset")
        check(state(q, "spin") == ("paused", "user"), f"after the reset {state(q, 'spin')}")
        tid = thread_id(q, "spin")
        check(ticks_over(d.pid, tid, 0.5) <= 1, "the reset VM's vCPU runs while paused")
        take_events(q, 0.1)
        check(q.ok(V + "vm-stop", {"vm": "spin"}) == {}, "vm-stop of a paused VM")
        eventually(lambda: state(q, "spin")[0] == "shutoff", "spin shut off")
        check(state(q, "spin")[1] == "destroyed", f"spin's end {state(q, 'spin')}")
        check(take_events(q) == ["VM_STATE spin shutdown/user", "VM_STATE spin shutoff/destroyed"], "stop's events")
        check(error_of(q, "stop", {"vm": "spin"}) == "VM 'spin' is not running", "stop of a shut-off VM")
        check(error_of(q, "cont", {"vm": "spin"}) == "VM 'spin' is not paused", "cont of a shut-off VM")

        # quit with a paused VM: every VM stops and the daemon exits 0.
        q.ok("stop", {"vm": "idle"})
        check(q.ok("quit") == {}, "quit")
        try:
            rc = d.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise Failure("the daemon did not exit within 30 s of quit with a paused VM")
        check(rc == 0, f"daemon exit status {rc}")
        check("vm idle ended: stopped" in daemon_log(), f"idle's end: {daemon_log()}")
    except (Failure, QmpError, OSError, subprocess.TimeoutExpired) as e:
        raise Failure(f"{e}\n--- daemon log (end)\n{daemon_log()[-3000:]}")
    finally:
        if d.poll() is None:
            d.kill()
            d.wait()
        log.close()


def case_run_sigterm(a, tmp):
    """SIGTERM ends a `disco run --control` whose one VM is paused."""
    work = os.path.join(tmp, "run-sigterm")
    os.mkdir(work, 0o700)
    kernel = os.path.join(work, "spin.elf")
    with open(kernel, "wb") as f:
        f.write(elf(SPIN))
    sock = os.path.join(work, "ctl.sock")
    p = subprocess.Popen([a.disco, "run", "--machine", "baremetal", "--kernel", kernel, "--memory", "16M",
                          "--control", sock], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: os.path.exists(sock) or p.poll() is not None, "disco run's control socket")
        q = Qmp(sock)
        tid = thread_id(q, "vm")
        check(q.ok("stop") == {}, "stop of run's VM")
        check(ticks_over(p.pid, tid, 0.5) <= 1, "run's paused vCPU used CPU")
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            raise Failure("disco run did not exit within 30 s of SIGTERM with a paused VM")
        check(p.returncode == 0, f"disco run exit status {p.returncode}: {err}")
        check("SIGTERM: stopping every VM" in err, f"no SIGTERM line: {err}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--disco", required=True)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="disco-pause-") as tmp:
        try:
            for case in (case_daemon, case_run_sigterm):
                case(a, tmp)
                print(f"test_pause: {case.__name__} passed")
        except (Failure, QmpError, OSError, subprocess.TimeoutExpired) as e:
            print(f"test_pause: FAILED: {e}")
            return 1
    print("test_pause: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
