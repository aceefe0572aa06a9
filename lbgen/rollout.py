"""How to deploy rendered output hop by hop, and in which order to change idle timeouts.

Every caller must close pooled idle connections before its callee (lbgen.plan.budget). A change
to those timers is safe only if the invariant also holds *while* the hops are updated one by
one: lower a callee's idle timeout only after its callers are below the new value, raise a
caller's only after its callees are above it. `rollout_plan` turns an old and a new spec into
that order; `deploy_steps` says how each hop is applied.

Pure: takes specs and rendered files, returns data and text; the CLI prints it.
"""

from __future__ import annotations

from msgspec import Struct, field

from lbgen.model.naming import (
    kic_file_path,
    kube_proxy_path,
    renders_kube_proxy,
    service_bundle_path,
)
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxHttpTier, NginxStreamTier, Tier
from lbgen.model.types import Duration
from lbgen.plan.budget import Budget, resolve_budget, service_key
from lbgen.render import kubernetes as k8s
from lbgen.render.kong import DECLARATIVE_CONFIG_PATH

# DB-less Kong: "decK … requires a database to perform any of its sync, dump, or similar
# operations. Therefore, decK can't be used in DB-less mode"; the Admin API's /config endpoint
# loads a declarative file into a running node (developer.konghq.com/gateway/db-less-mode).
KONG_ADMIN = "http://127.0.0.1:8001"
EXTERNAL_LB = "external LB"


class DeployStep(Struct, frozen=True):
    """One unit that is deployed on its own: a tier, an app server, the external LB."""

    unit: str
    what: str
    commands: list[str]


class RolloutStep(Struct, frozen=True):
    step: DeployStep
    reasons: list[str] = field(default_factory=list)
    """Why it must come after the steps before it (empty: no timer constraint)."""


def _app_unit(key: str) -> str:
    return f"app {key}"


def _nginx_commands(tier: NginxHttpTier | NginxStreamTier) -> list[str]:
    return [
        f"scp {tier.name}/nginx.conf {i.address}:/tmp/nginx.conf && ssh {i.address} "
        "'sudo cp /tmp/nginx.conf /etc/nginx/nginx.conf && sudo nginx -t && sudo nginx -s reload'"
        for i in tier.instances
    ]


def _kong_commands(spec: Spec, kong: KongTier) -> list[str]:
    if kong.mode == "kic":
        files = " ".join(f"-f {kic_file_path(kong, s)}" for s in spec.services)
        return [
            f"kubectl apply {files}",
            (f"# {kong.name}/kong.conf: set its KONG_* variables on the proxy container "
             "(Helm values), then `helm upgrade` the Kong release"),
        ]
    return [
        f"scp {kong.name}/kong.yaml {i.address}:{DECLARATIVE_CONFIG_PATH} && ssh {i.address} "
        f"'curl -fsS -X POST {KONG_ADMIN}/config -F config=@{DECLARATIVE_CONFIG_PATH} >/dev/null'"
        for i in kong.instances
    ] + [
        (f"# when {kong.name}/kong.conf changed: merge it into /etc/kong/kong.conf on each "
         "node, then `kong check /etc/kong/kong.conf && kong reload`"),
    ]


def _kubernetes_commands(spec: Spec, cluster: KubernetesTier) -> list[str]:
    commands = [f"kubectl apply -f {service_bundle_path(spec, s)}" for s in spec.services]
    commands += [k8s.rollout_patch_command(spec, s) for s in spec.services if s.has_rollout_settings]
    if renders_kube_proxy(cluster):
        commands += [
            f"kubectl diff -f {kube_proxy_path(spec)}; kubectl apply -f {kube_proxy_path(spec)}",
            "kubectl -n kube-system rollout restart daemonset kube-proxy",
        ]
    return commands


