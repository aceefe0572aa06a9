"""`lbgen simulate` against the real data path (issue #11 item 5): five cases, each run by
`lbgen lab` (real nginx, the kernel's kube-proxy rules) with simulate's prediction for the same
spec and workload beside it; the measured max/mean and CV must fall inside the predicted
5-95 % band.

A correct simulator still misses its own 5-95 % band with one measurement in ten per figure
(up to one in five for a case, with two figures), so a case that misses is measured again, up
to three measurements in all, and fails only when none falls inside: a false failure is then
below 1 in 100 per case (five cases in a CI run), while a simulator whose band does not cover
what the lab does keeps failing. The bands are never widened here; every miss is reported.

These run in CI as root (skipped only when not root); each lab run is 3 s of load. With
LBGEN_AGREEMENT_TABLE=FILE each case appends its row of the README's table to FILE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DURATION = "3s"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                       reason="lbgen lab needs Linux and root"),
]


def _lab(spec: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
    proc = subprocess.run([sys.executable, "-m", "lbgen", "lab", str(spec), "--format", "json",
                           "--duration", DURATION, "--client", "builtin", *args],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _spec(tmp_path: Path, name: str, *edits: tuple[str, str], source: str = "seed-as-advised.yaml") -> Path:
    text = (EXAMPLES / source).read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    out = tmp_path / f"{name}.yaml"
    out.write_text(text)
    return out


NO_AFFINITY = ("session_affinity: ClientIP", "session_affinity: None")
NO_POOL = ("upstream_keepalive: {idle_timeout: 10s}", "upstream_keepalive: {connections: 0}")


def _misses(data: dict[str, Any]) -> list[str]:
    measured, bands = data["measured"], data["simulated"]
    out = []
    for key in ("max_mean", "cv"):
        band = bands[key]
        # The lab rounds its figures to 4 decimals; a band that is a single value (every
        # trial alike) is met within that rounding.
        if not band["p5"] - 5e-5 <= measured[key] <= band["p95"] + 5e-5:
            out.append(f"{key} {measured[key]} outside [{band['p5']}, {band['p95']}] (median {band['median']})")
    return out


def _record(case: str, data: dict[str, Any], runs: int) -> None:
    table = os.environ.get("LBGEN_AGREEMENT_TABLE")
    if not table:
        return
    m, s = data["measured"], data["simulated"]

    def band(key: str) -> str:
        return f"{s[key]['median']:.3f} [{s[key]['p5']:.3f}–{s[key]['p95']:.3f}]"

    with Path(table).open("a", encoding="utf-8") as out:
        out.write(f"| {case} | {m['requests']} | {m['connections_opened'].get('pods', 0)} | {band('max_mean')} | "
                  f"{m['max_mean']:.3f} | {band('cv')} | {m['cv']:.3f} | {runs} |\n")


RUNS = 3
"""Measurements a case gets before a miss counts (see the module docstring)."""


def _agrees(case: str, spec: Path, *args: str) -> dict[str, Any]:
    """Measure and compare; measure again on a miss, up to RUNS measurements in all."""
    misses: dict[str, list[str]] = {}
    for run in range(1, RUNS + 1):
        data = _lab(spec, *args)
        assert data["measured"]["errors"] == {}, data["measured"]
        missed = _misses(data)
        if not missed:
            _record(case, data, run)
            return data
        misses[f"run {run}"] = missed
    raise AssertionError({**misses, "per pod": [p["requests"] for p in data["measured"]["per_pod"]],
                          "note": data["simulate_note"]})


def test_pooled_cluster_ip_with_many_client_connections(tmp_path: Path) -> None:
    # Kong pools connections to the ClusterIP; 100 client connections keep about 100 of them
    # busy, and kube-proxy's choice per connection spreads them over the 8 pods unevenly.
    data = _agrees("pooled ClusterIP, 100 client connections",
                   _spec(tmp_path, "pooled-many", NO_AFFINITY), "--connections", "100")
    assert data["simulated"]["max_mean"]["median"] > 1.15  # the prediction is a skew, not a uniform spread


def test_pooled_cluster_ip_with_few_client_connections(tmp_path: Path) -> None:
    # 4 client connections: a handful of pooled connections decide where every request goes.
    data = _agrees("pooled ClusterIP, 4 client connections",
                   _spec(tmp_path, "pooled-few", NO_AFFINITY), "--connections", "4")
    assert data["simulated"]["max_mean"]["median"] > 1.8
    assert data["measured"]["pods_used"] < 8


def test_no_pooling(tmp_path: Path) -> None:
    # Kong opens a connection per request: kube-proxy chooses per request, close to uniform.
    data = _agrees("no pooling (Kong `connections: 0`)", _spec(tmp_path, "no-pool", NO_AFFINITY, NO_POOL))
    assert data["measured"]["connections_opened"]["pods"] >= data["measured"]["requests"]
    assert data["simulated"]["max_mean"]["p95"] < 1.2


def test_client_ip_affinity_behind_the_gateway(tmp_path: Path) -> None:
    # The advised spec as is: sessionAffinity ClientIP sees only Kong's two addresses.
    data = _agrees("ClientIP affinity behind the gateway (seed-as-advised)", EXAMPLES / "seed-as-advised.yaml")
    assert data["measured"]["pods_used"] <= 2
    assert data["simulated"]["pods_used"]["p95"] <= 2


def test_pod_endpoints(tmp_path: Path) -> None:
    # The fixed spec: Kong balances each request over the pod IPs of the headless Service.
    data = _agrees("pod endpoints (seed-fixed)", EXAMPLES / "seed-fixed.yaml")
    assert data["kube_proxy"]["mode"] is None and data["measured"]["pods_used"] == 8
    assert data["simulated"]["max_mean"]["p95"] < 1.05
