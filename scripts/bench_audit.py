#!/usr/bin/env python3
"""Print how long `lbgen audit` takes against gixy-ng (issue #13's performance target).

Run from the repository root: `python3 scripts/bench_audit.py` (`--quick`: one run each).

The input: an edge nginx.conf of 1,000 upstreams × 8 servers (each upstream one service, its
servers the 8 Kong nodes, one location per service) and a kong.yaml of 1,000 services (route,
upstream, one ClusterIP target each). Measured: `lbgen audit` of both (a fresh process: parse,
link, load the spec, every rule, locate the findings) against `gixy` on the nginx.conf alone.
Target: audit faster than gixy-ng. Wall and CPU time (user + system: steadier on a shared
machine), medians of interleaved runs; printed, never asserted (a timed test would be flaky on a shared machine).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICES = 1_000
SERVERS = 8


def write_inputs(root: Path) -> None:
    lines = ["events {}", "http {"]
    for u in range(SERVICES):
        lines.append(f"  upstream s{u} {{")
        lines += [f"    server 10.30.0.{s + 1}:8000;" for s in range(SERVERS)]
        lines += ["    keepalive 32;", "    keepalive_timeout 60s;", "  }"]
    lines += ["  server {", "    listen 80;"]
    for u in range(SERVICES):
        lines += [f"    location /s{u} {{", f"      proxy_pass http://s{u};", "      proxy_http_version 1.1;",
                  '      proxy_set_header Connection "";', "    }"]
    lines += ["  }", "}"]
    (root / "nginx.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
    kong = ['_format_version: "3.0"', "services:"]
    for u in range(SERVICES):
        kong += [f"  - name: s{u}", f"    host: s{u}.up", "    port: 80",
                 "    routes:", f"      - name: s{u}", f"        paths: [/s{u}]"]
    kong.append("upstreams:")
    for u in range(SERVICES):
        kong += [f"  - name: s{u}.up", "    algorithm: least-connections",
                 "    targets:", f"      - target: s{u}.shop.svc.cluster.local:80"]
    (root / "kong.yaml").write_text("\n".join(kong) + "\n", encoding="utf-8")


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run per measurement")
    args = parser.parse_args()
    runs = 1 if args.quick else 5
    gixy = shutil.which("gixy") or str(Path(sys.executable).with_name("gixy"))
    audit = [sys.executable, "-m", "lbgen", "audit", "--nginx-http", "nginx.conf", "--kong", "kong.yaml",
             "--assume", "app.preset=uvicorn", "--assume", "kong.instances=10.30.0.1"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_inputs(root)
        audits: list[tuple[float, float]] = []
        gixys: list[tuple[float, float]] = []
        for _ in range(runs):  # interleaved, so that load on a shared machine hits both
            audits.append(timed(audit, root))
            if Path(gixy).exists():
                gixys.append(timed([gixy, "nginx.conf"], root))
    what = f"lbgen audit, nginx.conf of {SERVICES:,} upstreams x {SERVERS} servers + kong.yaml of {SERVICES:,} services"
    wall, cpu = (statistics.median(t[i] for t in audits) for i in (0, 1))
    if not gixys:
        print(f"{what}: {wall:.2f} s wall, {cpu:.2f} s CPU; gixy-ng SKIPPED (not installed)")
        return
    gixy_wall, gixy_cpu = (statistics.median(t[i] for t in gixys) for i in (0, 1))
    print(f"{what}: {wall:.2f} s wall, {cpu:.2f} s CPU; gixy-ng on the nginx.conf alone: {gixy_wall:.2f} s wall, "
          f"{gixy_cpu:.2f} s CPU; ratio {wall / gixy_wall:.2f}x wall, {cpu / gixy_cpu:.2f}x CPU "
          f"(target < 1x; median of {runs})")


if __name__ == "__main__":
    main()