def _tier_step(spec: Spec, tier: Tier) -> DeployStep:
    if isinstance(tier, NginxHttpTier | NginxStreamTier):
        kind = "nginx http" if isinstance(tier, NginxHttpTier) else "nginx stream"
        return DeployStep(tier.name, f"{kind}: test, then reload each instance", _nginx_commands(tier))
    if isinstance(tier, KongTier):
        how = (
            "Kong under KIC: apply the resources"
            if tier.mode == "kic"
            else "DB-less Kong: load kong.yaml through the Admin API on each node (decK cannot "
            "sync DB-less)"
        )
        return DeployStep(tier.name, how, _kong_commands(spec, tier))
    return DeployStep(tier.name, "Kubernetes: apply the Services, patch the Deployments",
                      _kubernetes_commands(spec, tier))


def deploy_steps(spec: Spec) -> list[DeployStep]:
    """Every tier's deploy step, innermost first: a caller is never pointed at a hop that
    does not exist yet."""
    return [_tier_step(spec, tier) for tier in reversed(spec.tiers)]


# --- timers and their order --------------------------------------------------------------------

class _Timer(Struct, frozen=True):
    unit: str
    label: str
    value: Duration | None
    """None: never closes idle connections (no limit)."""


def _timer_pairs(spec: Spec, budget: Budget) -> dict[str, tuple[_Timer, _Timer]]:
    """(caller, callee) idle timers of every pooled or idle-limited connection, by a key
    that is stable between two versions of the same path."""
    pairs: dict[str, tuple[_Timer, _Timer]] = {}
    tiers = spec.tiers
    edge, kong = spec.edge, spec.kong

    def client_timers(tier: Tier) -> list[_Timer]:
        """The idle timers that close a connection arriving at `tier` (through L4: L4's
        proxy_timeout and what terminates HTTP behind it)."""
        if isinstance(tier, NginxHttpTier) and budget.edge_client_keepalive is not None:
            return [_Timer(tier.name, "client keepalive_timeout", budget.edge_client_keepalive.value)]
        if isinstance(tier, NginxStreamTier) and budget.l4_proxy_timeout is not None:
            following = spec.next_tier(tier)
            inner = client_timers(following) if following is not None else []
            return [_Timer(tier.name, "proxy_timeout", budget.l4_proxy_timeout.value), *inner]
        if isinstance(tier, KongTier) and budget.kong_client_keepalive is not None:
            return [_Timer(tier.name, "client keep-alive timeout", budget.kong_client_keepalive.value)]
        if isinstance(tier, KubernetesTier):
            return [
                _Timer(_app_unit(key), "app idle timeout", resolved.value)
                for key, resolved in sorted(budget.app_idle.items())
            ]
        return []

    if budget.external_lb_idle is not None and budget.external_lb_idle.value is not None:
        caller = _Timer(EXTERNAL_LB, "backend idle timeout", budget.external_lb_idle.value)
        for callee in client_timers(tiers[0]):
            pairs[f"{EXTERNAL_LB}>{callee.unit}:{callee.label}"] = (caller, callee)
    for tier, upstream in ((edge, budget.edge_upstream), (kong, budget.kong_upstream)):
        if tier is None or upstream is None or not upstream.connections.value:
            continue
        following = spec.next_tier(tier)
        caller = _Timer(tier.name, "upstream keep-alive idle timeout", upstream.idle_timeout.value)
        for callee in client_timers(following) if following is not None else []:
            pairs[f"{tier.name}>{callee.unit}:{callee.label}"] = (caller, callee)
    return pairs


def _below(caller: Duration | None, callee: Duration | None) -> bool:
    if callee is None:
        return True
    return caller is not None and caller < callee


def _shown(value: Duration | None) -> str:
    return "no limit" if value is None else str(value)


