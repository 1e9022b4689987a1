#!/usr/bin/env python3
"""`disco daemon` end to end over its control socket, with a hand-written QMP client.

  test_qmp.py --disco PATH --bench ELF

The daemon runs a config folder holding a bare-metal VM that idles forever (a WAIT loop this
script writes as an ELF), the bench guest (real work that ends with a checksum), and a file with a
bad field (reported and skipped). The script checks systemd's READY=1/STATUS=/STOPPING=1 through
its own NOTIFY_SOCKET; negotiates and runs each command; drives `disco list|status|start|stop`;
sends 10,000 malformed or hostile requests on four connections at once while the bench VM is
restarted again and again on a fifth, and checks that the daemon still answers, the idle VM still
runs and every bench run printed the right checksum; checks that a connection from a disallowed
uid is refused (as root: a child that drops to nobody; skipped otherwise); ends the daemon with
QMP's quit and another one with SIGTERM. Then `disco run --numa-sim 2 --vm FILE --control SOCK` runs
a virt guest that touches two pages (a store and a load, written here as an ELF): the NUMA and
memory commands (hot-pages, page-migrate/-replicate/-collapse with their events, numa, memory,
vcpu-pin) and their errors, `disco stats` and `disco numa [hot|migrate]` on that socket, quit, and
the run's --stats document's "numa" figures.

Exit status 0 passed, 1 failed, 77 skipped.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp_client import Qmp, QmpError  # noqa: E402
from tiny_guests import IDLE, TOUCHED_LOAD, TOUCHED_STORE, TOUCHER, elf  # noqa: E402
import qmp_client  # noqa: E402

V = "__com.disco-project_"
SOCKET_GROUP = 4242  # a gid no one uses: the group-access cases give it to a child on purpose


class Failure(Exception):
    pass


def eventually(probe, what, timeout=15):
    return qmp_client.eventually(probe, what, timeout, failure=Failure, interval=0.1)


def check(cond, what):
    if not cond:
        raise Failure(what)


def idle_elf():
    """A MIPS64 little-endian ELF whose one vCPU loops on WAIT (it sleeps: no host CPU)."""
    return elf(IDLE)


def toucher_elf():
    """The virt board's toucher (tiny_guests.TOUCHER), as an ELF."""
    return elf(TOUCHER)


class Notify:
    """systemd's side of sd_notify: a datagram socket the daemon reports to, read all along (as
    systemd does: sd_notify blocks while the queue is full)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.done = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while not self.done:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass

    def wait_for(self, key, timeout, daemon=None):
        """Whether a message with `key` came within the time (giving up early if the daemon died)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(key in m for m in list(self.messages)):
                return True
            if daemon is not None and not daemon.alive():
                break
            time.sleep(0.05)
        return any(key in m for m in list(self.messages))


class Daemon:
    def __init__(self, disco, config_dir, sock_path, notify, extra=()):
        self.sock_path = sock_path
        self.stderr_path = config_dir.rstrip("/") + ".stderr"
        self.stderr = open(self.stderr_path, "w+")
        env = dict(os.environ, NOTIFY_SOCKET=notify.path)
        self.proc = subprocess.Popen([disco, "daemon", "--config-dir", config_dir, "--socket", sock_path,
                                      "--machine-memory", "1G", *extra],
                                     stdout=self.stderr, stderr=self.stderr, env=env)

    def log(self):
        self.stderr.flush()
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()


def state(q, vm):
    info = q.ok(V + "vm-info", {"vm": vm})
    return info["state"], info["reason"]


