#!/usr/bin/env python3
"""The Prometheus endpoint end to end (configs/control-schema.md, "Metrics"): `disco run` with a spinning
bare-metal VM and a virt-board VM that touches two pages every 0.1 s and `--metrics unix:PATH`, then `--metrics
tcp:127.0.0.1:PORT`, scraped with hand-written HTTP/1.0 requests:

  - 200 with the 0.0.4 content type; every line is a comment or `name{labels} value` with a value
    that parses; HELP and TYPE once per family, before its samples;
  - per VM: disco_vm_info, disco_vm_state (1 for running), disco_vm_vcpus, and
    disco_vm_instructions_total, which grows between two scrapes for the spinning VM; per node:
    disco_node_frames_in_use and capacity; monitor-wide: disco_monitor_vms == 2;
  - 404 for another path; the unix socket is 0600 and gone after the run ends (SIGTERM, status 0);
  - an address that is not loopback is refused: one line naming it, exit status 2;
  - `disco daemon --metrics unix:PATH` serves its VMs' figures and removes the socket on SIGTERM.

  test_metrics.py --disco PATH
"""
import argparse
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmp_client  # noqa: E402
from tiny_guests import IDLE, SPIN, TOUCHER, elf  # noqa: E402

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def eventually(probe, what, timeout=15):
    return qmp_client.eventually(probe, what, timeout, failure=Failure)


def http_get(connect, path="/metrics"):
    """(status, headers, body) of one HTTP/1.0 GET; connect() returns a connected socket."""
    with connect() as s:
        s.settimeout(10)
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    check(lines[0].startswith("HTTP/1.1 "), f"status line {lines[0]!r}")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    check(int(headers.get("content-length", -1)) == len(body), f"Content-Length {headers} for {len(body)} bytes")
    return int(lines[0].split()[1]), headers, body.decode()


def parse(text):
    """{series: value} of a well-formed exposition, checking HELP/TYPE once per family and first."""
    samples, families, family, typed = {}, set(), None, False
    check(text.endswith("\n"), "the exposition does not end with a line feed")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            family = line.split(" ")[2]
            check(family not in families, f"HELP of {family} twice")
            families.add(family)
            typed = False
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            check(name == family and not typed and kind in ("counter", "gauge"), f"TYPE line {line!r}")
            check(kind != "counter" or name.endswith("_total"), f"counter {name} without _total")
            typed = True
        else:
            m = SAMPLE.match(line)
            check(m and typed and m.group(1) == family, f"sample line {line!r} (family {family})")
            series = m.group(1) + (m.group(2) or "")
            check(series not in samples, f"series {series} twice")
            samples[series] = float(m.group(3))
    return samples


def scrape(connect):
    status, headers, body = http_get(connect)
    check(status == 200, f"GET /metrics: {status} {body[:200]!r}")
    check(headers.get("content-type") == CONTENT_TYPE, f"Content-Type {headers.get('content-type')!r}")
    return parse(body)


def write_vms(tmp):
    paths = []
    for name, machine, memory, words in (("spin", "baremetal", 16, SPIN), ("touch", "virt", 64, TOUCHER)):
        with open(os.path.join(tmp, f"{name}.elf"), "wb") as f:
            f.write(elf(words))
        paths.append(os.path.join(tmp, f"{name}.json"))
        with open(paths[-1], "w") as f:
            json.dump({"name": name, "machine": machine, "kernel": f"{name}.elf", "memory": f"{memory}M",
                       "console": {"log": f"{name}.log"}}, f)
    return paths


def run_and_scrape(a, tmp, address, connect, numa_sim):
    log_path = os.path.join(tmp, "run.log")
    argv = [a.disco, "run", "--numa-sim", str(numa_sim), "--metrics", address]
    for vm in write_vms(tmp):
        argv += ["--vm", vm]
    with open(log_path, "w") as log:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        def ready():
            if p.poll() is not None:
                raise Failure(f"disco run ended with {p.returncode}: {open(log_path).read()}")
            try:
                s = scrape(connect)
            except OSError:
                return None
            # Both vCPUs running, and the toucher's pages in machine memory.
            homes = [s.get(f'disco_vm_vcpu_home_node{{vm="{vm}",vcpu="0"}}') for vm in ("spin", "touch")]
            touched = s.get('disco_vm_guest_pages_used{vm="touch"}', 0) > 0
            return s if None not in homes and touched else None
        first = eventually(ready, f"a scrape of {address} showing the running VMs")
        check(first["disco_monitor_vms"] == 2, "disco_monitor_vms")
        for vm, machine, memory in (("spin", "baremetal", 16), ("touch", "virt", 64)):
            check(first[f'disco_vm_info{{vm="{vm}",machine="{machine}"}}'] == 1, f"disco_vm_info of {vm}")
            check(first[f'disco_vm_state{{vm="{vm}",state="running"}}'] == 1, f"{vm} is running")
            check(first[f'disco_vm_state{{vm="{vm}",state="shutoff"}}'] == 0, f"{vm} is not shut off")
            check(first[f'disco_vm_vcpus{{vm="{vm}"}}'] == 1, f"disco_vm_vcpus of {vm}")
            check(first[f'disco_vm_memory_bytes{{vm="{vm}"}}'] == memory << 20, f"disco_vm_memory_bytes of {vm}")
        in_use = 0
        for n in range(numa_sim):
            node = f'{{node="{n}"}}'
            used, free = first["disco_node_frames_in_use" + node], first["disco_node_frames_free" + node]
            check(used + free <= first["disco_node_frames_capacity" + node], f"node {n}'s frames: {used} + {free}")
            in_use += used
        check(in_use > 0 and in_use == first["disco_machine_frames_in_use"], f"frames in use {in_use}")
        before = first['disco_vm_instructions_total{vm="spin"}']
        later = eventually(lambda: (s := scrape(connect))['disco_vm_instructions_total{vm="spin"}'] > before and s,
                           "the spinning VM's instruction count growing")
        grown = later['disco_vm_instructions_total{vm="spin"}'] - before
        status, _, _ = http_get(connect, "/nothing")
        check(status == 404, f"GET /nothing: {status}")
        print(f"{address}: {len(first)} series; spin retired {grown:.0f} more instructions between scrapes",
              flush=True)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        status = p.wait(timeout=30)
    check(status == 0, f"disco run after SIGTERM: status {status}: {open(log_path).read()}")


