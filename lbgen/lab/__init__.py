"""`lbgen lab`: run the rendered path on real components in a private network namespace.

`setup.build` turns a spec, its plan and its rendered files into a `LabSetup` (addresses,
processes, kube-proxy rules, rewrites, stand-ins; `--dry-run` prints it); `runner.run`
executes it and always cleans up; `measure` summarises what the pods and the load client
counted. Real: nginx (the rendered edge and L4 configs), the kernel's iptables/nftables
with kube-proxy's chains. Stand-ins: Kong (an nginx http proxy configured from the plan's
Kong values), the pods (asyncio servers with the spec's app idle timeout).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

SCENARIOS = ("steady", "idle-race")


@dataclass(frozen=True)
class Measured:
    pods: list[dict[str, Any]]
    """Per pod: name, requests, connections (sorted by requests, highest first)."""
    max_mean: float
    min_mean: float
    cv: float
    pods_used: int
    requests: int
    errors: dict[str, int]
    latency_ms: dict[str, float | None]
    rounds: list[dict[str, Any]]
    connections_opened: dict[str, int]
    """New TCP connections each hop accepted (SYNs counted in the namespace), by hop name."""


def measure(load: dict[str, Any], stats: list[dict[str, Any]]) -> Measured:
    counts = [s["requests"] for s in stats]
    mean = statistics.fmean(counts) if counts else 0.0
    pods = sorted(({"pod": s["pod"], "requests": s["requests"], "connections": s["connections"],
                    "resets": s["resets"]} for s in stats), key=lambda p: (-p["requests"], p["pod"]))
    return Measured(
        pods=pods,
        max_mean=max(counts) / mean if mean else 0.0,
        min_mean=min(counts) / mean if mean else 0.0,
        cv=statistics.pstdev(counts) / mean if mean else 0.0,
        pods_used=sum(1 for c in counts if c),
        requests=load["requests"],
        errors=load["errors"],
        latency_ms=load["latency_ms"],
        rounds=load["rounds"],
        connections_opened=load.get("connections_opened", {}),
    )