def wait_state(q, vm, want, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if state(q, vm)[0] == want:
            return
        time.sleep(0.05)
    raise Failure(f"VM {vm} not {want} within {timeout} s: {state(q, vm)}")


def case_commands(a, d, tmp):
    q = Qmp(d.sock_path, negotiate=False)
    g = q.greeting["QMP"]
    check(g["capabilities"] == [] and "qemu" in g["version"] and g["version"]["package"].startswith("disco"),
          f"greeting {q.greeting}")
    r = q.execute("query-status", {"vm": "idle"})
    check(r["error"]["class"] == "CommandNotFound", f"before negotiation: {r}")
    check(q.execute("qmp_capabilities") == {"return": {}, "id": "t2"}, "negotiation")

    check(q.ok("query-version") == g["version"], "query-version is the greeting's version")
    names = {c["name"] for c in q.ok("query-commands")}
    for n in ("query-status", "system_reset", "quit", "query-cpus-fast", "query-memory-size-summary",
              V + "vm-list", V + "vm-info", V + "vm-create", V + "vm-start", V + "vm-stop", V + "vm-destroy"):
        check(n in names, f"query-commands lacks {n}")

    vms = q.ok(V + "vm-list")
    check([v["name"] for v in vms] == ["bench", "idle"], f"vm-list {vms}")
    idle = vms[1]
    check(idle["state"] == "running" and idle["reason"] == "booted", f"idle {idle}")
    check(idle["machine"] == "baremetal" and idle["vcpus"] == 1 and idle["memory"] == 16 << 20, f"idle {idle}")
    check(idle["console"] == os.path.join(tmp, "logs", "idle.log"), f"idle console {idle}")
    check(idle["source"].endswith("idle.json"), f"idle source {idle}")

    check(q.ok("query-status", {"vm": "idle"}) == {"running": True, "status": "running", V + "state": "running"},
          "query-status idle")
    r = q.execute("query-status")
    check("name one with argument 'vm'" in r["error"]["desc"], f"query-status without vm among 2: {r}")
    end = time.monotonic() + 10
    while not q.ok("query-cpus-fast", {"vm": "idle"}) and time.monotonic() < end:
        time.sleep(0.05)
    cpus = q.ok("query-cpus-fast", {"vm": "idle"})
    check(len(cpus) == 1 and cpus[0]["cpu-index"] == 0 and "node-id" in cpus[0]["props"], f"cpus {cpus}")
    check(q.ok("query-memory-size-summary", {"vm": "idle"}) == {"base-memory": 16 << 20}, "memory summary")
    check(q.ok("system_reset", {"vm": "idle"}) == {}, "system_reset")
    check(state(q, "idle")[0] == "running", "idle after reset")

    # A VM made through the socket: create, events, stop, start, destroy.
    definition = {"name": "extra", "machine": "baremetal", "kernel": "idle.elf", "memory": "16M",
                  "console": {"log": "../logs/extra.log"}}
    info = q.ok(V + "vm-create", {"definition": definition})
    check(info["state"] == "running", f"created {info}")
    q.wait_event(lambda e: e["event"] == V + "VM_STATE" and e["data"] == {"vm": "extra", "state": "running",
                                                                          "reason": "booted"})
    check(q.ok(V + "vm-stop", {"vm": "extra"}) == {}, "vm-stop")
    e = q.wait_event(lambda e: e["event"] == V + "VM_STATE" and e["data"]["vm"] == "extra"
                     and e["data"]["state"] == "shutoff")
    check(e["data"]["reason"] == "destroyed" and e["data"]["exit-status"] == 0, f"stop event {e}")
    check(set(e["timestamp"]) == {"seconds", "microseconds"} and e["timestamp"]["seconds"] > 1e9, f"timestamp {e}")
    check(q.ok(V + "vm-start", {"vm": "extra"}) == {}, "vm-start")
    check(state(q, "extra")[0] == "running", "extra restarted")
    r = q.execute(V + "vm-destroy", {"vm": "extra"})
    check("stop it first" in r["error"]["desc"], f"destroy a running VM: {r}")
    q.ok(V + "vm-stop", {"vm": "extra"})
    wait_state(q, "extra", "shutoff")
    check(q.ok(V + "vm-destroy", {"vm": "extra"}) == {}, "vm-destroy")
    check([v["name"] for v in q.ok(V + "vm-list")] == ["bench", "idle"], "extra gone")

    # Errors, each leaving the connection usable.
    for req, cls, text in [
        ({"execute": "no-such"}, "CommandNotFound", "has not been found"),
        ({"execute": "query-status", "arguments": {"vm": 7}}, "GenericError", "Invalid parameter type"),
        ({"execute": "query-status", "arguments": {"vm": "ghost"}}, "GenericError", "No VM named 'ghost'"),
        ({"execute": V + "vm-start", "arguments": {}}, "GenericError", "Parameter 'vm' is missing"),
        ({"execute": V + "vm-create", "arguments": {"definition": {"name": "x", "kernel": "k", "smp": "four"}}},
         "GenericError", 'field "smp"'),
        ({"execute": "cont", "arguments": {"vm": "idle"}}, "GenericError", "VM 'idle' is not paused"),
    ]:
        req["id"] = "err"
        q.send_raw(json.dumps(req))
        r = q.reply("err")
        check(r.get("error", {}).get("class") == cls and text in r["error"]["desc"], f"{req}: {r}")
    q.send_raw(b'{"execute": }\n')
    r = q.read()
    check("JSON parse error" in r["error"]["desc"] and "id" not in r, f"parse error {r}")
    check(q.ok("query-status", {"vm": "idle"})["running"], "usable after errors")
    q.close()


def run_cli(a, d, *args):
    return subprocess.run([a.disco, *args, "--socket", d.sock_path], capture_output=True, text=True, timeout=60)


def case_cli(a, d, tmp):
    r = run_cli(a, d, "list")
    check(r.returncode == 0, f"disco list: {r.returncode} {r.stderr}")
    lines = r.stdout.splitlines()
    check(lines[0].split() == ["Name", "State", "vCPUs", "Memory", "Console"], f"list header {lines}")
    check(any(line.split()[:2] == ["idle", "running"] for line in lines[2:]), f"list rows {lines}")
    r = run_cli(a, d, "list", "--json")
    check(r.returncode == 0 and [v["name"] for v in json.loads(r.stdout)] == ["bench", "idle"], f"list --json {r}")
    r = run_cli(a, d, "status", "idle")
    check(r.returncode == 0 and "State:" in r.stdout and "running (booted)" in r.stdout, f"status {r.stdout}")
    r = run_cli(a, d, "status", "idle", "--json")
    check(r.returncode == 0 and json.loads(r.stdout)["state"] == "running", f"status --json {r.stdout}")
    r = run_cli(a, d, "status", "ghost")
    check(r.returncode == 1 and "No VM named 'ghost'" in r.stderr, f"status ghost: {r.returncode} {r.stderr}")
    r = run_cli(a, d, "stop", "idle")
    check(r.returncode == 0 and "VM idle stopped: shut off" in r.stdout, f"stop: {r.returncode} {r.stdout} {r.stderr}")
    r = run_cli(a, d, "stop", "idle")
    check(r.returncode == 1 and "not running" in r.stderr, f"stop again: {r.stderr}")
    r = run_cli(a, d, "start", "idle", "--json")
    check(r.returncode == 0 and json.loads(r.stdout)["state"] == "running", f"start: {r.stdout} {r.stderr}")
    r = subprocess.run([a.disco, "list", "--socket", os.path.join(tmp, "nowhere.sock")], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 1 and "cannot connect" in r.stderr, f"list without a monitor: {r.stderr}")


def hostile_requests(rng, n):
    """n requests a client should never send, as bytes; each is followed by a reset on the wire."""
    vm_create = V + "vm-create"
    fixed = [
        b'{"execute": "query-st',                                      # truncated
        b'{"execute": "query-status", "arguments": {"vm": ',           # truncated
        b'{"execute": ',
        b'}}}]]]',
        b'"just a string"\n',
        b'12345678901234567890123456789\n',
        b'{"execute": "query-status", "arguments": {"vm": 5}}',
        b'{"execute": "query-status", "arguments": {"vm": null}}',
        b'{"execute": "query-status", "arguments": {"vm": {"x": [1]}}}',
        b'{"execute": "query-status", "arguments": "vm"}',
        b'{"execute": 1}',
        b'{"execute": ["query-status"]}',
        b'{"execute": "query-status", "arguments": {"vm": "ghost"}}',
        b'{"execute": "__com.disco-project_vm-stop", "arguments": {"vm": "ghost"}}',
        b'{"execute": "__com.disco-project_vm-destroy", "arguments": {"vm": "idle"}}',  # running: refused
        b'{"execute": "__com.disco-project_vm-start", "arguments": {"vm": "idle"}}',    # running: refused
        b'{"execute": "' + vm_create.encode() + b'", "arguments": {"definition": [1]}}',
        b'{"execute": "' + vm_create.encode() + b'", "arguments": {"definition": {"name": 5}}}',
        b'{"execute": "' + vm_create.encode() + b'", "arguments": {"definition": {"name": "idle", "kernel": "x"}}}',
        b'{"execute": "' + vm_create.encode() + b'", "arguments": {"definition": {"name": "n", "kernel": "k", "smp": -1}}}',
        b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}',
        b'{"execute": "system_reset", "arguments": {"vm": "idle", "extra": 1}}',
        b'{"execute": "query-status", "exec-oob": "x"}',
        b'{"execute": "query-status", "id": 1e999999}',
        b'{"execute": "query-status", "execute": 3}',
        b'{"execute": "\xff\xfe\xfd"}',
        b'{"execute": "q\x00uery-status"}',
        b'{"execute": "\\ud800"}',
        b'[' * 5000 + b']' * 5000,                                     # deep nesting
        b'{"a":' * 2000 + b'1' + b'}' * 2000,
        b'\xef\xbb\xbf{"execute": "query-status"}',                   # a BOM
        b'{"execute": "no-such-command-' + b'x' * 1000 + b'"}',
    ]
    oversized = b'{"execute": "query-status", "arguments": {"vm": "' + b'A' * 70000 + b'"}}'
    out = []
    for i in range(n):
        kind = rng.random()
        if i % 100 == 0:
            out.append(oversized)
        elif kind < 0.6:
            out.append(rng.choice(fixed))
        elif kind < 0.8:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))  # binary garbage
        else:
            good = rng.choice(fixed)
            cut = rng.randrange(1, len(good) + 1)
            out.append(good[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 20))))
    return out


