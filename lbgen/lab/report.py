"""Text and JSON output of `lbgen lab`, with `lbgen simulate`'s prediction beside it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lbgen.lab import Measured
from lbgen.lab.setup import LabSetup

SCHEMA = "lbgen-lab/1"


@dataclass(frozen=True)
class Run:
    spec: str
    scenario: str
    duration_s: float
    connections: int
    rate: float | None
    setup: LabSetup
    measured: Measured
    client: str
    simulated: dict[str, Any] | None
    """`lbgen simulate`'s JSON for the same spec and workload (None: numpy missing)."""
    simulate_note: str = ""
    gaps_s: tuple[float, ...] = ()


def _path(setup: LabSetup) -> list[str]:
    return [p.role for p in setup.processes]


def to_json(run: Run) -> str:
    m = run.measured
    data = {
        "schema": SCHEMA,
        "spec": run.spec,
        "service": run.setup.service,
        "scenario": run.scenario,
        "workload": {"duration_s": run.duration_s, "connections": run.connections, "rate": run.rate,
                     "client": run.client, "gaps_s": list(run.gaps_s)},
        "path": _path(run.setup),
        "stand_ins": list(run.setup.stand_ins),
        "rewrites": list(run.setup.rewrites),
        "kube_proxy": {"mode": run.setup.kube_proxy_mode if run.setup.rules else None, "dials": run.setup.dials},
        "addresses": [{"address": a.address, "name": a.name, "role": a.role} for a in run.setup.addresses],
        "measured": {
            "requests": m.requests, "errors": m.errors, "latency_ms": m.latency_ms,
            "max_mean": round(m.max_mean, 4), "min_mean": round(m.min_mean, 4), "cv": round(m.cv, 4),
            "pods_used": m.pods_used, "per_pod": m.pods, "rounds": m.rounds,
            "connections_opened": m.connections_opened, "scale_out": m.scale_out,
            "rollout": m.rollout, "reloads": m.reloads,
        },
        "simulated": None if run.simulated is None else run.simulated["summary"],
        "simulated_scale_events": None if run.simulated is None else run.simulated["scale_events"],
        "simulate_note": run.simulate_note,
        "notes": list(run.setup.notes),
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k.replace('status_', 'HTTP ')}: {v}" for k, v in errors.items()) or "none"


def _rollout_lines(rollout: dict[str, Any], s: LabSetup) -> list[str]:
    pre_stop = f"preStop sleep {s.pre_stop_s:g}s" if s.pre_stop_s else "no preStop hook"
    follow = (f"the rules follow each change after {s.sync_s:g}s (kube-proxy minSyncPeriod)" if s.rules
              else _switch_words(s))
    lines = [(f"rollout: {len(rollout['steps'])} pods replaced one by one; {pre_stop}, grace period "
              f"{s.grace_s:g}s; {follow}"),
             f"  errors before the first replacement: {_errors(rollout['errors_before'])}"]
    for step in rollout["steps"]:
        rules = "never within the run" if step["rules_at_s"] is None else f"{step['rules_at_s']:g}s"
        if "targets_at_s" in step:
            rules = "of " + ", ".join(f"{name} at {at:g}s" for name, at in step["targets_at_s"].items()) if step["targets_at_s"] else rules
        where = "rules" if s.rules else "targets"
        after = step.get("old_requests_after_out")
        lines.append(f"  {step['pod']} → {step['replaced_by']}: deleted {step['deleted_at_s']:g}s, out of the "
                     f"{where} {rules}, shutting down {step['shutdown_at_s']:g}s: closed {step['shutdown_closes']} "
                     f"idle connection(s), reset {step['resets']} request(s) sent on a closing one"
                     + ("" if after is None else f"; it answered {after} request(s) after leaving them"))
    per_bin = rollout["errors_per_bin"]
    cut = f" (the first {sum(per_bin['counts'])} errors only)" if per_bin.get("first_errors_only") else ""
    lines.append(f"  client errors per {per_bin['bin_s']:g}s from the start{cut}: "
                 + " ".join(str(n) for n in per_bin["counts"]))
    for name, causes in rollout["upstream_errors"].items():
        lines.append(f"  {name} error log: " + ", ".join(f"{cause}: {n}" for cause, n in causes.items()))
    return lines


def _switch_words(s: LabSetup) -> str:
    delays = ", ".join(f"{name} {delay:g}s" for name, delay in s.switch_delays)
    if s.switch == "step file":
        return (f"each change reaches the front's instances without a reload ({delays} later; "
                f"{s.propagation})")
    return f"each change reaches the front's instances by a reload ({delays} later: {s.propagation})"


