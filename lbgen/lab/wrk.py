"""wrk as the lab's load generator for `steady` runs (`--client wrk`, or `auto` when installed).

One wrk process per instance of the first tier (wrk connects to one host), each with its share
of the connections; a Lua script counts statuses per thread and writes them, with wrk's error
counters and latency percentiles, as JSON. wrk cannot bind source addresses: each process's
connections come from one address (the one the kernel picks), so a hash on the client address
at the first tier sees one client per instance. The result has the built-in client's shape.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

SCRIPT = """\
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do counts[status] = (counts[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(counts) do table.insert(parts, string.format('"%d": %d', status, n)) end
  local e = summary.errors
  local out = io.open("OUT", "w")
  out:write(string.format(
    '{"requests": %d, "statuses": {%s}, "connect": %d, "read": %d, "write": %d, "timeout": %d, '
    .. '"p50_us": %d, "p99_us": %d}\\n',
    summary.requests, table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
  out:close()
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def run(exec_prefix: list[str], entry: tuple[tuple[str, int], ...], path: str, connections: int,
        duration_s: float, run_root: Path) -> dict[str, Any]:
    seconds = max(1, math.ceil(duration_s))
    procs = []
    for index, (address, port) in enumerate(entry):
        share = connections // len(entry) + (1 if index < connections % len(entry) else 0)
        if share == 0:
            continue
        out = run_root / f"wrk-{index}.json"
        script = run_root / f"wrk-{index}.lua"
        script.write_text(SCRIPT.replace("OUT", str(out)))
        argv = [*exec_prefix, "wrk", "-t", str(min(2, share)), "-c", str(share), "-d", f"{seconds}s",
                "--timeout", "5s", "-s", str(script), f"http://{address}:{port}{path}"]
        procs.append((out, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            start_new_session=True)))
    parts = []
    for out, proc in procs:
        _, err = proc.communicate(timeout=seconds + 30)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed: {err.decode(errors='replace')[-1000:]}")
        parts.append(json.loads(out.read_text()))
    statuses: dict[str, int] = {}
    for part in parts:
        for status, n in part["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    errors = {f"status_{s}": n for s, n in statuses.items() if int(s) >= 500}
    for key, name in (("connect", "connect"), ("read", "reset"), ("write", "reset"), ("timeout", "timeout")):
        total = sum(p[key] for p in parts)
        if total:
            errors[name] = errors.get(name, 0) + total
    requests = sum(p["requests"] for p in parts)
    p50 = sum(p["p50_us"] * p["requests"] for p in parts) / requests / 1000 if requests else None
    return {
        "client": "wrk",
        "elapsed_s": float(seconds),
        "requests": requests,
        "statuses": dict(sorted(statuses.items())),
        "errors": dict(sorted(errors.items())),
        "latency_ms": {"p50": None if p50 is None else round(p50, 3),
                       "p99": round(max(p["p99_us"] for p in parts) / 1000, 3) if parts else None},
        "pods_seen": {},
        "rounds": [],
    }
