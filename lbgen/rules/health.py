"""LB3xx — health checks and draining across hops.

Health checks only help when the hop that runs them can see, and steer between, the things
that fail. Draining only works when a pod keeps serving until every hop in front of it has
stopped sending to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from lbgen import defaults, versions
from lbgen.model.service import KongHealthchecks, Service
from lbgen.model.types import Duration
from lbgen.plan.hops import HopPlan, KongHop, NginxHttpHop, NginxStreamHop
from lbgen.plan.topology import is_dns_name
from lbgen.rules._base import (
    FIRST_RELEASE,
    NEXT_RELEASE,
    ModelPath,
    Rule,
    RuleContext,
    RuleDoc,
    Severity,
    SkipReason,
    Violation,
)
from lbgen.rules._crosshop import group_members

KONG_HEALTH = "https://developer.konghq.com/gateway/traffic-control/health-checks-circuit-breakers/"
KONG_UPSTREAM = (
    "https://developer.konghq.com/gateway/entities/upstream/ "
    "(kong/db/schema/entities/upstreams.lua)"
)
NGINX_UPSTREAM = f"https://{defaults.NGINX_UPSTREAM_DOC}"
POD_TERMINATION = (
    "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination"
)

def _passive_trips(checks: KongHealthchecks | None) -> bool:
    """Whether passive checks can mark a target unhealthy (any unhealthy counter > 0)."""
    if checks is None or checks.passive is None:
        return False
    unhealthy = checks.passive.unhealthy
    return unhealthy.http_failures > 0 or unhealthy.tcp_failures > 0 or unhealthy.timeouts > 0


def _active_trips(checks: KongHealthchecks | None) -> bool:
    """Whether active probes can mark a target unhealthy."""
    if checks is None or checks.active is None:
        return False
    active = checks.active
    unhealthy = active.unhealthy
    counters = unhealthy.http_failures + unhealthy.tcp_failures + unhealthy.timeouts
    return active.healthy.interval > 0 and counters > 0


def _needs_kong(ctx: RuleContext) -> str | None:
    return None if ctx.plan.hops_of(KongHop) else "no kong tier"


# ---------------------------------------------------------------------------------------
# LB301 passive checks that nothing re-enables (HC-001)
# ---------------------------------------------------------------------------------------


def _passive_never_reenabled(ctx: RuleContext) -> Iterator[Violation]:
    if not ctx.plan.hops_of(KongHop):
        return
    for index, service in enumerate(ctx.spec.services):
        checks = service.kong.healthchecks
        if checks is None or not _passive_trips(checks):
            continue
        base: ModelPath = ("services", index, "kong", "healthchecks")
        active = checks.active
        if active is None:
            missing, related = "there are no active checks", (*base, "active")
        elif active.unhealthy.interval == 0:
            missing = "active.unhealthy.interval is 0 (unhealthy targets are never probed)"
            related = (*base, "active", "unhealthy", "interval")
        elif active.healthy.successes == 0:
            missing = "active.healthy.successes is 0 (no probe result marks a target healthy)"
            related = (*base, "active", "healthy", "successes")
        else:
            continue
        yield Violation(
            message=(
                f"service {service.name}: passive health checks can mark pods unhealthy but "
                f"{missing}: "
                "Kong's passive checks never re-enable a target, so an ejected pod stays out of "
                "rotation on that Kong node, even after it recovers, until someone marks it "
                "healthy through the Admin API"
            ),
            hint=(
                "add active checks that probe unhealthy targets (active.unhealthy.interval > 0 "
                "and active.healthy.successes > 0), or drop the passive unhealthy counters and "
                "rely on readiness probes"
            ),
            path=(*base, "passive", "unhealthy"),
            related_path=related,
        )


PASSIVE_NEVER_REENABLED = Rule(
    code="LB301",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="passive-health-checks-never-re-enable",
    severity=Severity.WARNING,
    summary="Kong passive checks can eject pods, but nothing brings them back",
    tiers=frozenset({"kong"}),
    check=_passive_never_reenabled,
    versions="Kong 3.x",
    applies=_needs_kong,
    doc=RuleDoc(
        what=(
            "A service whose Kong passive health checks can mark a target unhealthy "
            "(`passive.unhealthy` `http_failures`, `tcp_failures` or `timeouts` > 0) while "
            "active checks cannot re-enable it: no active checks, `active.unhealthy.interval` "
            "0, or `active.healthy.successes` 0."
        ),
        why=(
            "Kong documents that passive health checks (circuit breakers) can only disable "
            "targets and never re-enable them; only active probes of unhealthy targets — every "
            "`active.unhealthy.interval` seconds, counting `active.healthy.successes` — or a "
            "manual call bring a target back. A pod that had a bad minute is ejected for good "
            "on that node, and as pods get ejected one by one the service loses capacity while "
            "Kubernetes reports every pod Ready."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    kong:
      healthchecks:
        passive:
          healthy: {successes: 5}
          unhealthy: {http_failures: 3, tcp_failures: 2, timeouts: 3}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    kong:
      healthchecks:
        passive:
          healthy: {successes: 5}
          unhealthy: {http_failures: 3, tcp_failures: 2, timeouts: 3}
        active:
          http_path: /healthz
          healthy: {interval: 5, successes: 2}
          unhealthy: {interval: 5, http_failures: 3, tcp_failures: 2, timeouts: 3}
""",
        references=(
            (f"{KONG_HEALTH} (\"Passive health checks can only disable unhealthy Targets, they "
             "never re-enable Targets automatically\")"),
            (f"{KONG_UPSTREAM} (healthchecks.active.unhealthy.interval: 0 = unhealthy targets "
             "are not probed)"),
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB302 passive healthy successes 0 (HC-002)
# ---------------------------------------------------------------------------------------


def _passive_successes_zero(ctx: RuleContext) -> Iterator[Violation]:
    if not ctx.plan.hops_of(KongHop):
        return
    for index, service in enumerate(ctx.spec.services):
        checks = service.kong.healthchecks
        if not _passive_trips(checks):
            continue
        assert checks is not None and checks.passive is not None
        if checks.passive.healthy.successes > 0:
            continue
        unhealthy = checks.passive.unhealthy
        base: ModelPath = ("services", index, "kong", "healthchecks", "passive")
        yield Violation(
            message=(
                f"service {service.name}: passive checks count failures (http_failures "
                f"{unhealthy.http_failures}, tcp_failures {unhealthy.tcp_failures}, timeouts "
                f"{unhealthy.timeouts}) but passive.healthy.successes is 0, so successful "
                "responses never reset the failure counters: occasional errors spread over "
                "hours add up until a healthy pod is ejected"
            ),
            hint="set passive.healthy.successes to a positive value (e.g. 5)",
            path=(*base, "healthy", "successes"),
            related_path=(*base, "unhealthy"),
        )


PASSIVE_SUCCESSES_ZERO = Rule(
    code="LB302",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="passive-health-successes-zero",
    severity=Severity.WARNING,
    summary="Kong passive checks count failures but healthy traffic never resets them",
    tiers=frozenset({"kong"}),
    check=_passive_successes_zero,
    versions="Kong 3.x",
    applies=_needs_kong,
    doc=RuleDoc(
        what=(
            "A service with Kong passive unhealthy counters > 0 and "
            "`passive.healthy.successes` left at its default 0."
        ),
        why=(
            "Kong's health checker clears a target's failure counters when it counts enough "
            "successes; with `healthy.successes` 0 that never happens, so failures accumulate "
            "across unrelated incidents. Kong's documentation states the value \"needs to be "
            "positive when passive checks are enabled so that healthy traffic resets the "
            "unhealthy counters\"."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    kong:
      healthchecks:
        passive:
          unhealthy: {tcp_failures: 2, timeouts: 3}
        active:
          healthy: {interval: 5, successes: 2}
          unhealthy: {interval: 5, tcp_failures: 2, timeouts: 3}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    kong:
      healthchecks:
        passive:
          healthy: {successes: 5}
          unhealthy: {tcp_failures: 2, timeouts: 3}
        active:
          healthy: {interval: 5, successes: 2}
          unhealthy: {interval: 5, tcp_failures: 2, timeouts: 3}
""",
        references=(
            f"{KONG_HEALTH} (healthchecks.passive.healthy.successes must be positive)",
            f"{KONG_UPSTREAM}",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB303 health threshold that one unhealthy target trips (HC-007)
# ---------------------------------------------------------------------------------------


def _targets(service: Service) -> tuple[int, ModelPath, str]:
    """Targets of equal weight in the service's Kong Upstream (one per pod), the model path
    of that count within the service, and a label for messages."""
    if service.autoscaling is not None:
        return service.autoscaling.min_replicas, ("autoscaling", "min_replicas"), "HPA minimum"
    return service.replicas, ("replicas",), "replicas"


def _threshold_trips_on_one_target(ctx: RuleContext) -> Iterator[Violation]:
    if not any(hop.dials_pods for hop in ctx.plan.hops_of(KongHop)):
        return
    for index, service in enumerate(ctx.spec.services):
        checks = service.kong.healthchecks
        if checks is None or checks.threshold <= 0:
            continue
        if not (_passive_trips(checks) or _active_trips(checks)):
            continue  # nothing can mark a target unhealthy, so capacity never drops
        targets, where, label = _targets(service)
        if targets < 2:
            continue
        remaining = 100 * (targets - 1) / targets
        # Kong: healthy = available weight % > threshold (strictly; balancers.lua updateStatus).
        if remaining > checks.threshold:
            continue
        yield Violation(
            message=(
                f"service {service.name}: Kong's health threshold is {checks.threshold:g}% but "
                f"it has {targets} pods ({label}): one pod marked unhealthy leaves "
                f"{remaining:.0f}% of the target weight, not above the threshold, so Kong marks "
                "the whole Upstream unhealthy and answers 503 although the other pods are fine"
            ),
            hint=(
                f"lower healthchecks.threshold to {math.ceil(remaining) - 1} or less (0, the "
                "default, turns it off), "
                "or run more pods so that losing one keeps capacity above the threshold"
            ),
            path=("services", index, "kong", "healthchecks", "threshold"),
            related_path=("services", index, *where),
        )


def _needs_kong_on_pods(ctx: RuleContext) -> str | None:
    kongs = ctx.plan.hops_of(KongHop)
    if not kongs:
        return "no kong tier"
    if not any(hop.dials_pods for hop in kongs):
        return SkipReason(
            "Kong targets one ClusterIP per Service (health checks there are LB402's)",
            ctx.hop_path(kongs[0], "backend_targets"),
        )
    return None


THRESHOLD_TRIPS_ON_ONE_TARGET = Rule(
    code="LB303",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="health-threshold-trips-on-one-target",
    severity=Severity.WARNING,
    summary="One unhealthy pod drops capacity below Kong's threshold and fails the whole Upstream",
    tiers=frozenset({"kong", "kubernetes"}),
    check=_threshold_trips_on_one_target,
    versions="Kong 3.x",
    applies=_needs_kong_on_pods,
    doc=RuleDoc(
        what=(
            "A service's Kong `healthchecks.threshold` (the minimum percentage of target "
            "weight that must be healthy for the Upstream to be healthy) against its pod count "
            "(the HPA minimum when there is one): the rule fires when health checks can mark "
            "pods unhealthy and one unhealthy pod out of n leaves 100·(n−1)/n % that is not "
            "above the threshold (Kong requires the available percentage to be strictly "
            "greater)."
        ),
        why=(
            "When available capacity is not above the threshold, Kong considers the whole "
            "Upstream unhealthy and answers 503 for every request. With few pods a single "
            "ejected pod crosses a threshold that looked conservative (75% with 2 to 4 pods), "
            "turning a one-pod problem into a full outage on that Kong node — typically during "
            "a rollout or a node drain, when one pod is slow to start."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 3
    app: {preset: go}
    kong:
      healthchecks:
        threshold: 75
        active:
          http_path: /healthz
          healthy: {interval: 5, successes: 2}
          unhealthy: {interval: 5, http_failures: 3, timeouts: 3}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 3
    app: {preset: go}
    kong:
      healthchecks:
        threshold: 50
        active:
          http_path: /healthz
          healthy: {interval: 5, successes: 2}
          unhealthy: {interval: 5, http_failures: 3, timeouts: 3}
""",
        references=(
            (f"{KONG_UPSTREAM} (healthchecks.threshold: minimum percentage of the targets' "
             "weight that must be available for the whole upstream to be considered healthy)"),
            f"{KONG_HEALTH}",
            (
                "https://github.com/Kong/kong/blob/master/kong/runloop/balancer/balancers.lua "
                "(updateStatus: healthy = available % > healthThreshold)"
            ),
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB304 the edge's failure accounting blames a hop shared by all services (HC-004)
# ---------------------------------------------------------------------------------------


def _edge_blames_shared_hop(ctx: RuleContext) -> Iterator[Violation]:
    for edge in ctx.plan.hops_of(NginxHttpHop):
        following = ctx.plan.next_hop(edge)
        if following is not None and following.layer in ("l4", "l7"):
            yield from _shared_hop_blamed(ctx, edge, following)


def _shared_hop_blamed(ctx: RuleContext, edge: NginxHttpHop, following: HopPlan) -> Iterator[Violation]:
    spec = ctx.spec
    if edge.group_size < 2:
        return  # a single server is never marked unavailable (LB208)
    fails_at = edge.max_fails
    max_fails, origin = fails_at.value, fails_at.label
    if max_fails == 0:
        return
    fails = f"max_fails {max_fails}" + ("" if origin == "set" else f" ({origin})")
    count = len(spec.services)
    carried = "the only service" if count == 1 else f"all {count} services"
    yield Violation(
        message=(
            f"{edge.name} counts every error and timeout against the {following.name} instance "
            f"the request went through ({fails} within fail_timeout {edge.fail_timeout}), "
            f"but each {following.name} instance carries {carried}: "
            f"one backend slower than {edge.name}'s {edge.read_timeout} read timeout makes "
            f"{following.name} instances ({group_members(ctx, edge)}) unavailable for "
            f"{'every request' if count == 1 else 'every service'}"
        ),
        hint=(
            f"set {edge.name} passive_health.max_fails: 0 and leave per-pod failure handling to "
            f"{_pod_facing_product(ctx)} and readiness "
            "probes, or raise max_fails well above what one slow service produces"
        ),
        path=ctx.hop_path(edge, "passive_health", "max_fails"),
        related_path=ctx.hop_path(following, "instances"),
    )


def _needs_edge_before_shared_hop(ctx: RuleContext) -> str | None:
    edges = ctx.plan.hops_of(NginxHttpHop)
    if not edges:
        return "no nginx_http tier"
    if all(_next_layer(ctx, edge) not in ("l4", "l7") for edge in edges):
        return "the edge talks to the pods directly: its failure accounting is per pod"
    return None


def _next_layer(ctx: RuleContext, hop: HopPlan) -> str | None:
    following = ctx.plan.next_hop(hop)
    return following.layer if following is not None else None


def _pod_facing_product(ctx: RuleContext) -> str:
    """Who handles failures per pod: the L7 hop whose connections end at the pods."""
    front = ctx.plan.front_of_cluster
    return front.product if front is not None and front.layer == "l7" else "the hop that sees the pods"


EDGE_BLAMES_SHARED_HOP = Rule(
    code="LB304",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "nginx_http:passive_health.fail_timeout",
        "nginx_http:passive_health.max_fails",
        "nginx_http:timeouts.read",
    ),
    name="edge-passive-health-blames-shared-hop",
    severity=Severity.WARNING,
    summary="The edge marks L4/Kong instances down for failures of any single backend",
    tiers=frozenset({"nginx_http", "nginx_stream", "kong"}),
    check=_edge_blames_shared_hop,
    versions="all (open-source nginx has passive checks only)",
    applies=_needs_edge_before_shared_hop,
    doc=RuleDoc(
        what=(
            "The edge's `max_fails` (nginx default 1 per 10s `fail_timeout`) when its upstream "
            "group is the L4 tier or Kong — instances shared by every service — and the group "
            "has more than one server."
        ),
        why=(
            "nginx counts `error`, `timeout` and `invalid_header` (and any listed `http_5xx`) "
            "as failures of the server it talked to. Behind an L4 tier or Kong, that server is "
            "a shared hop, not the failing pod: one service answering slower than the edge's "
            "read timeout marks an L4 or Kong instance unavailable for all services for "
            "`fail_timeout`, and a few such requests take every instance out (`no live "
            "upstreams`, 502 everywhere). Open-source nginx has no active checks to undo this. "
            "Per-pod failure handling belongs to the hop that sees the pods."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: nginx_stream
    name: l4
    instances:
      - {name: l4-1, address: 10.0.2.1}
      - {name: l4-2, address: 10.0.2.2}
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    passive_health: {max_fails: 0}
  - kind: nginx_stream
    name: l4
    instances:
      - {name: l4-1, address: 10.0.2.1}
      - {name: l4-2, address: 10.0.2.2}
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(
            f"{NGINX_UPSTREAM}#server (max_fails, fail_timeout; what counts as unsuccessful)",
            "https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_next_upstream",
            ("https://nginx.org/en/docs/http/ngx_http_upstream_hc_module.html (active checks: "
             "commercial subscription only)"),
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB305 preStop shorter than endpoint propagation (DR-001)
# ---------------------------------------------------------------------------------------


def _propagation(ctx: RuleContext) -> tuple[Duration, str, ModelPath | None] | None:
    """How long the hop in front of Kubernetes keeps sending to a terminating pod, the
    explanation, and the model path of the setting that dominates it (if the spec has one),
    from the plan; None when lbgen cannot estimate it."""
    cluster = ctx.plan.cluster
    found = cluster.endpoint_propagation
    if found is None:
        return None
    return found.value, found.how, ctx.hop_path(cluster, *found.key) if found.key else None


def _pre_stop_shorter_than_propagation(ctx: RuleContext) -> Iterator[Violation]:
    front = ctx.plan.front_of_cluster
    estimate = _propagation(ctx)
    if front is None or estimate is None:
        return
    needed, how, setting_path = estimate
    for index, service in enumerate(ctx.spec.services):
        delay = service.pre_stop_delay
        if delay is not None and delay >= needed:
            continue
        waits = (
            "pods have no preStop hook (pre_stop_delay unset), so they start shutting down the "
            "moment they are told to terminate"
            if delay is None
            else f"pods wait {delay} in preStop before shutting down"
        )
        yield Violation(
            message=(
                f"service {service.name}: {waits}, but "
                f"{front.name} can keep sending new requests to a terminating pod for about "
                f"{needed} ({how}): requests in that window hit a closed port (502 or retries)"
            ),
            hint=(
                f"{'set' if delay is None else 'raise'} {service.name} pre_stop_delay to at "
                f"least {needed} (plus margin; rendered as a preStop sleep), and "
                "terminationGracePeriodSeconds above pre_stop_delay plus the app's drain time"
            ),
            path=("services", index, "pre_stop_delay"),
            related_path=setting_path,
        )


def _needs_known_propagation(ctx: RuleContext) -> str | None:
    front, cluster = ctx.plan.front_of_cluster, ctx.plan.cluster
    if front is None:
        return "no tier in front of Kubernetes"
    if not front.dials_pods and cluster.tier.platform == "gke-dataplane-v2":
        return "GKE Dataplane V2 does not document how fast its eBPF datapath drops endpoints"
    if isinstance(front, NginxHttpHop) and front.dials_pods:
        return (
            "the edge resolves the headless Service only at (re)load; stale pod addresses are "
            "an LB4xx finding, not a timing one"
        )
    return None


PRE_STOP_SHORTER_THAN_PROPAGATION = Rule(
    code="LB305",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="pre-stop-shorter-than-endpoint-propagation",
    severity=Severity.WARNING,
    summary="Pods stop accepting before the hop in front of them stops sending",
    tiers=frozenset({"kong", "nginx_http", "nginx_stream", "kubernetes"}),
    check=_pre_stop_shorter_than_propagation,
    versions="KIC 3.x (--proxy-sync-seconds 3), Kong 3.x (worker_state_update_frequency 5)",
    applies=_needs_known_propagation,
    doc=RuleDoc(
        what=(
            "A service's `pre_stop_delay` (unset: no preStop hook at all, the worst case) "
            "against an estimate of how long "
            "the hop in front of Kubernetes keeps routing to a terminating pod: through a "
            "ClusterIP, kube-proxy's `minSyncPeriod` (1s); under the Kong Ingress Controller, "
            "`--proxy-sync-seconds` (3s) plus Kong's `worker_state_update_frequency` (5s); "
            "DB-less Kong on a headless Service, the DNS TTL (30s as deployed). The estimate is "
            "lbgen's derivation from those defaults."
        ),
        why=(
            "Kubernetes starts the pod's shutdown and removes it from EndpointSlices at the same "
            "time; each hop learns about the removal later. If the app stops accepting "
            "connections before the hop in front has dropped the pod, requests in that window "
            "fail. A preStop sleep longer than the propagation delay keeps the pod serving until "
            "nothing sends to it any more. (KIC's `--enable-drain-support` is the alternative "
            "for Kong.)"
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    mode: kic
    instances: [{name: kong-proxy, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    pre_stop_delay: 2s
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    mode: kic
    instances: [{name: kong-proxy, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    pre_stop_delay: 10s
    termination_grace_period: 40s
""",
        references=(
            f"{POD_TERMINATION} (endpoint removal runs concurrently with shutdown)",
            (
                "https://developer.konghq.com/kubernetes-ingress-controller/reference/"
                "configuration-options/ (--proxy-sync-seconds 3, --enable-drain-support)"
            ),
            ("https://github.com/Kong/kong/blob/master/kong.conf.default "
             "(worker_state_update_frequency 5)"),
            ("https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/ "
             "(--iptables-min-sync-period 1s)"),
            "https://github.com/kubernetes/kubernetes/pull/76238 (cluster DNS TTL 30s)",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB306 preStop that outlasts the grace period
# ---------------------------------------------------------------------------------------


def _pre_stop_outlasts_grace(ctx: RuleContext) -> Iterator[Violation]:
    planned = ctx.plan.cluster.services
    for index, service in enumerate(ctx.spec.services):
        delay = service.pre_stop_delay
        grace = planned[index].termination_grace_period
        if delay is None or grace is None:
            continue
        shown_grace = grace.shown()
        if delay < grace.value:
            continue
        yield Violation(
            message=(
                f"service {service.name}: preStop sleeps {delay} but "
                f"terminationGracePeriodSeconds is {shown_grace}, and the grace period counts "
                "from before preStop: the app gets SIGTERM with at most 2s left and is then "
                "killed with requests in flight"
            ),
            hint=(
                f"raise {service.name} termination_grace_period above pre_stop_delay plus the "
                f"app's drain time (e.g. {delay + Duration(30000)}), or shorten pre_stop_delay"
            ),
            path=("services", index, "pre_stop_delay"),
            related_path=("services", index, "termination_grace_period"),
        )


PRE_STOP_OUTLASTS_GRACE = Rule(
    code="LB306",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="pre-stop-outlasts-grace-period",
    severity=Severity.ERROR,
    summary="The preStop delay uses up the whole termination grace period",
    tiers=frozenset({"kubernetes", "app"}),
    check=_pre_stop_outlasts_grace,
    versions="all Kubernetes versions",
    applies=lambda ctx: None,
    doc=RuleDoc(
        what=(
            "A service's `pre_stop_delay` against its `termination_grace_period` (Kubernetes "
            "default 30s)."
        ),
        why=(
            "The grace-period countdown starts before the preStop hook runs. If the hook is "
            "still running when the period expires, the kubelet grants a one-off 2s extension, "
            "sends SIGTERM, and kills the container when that runs out: the delay meant to let "
            "the hops in front stop sending (LB305) eats the time the app needed to finish its "
            "in-flight requests, which are then cut."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    pre_stop_delay: 30s
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    pre_stop_delay: 30s
    termination_grace_period: 60s
""",
        references=(
            (f"{POD_TERMINATION} (\"If the preStop hook is still running after the grace period "
             "expires, the kubelet requests a small, one-off grace period extension of 2 "
             "seconds\")"),
            "https://kubernetes.io/docs/concepts/containers/container-lifecycle-hooks/",
        ),
    ),
)

# --- LB310 ---------------------------------------------------------------------------------


def _names_dialed(ctx: RuleContext, hop: HopPlan) -> Iterator[tuple[ModelPath, str, str]]:
    """(model path, host name, what it is) for each DNS name `tier` dials that can move.

    A ClusterIP Service name is left out: its one virtual IP lives as long as the Service,
    rollouts and scaling do not change it.
    """
    callee = ctx.plan.next_hop(hop)
    instances = [t for t in hop.targets if t.kind == "instance"]
    if callee is not None and instances:
        for index, target in enumerate(instances):
            if is_dns_name(target.host):
                yield (
                    ctx.hop_path(callee, "instances", index, "address"),
                    target.host,
                    f"{callee.name} instance {target.name}",
                )
    elif hop.targets_key is not None:
        for target in hop.targets:
            if target.kind == "headless":
                yield (
                    ctx.hop_path(hop, *hop.targets_key),
                    target.host,
                    f"the pods of {target.name} (headless Service)",
                )


def _name_resolved_once(ctx: RuleContext) -> Iterator[Violation]:
    yield from _valid_outlasts_pre_stop(ctx)
    for hop in ctx.plan.tier_hops:
        if not isinstance(hop, NginxHttpHop | NginxStreamHop):
            continue
        tier = hop.tier
        if tier.resolver is not None:
            continue
        seen: set[ModelPath] = set()
        for path, host, what in _names_dialed(ctx, hop):
            if path in seen:
                continue
            seen.add(path)
            pods = "pods" in what
            yield Violation(
                message=(
                    f"{tier.name} dials {host} ({what}) without `resolve`: nginx resolves the "
                    "name once, when it loads its configuration, and keeps those addresses "
                    + (
                        "until the next reload: after a rollout or scale-out it sends to pods "
                        "that are gone and never reaches the new ones"
                        if pods
                        else "until the next reload, wherever the name points by then"
                    )
                ),
                hint=(
                    f"set {tier.name}.resolver: {{addresses: [<DNS server IP>]}} (nginx ≥ "
                    "1.27.3 renders zone + resolver + `server … resolve`)"
                    + (", or use backend_targets: cluster_ip" if pods else ", or give an IP address")
                ),
                path=path,
            )


def _valid_outlasts_pre_stop(ctx: RuleContext) -> Iterator[Violation]:
    """With `resolve`: a `valid=` longer than a pod keeps serving after it starts to stop.

    A terminating pod leaves the headless Service's answer at once; nginx keeps the cached
    answer up to `valid=`, so it may still send to the pod that long. Unset pre_stop_delay is
    LB305's finding, not repeated here.
    """
    for hop in ctx.plan.hops_of(NginxHttpHop):
        yield from _cached_answer_outlasts_pre_stop(ctx, hop)


def _cached_answer_outlasts_pre_stop(ctx: RuleContext, hop: NginxHttpHop) -> Iterator[Violation]:
    edge = hop.tier
    if edge.resolver is None or edge.resolver.valid is None or not hop.dials_pods:
        return
    valid = edge.resolver.valid
    for index, service in enumerate(ctx.spec.services):
        delay = service.pre_stop_delay
        if delay is None or delay >= valid:
            continue
        yield Violation(
            message=(
                f"{edge.name} caches the pods of {service.name} for valid={valid}, but a "
                f"terminating pod keeps serving only {delay} (pre_stop_delay): for up to "
                f"{Duration(valid.ms - delay.ms)} nginx sends to a pod that is shutting down"
            ),
            hint=f"lower {edge.name}.resolver.valid below {delay}, or raise pre_stop_delay of "
            f"{service.name} above {valid}",
            path=ctx.tier_path(edge, "resolver", "valid"),
            related_path=("services", index, "pre_stop_delay"),
        )


NAME_RESOLVED_ONCE = Rule(
    code="LB310",
    status="preview",
    since=NEXT_RELEASE,
    reads=(),
    name="upstream-name-resolved-once",
    severity=Severity.WARNING,
    summary="An nginx tier dials a DNS name without `resolve`: addresses frozen at load",
    tiers=frozenset({"nginx_http", "nginx_stream"}),
    check=_name_resolved_once,
    doc=RuleDoc(
        what=(
            "Every DNS name an nginx tier puts in an upstream block that can change while "
            "nginx runs: the headless Service name of `backend_targets: pod_endpoints` (one "
            "address per ready pod) and next-hop instance addresses given as host names, when "
            "the tier has no `resolver`. ClusterIP Service names are not reported: their "
            "virtual IP does not change in a rollout. With a resolver, a `valid=` longer than "
            "a pod's `pre_stop_delay` is reported: nginx may keep sending to the pod after "
            "it stopped serving."
        ),
        why=(
            "Without the `resolve` parameter nginx resolves an upstream server's name when it "
            "loads the configuration and uses those addresses until the next reload. A headless "
            "Service answers with the pods that are ready at that moment: after a rollout nginx "
            "still sends to the old pod IPs (502s and timeouts) and never to the new pods. "
            "`server … resolve` with a `zone` and a `resolver` re-resolves the name as its TTL "
            "runs out; it is in open-source nginx since 1.27.3 (before, only in the commercial "
            "build). lbgen renders it when the tier sets `resolver` and refuses `resolver` on "
            "older declared versions. `valid=` overrides the answer's TTL: nginx uses a "
            "cached answer that long, while a terminating pod leaves the headless Service's "
            "answer at once and stops serving after its preStop delay."
        ),
        example="""\
name: direct
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    backend_targets: pod_endpoints
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: uvicorn}
""",
        fix="""\
name: direct
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    backend_targets: pod_endpoints
    resolver: {addresses: [10.96.0.10], valid: 10s}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: uvicorn}
""",
        references=(
            "https://nginx.org/en/docs/http/ngx_http_upstream_module.html#resolve",
            "https://nginx.org/en/docs/http/ngx_http_upstream_module.html#resolver",
            "https://nginx.org/en/docs/stream/ngx_stream_upstream_module.html#resolve",
            (
                "https://nginx.org/en/CHANGES (1.27.3: the \"resolve\" parameter of the "
                "\"server\" directive in the \"upstream\" block)"
            ),
            "https://kubernetes.io/docs/concepts/services-networking/service/#headless-services",
            POD_TERMINATION,
        ),
    ),
)


# ---------------------------------------------------------------------------------------
# LB307 a proxy dials the pods, which have no readiness probe
# ---------------------------------------------------------------------------------------

PROBES_DOC = "https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/"
ENDPOINT_SLICES_DOC = (
    "https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/#conditions"
)


def _no_readiness_probe(ctx: RuleContext) -> Iterator[Violation]:
    front = ctx.plan.front_of_cluster
    if front is None:
        return
    via = "the pod IPs" if front.dials_pods else "the Service's ClusterIP"
    for index, service in enumerate(ctx.spec.services):
        if service.readiness is not None:
            continue
        yield Violation(
            message=(
                f"service {service.name}: {front.name} sends requests to {via}, but the spec "
                "gives the pods no readiness probe: a container counts as ready as soon as it "
                "has started, so new pods of a rollout or scale-out get traffic before the app "
                "listens (connection refused, 502) and a wedged pod is never taken out"
            ),
            hint=(
                f"set {service.name} readiness (path of an endpoint that answers 200 only when "
                "the app can serve); lbgen renders it as the container's readinessProbe in the "
                "Deployment patch"
            ),
            path=("services", index, "readiness"),
            related_path=ctx.hop_path(front),
        )


def _needs_front_tier(ctx: RuleContext) -> str | None:
    return None if ctx.plan.front_of_cluster is not None else "no tier in front of Kubernetes"


NO_READINESS_PROBE = Rule(
    code="LB307",
    status="preview",
    since=NEXT_RELEASE,
    reads=(),
    name="pods-without-readiness-probe",
    severity=Severity.WARNING,
    summary="A proxy dials the pods, which have no readiness probe",
    tiers=frozenset({"kong", "nginx_http", "nginx_stream", "kubernetes"}),
    check=_no_readiness_probe,
    versions="all Kubernetes versions",
    applies=_needs_front_tier,
    doc=RuleDoc(
        what=(
            "A service without `readiness` when a tier (Kong, the edge or the L4 tier) "
            "connects to its pods, through pod IPs or through the Service's ClusterIP."
        ),
        why=(
            "Without a readiness probe the kubelet reports a container Ready as soon as it "
            "has started, and the pod's endpoint becomes ready in its EndpointSlice at once: "
            "kube-proxy, KIC and the headless Service's DNS all start sending to it before the "
            "app has bound its port or warmed up, which shows up as connection refused / 502 "
            "on every rollout and scale-out. A pod that stops serving is never taken out of "
            "rotation either."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    readiness: {path: /healthz}
""",
        references=(
            (f"{PROBES_DOC} (readiness probes decide when a container is ready to accept "
             "traffic; without one the container is considered ready once started)"),
            f"{ENDPOINT_SLICES_DOC} (ready/serving/terminating endpoint conditions)",
            f"{POD_TERMINATION}",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB308 grace period shorter than preStop + the longest request
# ---------------------------------------------------------------------------------------


def _longest_request(ctx: RuleContext, index: int) -> tuple[Duration, str, ModelPath] | None:
    """The longest a request may run on a pod: the read timeout of the hop in front of it
    (Kong's per service; another L7 hop's one upstream read timeout)."""
    front = ctx.plan.front_of_cluster
    if isinstance(front, KongHop):
        read = front.services[index].read_timeout
        return read.value, f"{front.name}'s read timeout {read}", ("services", index, "kong", "timeouts", "read")
    one = front.read_timeout_out if front is not None else None
    setting = front.setting("timeouts.read") if front is not None and one is not None else None
    if front is not None and one is not None and setting is not None:
        return one.value, f"{front.name}'s {setting.directive} {one}", ctx.hop_path(
            front, *setting.key.split(".")
        )
    return None


def _grace_shorter_than_drain(ctx: RuleContext) -> Iterator[Violation]:
    planned = ctx.plan.cluster.services
    for index, service in enumerate(ctx.spec.services):
        longest = _longest_request(ctx, index)
        resolved_grace = planned[index].termination_grace_period
        if longest is None or resolved_grace is None:
            continue
        request, how, request_path = longest
        grace = resolved_grace.value
        delay = service.pre_stop_delay or Duration(0)
        if delay >= grace:
            continue  # LB306: the preStop delay alone uses up the grace period
        needed = delay + request
        if grace >= needed:
            continue
        shown_grace = resolved_grace.shown()
        yield Violation(
            message=(
                f"service {service.name}: terminationGracePeriodSeconds is {shown_grace}, but a "
                f"pod needs its preStop delay {delay} plus the longest request it may still be "
                f"serving ({how}) = {needed}: requests still running when the period ends are "
                "cut by SIGKILL (the caller sees a reset connection, 502)"
            ),
            hint=(
                f"raise {service.name} termination_grace_period to at least {needed}, or lower "
                "the read timeout in front of it"
            ),
            path=("services", index, "termination_grace_period"),
            related_path=request_path,
        )


def _needs_l7_front(ctx: RuleContext) -> str | None:
    front = ctx.plan.front_of_cluster
    if front is None:
        return "no tier in front of Kubernetes"
    if front.layer == "l4":
        return "an L4 tier in front of the pods has no request timeout to compare with"
    return None


GRACE_SHORTER_THAN_DRAIN = Rule(
    code="LB308",
    status="preview",
    since=NEXT_RELEASE,
    reads=(
        "kong:services.*.timeouts.read",
        "nginx_http:timeouts.read",
    ),
    name="grace-period-shorter-than-drain",
    severity=Severity.WARNING,
    summary="The grace period ends before preStop plus the longest request",
    tiers=frozenset({"kong", "nginx_http", "kubernetes"}),
    check=_grace_shorter_than_drain,
    versions="all Kubernetes versions",
    applies=_needs_l7_front,
    doc=RuleDoc(
        what=(
            "A service's `termination_grace_period` (Kubernetes default 30s) against its "
            "`pre_stop_delay` plus the longest request a pod may still be serving: the read "
            "timeout of the hop in front of the pods (Kong's service `read_timeout`, default "
            "60s; the edge's `proxy_read_timeout`, default 60s). Grace periods that preStop "
            "alone uses up are LB306's."
        ),
        why=(
            "The grace period counts from the start of termination, before preStop runs. A "
            "request the hop in front sent just before it stopped routing to the pod may run "
            "as long as that hop's read timeout; if the grace period ends first, the kubelet "
            "kills the container and the request fails although every timeout on the path "
            "allowed it."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    pre_stop_delay: 10s
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    pre_stop_delay: 10s
    termination_grace_period: 75s
""",
        references=(
            (f"{POD_TERMINATION} (terminationGracePeriodSeconds default 30; the countdown "
             "includes the preStop hook; SIGKILL when it expires)"),
            ("https://developer.konghq.com/gateway/entities/service/ (read_timeout default "
             "60000 ms)"),
            "https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_read_timeout",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB309 KIC without drain support where sessions must drain
# ---------------------------------------------------------------------------------------

KIC_STICKY_DRAIN = (
    "https://developer.konghq.com/kubernetes-ingress-controller/sticky-sessions/ "
    "(min_version kic 3.5; drain support keeps terminating pods with weight 0)"
)


def _kic_without_drain(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.hops_of(KongHop):
        yield from _kic_drops_sessions(ctx, hop)


def _kic_drops_sessions(ctx: RuleContext, hop: KongHop) -> Iterator[Violation]:
    kong = hop.tier
    if kong.mode != "kic" or (kong.kic is not None and kong.kic.drain_support):
        return
    sticky = [
        (index, service)
        for index, service in enumerate(ctx.spec.services)
        if service.kong.algorithm == "sticky-sessions"
    ]
    if not sticky:
        return
    index = sticky[0][0]
    names = ", ".join(s.name for _, s in sticky)
    yield Violation(
        message=(
            f"{kong.name} runs under the Kong Ingress Controller without drain support, and "
            f"{names} use sticky sessions: when a pod starts terminating KIC removes it from "
            "Kong's upstream at once, so every session pinned to it moves to another pod "
            "mid-session instead of finishing where its state lives"
        ),
        hint=(
            f"run KIC ≥ {versions.KIC_DRAIN_SUPPORT_SINCE.since} with --enable-drain-support=true "
            "(CONTROLLER_ENABLE_DRAIN_SUPPORT) and set kic: {version: …, drain_support: true} "
            f"on {kong.name}"
        ),
        path=ctx.tier_path(kong, "kic", "drain_support"),
        related_path=("services", index, "kong", "algorithm"),
    )


def _needs_kic(ctx: RuleContext) -> str | None:
    if not any(hop.tier.mode == "kic" for hop in ctx.plan.hops_of(KongHop)):
        return "no Kong under the Kong Ingress Controller"
    return None


KIC_WITHOUT_DRAIN = Rule(
    code="LB309",
    status="preview",
    since=NEXT_RELEASE,
    reads=(),
    name="kic-without-drain-support",
    severity=Severity.WARNING,
    summary="KIC drops terminating pods at once although sessions are pinned to them",
    tiers=frozenset({"kong", "kubernetes"}),
    check=_kic_without_drain,
    versions=f"KIC ≥ {versions.KIC_DRAIN_SUPPORT_SINCE.since} has --enable-drain-support (default off)",
    applies=_needs_kic,
    doc=RuleDoc(
        what=(
            "A Kong tier in `mode: kic` whose controller runs without "
            "`--enable-drain-support` (`kic.drain_support` false or unset) while a service "
            "uses `algorithm: sticky-sessions`."
        ),
        why=(
            "Without drain support the controller removes a terminating pod from Kong's "
            "upstream as soon as its endpoint stops being ready, and Kong re-pins every "
            "session cookie that pointed there. With drain support (KIC 3.5 and later) the "
            "terminating pod stays in the upstream with weight 0: existing sessions and "
            "connections finish on it while new sessions go to the other pods — which is what "
            "sticky sessions are for."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    mode: kic
    edition: enterprise
    version: "3.11"
    instances: [{name: kong-proxy, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    kong: {algorithm: sticky-sessions, sticky_sessions_cookie: orders-session}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    mode: kic
    edition: enterprise
    version: "3.11"
    kic: {version: "3.5", drain_support: true}
    instances: [{name: kong-proxy, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    kong: {algorithm: sticky-sessions, sticky_sessions_cookie: orders-session}
""",
        references=(
            KIC_STICKY_DRAIN,
            ("https://developer.konghq.com/kubernetes-ingress-controller/upgrade/ (KIC 3.5 "
             "new features: Connection Draining, --enable-drain-support)"),
            ("https://developer.konghq.com/kubernetes-ingress-controller/reference/"
             "configuration-options/ (--enable-drain-support default false)"),
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB311 a PodDisruptionBudget that allows no eviction
# ---------------------------------------------------------------------------------------

CONFIGURE_PDB = "https://kubernetes.io/docs/tasks/run-application/configure-pdb/"


def _scaled(value: int | str, pods: int) -> int:
    """A PDB count or percentage as the disruption controller reads it (percentages of the
    expected pods, rounded up: GetScaledValueFromIntOrPercent(…, roundUp=true))."""
    if isinstance(value, int):
        return value
    return math.ceil(int(value[:-1]) * pods / 100)


def _pdb_blocks_drains(ctx: RuleContext) -> Iterator[Violation]:
    for index, service in enumerate(ctx.spec.services):
        budget = service.disruption_budget
        if budget is None:
            continue
        pods, where, label = _targets(service)
        if budget.max_unavailable is not None:
            field, value = "max_unavailable", budget.max_unavailable
            allowed = _scaled(value, pods)
            if allowed > 0:
                continue
            why = f"maxUnavailable {value} allows no pod to be evicted"
        else:
            assert budget.min_available is not None
            field, value = "min_available", budget.min_available
            required = _scaled(value, pods)
            if required < pods:
                continue
            shown = f"{value}" if isinstance(value, int) else f"{value} (= {required} of {pods}, rounded up)"
            why = f"minAvailable {shown} with {pods} pods ({label}) leaves no pod to evict"
        yield Violation(
            message=(
                f"service {service.name}: its PodDisruptionBudget {why}: every voluntary "
                "eviction is refused, so `kubectl drain`, node upgrades and cluster-autoscaler "
                "scale-downs hang on the nodes that run these pods until someone deletes the "
                "budget by hand"
            ),
            hint=(
                f"allow at least one disruption: max_unavailable: 1 (or a percentage), or "
                f"min_available below the pod count (e.g. {max(pods - 1, 0)})"
            ),
            path=("services", index, "disruption_budget", field),
            related_path=("services", index, *where),
        )


PDB_BLOCKS_DRAINS = Rule(
    code="LB311",
    status="preview",
    since=NEXT_RELEASE,
    reads=(),
    name="disruption-budget-blocks-drains",
    severity=Severity.WARNING,
    summary="The PodDisruptionBudget allows no eviction, so node drains hang",
    tiers=frozenset({"kubernetes"}),
    check=_pdb_blocks_drains,
    versions="policy/v1 PodDisruptionBudget (Kubernetes ≥ 1.21)",
    applies=lambda ctx: None,
    doc=RuleDoc(
        what=(
            "A service's `disruption_budget` against its pod count (the HPA minimum when "
            "there is one): `max_unavailable` 0 or 0%, or `min_available` that is at least the "
            "pod count once percentages are rounded up as Kubernetes does."
        ),
        why=(
            "A budget that permits zero disruptions makes the eviction API refuse every "
            "voluntary eviction of these pods. Kubernetes documents the consequence: such a "
            "workload cannot be drained from a node, so node upgrades, `kubectl drain` and "
            "cluster-autoscaler scale-downs stall. A percentage rounds up, so "
            "`min_available: 90%` of 3 pods already means all 3."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 3
    app: {preset: go}
    disruption_budget: {min_available: 3}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 3
    app: {preset: go}
    disruption_budget: {min_available: 2}
""",
        references=(
            (f"{CONFIGURE_PDB} (maxUnavailable 0 or 0%, or minAvailable 100% or the number of "
             "replicas, requires zero voluntary evictions and blocks draining a node; "
             "percentages are rounded up)"),
            "https://kubernetes.io/docs/concepts/workloads/pods/disruptions/",
            ("https://github.com/kubernetes/kubernetes/blob/master/pkg/controller/disruption/"
             "disruption.go (GetScaledValueFromIntOrPercent with roundUp true)"),
        ),
    ),
)


RULES: tuple[Rule, ...] = (
    PASSIVE_NEVER_REENABLED,
    PASSIVE_SUCCESSES_ZERO,
    THRESHOLD_TRIPS_ON_ONE_TARGET,
    EDGE_BLAMES_SHARED_HOP,
    PRE_STOP_SHORTER_THAN_PROPAGATION,
    PRE_STOP_OUTLASTS_GRACE,
    NO_READINESS_PROBE,
    GRACE_SHORTER_THAN_DRAIN,
    KIC_WITHOUT_DRAIN,
    NAME_RESOLVED_ONCE,
    PDB_BLOCKS_DRAINS,
)