def hammer(path, requests, results, index):
    """Sends the requests, each followed by a reset and a sentinel every 50, and checks the replies."""
    try:
        q = Qmp(path, timeout=30)
        for start in range(0, len(requests), 50):
            batch = requests[start:start + 50]
            # \x1b abandons whatever the framer holds (a truncated message); a newline ends stray text.
            q.send_raw(b"".join(r + b"\x1b\n" for r in batch))
            sentinel = f"sentinel-{index}-{start}"
            q.send_raw(json.dumps({"execute": "query-status", "arguments": {"vm": "idle"}, "id": sentinel}))
            while True:
                msg = q.read()
                if "event" in msg:
                    continue
                if msg.get("id") == sentinel:
                    if msg.get("return", {}).get("status") != "running":
                        raise Failure(f"idle not running mid-barrage: {msg}")
                    break
                if "error" not in msg:
                    raise Failure(f"a hostile request got a success reply: {msg}")
        q.close()
        results[index] = None
    except Exception as e:  # reported by the main thread
        results[index] = f"{type(e).__name__}: {e}"


def case_hostile(a, d, tmp):
    rng = random.Random(0xD15C0)
    requests = hostile_requests(rng, 10000)
    # Meanwhile the bench guest is run again and again on a connection of its own.
    stop_bench = threading.Event()
    bench_runs = []

    def rerun_bench():
        q = Qmp(d.sock_path, timeout=30)
        while not stop_bench.is_set():
            st = state(q, "bench")
            if st[0] == "shutoff":
                bench_runs.append(st)
                q.ok(V + "vm-start", {"vm": "bench"})
            time.sleep(0.1)
        q.close()

    # Its first run (since the daemon started) is over by now or soon: start the one the barrage overlaps.
    q = Qmp(d.sock_path, timeout=30)
    wait_state(q, "bench", "shutoff", timeout=120)
    bench_runs.append(state(q, "bench"))
    q.ok(V + "vm-start", {"vm": "bench"})
    q.close()
    bench_thread = threading.Thread(target=rerun_bench)
    bench_thread.start()
    results = [None] * 4
    threads = [threading.Thread(target=hammer, args=(d.sock_path, requests[i::4], results, i)) for i in range(4)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    elapsed = time.monotonic() - start
    stop_bench.set()
    bench_thread.join(timeout=60)
    for i, r in enumerate(results):
        check(r is None, f"hostile connection {i}: {r}")
    check(d.alive(), "the daemon died under hostile requests")
    q = Qmp(d.sock_path)
    check(q.ok("query-status", {"vm": "idle"})["status"] == "running", "idle stopped running")
    check([v["name"] for v in q.ok(V + "vm-list")] == ["bench", "idle"], "the VMs changed")
    wait_state(q, "bench", "shutoff", timeout=120)
    q.close()
    check(all(s == ("shutoff", "shutdown") for s in bench_runs), f"a bench run did not end well: {bench_runs}")
    with open(os.path.join(tmp, "logs", "bench.log"), errors="replace") as f:
        sums = [line for line in f.read().splitlines() if line.startswith("bench: checksum")]
    check(len(sums) >= 2 and len(set(sums)) == 1, f"bench checksums {sums}")
    print(f"test_qmp: 10000 hostile requests in {elapsed:.1f} s on 4 connections; {len(sums)} bench runs in "
          f"all (one or more overlapping them), each with {sums[0].split()[-1]}")


def case_uid(a, d, tmp):
    if os.geteuid() != 0:
        print("test_qmp: SKIP the disallowed-uid case: it needs root to drop to another uid")
        return
    nobody = 65534

    def as_child(gid, groups):
        """Connects as uid nobody with this primary gid and supplementary groups: 'greeted', 'closed' or an error."""
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rd)
            try:
                os.setgroups(groups)
                os.setgid(gid)
                os.setuid(nobody)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(10)
                s.connect(d.sock_path)
                data = s.recv(4096)
                out = "greeted" if b'"QMP"' in data else "closed" if not data else "other"
            except OSError as e:
                out = f"error {e.errno}"
            os.write(wr, out.encode())
            os._exit(0)
        os.close(wr)
        out = os.read(rd, 100).decode()
        os.close(rd)
        os.waitpid(pid, 0)
        return out

    # The file system lets the group in (folder 0750, socket 0660): SO_PEERCRED decides.
    got = as_child(nobody, [SOCKET_GROUP])
    check(got == "closed", f"uid {nobody} (socket group only as a supplementary group) was not refused: {got}")
    check(f"refused a connection from uid {nobody} gid {nobody}" in d.log(), "no log line for the refusal")
    got = as_child(SOCKET_GROUP, [])
    check(got == "greeted", f"a member of the socket's group (primary gid) was refused: {got}")
    # Without the group even the file system says no.
    got = as_child(nobody, [])
    check(got.startswith("error"), f"uid {nobody} outside the group reached the socket: {got}")