def case_unix(a, tmp):
    path = os.path.join(tmp, "metrics.sock")

    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        check(stat.S_IMODE(os.stat(path).st_mode) == 0o600, f"socket mode {oct(os.stat(path).st_mode)}")
        return s
    run_and_scrape(a, tmp, f"unix:{path}", connect, numa_sim=2)
    check(not os.path.exists(path), "the metrics socket is left behind after the run")


def case_tcp(a, tmp):
    with socket.socket() as probe:  # a free loopback port for the run to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run_and_scrape(a, tmp, f"tcp:127.0.0.1:{port}", lambda: socket.create_connection(("127.0.0.1", port)),
                   numa_sim=1)


def case_refused(a, tmp):
    kernel = os.path.join(tmp, "idle.elf")
    with open(kernel, "wb") as f:
        f.write(elf(IDLE))
    for address, why in (("tcp:0.0.0.0:9100", "loopback"), ("http://localhost:9100", "unix:PATH or tcp:HOST:PORT")):
        r = subprocess.run([a.disco, "run", "-M", "baremetal", "--kernel", kernel, "--metrics", address],
                           capture_output=True, text=True, timeout=30)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1 and f"--metrics {address}" in lines[0] and why in lines[0],
              f"--metrics {address}: status {r.returncode}, {r.stderr!r}")
    print("non-loopback and malformed addresses refused with one line, status 2", flush=True)


def case_daemon(a, tmp):
    """`disco daemon --metrics unix:PATH`: its VMs' figures, the socket gone once it exits; a
    non-loopback address refused as `disco run` refuses it."""
    cfg = os.path.join(tmp, "vms")
    os.mkdir(cfg)
    with open(os.path.join(cfg, "idle.elf"), "wb") as f:
        f.write(elf(IDLE))
    with open(os.path.join(cfg, "idle.json"), "w") as f:
        json.dump({"name": "idle", "machine": "baremetal", "kernel": "idle.elf", "memory": "16M",
                   "console": {"log": "idle.log"}}, f)
    daemon = [a.disco, "daemon", "--config-dir", cfg, "--socket", os.path.join(tmp, "run", "qmp.sock"),
              "--machine-memory", "256M"]
    r = subprocess.run(daemon + ["--metrics", "tcp:10.0.0.1:9100"], capture_output=True, text=True, timeout=30)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 2 and len(lines) == 1 and "--metrics tcp:10.0.0.1:9100" in lines[0]
          and "loopback" in lines[0], f"daemon --metrics tcp:10.0.0.1:9100: status {r.returncode}, {r.stderr!r}")
    path = os.path.join(tmp, "metrics.sock")
    log_path = os.path.join(tmp, "daemon.log")
    with open(log_path, "w") as log:
        d = subprocess.Popen(daemon + ["--metrics", f"unix:{path}"], stdin=subprocess.DEVNULL, stdout=log,
                             stderr=log)
    try:
        def ready():
            if d.poll() is not None:
                raise Failure(f"disco daemon ended with {d.returncode}: {open(log_path).read()}")
            return f"metrics at unix:{path}" in open(log_path).read()
        eventually(ready, "the daemon's 'metrics at' line")

        def connect():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        s = scrape(connect)
        check(s['disco_vm_info{vm="idle",machine="baremetal"}'] == 1, "the daemon's VM in disco_vm_info")
        check(s['disco_vm_state{vm="idle",state="running"}'] == 1, "the daemon's VM running")
        check(s["disco_monitor_vms"] == 1, "disco_monitor_vms of the daemon")
    finally:
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
        status = d.wait(timeout=30)
    check(status == 0, f"disco daemon after SIGTERM: status {status}: {open(log_path).read()}")
    check(not os.path.exists(path), "the daemon's metrics socket is left behind")
    print("disco daemon --metrics: served, refused a non-loopback address, removed its socket", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--disco", required=True)
    a = p.parse_args()
    a.disco = os.path.abspath(a.disco)
    try:
        for case in (case_refused, case_unix, case_tcp, case_daemon):
            with tempfile.TemporaryDirectory(prefix="disco-metrics-") as tmp:
                case(a, tmp)
    except (Failure, OSError, subprocess.TimeoutExpired) as e:
        print(f"FAIL: {e}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
