"""LB2xx — request timeouts and retries across hops.

Each hop has its own read timeout and its own retry policy; what matters is how they nest.
An outer hop should wait longer than the hop inside it, an idle timer on an L4 hop must not
cut a response the L7 hops are still willing to wait for, and a request should be retried
at one layer, not multiplied across several. Timeouts and retries are not part of the
keep-alive budget: their defaults come from `lbgen.defaults`, each with its source.
"""

from __future__ import annotations

from collections.abc import Iterator

from lbgen import defaults
from lbgen.model.types import Duration
from lbgen.plan._resolved import Resolved
from lbgen.plan.hops import HopPlan, KongHop, KongServicePlan, NginxHttpHop, NginxStreamHop
from lbgen.rules._base import (
    FIRST_RELEASE,
    ModelPath,
    Rule,
    RuleContext,
    RuleDoc,
    Severity,
    SkipReason,
    Violation,
)
from lbgen.rules._crosshop import edge_tries, group_members, group_path, listing, needs_edge_and_l4

NGINX_PROXY = f"https://{defaults.NGINX_PROXY_DOC}"
NGINX_UPSTREAM = f"https://{defaults.NGINX_UPSTREAM_DOC}"
NGINX_STREAM_PROXY = f"https://{defaults.NGINX_STREAM_PROXY_DOC}"
NGINX_STREAM_UPSTREAM = f"https://{defaults.NGINX_STREAM_UPSTREAM_DOC}"
KONG_SERVICE = (
    "https://developer.konghq.com/gateway/entities/service/ "
    "(kong/db/schema/entities/services.lua)"
)
KONG_RETRIES = "https://developer.konghq.com/gateway/traffic-control/proxying/ (Errors and retries)"


def _needs_edge_and_kong(ctx: RuleContext) -> str | None:
    if not ctx.plan.hops_of(NginxHttpHop):
        return "no nginx_http tier"
    if not ctx.plan.hops_of(KongHop):
        return "no kong tier"
    return None


def _edge_and_gateway(ctx: RuleContext) -> list[tuple[NginxHttpHop, KongHop]]:
    """Each nginx edge with the Kong tier its requests reach (through any L4 relay)."""
    return [
        (caller, callee)
        for caller, callee in ctx.plan.l7_pairs()
        if isinstance(caller, NginxHttpHop) and isinstance(callee, KongHop)
    ]


def _longest_kong_read(kong: KongHop) -> tuple[Resolved[Duration], int]:
    """The longest effective Kong read timeout over the services, and that service's index
    (the first of equals)."""
    index = max(range(len(kong.services)), key=lambda i: kong.services[i].read_timeout.value.ms)
    return kong.services[index].read_timeout, index


def _most_kong_retries(kong: KongHop) -> tuple[int, str, int]:
    """The largest effective Kong `retries` over the services: (retries, origin, index)."""
    index = max(range(len(kong.services)), key=lambda i: kong.services[i].retries.value)
    resolved = kong.services[index].retries
    return resolved.value, resolved.label, index


def _kong_wait_ms(service: KongServicePlan) -> int:
    """`read_timeout` on each of `retries + 1` attempts, since Kong retries a request that
    timed out before its response header on the next target (nginx's default
    `proxy_next_upstream error timeout`, `set_more_tries(retries)`)."""
    return service.read_timeout.value.ms * (service.retries.value + 1)


# ---------------------------------------------------------------------------------------
# LB201 edge read timeout not longer than Kong's (TO-001)
# ---------------------------------------------------------------------------------------


def _kong_longest_wait(kong: KongHop) -> tuple[int, int]:
    """The longest time Kong may wait for an upstream response over the services, as
    (milliseconds, service index)."""
    index = max(range(len(kong.services)), key=lambda i: _kong_wait_ms(kong.services[i]))
    return _kong_wait_ms(kong.services[index]), index


def _edge_read_not_above_gateway(ctx: RuleContext) -> Iterator[Violation]:
    for edge, kong in _edge_and_gateway(ctx):
        yield from _edge_gives_up_first(ctx, edge, kong)