def rollout_plan(old: Spec, new: Spec) -> list[RolloutStep]:
    """The changed units of `new` in an order that keeps every caller's idle timer below its
    callee's after each step; unconstrained units go innermost first."""
    from lbgen.render import render_spec  # the summary renderer imports this module

    # One source name for both, so that only what the specs change differs.
    old_files = render_spec(old, "spec.yaml")
    new_files = render_spec(new, "spec.yaml")
    old_budget, new_budget = resolve_budget(old), resolve_budget(new)
    steps = {step.unit: step for step in deploy_steps(new)}
    order = [step.unit for step in deploy_steps(new)]

    changed: list[str] = []
    for unit in order:
        prefix = f"{unit}/"
        old_part = {p: c for p, c in old_files.items() if p.startswith(prefix)}
        new_part = {p: c for p, c in new_files.items() if p.startswith(prefix)}
        if old_part != new_part:
            changed.append(unit)
    for key, resolved in sorted(new_budget.app_idle.items()):
        previous = old_budget.app_idle.get(key)
        if previous is not None and previous.value != resolved.value:
            unit = _app_unit(key)
            service = next(s for s in new.services if service_key(s) == key)
            steps[unit] = DeployStep(
                unit,
                f"app server of {key}: its idle timeout goes {_shown(previous.value)} → "
                f"{_shown(resolved.value)}",
                [(f"kubectl -n {service.namespace} rollout status deployment {service.workload}  "
                  "# after rolling out the app with the new setting")],
            )
            changed.insert(0, unit)
    old_lb = old_budget.external_lb_idle.value if old_budget.external_lb_idle else None
    new_lb = new_budget.external_lb_idle.value if new_budget.external_lb_idle else None
    if old_lb != new_lb and new_lb is not None:
        steps[EXTERNAL_LB] = DeployStep(
            EXTERNAL_LB, f"backend idle timeout {_shown(old_lb)} → {_shown(new_lb)}",
            ["# change it in the load balancer's configuration (console or IaC)"],
        )
        changed.append(EXTERNAL_LB)

    # Edges "a before b", with the reason shown at b.
    before: dict[str, set[str]] = {unit: set() for unit in changed}
    reasons: dict[str, list[str]] = {unit: [] for unit in changed}
    old_pairs, new_pairs = _timer_pairs(old, old_budget), _timer_pairs(new, new_budget)
    for key, (caller1, callee1) in sorted(new_pairs.items()):
        if key not in old_pairs:
            continue
        caller0, callee0 = old_pairs[key]
        if caller1.unit not in before or callee1.unit not in before:
            continue  # one side does not change: nothing to order
        if callee1.value != callee0.value and not _below(caller0.value, callee1.value):
            before[callee1.unit].add(caller1.unit)
            reasons[callee1.unit].append(
                f"after {caller1.unit}: its {caller1.label} {_shown(caller0.value)} → "
                f"{_shown(caller1.value)} must be below the new {callee1.label} "
                f"{_shown(callee1.value)} first"
            )
        if caller1.value != caller0.value and not _below(caller1.value, callee0.value):
            before[caller1.unit].add(callee1.unit)
            reasons[caller1.unit].append(
                f"after {callee1.unit}: its {callee1.label} {_shown(callee0.value)} → "
                f"{_shown(callee1.value)} must be above the new {caller1.label} "
                f"{_shown(caller1.value)} first"
            )

    planned: list[RolloutStep] = []
    done: set[str] = set()
    remaining = list(changed)
    while remaining:
        ready = next((u for u in remaining if before[u] <= done), None)
        if ready is None:  # both specs valid means no cycle; keep the default order if not
            ready = remaining[0]
        remaining.remove(ready)
        done.add(ready)
        planned.append(RolloutStep(steps[ready], sorted(set(reasons[ready]))))
    return planned


def plan_text(old_name: str, new_name: str, plan: list[RolloutStep]) -> str:
    if not plan:
        return f"Rollout from {old_name} to {new_name}: nothing to deploy, the output is the same.\n"
    lines = [f"Rollout from {old_name} to {new_name}: {len(plan)} step(s), in this order."]
    for number, item in enumerate(plan, 1):
        lines.append(f"{number}. {item.step.unit} — {item.step.what}")
        lines += [f"   why: {reason}" for reason in item.reasons]
        lines += [f"   $ {command}" for command in item.step.commands]
    return "\n".join(lines) + "\n"