def to_text(run: Run) -> str:
    m, s = run.measured, run.setup
    load = f"{run.rate:g} req/s" if run.rate else "closed loop"
    if run.scenario == "idle-race":
        load = "POST bursts after gaps of " + ", ".join(f"{g:g}s" for g in run.gaps_s)
    elif run.scenario == "rollout":
        load = f"POSTs, {load}"
    lines = [
        (f"lbgen lab: {run.spec}, service {s.service}, scenario {run.scenario}: {run.duration_s:g}s, "
        f"{run.connections} connections, {load} ({run.client} client)"),
        "path (all inside namespace " + s.namespace + "):",
    ]
    lines += [f"  {role}" for role in _path(s)]
    if s.rules:
        lines.append(f"  Service {s.service}: ClusterIP through kube-proxy {s.kube_proxy_mode}-mode rules (real kernel)")
    else:
        lines.append(f"  Service {s.service}: pod endpoints dialled directly (no kube-proxy rules)")
    lines += [f"stand-in: {x}" for x in s.stand_ins]
    lat = m.latency_ms
    lines.append(f"requests {m.requests}; errors: {_errors(m.errors)}; latency p50 {lat['p50']} ms, p99 {lat['p99']} ms")
    if m.connections_opened:
        lines.append("new connections per hop: " + ", ".join(f"{k} {v}" for k, v in m.connections_opened.items()))
    reloaded = {name: n for name, n in (m.reloads or {}).items() if n}
    if reloaded:
        lines.append("nginx reloads (from their error logs): " + ", ".join(f"{k} {v}" for k, v in reloaded.items()))
    if m.scale_out is not None:
        so = m.scale_out
        def when(v: float | None) -> str:
            return "never within the run" if v is None else f"after {v:g}s"
        where = "the Service rules" if s.rules else "the Service's endpoints"
        lines.append(f"scale-out: +{so['added']} pods entered {where} at {run.duration_s / 3:g}s "
                     f"(fair share {so['fair_share'] * 100:.1f}%): 50% of it {when(so['to_50_percent_s'])}, "
                     f"90% {when(so['to_90_percent_s'])}; they served {so['added_pods_requests']} requests")
        if "seen_at_s" in so:
            seen = ", ".join(f"{name} {when(at)}" for name, at in so["seen_at_s"].items())
            after = so["added_pods_requests_after_all_saw"]
            lines.append(f"  {_switch_words(s)}; the front's instances used them: {seen}; the added pods "
                         f"served {so['added_pods_requests_before_seen']} request(s) before the first did"
                         + ("" if after is None else f", {after} after the last did"))
        events = run.simulated["scale_events"] if run.simulated else []
        if events:
            e = events[0]
            sim_50 = e["to_50_percent_s"]["median"] if e["to_50_percent_s"] else None
            sim_90 = e["to_90_percent_s"]["median"] if e["to_90_percent_s"] else None
            lines.append(f"  simulate: 50% {when(sim_50)}, 90% {when(sim_90)} (median over trials)")
    if m.rollout is not None:
        lines += _rollout_lines(m.rollout, s)
    for r in m.rounds:
        if r["after_gap_s"]:
            lines.append(f"  POST burst after {r['after_gap_s']:g}s idle: {r['errors']} error(s)")
    sim = run.simulated
    shares = [p["share"]["median"] for p in sim["per_pod"]] if sim else []
    lines.append("per pod, busiest first      requests   share  connections" + ("   simulate share" if sim else ""))
    total = sum(p["requests"] for p in m.pods) or 1
    for i, p in enumerate(m.pods):
        line = f"  {p['pod']:<24} {p['requests']:>9} {p['requests'] / total * 100:6.1f}% {p['connections']:>11}"
        if i < len(shares):
            line += f"   {shares[i] * 100:13.1f}%"
        lines.append(line)
    lines.append("                 measured" + ("   simulate median [5-95 %]" if sim else ""))
    for label, value, key in (("max/mean", m.max_mean, "max_mean"), ("min/mean", m.min_mean, "min_mean"),
                              ("CV", m.cv, "cv"), ("pods used", float(m.pods_used), "pods_used")):
        line = f"  {label:<14} {value:8.2f}"
        if sim:
            band = sim["summary"][key]
            line += f"   {band['median']:.2f} [{band['p5']:.2f}-{band['p95']:.2f}]"
        lines.append(line)
    if run.simulate_note:
        lines.append(f"simulate: {run.simulate_note}")
    lines += [f"note: {n}" for n in s.notes]
    return "\n".join(lines) + "\n"