def _edge_gives_up_first(ctx: RuleContext, edge: NginxHttpHop, kong: KongHop) -> Iterator[Violation]:
    spec = ctx.spec
    outer = edge.read_timeout
    outer_ms = outer.value.ms
    affected = [
        s.name for s, planned in zip(spec.services, kong.services, strict=True)
        if planned.read_timeout.value.ms >= outer_ms
    ]
    if affected:
        inner, index = _longest_kong_read(kong)
        service = spec.services[index]
        others = ""
        if len(affected) > 1:
            others = f" ({len(affected)} services affected: {listing(affected)})"
        yield Violation(
            message=(
                f"{edge.name} waits {outer} for a response (proxy_read_timeout) and {kong.name} "
                f"waits {inner} for {service.name} (read_timeout){others}: {edge.name} gives up "
                f"no later than {kong.name}, so the client gets {edge.name}'s 504 while Kong is "
                "still waiting or already retrying the request on another pod"
            ),
            hint=(
                f"raise {edge.name} timeouts.read above {inner.value} (the longest Kong read "
                f"timeout), or lower the services' kong.timeouts.read below {outer.value}"
            ),
            path=ctx.hop_path(edge, "timeouts", "read"),
            related_path=("services", index, "kong", "timeouts", "read"),
        )
        return
    # Every single attempt ends before the edge gives up; Kong's retries may not.
    total_ms, index = _kong_longest_wait(kong)
    if total_ms < outer_ms:
        return
    service = spec.services[index]
    read = kong.services[index].read_timeout
    resolved = kong.services[index].retries
    retries, origin = resolved.value, resolved.label
    retries_text = f"retries {retries}" + ("" if origin == "set" else f", {origin}")
    waiting = [
        s.name for s, planned in zip(spec.services, kong.services, strict=True)
        if _kong_wait_ms(planned) >= outer_ms
    ]
    others = f" ({len(waiting)} services affected: {listing(waiting)})" if len(waiting) > 1 else ""
    yield Violation(
        message=(
            f"{edge.name} waits {outer} for a response (proxy_read_timeout) but {kong.name} may "
            f"wait up to {Duration(total_ms)} for an idempotent request to {service.name}: "
            f"{read} (read_timeout) on each of {retries + 1} attempts ({retries_text}), because "
            f"Kong retries a request that timed out before the response header{others}; the "
            f"client gets {edge.name}'s 504 while {kong.name} is still retrying"
        ),
        hint=(
            f"lower {service.name} kong.retries (or kong.timeouts.read) so that (retries + 1) "
            f"x read_timeout stays below {outer.value}, or raise {edge.name} timeouts.read "
            f"above {Duration(total_ms)}"
        ),
        path=ctx.hop_path(edge, "timeouts", "read"),
        related_path=("services", index, "kong", "retries"),
    )