def case_quit(a, d, notify):
    q = Qmp(d.sock_path)
    check(q.ok("quit") == {}, "quit")
    e = q.wait_event(lambda e: e["event"] == "SHUTDOWN")
    check(e["data"] == {"guest": False, "reason": "host-qmp-quit"}, f"SHUTDOWN {e}")
    q.wait_event(lambda e: e["event"] == V + "VM_STATE" and e["data"]["vm"] == "idle" and
                 e["data"]["state"] == "shutoff")
    try:
        rc = d.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise Failure("the daemon did not exit within 30 s of quit")
    check(rc == 0, f"daemon exit status {rc} after quit")
    check(notify.wait_for("STOPPING=1", 5), f"no STOPPING=1: {notify.messages}")
    check(not os.path.exists(d.sock_path), "the socket was left behind")
    check("quit: stopping every VM" in d.log(), "no stop line")


def case_sigterm(a, tmp):
    cfg = os.path.join(tmp, "empty")
    os.mkdir(cfg)
    notify = Notify(os.path.join(tmp, "notify2"))
    d = Daemon(a.disco, cfg, os.path.join(tmp, "run2", "qmp.sock"), notify)
    try:
        check(notify.wait_for("READY=1", 30, d), f"no READY=1 from an empty daemon: {d.log()}")
        check(any("0 of 0 VMs running" in m for m in notify.messages), f"STATUS {notify.messages}")
        q = Qmp(d.sock_path)
        check(q.ok(V + "vm-list") == [], "empty daemon lists VMs")
        q.close()
        d.proc.send_signal(signal.SIGTERM)
        check(d.proc.wait(timeout=30) == 0, "SIGTERM exit status")
        check("SIGTERM: stopping every VM" in d.log(), f"no SIGTERM line: {d.log()}")
    finally:
        d.kill()



