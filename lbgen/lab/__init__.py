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
    was killed (seconds from the start of the rollout) and the errors by class after each of
    those events (up to the next event of any pod); the errors before the first; and each
    nginx's failed upstream attempts by cause (from its error log)."""


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


def _rollout(load: dict[str, Any], pod_stats: dict[str, Any]) -> dict[str, Any] | None:
    steps, start = load.get("rollout_steps") or [], load.get("rollout_started")
    if not steps or start is None:
        return None

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - start, 3)

    # Each error goes to the latest rollout event before it: a pod's deletion, its leaving the
    # rules, or the start of its shutdown (after its preStop sleep).
    # At the same millisecond a shutdown counts as the later event, then a rules change.
    order = {"deleted": 0, "rules": 1, "shutdown": 2}
    events = sorted(((round(step[key], 3), order[name], k, name) for k, step in enumerate(steps)
                     for key, name in (("deleted_at", "deleted"), ("rules_at", "rules"), ("shutdown_at", "shutdown"))
                     if step[key] is not None))
    after: list[dict[str, dict[str, int]]] = [{"deleted": {}, "rules": {}, "shutdown": {}} for _ in steps]
    before: dict[str, int] = {}
    for t, kind in load.get("error_times", []):
        latest = None
        for event in events:
            if event[0] > t:
                break
            latest = event
        bucket = before if latest is None else after[latest[2]][latest[3]]
        bucket[kind] = bucket.get(kind, 0) + 1
    out = [{"pod": step["pod"], "replaced_by": step["replaced_by"], "deleted_at_s": rel(step["deleted_at"]),
            "rules_at_s": rel(step["rules_at"]), "shutdown_at_s": rel(step["shutdown_at"]),
            "killed_at_s": rel(step["killed_at"]),
            "errors_after": {name: dict(sorted(c.items())) for name, c in after[k].items()}}
           for k, step in enumerate(steps)]
    stats = {s["pod"]: s for s in pod_stats["pods"]}
    old = [step["pod"] for step in steps]
    return {"steps": out, "errors_before": dict(sorted(before.items())),
            "shutdown_closes": sum(stats[p].get("shutdown_closes", 0) for p in old if p in stats),
            "old_pods_resets": sum(stats[p]["resets"] for p in old if p in stats),
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