EDGE_READ_NOT_ABOVE_GATEWAY = Rule(
    code="LB201",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:services.*.retries",
        "kong:services.*.timeouts.read",
        "nginx_http:timeouts.read",
    ),
    name="edge-read-timeout-not-above-gateway",
    severity=Severity.WARNING,
    summary="The edge stops waiting for a response no later than Kong does",
    tiers=frozenset({"nginx_http", "kong"}),
    check=_edge_read_not_above_gateway,
    versions="all",
    applies=_needs_edge_and_kong,
    doc=RuleDoc(
        what=(
            "The edge's `proxy_read_timeout` (nginx default 60s) against every service's Kong "
            "`read_timeout` (default 60000 ms). Both measure the time between two successive "
            "reads from the upstream, so for a slow first byte they expire at the same moment "
            "when they are equal. Kong also retries a request that timed out before its "
            "response header (`retries`, default 5: nginx's `proxy_next_upstream error "
            "timeout` with `set_more_tries(retries)`), each attempt with a fresh read timeout, "
            "so for an idempotent request Kong may wait `(retries + 1) × read_timeout`; the "
            "edge must wait longer than that too. (POST, PATCH and LOCK are not retried once "
            "sent.)"
        ),
        why=(
            "Timeouts must nest: the outer hop waits longer than the inner one, so that the "
            "inner hop's own error (Kong's 504, or its retry on another pod) is what the client "
            "sees. When the edge gives up first or at the same time, Kong's retries are wasted "
            "work, the edge records a timeout against a healthy Kong or L4 instance "
            "(`max_fails`), and — with `timeout` in `proxy_next_upstream` — it sends the same "
            "request to another Kong node while the first is still processing it. The "
            "defaults (60s and 60s) already tie, and with Kong's default 5 retries a request "
            "that times out on every attempt keeps Kong busy for 6 × 60s."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: reports
    replicas: 2
    app: {preset: go}
    kong:
      timeouts: {read: 120s}
""",
        fix="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    timeouts: {read: 130s}
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: reports
    replicas: 2
    app: {preset: go}
    kong:
      retries: 0
      timeouts: {read: 120s}
""",
        references=(
            f"{NGINX_PROXY}#proxy_read_timeout",
            f"{KONG_SERVICE} (read_timeout: between two successive read operations, 60000 ms)",
            f"{NGINX_UPSTREAM}#server (timeouts count towards max_fails)",
            KONG_RETRIES,
            f"{NGINX_PROXY}#proxy_next_upstream (default error timeout; each try its own timeouts)",
            ("https://github.com/Kong/kong/blob/master/kong/init.lua (Kong.balancer: first "
             "try calls set_more_tries(retries))"),
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB202 L4 idle timer shorter than the L7 read timeouts (TO-002)
# ---------------------------------------------------------------------------------------


def _l7_wait(ctx: RuleContext, hop: HopPlan) -> tuple[Duration, str, ModelPath] | None:
    """How long an L7 hop waits for a response, in words, with the setting's model path:
    its one upstream read timeout, or Kong's longest per-service one."""
    read = hop.read_timeout_out
    setting = hop.setting("timeouts.read") if read is not None else None
    if read is not None and setting is not None:
        return (read.value, f"{hop.name} waits {read} ({setting.directive})",
                ctx.hop_path(hop, *setting.key.split(".")))
    if isinstance(hop, KongHop):
        kong_read, index = _longest_kong_read(hop)
        return (kong_read.value, f"{hop.name} waits {kong_read} for {ctx.spec.services[index].name} (read_timeout)",
                ("services", index, "kong", "timeouts", "read"))
    return None


def _l4_idle_cuts_slow_responses(ctx: RuleContext) -> Iterator[Violation]:
    plan = ctx.plan
    for l4 in plan.tier_hops:
        closer = l4.idle_close
        if l4.layer != "l4" or closer is None:
            continue
        idle = closer.value
        # The L7 hops whose requests cross it: the callers pooling through it, then the
        # L7 hop behind it.
        around = [caller for caller, relay in plan.relayed_pairs() if relay is l4]
        behind = plan.next_hop(l4)
        if behind is not None and behind.layer == "l7":
            around.append(behind)
        waits = [wait for hop in around if (wait := _l7_wait(ctx, hop)) is not None]
        if not waits:
            continue
        longest = max(waits, key=lambda w: w[0])
        if idle.value >= longest[0]:
            continue
        default = f" ({l4.product}'s default is {closer.default})" if closer.default else ""
        yield Violation(
            message=(
                f"{l4.name} closes both legs of a connection after {idle.shown()} without data "
                f"({closer.name}) but {' and '.join(w[1] for w in waits)}: any response that takes "
                f"longer than {idle.value} to start (or pauses that long) is cut by {l4.name}, and "
                "the client gets a 502 instead of the response"
            ),
            hint=(
                f"raise {l4.name} {closer.knob} above {longest[0]}{default}, or "
                f"lower the L7 read timeouts below {idle.value} if responses really are that fast"
            ),
            path=ctx.hop_path(l4, *closer.key),
            related_path=longest[2],
        )


def _needs_l4_with_l7(ctx: RuleContext) -> str | None:
    hops = ctx.plan.tier_hops
    if not any(hop.layer == "l4" for hop in hops):
        return "no nginx_stream tier"
    if not any(hop.layer == "l7" for hop in hops):
        return "no L7 tier with a read timeout around the nginx_stream tier"
    return None


L4_IDLE_CUTS_SLOW_RESPONSES = Rule(
    code="LB202",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:services.*.timeouts.read",
        "nginx_http:timeouts.read",
        "nginx_stream:proxy_timeout",
    ),
    name="l4-idle-timeout-cuts-slow-responses",
    severity=Severity.WARNING,
    summary="The L4 tier's idle timer is shorter than the time the L7 hops wait for a response",
    tiers=frozenset({"nginx_stream", "nginx_http", "kong"}),
    check=_l4_idle_cuts_slow_responses,
    versions="all",
    applies=_needs_l4_with_l7,
    doc=RuleDoc(
        what=(
            "The L4 tier's effective `proxy_timeout` (nginx stream default 10m) against the "
            "longest read timeout of the L7 hops around it: the edge's `proxy_read_timeout` "
            "and every service's Kong `read_timeout`."
        ),
        why=(
            "nginx stream's `proxy_timeout` is an idle timer on both legs: while Kong (or the "
            "app) is still computing a response, no byte moves and the timer runs. If it is "
            "shorter than what the L7 hops are configured to wait, the L4 tier closes the "
            "connection first; the edge sees `upstream prematurely closed connection` and "
            "returns 502 for a request that would have succeeded, and Kong's own timeout and "
            "retries never get a chance."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    upstream_keepalive: {idle_timeout: 5s}
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
    proxy_timeout: 10s
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
    upstream_keepalive: {idle_timeout: 5s}
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
    proxy_timeout: 2m
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
            f"{NGINX_STREAM_PROXY}#proxy_timeout",
            f"{NGINX_PROXY}#proxy_read_timeout",
            f"{KONG_SERVICE} (read_timeout)",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB203 L4 connect timeout outlasting the edge's read timeout (TO-003)
# ---------------------------------------------------------------------------------------


def _l4_connect_outlasts_edge_read(ctx: RuleContext) -> Iterator[Violation]:
    for edge, l4 in ctx.plan.relayed_pairs():
        if not isinstance(edge, NginxHttpHop) or not isinstance(l4, NginxStreamHop):
            continue
        if l4.tier.next_upstream is False:
            continue
        if l4.group_size < 2:
            continue  # nothing to fail over to (LB208 covers single-server groups)
        connect, read = l4.connect_timeout, edge.read_timeout
        if connect.value < read.value:
            continue
        yield Violation(
            message=(
                f"{l4.name} waits up to {connect} to connect to one of {group_members(ctx, l4)} "
                f"before trying the next, but {edge.name} stops waiting for the response after "
                f"{read}: when a Kong node stops answering SYNs, {edge.name} times out (and counts "
                f"a failure against {l4.name}) before {l4.name}'s failover can help"
            ),
            hint=(
                f"lower {l4.name} connect_timeout to a few seconds (a connect inside one network "
                f"takes milliseconds), well below {edge.name}'s {read.value}"
            ),
            path=ctx.hop_path(l4, "connect_timeout"),
            related_path=ctx.hop_path(edge, "timeouts", "read"),
        )


L4_CONNECT_OUTLASTS_EDGE_READ = Rule(
    code="LB203",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "nginx_http:timeouts.read",
        "nginx_stream:connect_timeout",
    ),
    name="l4-connect-timeout-outlasts-edge-read-timeout",
    severity=Severity.INFO,
    summary="The L4 tier's connect failover is slower than the edge's read timeout",
    tiers=frozenset({"nginx_stream", "nginx_http"}),
    check=_l4_connect_outlasts_edge_read,
    versions="all",
    applies=needs_edge_and_l4,
    doc=RuleDoc(
        what=(
            "The L4 tier's `proxy_connect_timeout` (nginx stream default 60s) against the "
            "edge's `proxy_read_timeout` (default 60s), when the L4 tier has several Kong "
            "nodes to fail over to (`proxy_next_upstream on`, the default)."
        ),
        why=(
            "nginx stream retries the next server only when a connection \"cannot be "
            "established\". A Kong node that is down behind a firewall or a vanished IP does "
            "not refuse: it black-holes the SYN, and the L4 tier waits the full connect "
            "timeout. Meanwhile the edge has already connected to the L4 tier and is waiting "
            "for a response header; with the defaults both are 60s, so the edge gives up "
            "first, returns 504 and marks the healthy L4 instance failed. The edge's own "
            "connect timeout only measures the connect to the L4 tier, so it does not help."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
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
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
    connect_timeout: 3s
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(
            f"{NGINX_STREAM_PROXY}#proxy_connect_timeout",
            f"{NGINX_STREAM_PROXY}#proxy_next_upstream",
            f"{NGINX_PROXY}#proxy_read_timeout",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB204 the edge retries Kong's gateway errors (RT-001)
# ---------------------------------------------------------------------------------------

_GATEWAY_ERRORS = ("http_502", "http_503", "http_504")


def _retry_amplification(ctx: RuleContext) -> Iterator[Violation]:
    for edge, kong in _edge_and_gateway(ctx):
        yield from _retried_at_two_layers(ctx, edge, kong)


def _retried_at_two_layers(ctx: RuleContext, edge: NginxHttpHop, kong: KongHop) -> Iterator[Violation]:
    spec = ctx.spec
    on_gateway_errors = [c for c in edge.retry_conditions.value if c in _GATEWAY_ERRORS]
    if not on_gateway_errors:
        return
    tries = edge_tries(edge)
    retries, origin, index = _most_kong_retries(kong)
    if tries < 2 or retries == 0:
        return
    service = spec.services[index]
    shown_retries = f"{retries}" if origin == "set" else f"{retries} ({origin})"
    yield Violation(
        message=(
            f"{edge.name} retries on {' '.join(on_gateway_errors)} (up to {tries} tries over "
            f"{group_members(ctx, edge)}), which is what {kong.name} answers after its own "
            f"{shown_retries} retries of {service.name} have failed: one client request can "
            f"reach the pods up to {tries} × {retries + 1} = {tries * (retries + 1)} times"
        ),
        hint=(
            "retry at one layer: drop http_502/http_503/http_504 from "
            f"{edge.name} retry.conditions (keep error and timeout for connection failures), "
            "or lower the services' kong.retries"
        ),
        path=ctx.hop_path(edge, "retry", "conditions"),
        related_path=("services", index, "kong", "retries"),
    )


RETRY_AMPLIFICATION = Rule(
    code="LB204",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:services.*.retries",
        "nginx_http:retry.conditions",
    ),
    name="retry-amplification-on-gateway-errors",
    severity=Severity.WARNING,
    summary="The edge retries the 5xx that Kong returns after exhausting its own retries",
    tiers=frozenset({"nginx_http", "kong"}),
    check=_retry_amplification,
    versions="all",
    applies=_needs_edge_and_kong,
    doc=RuleDoc(
        what=(
            "`http_502`, `http_503` or `http_504` in the edge's `proxy_next_upstream` while "
            "Kong retries (`retries`, default 5, i.e. up to 6 attempts) and the edge has more "
            "than one server to try."
        ),
        why=(
            "Kong answers 502/504 once its own attempts on the pods have all failed, and 503 "
            "when no target is healthy. An edge that retries those statuses replays the whole "
            "chain on another Kong node, so attempts multiply: edge tries × (Kong retries + 1). "
            "During an incident this multiplies the load on the struggling backend exactly when "
            "it can least take it. The AWS Builders' Library advises retrying at a single layer."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    retry: {conditions: [error, timeout, http_502, http_503, http_504]}
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    retry: {conditions: [error]}
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        references=(
            f"{NGINX_PROXY}#proxy_next_upstream",
            f"{KONG_RETRIES} (retries go through set_more_tries; up to retries+1 attempts)",
            f"{KONG_SERVICE} (retries default 5)",
            "https://aws.amazon.com/builders-library/timeouts-retries-and-backoff-with-jitter/",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB205 non-idempotent requests retried (RT-002)
# ---------------------------------------------------------------------------------------


def _non_idempotent_retries(ctx: RuleContext) -> Iterator[Violation]:
    for edge in ctx.plan.hops_of(NginxHttpHop):
        if "non_idempotent" not in edge.retry_conditions.value:
            continue
        following = ctx.plan.next_hop(edge)
        target = following.name if following is not None else "the next hop"
        yield Violation(
            message=(
                f"{edge.name} lists non_idempotent in proxy_next_upstream, so a POST, PATCH or LOCK "
                f"that {target} already received is sent again to another server of "
                f"{group_members(ctx, edge)} when the first attempt fails — the backend can "
                "perform it twice"
            ),
            hint=(
                f"remove non_idempotent from {edge.name} retry.conditions; retry non-idempotent "
                "requests only in the client, with an idempotency key"
            ),
            path=ctx.hop_path(edge, "retry", "conditions"),
        )


NON_IDEMPOTENT_RETRIES = Rule(
    code="LB205",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "nginx_http:retry.conditions",
    ),
    name="non-idempotent-requests-retried",
    severity=Severity.ERROR,
    summary="The edge retries POST/PATCH/LOCK requests that the next hop already received",
    tiers=frozenset({"nginx_http"}),
    check=_non_idempotent_retries,
    versions="nginx ≥ 1.9.13 (non-idempotent requests are retried only with non_idempotent)",
    applies=lambda ctx: None if ctx.plan.hops_of(NginxHttpHop) else "no nginx_http tier",
    doc=RuleDoc(
        what="`non_idempotent` in the edge's `proxy_next_upstream` conditions.",
        why=(
            "Since 1.9.13 nginx does not pass a request with a non-idempotent method (POST, "
            "LOCK, PATCH) to the next server once it has been sent upstream; `non_idempotent` "
            "turns that protection off. Behind the edge sit an L4 tier, Kong and the app: a "
            "timeout or a reset after the request was sent does not mean it was not executed, "
            "so the retry can create a second order or charge a card twice. Kong itself never "
            "retries a non-idempotent request the upstream has received."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    retry: {conditions: [error, timeout, non_idempotent]}
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
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
    retry: {conditions: [error, timeout]}
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(
            f"{NGINX_PROXY}#proxy_next_upstream (non_idempotent, since 1.9.13)",
            f"{KONG_RETRIES}",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB206 timeouts retried at two layers (RT-003)
# ---------------------------------------------------------------------------------------


def _timeouts_retried_twice(ctx: RuleContext) -> Iterator[Violation]:
    for edge, kong in _edge_and_gateway(ctx):
        yield from _timeouts_retried_at_two_layers(ctx, edge, kong)


def _timeouts_retried_at_two_layers(
    ctx: RuleContext, edge: NginxHttpHop, kong: KongHop
) -> Iterator[Violation]:
    spec = ctx.spec
    if "timeout" not in edge.retry_conditions.value:
        return
    tries = edge_tries(edge)
    retries, origin, index = _most_kong_retries(kong)
    if tries < 2 or retries == 0:
        return
    conditions = (
        "retry.conditions" if edge.retry_conditions.origin == "set"
        else f"{edge.product}'s default"
    )
    shown_retries = f"{retries}" if origin == "set" else f"{retries} ({origin})"
    yield Violation(
        message=(
            f"{edge.name} resends a request that timed out to another of "
            f"{group_members(ctx, edge)} (timeout in {conditions}, up to {tries} tries) while "
            f"{kong.name} itself retries {spec.services[index].name} up to {shown_retries} times "
            "on timeouts: a slow backend gets the same request again from a second Kong node "
            "while the first is still working on it"
        ),
        hint=(
            f"retry timeouts at one layer: set {edge.name} retry.conditions to [error] (connection "
            "failures only) and let Kong retry, or set the services' kong.retries to 0"
        ),
        path=ctx.hop_path(edge, "retry", "conditions"),
        related_path=("services", index, "kong", "retries"),
    )


TIMEOUTS_RETRIED_TWICE = Rule(
    code="LB206",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:services.*.retries",
        "nginx_http:retry.conditions",
    ),
    name="timeouts-retried-at-two-layers",
    severity=Severity.WARNING,
    summary="Both the edge and Kong retry requests that time out",
    tiers=frozenset({"nginx_http", "kong"}),
    check=_timeouts_retried_twice,
    versions="all",
    applies=_needs_edge_and_kong,
    doc=RuleDoc(
        what=(
            "`timeout` in the edge's `proxy_next_upstream` (it is in nginx's default `error "
            "timeout`) while Kong retries (`retries`, default 5) and the edge has more than one "
            "server to try."
        ),
        why=(
            "A timeout is the one failure where the request may still be running. Kong retries "
            "a timed-out attempt on another pod; the edge, timing out on the same slow request, "
            "resends it through another Kong node, which starts its own retries. Slow backends "
            "receive duplicates of the requests that made them slow. Retries on `error` "
            "(connection refused or reset before a response) are cheap and safe to keep at the "
            "edge."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    retry: {conditions: [error]}
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        references=(
            f"{NGINX_PROXY}#proxy_next_upstream (default: error timeout)",
            f"{KONG_RETRIES} (retries on connection errors and timeouts)",
            "https://aws.amazon.com/builders-library/timeouts-retries-and-backoff-with-jitter/",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB207 Kong retries against a single ClusterIP target (RT-004)
# ---------------------------------------------------------------------------------------


def _retries_through_one_cluster_ip(ctx: RuleContext) -> Iterator[Violation]:
    for kong in ctx.plan.hops_of(KongHop):
        if not kong.dials_pods:
            yield from _retries_to_one_target(ctx, kong)


def _retries_to_one_target(ctx: RuleContext, kong: KongHop) -> Iterator[Violation]:
    retries, origin, index = _most_kong_retries(kong)
    if retries == 0:
        return
    service = ctx.spec.services[index]
    shown_retries = f"{retries}" if origin == "set" else f"{retries} ({origin})"
    yield Violation(
        message=(
            f"{kong.name} reaches {service.name} through its single ClusterIP, so its "
            f"{shown_retries} retries all go to the same target: kube-proxy picks one of the "
            f"{service.replicas} pods per new connection at random (a 1 in {service.replicas} "
            "chance of the same pod) and never retries itself"
        ),
        hint=(
            f"set {kong.name} backend_targets: pod_endpoints so Kong retries on a different pod "
            "(and balances per request), or set kong.retries: 0 where a retry cannot help"
        ),
        path=ctx.hop_path(kong, "backend_targets"),
        related_path=("services", index, "kong", "retries"),
    )


def _needs_kong_on_cluster_ip(ctx: RuleContext) -> str | None:
    kongs = ctx.plan.hops_of(KongHop)
    if not kongs:
        return "no kong tier"
    if all(hop.dials_pods for hop in kongs):
        return SkipReason(
            "Kong targets pod endpoints: each retry picks another pod",
            ctx.hop_path(kongs[0], "backend_targets"),
        )
    return None


RETRIES_THROUGH_ONE_CLUSTER_IP = Rule(
    code="LB207",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:services.*.retries",
    ),
    name="gateway-retries-through-one-cluster-ip",
    severity=Severity.INFO,
    summary="Kong's retries target one ClusterIP, so a retry reaches another pod only by chance",
    tiers=frozenset({"kong", "kubernetes"}),
    check=_retries_through_one_cluster_ip,
    versions="all",
    applies=_needs_kong_on_cluster_ip,
    doc=RuleDoc(
        what=(
            "Kong targeting Services by ClusterIP (`backend_targets: cluster_ip`, KIC "
            "`ingress.kubernetes.io/service-upstream: \"true\"`) while services keep Kong "
            "retries (default 5)."
        ),
        why=(
            "Kong retries by asking its balancer for the next target, and with a ClusterIP "
            "there is only one. Whether the retry lands on another pod is decided by "
            "kube-proxy's random choice for the new connection (uniform over the endpoints), "
            "and a pooled connection may bring it back to the same pod; kube-proxy never "
            "retries a failed connection itself. Kong's retries and passive health checks "
            "assume targets they can tell apart."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    backend_targets: cluster_ip
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 8
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    backend_targets: pod_endpoints
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 8
    app: {preset: go}
""",
        references=(
            "https://developer.konghq.com/kubernetes-ingress-controller/reference/annotations/#ingress-kubernetes-io-service-upstream",
            ("https://kubernetes.io/docs/reference/networking/virtual-ips/ "
             "(iptables mode: a failed first pod is not retried)"),
            ("https://github.com/kubernetes/kubernetes/blob/master/pkg/proxy/iptables/proxier.go "
             "(statistic --mode random --probability 1/(n-i))"),
            f"{KONG_RETRIES}",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB208 failover settings on a single-server group (RT-005)
# ---------------------------------------------------------------------------------------


def _single_server_failover(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.tier_hops:
        if not isinstance(hop, NginxHttpHop | NginxStreamHop) or hop.group_size != 1:
            continue
        tier = hop.tier
        members = group_members(ctx, hop)
        health = tier.passive_health
        # `max_fails: 0` turns failure accounting off (what LB304 recommends), so neither it
        # nor a fail_timeout beside it asks nginx for anything a single server lacks.
        health_field = (
            None if health.max_fails == 0
            else "max_fails" if health.max_fails is not None
            else "fail_timeout" if health.fail_timeout is not None
            else None
        )
        if health_field is not None:
            yield Violation(
                message=(
                    f"{tier.name}'s upstream group has a single server ({members}), so nginx "
                    f"ignores passive_health.{health_field} and never marks it unavailable"
                ),
                hint=(
                    f"remove {tier.name} passive_health, or give the group several servers "
                    "(more instances of the next tier, or pod endpoints) so failures can steer "
                    "traffic away"
                ),
                path=ctx.hop_path(hop, "passive_health", health_field),
                related_path=group_path(ctx, hop),
            )
        retry_path = _explicit_retry(hop)
        if retry_path is not None:
            yield Violation(
                message=(
                    f"{tier.name}'s upstream group has a single server ({members}), so its "
                    "retry settings have no other server to try: a failed attempt is final"
                ),
                hint=(
                    f"remove {tier.name}'s retry settings, or give the group several servers so a "
                    "retry can go elsewhere"
                ),
                path=ctx.hop_path(hop, *retry_path),
                related_path=group_path(ctx, hop),
            )


def _explicit_retry(hop: NginxHttpHop | NginxStreamHop) -> tuple[str, ...] | None:
    """The retry setting the spec sets on purpose (a request to retry), if any.

    Conditions narrower than nginx's default `error timeout` (e.g. `[error]`, which LB206
    recommends) restrict retries instead of asking for them: harmless on a single server.
    """
    if isinstance(hop, NginxHttpHop):
        tier = hop.tier
        conditions = tier.retry.conditions
        if conditions and not set(conditions) < set(hop.default_retry_conditions):
            return ("retry", "conditions")
        if tier.retry.tries is not None and tier.retry.tries != 1:
            return ("retry", "tries")
        return None
    stream = hop.tier
    if stream.next_upstream is True:
        return ("next_upstream",)
    if stream.next_upstream_tries is not None and stream.next_upstream_tries != 1:
        return ("next_upstream_tries",)
    return None


def _needs_nginx_group(ctx: RuleContext) -> str | None:
    if not ctx.plan.hops_of(NginxHttpHop) and not ctx.plan.hops_of(NginxStreamHop):
        return "no nginx_http or nginx_stream tier"
    return None


SINGLE_SERVER_FAILOVER = Rule(
    code="LB208",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="failover-settings-on-single-server-group",
    severity=Severity.WARNING,
    summary="Retry or max_fails settings on an nginx group that has only one server",
    tiers=frozenset({"nginx_http", "nginx_stream"}),
    check=_single_server_failover,
    versions="all",
    applies=_needs_nginx_group,
    doc=RuleDoc(
        what=(
            "Explicit `passive_health` (`max_fails`/`fail_timeout`) or retry settings "
            "(`retry.conditions`/`tries`, stream `next_upstream`/`next_upstream_tries`) on an "
            "edge or L4 tier whose upstream group has exactly one server: one next-tier "
            "instance (typically a single VIP), or one Service ClusterIP. Settings that turn "
            "failover down rather than on are not reported: `max_fails: 0` (no failure "
            "accounting) and retry conditions narrower than nginx's default `error timeout` "
            "(such as `[error]`)."
        ),
        why=(
            "nginx documents that with a single server in a group, `max_fails`, "
            "`fail_timeout` and `slow_start` are ignored and the server is never considered "
            "unavailable, and `proxy_next_upstream` has no next server. Settings written to "
            "make the path fail over do nothing; the failover has to happen behind the single "
            "address (in the VIP or in kube-proxy), or the group needs the real instances."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    passive_health: {max_fails: 3, fail_timeout: 30s}
  - kind: kong
    name: gateway
    instances: [{name: kong-vip, address: 10.0.1.100}]
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
    passive_health: {max_fails: 3, fail_timeout: 30s}
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(
            f"{NGINX_UPSTREAM}#server (a single server: max_fails, fail_timeout ignored)",
            f"{NGINX_PROXY}#proxy_next_upstream",
            f"{NGINX_STREAM_UPSTREAM}#server",
            f"{NGINX_STREAM_PROXY}#proxy_next_upstream",
        ),
    ),
)

RULES: tuple[Rule, ...] = (
    EDGE_READ_NOT_ABOVE_GATEWAY,
    L4_IDLE_CUTS_SLOW_RESPONSES,
    L4_CONNECT_OUTLASTS_EDGE_READ,
    RETRY_AMPLIFICATION,
    NON_IDEMPOTENT_RETRIES,
    TIMEOUTS_RETRIED_TWICE,
    RETRIES_THROUGH_ONE_CLUSTER_IP,
    SINGLE_SERVER_FAILOVER,
)
