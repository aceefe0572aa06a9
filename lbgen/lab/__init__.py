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
    reloads: dict[str, int] | None = None
    """Per nginx instance (rendered or stand-in), the reloads its error log records."""
    rollout: dict[str, Any] | None = None
    """rollout: per replaced pod, when it was deleted, left the rules, began to shut down and
    was killed (seconds from the start of the rollout), the idle connections it closed as it
    shut down and the requests it reset; the client's errors before the first replacement and
    per ROLLOUT_BIN_S; each nginx's failed upstream attempts by cause (from its error log)."""


SETTLE_S = 0.1
"""A request sent just before a switch may be answered just after it (the pods answer in a few
ms): requests "after" a switch are counted from SETTLE_S later."""


def _before(timeline: list[list[float]], column: int, at: float) -> int:
    """Requests the pod in `column` had answered by `at` (the last sample at or before it)."""
    value = 0
    for row in timeline:
        if row[0] > at:
            break
        value = int(row[column])
    return value


def _after(timeline: list[list[float]], column: int, at: float, final: int) -> int | None:
    """Requests the pod in `column` answered from SETTLE_S after `at` on (None: no sample then)."""
    start = next((row for row in timeline if row[0] >= at + SETTLE_S), None)
    return None if start is None else final - int(start[column])


def _scale_out(stats: dict[str, Any], added: int, scaled_at: float | None,
               seen: dict[str, float | None] | None = None) -> dict[str, Any] | None:
    """`seen`: through pod IPs, when each front instance began to use the added pods (None:
    not within the run)."""
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
    out = {"added": added, "fair_share": round(fair, 4), "to_50_percent_s": reached["50"],
           "to_90_percent_s": reached["90"], "added_pods_requests": requests_after,
           "last_share": shares[-1] if shares else None}
    if seen is not None:
        # Through pod IPs each front instance starts to use the added pods on its own; what the
        # added pods served before the first one did and after the last one did, from their counts.
        columns = range(len(stats["pods"]) - added + 1, len(stats["pods"]) + 1)
        times = [at for at in seen.values() if at is not None]
        first = min(times) if times else None
        last = max(times) if times and len(times) == len(seen) else None
        out["seen_at_s"] = {name: None if at is None else round(at - scaled_at, 3) for name, at in sorted(seen.items())}
        out["added_pods_requests_before_seen"] = sum(_before(timeline, c, first) for c in columns) \
            if first is not None else requests_after
        after = [_after(timeline, c, last, stats["pods"][c - 1]["requests"]) for c in columns] \
            if last is not None else []
        out["added_pods_requests_after_all_saw"] = None if not after or None in after else sum(
            a for a in after if a is not None)
    return out


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
    column = {s["pod"]: i + 1 for i, s in enumerate(pod_stats["pods"])}
    timeline = pod_stats.get("timeline", [])
    out = []
    for step in steps:
        old, new = step["pod"], step["replaced_by"]
        entered = min(step["targets_at"].values()) if step.get("targets_at") else step["rules_at"]
        item = {"pod": old, "replaced_by": new, "deleted_at_s": rel(step["deleted_at"]),
                "rules_at_s": rel(step["rules_at"]), "shutdown_at_s": rel(step["shutdown_at"]),
                "killed_at_s": rel(step["killed_at"]),
                "shutdown_closes": stats.get(old, {}).get("shutdown_closes", 0),
                "resets": stats.get(old, {}).get("resets", 0),
                # From the pods' own counts: the old pod after it left the endpoints the front
                # uses (through a ClusterIP, pooled connections still reach it), the new one
                # before it entered them.
                "old_requests_after_out": None if step["rules_at"] is None or old not in column else _after(
                    timeline, column[old], step["rules_at"], stats[old]["requests"]),
                "new_requests_before_in": None if entered is None or new not in column else _before(
                    timeline, column[new], entered)}
        if "targets_at" in step:
            item["targets_at_s"] = {name: rel(at) for name, at in sorted(step["targets_at"].items())}
        out.append(item)
    # The client keeps the times of its first errors only (lbgen.lab.load.MAX_ERROR_TIMES).
    timed = len(load.get("error_times", []))
    return {"steps": out, "errors_before": dict(sorted(before.items())),
            "errors_per_bin": {"bin_s": ROLLOUT_BIN_S, "counts": bins,
                               "first_errors_only": timed < sum(load.get("errors", {}).values())},
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
        scale_out=_scale_out(pod_stats, added, load.get("scaled_at"), load.get("scale_seen")),
        rollout=_rollout(load, pod_stats),
        reloads=load.get("reloads"),
    )