def page_of(hot, gpa):
    return next((p for p in hot["pages"] if p["gpa"] == gpa), None)


def frames_on(q, node):
    return q.ok(V + "numa", {"vm": "t"})["vms"][0]["frames_per_node"][node]


def case_run_numa(a, tmp):
    """`disco run --numa-sim 2 --vm FILE --control SOCK` with the toucher guest: the NUMA and memory
    commands (configs/control-schema.md "NUMA and memory"), their events and errors, and the
    `disco stats` / `disco numa` clients, then quit and the run's --stats document."""
    work = os.path.join(tmp, "numa")
    os.mkdir(work)
    with open(os.path.join(work, "toucher.elf"), "wb") as f:
        f.write(toucher_elf())
    with open(os.path.join(work, "t.json"), "w") as f:
        json.dump({"name": "t", "machine": "virt", "kernel": "toucher.elf", "memory": "64M",
                   "console": {"log": "t.log"}}, f)
    sock = os.path.join(work, "ctl.sock")
    stats_path = os.path.join(work, "stats.json")
    log_path = os.path.join(work, "run.stderr")
    log = open(log_path, "w+")
    proc = subprocess.Popen([a.disco, "run", "--numa-sim", "2", "--vm", os.path.join(work, "t.json"),
                             "--control", sock, "--stats", stats_path], stdout=log, stderr=log)

    def run_log():
        log.flush()
        with open(log_path, errors="replace") as f:
            return f.read()

    def cli(*args):
        return subprocess.run([a.disco, *args, "--socket", sock], capture_output=True, text=True, timeout=60)

    try:
        eventually(lambda: os.path.exists(sock) or proc.poll() is not None, "the control socket")
        check(proc.poll() is None, f"disco run ended at once:\n{run_log()}")
        q = Qmp(sock)
        names = {c["name"] for c in q.ok("query-commands")}
        for n in ("hot-pages", "page-migrate", "page-replicate", "page-collapse", "numa", "memory", "vcpu-pin"):
            check(V + n in names, f"query-commands lacks {V + n}")

        # hot-pages: the guest's stored page, counted and written.
        hot = eventually(lambda: (lambda h: h if (page_of(h, TOUCHED_STORE) or {}).get("written") else None)(
            q.ok(V + "hot-pages", {"vm": "t"})), "hot-pages showing the stored page written")
        check(hot["nodes"] == 2 and hot["simulated"] is True, f"hot-pages nodes {hot}")
        check([v["name"] for v in hot["vms"]] == ["t"], f"hot-pages vms {hot['vms']}")
        totals = [p["total"] for p in hot["pages"]]
        check(totals == sorted(totals, reverse=True) and totals[0] >= 1, f"not hottest first: {totals}")
        for p in hot["pages"]:
            check(p["vm"] == "t" and len(p["counts"]) == 2 and sum(p["counts"]) == p["total"], f"page {p}")
        check(hot["accesses"]["local"] + hot["accesses"]["remote"] >= sum(totals), f"accesses {hot}")
        check(len(q.ok(V + "hot-pages", {"limit": 1})["pages"]) == 1, "hot-pages limit 1")

        # Migrate the hottest page to the other node: the reply, the event, numa and hot-pages agree.
        hottest = hot["pages"][0]
        gpa, home = hottest["gpa"], hottest["home"]
        other = 1 - home
        before = frames_on(q, other)
        check(q.ok(V + "page-migrate", {"vm": "t", "gpa": gpa, "node": other}) == {"node": other}, "page-migrate")
        e = q.wait_event(lambda e: e["event"] == V + "PAGE_MIGRATED")
        check(e["data"] == {"vm": "t", "gpa": gpa, "from": home, "to": other}, f"PAGE_MIGRATED {e}")
        check(frames_on(q, other) == before + 1, f"numa: node {other} did not gain the page's frame")
        moved = eventually(lambda: page_of(q.ok(V + "hot-pages", {"vm": "t", "limit": 4096}), gpa),
                           f"hot-pages showing {gpa:#x} again")
        check(moved["home"] == other, f"hot-pages: {gpa:#x} still at home {moved['home']}, not {other}")
        r = q.execute(V + "page-migrate", {"vm": "t", "gpa": gpa, "node": other})
        check("already" in r.get("error", {}).get("desc", ""), f"migrate to where it is: {r}")

        # Replicate the page the guest only reads, then collapse it.
        frames = sum(q.ok(V + "numa", {"vm": "t"})["vms"][0]["frames_per_node"])
        check(q.ok(V + "page-replicate", {"vm": "t", "gpa": TOUCHED_LOAD}) == {"nodes": [0, 1]}, "page-replicate")
        e = q.wait_event(lambda e: e["event"] == V + "PAGE_REPLICATED")
        check(e["data"] == {"vm": "t", "gpa": TOUCHED_LOAD, "nodes": [0, 1]}, f"PAGE_REPLICATED {e}")
        check(sum(q.ok(V + "numa", {"vm": "t"})["vms"][0]["frames_per_node"]) == frames + 1, "a replica's frame")
        rep = eventually(lambda: page_of(q.ok(V + "hot-pages", {"vm": "t", "limit": 4096}), TOUCHED_LOAD),
                         "hot-pages showing the replicated page")
        check(rep["state"] == "replicated", f"replicated page {rep}")
        check(q.ok(V + "page-collapse", {"vm": "t", "gpa": TOUCHED_LOAD}) == {}, "page-collapse")
        e = q.wait_event(lambda e: e["event"] == V + "PAGE_COLLAPSED")
        check(e["data"] == {"vm": "t", "gpa": TOUCHED_LOAD}, f"PAGE_COLLAPSED {e}")
        check(sum(q.ok(V + "numa", {"vm": "t"})["vms"][0]["frames_per_node"]) == frames, "collapse freed a frame")

        # Errors, each a GenericError that leaves the session usable.
        for cmd, args, text in [
            ("page-migrate", {"vm": "ghost", "gpa": gpa, "node": 0}, "No VM named 'ghost'"),
            ("hot-pages", {"vm": "ghost"}, "No VM named 'ghost'"),
            ("page-migrate", {"vm": "t", "gpa": TOUCHED_STORE + 8, "node": 0}, "not page-aligned"),
            ("page-migrate", {"vm": "t", "gpa": TOUCHED_STORE, "node": 2}, "no node 2"),
            ("page-migrate", {"vm": "t", "gpa": 0x1F020000, "node": 0}, "is not RAM"),
            ("page-collapse", {"vm": "t", "gpa": TOUCHED_LOAD}, "no replicas"),
            ("hot-pages", {"limit": 0}, "between 1 and 4096"),
            ("vcpu-pin", {"vm": "t", "vcpu": 1, "node": 0}, "no vCPU 1"),
        ]:
            r = q.execute(V + cmd, args)
            check(r.get("error", {}).get("class") == "GenericError" and text in r["error"]["desc"],
                  f"{cmd} {args}: {r}")
            check(q.ok("query-version")["package"].startswith("disco"), f"usable after {cmd} {args}")

        mem = q.ok(V + "memory")
        check(mem["page_size"] == 4096 and mem["machine_frames_in_use"] >= 16384, f"memory {mem}")
        check([(v["name"], v["guest_pages"]) for v in mem["vms"]] == [("t", 16384)], f"memory vms {mem['vms']}")

        check(q.ok(V + "numa", {"vm": "t"})["vms"][0]["vcpu_nodes"] == [0], "vCPU 0's first node")
        check(q.ok(V + "vcpu-pin", {"vm": "t", "vcpu": 0, "node": 1}) == {}, "vcpu-pin")
        check(q.ok(V + "numa", {"vm": "t"})["vms"][0]["vcpu_nodes"] == [1], "numa after vcpu-pin")

        # The clients of the same socket.
        r = cli("stats", "--json")
        check(r.returncode == 0 and [v["name"] for v in json.loads(r.stdout)["vms"]] == ["t"], f"stats --json {r}")
        r = cli("stats")
        check(r.returncode == 0 and any(line.split()[:2] == ["t", "16384"] for line in r.stdout.splitlines()),
              f"stats: {r.stdout} {r.stderr}")
        r = cli("numa", "--json")
        check(r.returncode == 0 and json.loads(r.stdout)["vms"][0]["vcpu_nodes"] == [1], f"numa --json {r}")
        r = cli("numa", "t")
        check(r.returncode == 0 and "Frames on node 1" in r.stdout, f"numa t: {r.stdout} {r.stderr}")
        r = cli("numa", "hot", "t", "--limit", "4096")
        rows = [line.split() for line in r.stdout.splitlines()]
        check(r.returncode == 0 and any(row[:3] == ["t", hex(gpa), str(other)] for row in rows),
              f"numa hot: {r.stdout} {r.stderr}")
        r = cli("numa", "migrate", "t", hex(gpa), str(home))
        check(r.returncode == 0 and f"is on node {home} now" in r.stdout, f"numa migrate: {r.stdout} {r.stderr}")
        check(frames_on(q, other) == before, "the CLI's migrate did not move the page back")
        r = cli("numa", "migrate", "t", "0x100008", "0")
        check(r.returncode == 1 and "not page-aligned" in r.stderr, f"numa migrate unaligned: {r.stderr}")
        r = cli("numa", "migrate", "t", "nowhere", "0")
        check(r.returncode == 2 and "is not an address" in r.stderr, f"numa migrate bad GPA: {r.stderr}")
        r = cli("numa", "hot", "ghost")
        check(r.returncode == 1 and "No VM named 'ghost'" in r.stderr, f"numa hot ghost: {r.stderr}")

        check(q.ok("quit") == {}, "quit")
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise Failure("disco run did not end within 30 s of quit")
        check(rc == 0, f"disco run exit status {rc} after quit:\n{run_log()}")
        with open(stats_path) as f:
            numa = json.load(f)["numa"]
        check(numa["local_accesses"] > 0 and 0 < numa["local_ratio"] < 1 and numa["remote_accesses"] > 0,
              f"--stats numa {numa}")
    except (Failure, QmpError) as e:
        raise Failure(f"{e}\n--- disco run log (end)\n{run_log()[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--disco", required=True)
    p.add_argument("--bench", required=True)
    a = p.parse_args()
    if not os.path.exists(a.bench):
        print(f"test_qmp: {a.bench} is not built; skipped")
        return 77
    with tempfile.TemporaryDirectory(prefix="disco-qmp-") as tmp:
        os.chmod(tmp, 0o755)  # the uid case's child must reach the socket's own folder
        cfg = os.path.join(tmp, "vms")
        os.makedirs(cfg)
        os.makedirs(os.path.join(tmp, "logs"))
        with open(os.path.join(cfg, "idle.elf"), "wb") as f:
            f.write(idle_elf())
        vms = {
            "idle": {"name": "idle", "machine": "baremetal", "kernel": "idle.elf", "memory": "16M",
                     "console": {"log": "../logs/idle.log"}},
            "bench": {"name": "bench", "machine": "baremetal", "kernel": os.path.abspath(a.bench), "memory": "16M",
                      "console": {"log": "../logs/bench.log"}},
            "bad": {"name": "bad", "machine": "baremetal", "kernel": "idle.elf", "memroy": "1G"},
        }
        for name, vm in vms.items():
            with open(os.path.join(cfg, f"{name}.json"), "w") as f:
                json.dump(vm, f)
        notify = Notify(os.path.join(tmp, "notify"))
        d = Daemon(a.disco, cfg, os.path.join(tmp, "run", "qmp.sock"), notify,
                   extra=["--socket-group", str(SOCKET_GROUP)])
        try:
            check(notify.wait_for("READY=1", 60, d), f"no READY=1 within 60 s:\n{d.log()}")
            ready = next(m for m in notify.messages if "READY=1" in m)
            check("STATUS=2 of 2 VMs running" in ready and "1 config file rejected" in ready, f"READY {ready!r}")
            check('bad.json: field "memroy": unknown field' in d.log() and "(file skipped)" in d.log(),
                  f"the bad file was not reported:\n{d.log()}")
            st = os.stat(d.sock_path)
            check(st.st_mode & 0o777 == 0o660 and st.st_gid == SOCKET_GROUP, f"socket mode {oct(st.st_mode)}")
            check(os.stat(os.path.dirname(d.sock_path)).st_mode & 0o777 == 0o750, "socket folder mode")
            for case in (case_commands, case_cli, case_hostile, case_uid):
                case(a, d, tmp)
                check(d.alive(), f"the daemon died in {case.__name__}:\n{d.log()[-3000:]}")
                print(f"test_qmp: {case.__name__} passed")
            case_quit(a, d, notify)
            print("test_qmp: case_quit passed")
            case_sigterm(a, tmp)
            print("test_qmp: case_sigterm passed")
            case_run_numa(a, tmp)
            print("test_qmp: case_run_numa passed")
        except (Failure, QmpError, OSError, subprocess.TimeoutExpired) as e:
            print(f"test_qmp: FAILED: {e}\n--- daemon log (end)\n{d.log()[-4000:]}")
            return 1
        finally:
            d.kill()
    print("test_qmp: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
