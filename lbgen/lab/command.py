"""What `lbgen lab` does between parsing its flags and printing (the CLI stays thin)."""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from lbgen.lab import measure
from lbgen.lab.report import Run
from lbgen.lab.runner import Workload
from lbgen.lab.setup import CLIENT_SOURCES, CLOSE_DELAY_S, LabSetup
from lbgen.model.service import Service
from lbgen.model.spec import Spec
from lbgen.plan import Plan

MAX_DURATION_S = 120.0
MAX_REQUESTS = 500_000
"""Every run stops by itself: at its duration (at most MAX_DURATION_S), and the built-in client
also after MAX_REQUESTS requests (wrk runs for whole seconds of its -d)."""
SERVICE_TIME_S = 0.005
"""How long a pod takes to answer (the simulate prediction uses the measured p50 latency)."""
APT = "apt-get install -y"
SIMULATED_TRIALS = 100
"""Trials behind the prediction printed beside a lab run: a lab run is a few thousand requests,
so 100 trials cost little and put the 5 % and 95 % bounds on 5 trials each (20 trials put
them on one: an outcome with a 1 in 8 chance, both gateways' sources pinned to one pod, was
as often inside the band as not)."""


def missing(*, needs_root: bool, rules: str) -> list[str]:
    """What this machine lacks to run the lab, each with how to install it."""
    out: list[str] = []
    if not sys.platform.startswith("linux"):
        return ["Linux (network namespaces, iptables/nftables)"]
    if needs_root and os.geteuid() != 0:
        out.append("root (the lab creates a network namespace): run it with sudo")
    if shutil.which("ip") is None:
        out.append(f"iproute2 ({APT} iproute2)")
    if rules == "iptables" and shutil.which("iptables-restore") is None:
        out.append(f"iptables ({APT} iptables)")
    if rules == "nftables" and shutil.which("nft") is None:
        out.append(f"nftables ({APT} nftables)")
    return out


def pick_client(client: str, scenario: str, rate: float | None) -> str:
    """`auto`: wrk for steady closed-loop runs when it is installed, else the built-in client.
    Raises ValueError when wrk is asked for what it cannot do."""
    from lbgen.lab import wrk

    if client == "wrk":
        if not wrk.available():
            raise ValueError(f"wrk is not installed ({APT} wrk)")
        if scenario in ("idle-race", "rollout") or rate is not None:
            raise ValueError("wrk runs steady and scale-out without --rate (it cannot pace requests, "
                             "send timed POST bursts or time its errors); use --client builtin")
        return "wrk"
    if client == "auto" and scenario not in ("idle-race", "rollout") and rate is None and wrk.available():
        return "wrk"
    return "builtin"


def workload(scenario: str, duration_s: float, connections: int | None, rate: float | None,
             setup: LabSetup, client: str = "builtin") -> Workload:
    if scenario == "idle-race":
        idle = setup.app_idle_s or 5.0
        # POST bursts after gaps just past the pods' idle timeout, inside the close window: a
        # caller that still pools the connection reuses one the pod is closing.
        gaps = tuple(round(idle + CLOSE_DELAY_S * f, 3) for f in (0.4, 0.6))
        return Workload(scenario, duration_s, connections or 20, None, MAX_REQUESTS, SERVICE_TIME_S, gaps)
    if scenario == "rollout":
        return Workload(scenario, duration_s, connections or 20, rate, MAX_REQUESTS, SERVICE_TIME_S,
                        rollout_pace_s=rollout_pace(setup, duration_s))
    scale_at = duration_s / 3 if scenario == "scale-out" else None
    return Workload(scenario, duration_s, connections or 20, rate, MAX_REQUESTS, SERVICE_TIME_S,
                    scale_at_s=scale_at, client=client)


MIN_PACE_S = 0.5


def rollout_pace(setup: LabSetup, duration_s: float) -> float:
    """Seconds between two pod replacements: the run holds a quiet first pace, every
    replacement, and after the last one its preStop sleep and one rule sync. Raises ValueError
    when --duration is too short for that at MIN_PACE_S."""
    steps = len(setup.rollout_pods)
    tail = min(setup.pre_stop_s, setup.grace_s) + setup.sync_s + 1.0
    pace = (duration_s - tail) / (steps + 1) if steps else 0.0
    if pace < MIN_PACE_S:
        need = tail + MIN_PACE_S * (steps + 1)
        raise ValueError(f"a rollout of {steps} pods with a {setup.pre_stop_s:g}s preStop sleep needs at least "
                         f"{need:g}s ({steps + 1} paces of {MIN_PACE_S:g}s, then the last pod's preStop sleep, "
                         f"one rule sync and 1s)")
    return round(pace, 3)


def simulated(spec: Spec, plan: Plan, service: Service, work: Workload, p50_ms: float | None,
              entries: int, added: int = 0, p99_ms: float | None = None) -> tuple[dict[str, Any] | None, str]:
    """`lbgen simulate`'s prediction for the same spec and workload."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        return None, "not shown: lbgen simulate needs numpy (python3 -m pip install 'lbgen[simulate]')"
    from lbgen import simulate as sim
    from lbgen.model.workload import ScaleEvent

    # The source addresses the load came from: the built-in client binds one per connection up
    # to CLIENT_SOURCES; wrk's connections to one first-tier instance share one.
    clients = entries if work.client == "wrk" else min(work.connections, CLIENT_SOURCES)
    response = (p50_ms or 10.0) / 1000
    p99 = p99_ms / 1000 if p99_ms else None
    settings = sim.Settings(
        clients=clients, connections_per_client=math.ceil(work.connections / clients),
        rate=work.rate, duration_s=work.duration_s, response_time_s=response,
        cores=os.cpu_count() or 1, trials=SIMULATED_TRIALS, seed=0, keepalive=True,
        events=(ScaleEvent.parse(f"scale {service.name} +{added} at {work.scale_at_s * 1000:.0f}ms"),)
        if added and work.scale_at_s is not None else (),
        response_p99_s=p99,
    )
    # The lab's Kong is an nginx stand-in: predict what that stand-in does.
    result = sim.simulate(spec, plan, service, settings, kong_stand_in=True)
    note = (f"{clients} clients x {settings.connections_per_client} connection(s), "
            f"{'closed loop' if work.rate is None else f'{work.rate:g} req/s'}, response time {response * 1000:.1f} ms "
            + (f"(p99 {p99 * 1000:.1f} ms: the lab's)" if p99 else "(the lab's p50)")
            + f", {settings.cores} cores, {SIMULATED_TRIALS} trials")
    return sim.result_json(result), note


def run_once(spec: Spec, plan: Plan, service: Service, setup: LabSetup, work: Workload, run_root: Path,
             *, keep: bool, name: str) -> Run:
    from lbgen.lab import runner

    load, stats = runner.run(setup, work, run_root, keep=keep)
    measured = measure(load, stats, setup.added)
    sim, note = simulated(spec, plan, service, work, measured.latency_ms["p50"], len(setup.entry), setup.added,
                          measured.latency_ms["p99"])
    if work.scenario in ("idle-race", "rollout"):
        note = f"steady-state prediction only (simulate models no {work.scenario}); " + note
    return Run(name, work.scenario, work.duration_s, work.connections, work.rate, setup, measured,
               load["client"], sim, note, work.gaps_s)
