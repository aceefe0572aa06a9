"""`lbgen lab`: run the rendered path on real components in a private network namespace.

`setup.build` turns a spec, its plan and its rendered files into a `LabSetup` (addresses,
processes, kube-proxy rules, rewrites, stand-ins; `--dry-run` prints it); `runner.run`
executes it and always cleans up; `measure` summarises what the pods and the load client
counted. Real: nginx (the rendered edge and L4 configs), the kernel's iptables/nftables
with kube-proxy's chains. Stand-ins: Kong (an nginx http proxy configured from the plan's
Kong values), the pods (asyncio servers with the spec's app idle timeout and, in a rollout,
the shutdown uvicorn does on SIGTERM).
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from typing import Any

SCENARIOS = ("steady", "idle-race", "scale-out", "rollout")


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
    scale_out: dict[str, Any] | None = None
    """scale-out: pods added, when, their fair share, and the seconds until their share of the
    requests (per 0.25s sample) first reached 50 % and 90 % of it (None: not within the run)."""
    rollout: dict[str, Any] | None = None
    """rollout: per replaced pod, when it was deleted, left the rules, began to shut down and
    was killed (seconds from the start of the rollout), the idle connections it closed as it
    shut down and the requests it reset; the client's errors before the first replacement and
    per ROLLOUT_BIN_S; each nginx's failed upstream attempts by cause (from its error log)."""


def _scale_out(stats: dict[str, Any], added: int, scaled_at: float | None) -> dict[str, Any] | None:
    if not added or scaled_at is None:
        return None
    timeline = stats["timeline"]
    total_pods = len(timeline[0]) - 1 if timeline else 0
    fair = added / total_pods if total_pods else 0.0
    reached: dict[str, float | None] = {"50": None, "90": None}
    shares = []
    for before, after in itertools.pairwise(timeline):
        if after[0] <= scaled_at:
            continue
        delta = [b - a for a, b in zip(before[1:], after[1:], strict=True)]
        if not sum(delta):
            continue
        share = sum(delta[-added:]) / sum(delta)
        shares.append(round(share, 4))
        for key, part in (("50", 0.5), ("90", 0.9)):
            if reached[key] is None and share >= part * fair:
                reached[key] = round(after[0] - scaled_at, 3)
    requests_after = sum(p["requests"] for p in stats["pods"][-added:])
    return {"added": added, "fair_share": round(fair, 4), "to_50_percent_s": reached["50"],
            "to_90_percent_s": reached["90"], "added_pods_requests": requests_after,
            "last_share": shares[-1] if shares else None}


ROLLOUT_BIN_S = 0.5


def _rollout(load: dict[str, Any], pod_stats: dict[str, Any]) -> dict[str, Any] | None:
    steps, start = load.get("rollout_steps") or [], load.get("rollout_started")
    if not steps or start is None:
        return None

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - start, 3)

    # The client cannot tell which pod a failed request met (through a ClusterIP nobody can):
    # its errors are given over time, and each old pod's own counts beside its events.
    times = [float(t) for t, _ in load.get("error_times", [])]
    first = steps[0]["deleted_at"]
    before: dict[str, int] = {}
    for t, kind in load.get("error_times", []):
        if t < first:
            before[kind] = before.get(kind, 0) + 1
    end = max([*times, max(s["shutdown_at"] for s in steps)]) if times else max(s["shutdown_at"] for s in steps)
    bins = [0] * (int((end - start) // ROLLOUT_BIN_S) + 1)
    for t in times:
        if t >= start:
            bins[int((t - start) // ROLLOUT_BIN_S)] += 1
    stats = {s["pod"]: s for s in pod_stats["pods"]}
    out = [{"pod": step["pod"], "replaced_by": step["replaced_by"], "deleted_at_s": rel(step["deleted_at"]),
            "rules_at_s": rel(step["rules_at"]), "shutdown_at_s": rel(step["shutdown_at"]),
            "killed_at_s": rel(step["killed_at"]),
            "shutdown_closes": stats.get(step["pod"], {}).get("shutdown_closes", 0),
            "resets": stats.get(step["pod"], {}).get("resets", 0)}
           for step in steps]
    return {"steps": out, "errors_before": dict(sorted(before.items())),
            "errors_per_bin": {"bin_s": ROLLOUT_BIN_S, "counts": bins},
            "upstream_errors": load.get("upstream_errors", {})}


def measure(load: dict[str, Any], pod_stats: dict[str, Any], added: int = 0) -> Measured:
    stats: list[dict[str, Any]] = pod_stats["pods"]
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
        scale_out=_scale_out(pod_stats, added, load.get("scaled_at")),
        rollout=_rollout(load, pod_stats),
    )
