#!/usr/bin/env python3
"""Print `lbgen audit`'s time on a large path against gixy-ng's on the nginx file alone.

Run from the repository root: `python3 scripts/bench_audit.py` (`--quick`: one run each).
Figures are printed, never asserted (issue #13 item 6: audit of an nginx.conf of 1,000
upstreams × 8 servers plus a kong.yaml of 1,000 services in less time than gixy-ng takes on
the nginx file alone). Both run as a user runs them, cold, in a new process; the figure is
the median wall time of interleaved runs, and the CPU time (user + system) beside it.

The generated path: an edge nginx with one upstream per service, each over the same 8 Kong
nodes (so the edge's 1,000 × 8 servers link to Kong's proxy listener), and a DB-less Kong
with 1,000 services and their routes, each balancing over a Kubernetes Service name.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVICES = 1000
KONG_NODES = 8
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def nginx_conf(services: int) -> str:
    lines = ["worker_processes auto;", "events {}", "http {", "    keepalive_timeout 65;"]
    for s in range(services):
        lines.append(f"    upstream svc{s:04d} {{")
        lines += [f"        server 10.30.0.{11 + k}:8000 max_fails=3 fail_timeout=30s;" for k in range(KONG_NODES)]
        lines += ["        keepalive 32;", "        keepalive_timeout 60s;", "    }"]
    lines += ["    server {", "        listen 80;", "        server_name shop.example.com;"]
    for s in range(services):
        lines += [f"        location /svc{s:04d} {{", f"            proxy_pass http://svc{s:04d};",
                  "            proxy_http_version 1.1;", '            proxy_set_header Connection "";',
                  "            proxy_read_timeout 60s;", "        }"]
    lines += ["    }", "}"]
    return "\n".join(lines) + "\n"


def kong_yaml(services: int) -> str:
    lines = ['_format_version: "3.0"', "services:"]
    for s in range(services):
        lines += [f"  - name: svc{s:04d}", f"    host: svc{s:04d}.upstream", "    port: 80",
                  "    protocol: http", "    read_timeout: 60000", "    routes:",
                  f"      - name: svc{s:04d}", f"        paths: [/svc{s:04d}]"]
    lines.append("upstreams:")
    for s in range(services):
        lines += [f"  - name: svc{s:04d}.upstream", "    targets:",
                  f"      - target: svc{s:04d}.ns{s % 50:02d}.svc.cluster.local:80"]
    return "\n".join(lines) + "\n"


KONG_CONF = """database = off
proxy_listen = 0.0.0.0:8000 reuseport backlog=16384
upstream_keepalive_pool_size = 512
upstream_keepalive_idle_timeout = 60
"""


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, exit code) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    code = subprocess.run(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          check=False).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run each")
    args = parser.parse_args()
    runs = 1 if args.quick else 5
    gixy = shutil.which("gixy") or str(Path(sys.executable).parent / "gixy")
    before_load = _load()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "nginx.conf").write_text(nginx_conf(SERVICES), encoding="utf-8")
        (tmp / "kong.yaml").write_text(kong_yaml(SERVICES), encoding="utf-8")
        (tmp / "kong.conf").write_text(KONG_CONF, encoding="utf-8")
        commands = {
            "lbgen audit (nginx + kong)": [sys.executable, "-m", "lbgen", "audit", "--nginx-http", "nginx.conf",
                                           "--kong", "kong.yaml", "--kong-conf", "kong.conf", "-q"],
            "gixy-ng (nginx only)": [gixy, "nginx.conf"],
        }
        for cmd in commands.values():  # warm: bytecode caches, page cache
            timed(cmd, tmp)
        samples: dict[str, list[tuple[float, float, int]]] = {label: [] for label in commands}
        for _ in range(runs):
            for label, cmd in commands.items():
                samples[label].append(timed(cmd, tmp))
    print(f"audit benchmark: nginx.conf {SERVICES} upstreams x {KONG_NODES} servers, "
          f"kong.yaml {SERVICES} services; median of {runs} run(s)")
    print(f"  load average before / after: {before_load} / {_load()}")
    medians = {}
    cpus = {}
    for label, values in samples.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        codes = sorted({v[2] for v in values})
        medians[label] = wall
        cpus[label] = cpu
        print(f"  {label:28s} {wall:6.2f} s wall  {cpu:6.2f} s CPU  exit {codes}")
    audit_s, gixy_s = medians["lbgen audit (nginx + kong)"], medians["gixy-ng (nginx only)"]
    audit_cpu, gixy_cpu = cpus["lbgen audit (nginx + kong)"], cpus["gixy-ng (nginx only)"]
    print(f"  audit / gixy-ng: {audit_s / gixy_s:.2f}x wall, {audit_cpu / gixy_cpu:.2f}x CPU (target: < 1)")


def _load() -> str:
    """The 1, 5 and 15-minute load averages: the machine is shared, and figures taken under
    load are not comparable with quiet ones."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
