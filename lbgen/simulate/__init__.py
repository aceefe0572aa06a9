"""`lbgen simulate`: the per-pod load a spec produces, predicted from its resolved plan.

`simulate(spec, plan, workload)` builds the simulator's view of the path from the plan
(`path.build_path`: one source of truth for every product value), runs the trials
(`engine.run`, numpy, deterministic for a seed) and summarises them (`Result`): per pod
share of requests and open connections, max/mean, min/mean and CV as medians with 5-95 %
bands over trials, time for added pods to reach their fair share, and the hop whose choice
decides the spread. `report` formats it as text or JSON. numpy is imported only here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lbgen.model.service import Service
from lbgen.model.spec import Spec
from lbgen.model.workload import ScaleEvent
from lbgen.plan import Plan
from lbgen.simulate.path import SimPath, build_path

DEFAULT_CLIENTS = 50
DEFAULT_CONNECTIONS_PER_CLIENT = 1
DEFAULT_RATE = 1000.0
DEFAULT_DURATION_S = 60.0
DEFAULT_RESPONSE_TIME_S = 0.05
DEFAULT_CORES = 2
DEFAULT_TRIALS = 20
"""The simulated workload when neither the spec's `workload:` nor a flag gives it. These
describe the clients, not a product: no product default lives here (they come from the plan)."""


@dataclass(frozen=True)
class Band:
    median: float
    p5: float
    p95: float

    def as_json(self) -> dict[str, float]:
        return {"median": round(self.median, 6), "p5": round(self.p5, 6), "p95": round(self.p95, 6)}


@dataclass(frozen=True)
class Settings:
    """The workload one run simulates (the spec's `workload:` with the flags applied)."""

    clients: int
    connections_per_client: int
    rate: float | None
    duration_s: float
    response_time_s: float
    cores: int
    trials: int
    seed: int
    keepalive: bool
    events: tuple[ScaleEvent, ...]
    response_p99_s: float | None = None
    """99th percentile of the response times (lognormal around `response_time_s`, the
    median); None: every request takes `response_time_s`."""
    protocol: str = "h1"
    """h1, or h2/grpc: each client's requests multiplexed on one connection."""
    source_addresses: int | None = None
    """Distinct source addresses of the clients (None: one per client)."""

    @property
    def response_sigma(self) -> float:
        if self.response_p99_s is None or self.response_p99_s <= self.response_time_s:
            return 0.0
        return math.log(self.response_p99_s / self.response_time_s) / Z_99


Z_99 = 2.3263478740408408
"""The standard normal's 99th percentile: a lognormal's p99 / median = exp(sigma * Z_99)."""


@dataclass(frozen=True)
class EventResult:
    service: str
    add: int
    at_s: float
    to_50: Band | None
    to_90: Band | None
    reached_50: float
    reached_90: float


@dataclass(frozen=True)
class Result:
    spec: str
    service: str
    settings: Settings
    path: SimPath
    pods: int
    window_s: tuple[float, float]
    requests: int
    shares: list[Band]
    open_connections: list[Band]
    max_mean: Band
    min_mean: Band
    cv: Band
    pods_used: Band
    decider_connections: Band
    events: list[EventResult]
    why: list[str]
    rules: list[dict[str, str]] = field(default_factory=list)
    approximations: list[str] = field(default_factory=list)


def pick_service(spec: Spec, name: str | None) -> Service:
    """The simulated service: `name`, or the first. Raises ValueError naming the choices."""
    if name is None:
        return spec.services[0]
    for service in spec.services:
        if service.name == name:
            return service
    raise ValueError(f"no service {name!r} in the spec (services: {', '.join(s.name for s in spec.services)})")


def _band(values: list[float]) -> Band:
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    return Band(float(np.median(array)), float(np.percentile(array, 5)), float(np.percentile(array, 95)))


def _why(path: SimPath, decider: Band, settings: Settings) -> list[str]:
    lines: list[str] = []
    last = path.hops[-1] if path.hops else None
    cluster = path.cluster
    if last is not None and last.per_request_pods:
        lines.append(
            f"{last.name} ({last.kind}) chooses a pod per request ({last.chooser.algorithm} over the pod "
            f"endpoints, per worker): the spread follows the request count, not the connections"
        )
        if not last.sees_added_pods and path.events:
            lines.append(f"{last.discovery_how}: the added pods get no requests from it until it is reloaded")
        elif last.discovery_s is not None and path.events:
            lines.append(f"{last.name} sees an added pod within {last.discovery_s:g}s ({last.discovery_how})")
    else:
        source = f"{last.name}'s" if last is not None else "the clients'"
        how = ""
        if last is not None and last.reuse == "pool":
            how = (f" from {last.name}'s pool (up to {last.pool_size} idle per worker, "
                   f"{last.max_requests if last.max_requests else 'unlimited'} requests each, closed after "
                   f"{last.idle_s:g}s idle by {last.idle_why})" if last.idle_s is not None else
                   f" from {last.name}'s pool (up to {last.pool_size} idle per worker)")
        lines.append(
            f"{cluster.name} (kube-proxy {cluster.mode}) chooses a pod once per new connection to the "
            f"ClusterIP: {decider.median:.0f} connections (5-95 %: {decider.p5:.0f}-{decider.p95:.0f}) opened in "
            f"{settings.duration_s:g}s{how}; every request on a connection goes to its pod"
        )
        if cluster.affinity_s is not None:
            sources = len(last.instances) if last is not None else settings.clients
            lines.append(
                f"sessionAffinity ClientIP keys on the source address, and {source} {sources} address(es) are "
                f"the only sources: at most {sources} of {path.replicas + sum(add for _, add in path.events)} "
                f"pods get traffic "
                f"(timeout {cluster.affinity_s:g}s)"
            )
    for before, hop in zip(path.hops, path.hops[1:], strict=False):
        if hop.reuse == "per-connection" and before.reuse == "pool":
            lines.append(
                f"{hop.name} ({hop.kind}) chooses {hop.chooser.algorithm} once per connection of "
                f"{before.name}'s pool, so {before.name}'s long-lived connections also fix how the "
                f"next hop's instances share the load"
            )
    return lines


RELATED_RULES = ("LB4", "LB108", "LB109", "LB701", "LB702")
"""Rule codes (prefixes) that describe how a hop's choice spreads the load."""


def simulate(spec: Spec, plan: Plan, service: Service, settings: Settings, *, name: str = "",
             findings: list[dict[str, str]] | None = None, kong_stand_in: bool = False) -> Result:
    """`kong_stand_in`: model Kong tiers as `lbgen lab`'s nginx stand-in for Kong."""
    from lbgen.simulate.engine import Params, run

    path = build_path(spec, plan, service, cores=settings.cores, events=settings.events,
                      kong_stand_in=kong_stand_in)
    params = Params(settings.clients, settings.connections_per_client, settings.rate, settings.duration_s,
                    settings.response_time_s, settings.trials, settings.seed, settings.keepalive,
                    response_sigma=settings.response_sigma, multiplexed=settings.protocol != "h1",
                    sources=settings.source_addresses)
    trials = run(path, params)
    pods = path.replicas + sum(add for _, add in path.events)
    events: list[EventResult] = []
    for index, (at, add) in enumerate(path.events):
        to_50 = [tr.fair_share_s[index][0] for tr in trials]
        to_90 = [tr.fair_share_s[index][1] for tr in trials]
        hit_50 = [v for v in to_50 if v is not None]
        hit_90 = [v for v in to_90 if v is not None]
        events.append(EventResult(
            service.name, add, at, _band(hit_50) if hit_50 else None, _band(hit_90) if hit_90 else None,
            len(hit_50) / len(trials), len(hit_90) / len(trials),
        ))
    decider = _band([float(tr.decider_connections) for tr in trials])
    approximations = sorted({a for a in (
        *(h.chooser.approximated for h in path.hops), path.cluster.approximated) if a})
    window_start = max([0.0] + [at for at, _ in path.events if at < settings.duration_s])
    return Result(
        spec=name or spec.name, service=path.service, settings=settings, path=path, pods=pods,
        window_s=(window_start, settings.duration_s), requests=trials[0].requests,
        shares=[_band([float(tr.shares[i]) for tr in trials]) for i in range(pods)],
        open_connections=[_band([float(tr.open_connections[i]) for tr in trials]) for i in range(pods)],
        max_mean=_band([tr.max_mean for tr in trials]),
        min_mean=_band([tr.min_mean for tr in trials]),
        cv=_band([tr.cv for tr in trials]),
        pods_used=_band([float(tr.pods_used) for tr in trials]),
        decider_connections=decider,
        events=events,
        why=_why(path, decider, settings),
        rules=[f for f in (findings or []) if f["code"].startswith(RELATED_RULES)],
        approximations=approximations,
    )


def result_json(result: Result) -> dict[str, Any]:
    """The stable JSON shape of one result (docs/simulate.md documents each field)."""
    s = result.settings
    return {
        "spec": result.spec,
        "service": result.service,
        "workload": {
            "clients": s.clients, "connections_per_client": s.connections_per_client,
            "rate": s.rate, "closed_loop": s.rate is None, "keepalive": s.keepalive,
            "duration_s": s.duration_s, "response_time_s": s.response_time_s,
            "response_time_p99_s": s.response_p99_s, "cores": s.cores, "protocol": s.protocol,
            "source_addresses": s.source_addresses or s.clients,
            "trials": s.trials, "seed": s.seed,
            "events": [{"service": e.service, "add": e.add, "at_s": e.at.ms / 1000} for e in s.events],
        },
        "path": [
            {"hop": h.name, "kind": h.kind, "instances": len(h.instances), "workers": h.workers,
             "reuse": h.reuse, "pool_size": h.pool_size, "idle_s": h.idle_s, "idle_closed_by": h.idle_why,
             "max_requests": h.max_requests, "lifetime_s": h.lifetime_s, "algorithm": h.chooser.algorithm,
             "discovery_s": h.discovery_s, "sees_added_pods": h.sees_added_pods,
             "chooses": "per connection" if h.reuse == "per-connection" else "per request",
             "targets": "pods" if h.per_request_pods else ("service" if h.targets == 0 else h.targets)}
            for h in result.path.hops
        ] + [{"hop": result.path.cluster.name, "kind": "kubernetes", "kube_proxy": result.path.cluster.mode,
              "reached": result.path.cluster.reached, "session_affinity_s": result.path.cluster.affinity_s,
              "app_idle_s": result.path.app_idle_s, "replicas": result.path.replicas}],
        "pods": result.pods,
        "window_s": list(result.window_s),
        "requests_per_trial": result.requests,
        "summary": {
            "max_mean": result.max_mean.as_json(), "min_mean": result.min_mean.as_json(),
            "cv": result.cv.as_json(), "pods_used": result.pods_used.as_json(),
            "decider_connections": result.decider_connections.as_json(),
        },
        "per_pod": [
            {"rank": i + 1, "share": share.as_json(), "open_connections": opened.as_json()}
            for i, (share, opened) in enumerate(zip(result.shares, result.open_connections, strict=True))
        ],
        "scale_events": [
            {"service": e.service, "add": e.add, "at_s": e.at_s,
             "to_50_percent_s": e.to_50.as_json() if e.to_50 else None,
             "to_90_percent_s": e.to_90.as_json() if e.to_90 else None,
             "reached_50_percent": e.reached_50, "reached_90_percent": e.reached_90}
            for e in result.events
        ],
        "why": result.why,
        "rules": result.rules,
        "approximations": result.approximations,
    }


__all__ = ["Band", "Result", "Settings", "pick_service", "result_json", "simulate"]
