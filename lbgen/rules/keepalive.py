"""LB1xx — keep-alive and idle-timeout ordering across hops (the 502 race).

On every connection that is pooled, the side that reuses it (the caller) must close it
before the side that accepts it (the callee) does; otherwise the caller sends a request on a
connection the callee is closing, and the client gets a 502. These rules compare the
*effective* values of the plan's hops: every pooled caller (`HopPlan.pool`) against the idle
timers it meets behind it (`Plan.relayed_callees`, `HopPlan.idle_close`), whatever its kind.
"""

from __future__ import annotations

from collections.abc import Iterator

from msgspec import Struct

from lbgen import defaults
from lbgen.model.types import Duration
from lbgen.plan._resolved import Resolved
from lbgen.plan.budget import margin_for
from lbgen.plan.hops import ExternalLbHop, HopPlan, KongHop, KubernetesHop, NginxHttpHop
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
from lbgen.rules._crosshop import (
    APP_KEEPALIVE_KNOB,
    ClosingOrder,
    app_facing_pool,
    closing_order,
    listing,
    needs_edge_and_l4,
)

NGINX_UPSTREAM = f"https://{defaults.NGINX_UPSTREAM_DOC}"
NGINX_STREAM_PROXY = f"https://{defaults.NGINX_STREAM_PROXY_DOC}"
KONG_CONF = "https://github.com/Kong/kong/blob/master/kong.conf.default"

# ---------------------------------------------------------------------------------------
# LB101 edge pool vs Kong's client keep-alive
# ---------------------------------------------------------------------------------------


def _edge_pool_outlives_gateway(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    for caller_hop, callee_hop in ctx.plan.l7_pairs():
        pool, closer = caller_hop.pool, callee_hop.idle_close
        if pool is None or closer is None or pool.connections.value == 0:
            continue
        caller, callee = pool.idle_timeout.value, closer.value.value
        if caller is None:
            continue  # no caller-side idle timer (nginx < 1.15.3): LB110's finding
        order = closing_order(spec, caller, callee)
        if order is None:
            continue
        edge, kong = caller_hop.name, callee_hop.name
        if order.inside_margin:
            message = (
                f"{edge} keeps idle upstream connections for {caller} and {kong} closes "
                f"idle client connections after {callee}: {edge} closes "
                f"{order.margin_clause(kong)}"
            )
        else:
            message = (
                f"{edge} keeps idle upstream connections for {caller} but {kong} "
                f"closes idle client connections after {callee}, so {edge} can send a "
                f"request on a connection {callee_hop.product} is closing (intermittent 502)"
            )
        yield Violation(
            message=message,
            hint=(
                f"lower {edge} upstream_keepalive.idle_timeout to "
                f"{callee - margin_for(spec, callee)} or less (or leave it unset to derive it), or "
                f"raise {kong} "
                f"client_keepalive.timeout to {caller + order.margin} or more"
            ),
            path=ctx.hop_path(caller_hop, "upstream_keepalive", "idle_timeout"),
            related_path=ctx.hop_path(callee_hop, *closer.key),
            severity=order.severity,
        )


def _needs_edge_and_kong(ctx: RuleContext) -> str | None:
    if ctx.plan.l7_pairs():
        return None
    if ctx.plan.first_of(NginxHttpHop) is None:
        return "no nginx_http tier"
    return "no kong tier"


EDGE_POOL_OUTLIVES_GATEWAY = Rule(
    code="LB101",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:client_keepalive.timeout",
        "nginx_http:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.idle_timeout",
    ),
    name="edge-pool-outlives-gateway-keepalive",
    severity=Severity.ERROR,
    summary="The edge keeps pooled connections to Kong idle longer than Kong keeps them open",
    tiers=frozenset({"nginx_http", "kong"}),
    check=_edge_pool_outlives_gateway,
    versions="all",
    applies=_needs_edge_and_kong,
    doc=RuleDoc(
        what=(
            "The edge nginx's upstream `keepalive_timeout` (how long it keeps an idle pooled "
            "connection) against Kong's client-side `keepalive_timeout` (nginx default 75s, "
            "`nginx_http_keepalive_timeout` in kong.conf), through an L4 tier if there is one. "
            "A caller that closes first but by less than lbgen's keep-alive margin (10% of "
            "the caller's value, at least 1s, or `keepalive_margin`) is a warning; one that "
            "keeps connections at least as long as its callee is an error."
        ),
        why=(
            "When the callee closes an idle connection at the moment the caller reuses it, the "
            "request fails with `upstream prematurely closed connection` and the client gets a "
            "502. nginx does not retry non-idempotent requests that were already sent. The side "
            "that reuses a connection must be the side that closes it first."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    upstream_keepalive: {idle_timeout: 120s}
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    client_keepalive: {timeout: 75s}
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
    upstream_keepalive: {idle_timeout: 60s}
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    client_keepalive: {timeout: 75s}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(
            f"{NGINX_UPSTREAM}#keepalive_timeout",
            "https://nginx.org/en/docs/http/ngx_http_core_module.html#keepalive_timeout",
            f"{KONG_CONF} (NGINX injected directives)",
            ("https://cloud.google.com/load-balancing/docs/https "
             "(backend keepalive must exceed the LB's)"),
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB102 edge pool vs the L4 tier's idle timer (KA-002)
# ---------------------------------------------------------------------------------------


def _edge_pool_outlives_l4(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    for caller_hop, relay in ctx.plan.relayed_pairs():
        pool, closer = caller_hop.pool, relay.idle_close
        if pool is None or closer is None or pool.connections.value == 0:
            continue
        caller, callee = pool.idle_timeout.value, closer.value.value
        if caller is None:
            continue  # no caller-side idle timer (nginx < 1.15.3): LB110's finding
        order = closing_order(spec, caller, callee)
        if order is None:
            continue
        edge, l4 = caller_hop.name, relay.name
        held = (
            f"{edge} keeps idle pooled connections to {l4} for "
            f"{pool.idle_timeout.shown()} and {l4} closes a connection after "
            f"{closer.value.shown()} without data ({closer.name})"
        )
        if order.inside_margin:
            message = f"{held}: {edge} closes {order.margin_clause(l4)}"
        else:
            message = (
                f"{held}, so {edge} can send a request on a connection {l4} is closing "
                "(intermittent 502, and non-idempotent requests are not retried)"
            )
        default = f" ({relay.product}'s default is {closer.default})" if closer.default else ""
        yield Violation(
            message=message,
            hint=(
                f"lower {edge} upstream_keepalive.idle_timeout to "
                f"{callee - margin_for(spec, callee)} or less (or leave it unset so lbgen derives "
                f"it), or raise {l4} {closer.knob} "
                f"to {caller + order.margin} or more{default}"
            ),
            path=ctx.hop_path(caller_hop, "upstream_keepalive", "idle_timeout"),
            related_path=ctx.hop_path(relay, *closer.key),
            severity=order.severity,
        )


EDGE_POOL_OUTLIVES_L4 = Rule(
    code="LB102",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "nginx_http:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.idle_timeout",
        "nginx_stream:proxy_timeout",
    ),
    name="edge-pool-outlives-l4-idle-timeout",
    severity=Severity.ERROR,
    summary="The edge keeps pooled connections idle longer than the L4 tier's proxy_timeout",
    tiers=frozenset({"nginx_http", "nginx_stream"}),
    check=_edge_pool_outlives_l4,
    versions="nginx ≥ 1.15.3 (upstream keepalive_timeout); on by default since 1.29.7",
    applies=needs_edge_and_l4,
    doc=RuleDoc(
        what=(
            "The edge's effective upstream `keepalive_timeout` (set, or derived by lbgen) "
            "against the L4 tier's `proxy_timeout`, the idle timer of nginx `stream` that "
            "closes both legs of a connection when no data moved for that long (default 10m). "
            "A caller that closes first but by less than lbgen's keep-alive margin (10% of "
            "the caller's value, at least 1s, or `keepalive_margin`) is a warning; one that "
            "keeps connections at least as long as its callee is an error."
        ),
        why=(
            "The L4 tier holds no pool of its own: every pooled edge connection is one client "
            "connection of the L4 tier. When `proxy_timeout` is shorter than the edge's idle "
            "time, the L4 tier closes idle pooled connections while the edge still considers "
            "them reusable; the next request on one fails with `upstream prematurely closed "
            "connection` and a 502. Shortening `proxy_timeout` \"so idle connections are "
            "released quickly\" while the edge keeps nginx's 60s pool idle time creates exactly "
            "this race."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    upstream_keepalive: {connections: 32, idle_timeout: 60s}
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
    upstream_keepalive: {connections: 32}
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
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
            f"{NGINX_UPSTREAM}#keepalive_timeout",
            f"{NGINX_UPSTREAM}#keepalive (keepalive on by default since 1.29.7)",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB103 gateway pool vs the app servers' keep-alive (KA-003)
# ---------------------------------------------------------------------------------------


def _gateway_pool_outlives_app(ctx: RuleContext) -> Iterator[Violation]:
    found = app_facing_pool(ctx)
    if found is None:
        return
    tier, pool = found
    if pool.connections.value == 0:
        return
    caller = pool.idle_timeout.value
    if caller is None:
        return  # no caller-side idle timer (nginx < 1.15.3): LB110's finding
    forever = tier.keeps_idle_forever
    app_idle_of = [planned.app_idle_timeout for planned in ctx.plan.cluster.services]
    # One pass over the services. The shortest conflicting app idle timeout is the one to
    # report (fixing it fixes the others); the rest are counted. Apps past the pool's idle
    # time come first (errors), then those closing inside the margin (warnings).
    worst: tuple[Duration, int] | None = None
    worst_order: ClosingOrder | None = None
    conflicting: list[str] = []
    for index, service in enumerate(ctx.spec.services):
        app_idle = app_idle_of[index].value
        if app_idle is None:  # never closes idle connections, or keeps none (LB106)
            continue
        order = (
            ClosingOrder(Severity.ERROR, margin_for(ctx.spec, caller), Duration(0))
            if forever
            else closing_order(ctx.spec, caller, app_idle)
        )
        if order is None:
            continue
        conflicting.append(service.name)
        if (
            worst is None
            or worst_order is None
            or (order.severity.rank, -app_idle.ms) > (worst_order.severity.rank, -worst[0].ms)
        ):
            worst, worst_order = (app_idle, index), order
    if worst is None or worst_order is None:
        return
    app_idle, index = worst
    service = ctx.spec.services[index]
    held = (
        "forever (upstream_keepalive_idle_timeout 0)"
        if forever
        else f"for {pool.idle_timeout.shown()}"
    )
    others = f" (services affected: {listing(conflicting)})" if len(conflicting) > 1 else ""
    app = f"the {service.app.preset} server of {service.name}"
    if worst_order.inside_margin:
        message = (
            f"{tier.name} keeps idle connections to the pods {held} and {app} closes idle "
            f"connections after {app_idle_of[index].shown()}{others}: "
            f"{tier.name} closes {worst_order.margin_clause('the app')}"
        )
    else:
        message = (
            f"{tier.name} keeps idle connections to the pods {held} but {app} closes idle "
            f"connections after {app_idle_of[index].shown()}{others}, "
            f"so {tier.name} can reuse a connection the app is closing (intermittent 502; a "
            "request already sent is not retried)"
        )
    yield Violation(
        message=message,
        hint=(
            f"lower {tier.name} upstream_keepalive.idle_timeout to "
            f"{app_idle - margin_for(ctx.spec, app_idle)} or less (or leave it unset so lbgen "
            "derives it from the shortest app idle timeout), or raise "
            f"{APP_KEEPALIVE_KNOB[service.app.preset]} above "
            f"{'the pool idle timeout' if forever else caller + worst_order.margin} and set "
            "app.idle_timeout to match"
        ),
        path=ctx.hop_path(tier, "upstream_keepalive", "idle_timeout"),
        related_path=("services", index, "app", "idle_timeout"),
        severity=worst_order.severity,
    )


def _needs_pooled_l7(ctx: RuleContext) -> str | None:
    if ctx.plan.app_facing_pool() is None:
        return "no nginx_http or kong tier keeps pooled connections to the pods"
    return None


GATEWAY_POOL_OUTLIVES_APP = Rule(
    code="LB103",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:upstream_keepalive.connections",
        "kong:upstream_keepalive.idle_timeout",
        "kubernetes:services.*.app.idle_timeout",
        "nginx_http:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.idle_timeout",
    ),
    name="gateway-pool-outlives-app-keepalive",
    severity=Severity.ERROR,
    summary="The tier in front of the pods keeps pooled connections idle longer than the app",
    tiers=frozenset({"kong", "nginx_http", "app"}),
    check=_gateway_pool_outlives_app,
    versions="Kong 3.x; nginx ≥ 1.15.3; app servers per preset (Node.js ≥ 26: 65s)",
    applies=_needs_pooled_l7,
    doc=RuleDoc(
        what=(
            "The idle timeout of the pool that ends at the pods — Kong's "
            "`upstream_keepalive_idle_timeout` (default 60s), or the edge's upstream "
            "`keepalive_timeout` when there is no Kong — against every service's app-server "
            "keep-alive timeout (uvicorn 5s, gunicorn 2s, Node.js ≤ 25 5s, Tomcat stock 20s, "
            "Spring Boot 60s; Go keeps idle connections unless IdleTimeout is set). Kong's `0` "
            "means \"keep forever\" and always conflicts (an error). "
            "A caller that closes first but by less than lbgen's keep-alive margin (10% of "
            "the caller's value, at least 1s, or `keepalive_margin`) is a warning; one that "
            "keeps connections at least as long as its callee is an error."
        ),
        why=(
            "This is the classic 502 between a gateway and Python/Node.js pods: the app closes "
            "an idle keep-alive connection after a few seconds while the gateway still holds it "
            "in its pool and sends the next request on it. \"Shortening\" Kong's keep-alive to "
            "10s does not help in front of a 5s uvicorn: the gateway must close first, so its "
            "idle timeout has to be *below* the app's."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    upstream_keepalive: {idle_timeout: 10s}
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 8
    app: {preset: uvicorn}
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
    replicas: 8
    app: {preset: uvicorn}
""",
        references=(
            f"{KONG_CONF} (upstream_keepalive_idle_timeout: 0 keeps idle connections forever)",
            ("https://github.com/encode/uvicorn/blob/master/uvicorn/config.py "
             "(timeout_keep_alive=5)"),
            ("https://github.com/benoitc/gunicorn/blob/master/gunicorn/config.py "
             "(Keepalive, default 2)"),
            "https://nodejs.org/api/http.html#serverkeepalivetimeout",
            "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB104 external load balancer vs the first tier (KA-005)
# ---------------------------------------------------------------------------------------


class _IdleCloser(Struct, frozen=True):
    """A hop that closes the external load balancer's idle connections, and how."""

    tier: str
    timeout: Resolved[Duration] | Resolved[Duration | None]
    path: ModelPath
    knob: str
    derived_when_unset: bool
    """Whether lbgen raises this value above the load balancer's when it is unset."""
    through: str = ""
    """The L4 tier the connection crosses on the way ("" when it is the first tier)."""


def _idle_closers(ctx: RuleContext) -> list[_IdleCloser]:
    """Every hop that can close the load balancer's idle connections, outermost first: the
    first tier, and behind an L4 tier (which relays each connection as one TCP connection)
    the first hop that terminates HTTP keep-alive — Kong, or the app servers."""
    plan = ctx.plan
    first = plan.tier_hops[0]
    closer = first.idle_close
    if closer is None:
        return []
    closers = [_IdleCloser(first.name, closer.value, ctx.hop_path(first, *closer.key), closer.knob, True)]
    if first.layer != "l4":
        return closers
    behind = plan.next_hop(first)
    behind_closer = behind.idle_close if behind is not None else None
    if behind is not None and behind_closer is not None:
        closers.append(
            _IdleCloser(
                behind.name, behind_closer.value, ctx.hop_path(behind, *behind_closer.key),
                behind_closer.knob, True, first.name,
            )
        )
    elif isinstance(behind, KubernetesHop):
        # An L4 tier straight in front of Kubernetes serves one Service (the model's rule).
        for index, (service, planned) in enumerate(zip(ctx.spec.services, behind.services, strict=True)):
            closers.append(
                _IdleCloser(
                    f"the {service.app.preset} server of {service.name}",
                    planned.app_idle_timeout,
                    ("services", index, "app", "idle_timeout"),
                    APP_KEEPALIVE_KNOB[service.app.preset], False, first.name,
                )
            )
    return closers


def _external_lb_outlives_first_tier(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    lb, lb_hop = spec.external_lb, ctx.plan.first_of(ExternalLbHop)
    if lb is None or lb_hop is None:
        return
    lb_idle = lb_hop.backend_idle_timeout
    if lb_idle.value is None:
        return
    lb_shown = (
        f"{lb_idle.value} (fixed by Google, not configurable)"
        if lb.kind == "gcp-application" and lb_idle.origin != "set"
        else lb_idle.shown()
    )
    for closer in _idle_closers(ctx):
        callee = closer.timeout.value
        if callee is None or callee.ms == 0:  # never closes idle ones / keep-alive off
            continue
        order = closing_order(spec, lb_idle.value, callee)
        if order is None:
            continue
        via = (
            f"; {closer.through} relays each of them as one TCP connection to {closer.tier}, "
            f"which terminates HTTP keep-alive and"
            if closer.through
            else f" but {closer.tier}"
        )
        closes = "closes an idle connection" if closer.knob == "proxy_timeout" else (
            "closes idle client connections"
        )
        held = (
            f"the {lb.kind} load balancer keeps idle connections to {spec.tiers[0].name} for "
            f"{lb_shown}{via} {closes} after {closer.timeout.shown()}"
        )
        if order.inside_margin:
            message = (
                f"{held}, only {order.gap} after the load balancer does: inside lbgen's "
                f"keep-alive margin of {order.margin}, so the load balancer can still send a "
                f"request on a connection {closer.tier} is closing (an occasional 502 from "
                "the load balancer)"
            )
        else:
            message = (
                f"{held}, so the load balancer can send a request on a connection "
                f"{closer.tier} is closing (502 from the load balancer)"
            )
        needed = lb_idle.value + order.margin
        unset = " (or leave it unset so lbgen derives it)" if closer.derived_when_unset else ""
        if lb.kind == "gcp-application":
            hint = (
                f"raise {closer.tier} {closer.knob} to {needed} or more{unset}: Google's 600s "
                "cannot be changed"
            )
        else:
            hint = (
                f"raise {closer.tier} {closer.knob} to {needed} or more{unset}, or lower "
                "external_lb.backend_idle_timeout (and the load balancer's idle timeout) to "
                f"{callee - margin_for(spec, callee)} or less"
            )
        yield Violation(
            message=message,
            hint=hint,
            path=closer.path,
            related_path=("external_lb", "backend_idle_timeout"),
            severity=order.severity,
        )


def _needs_external_lb(ctx: RuleContext) -> str | None:
    spec = ctx.spec
    lb = spec.external_lb
    if lb is None:
        return "no external_lb in front of the first tier"
    if lb.kind == "other" and lb.backend_idle_timeout is None:
        return "external_lb kind other has no backend_idle_timeout: its idle timeout is unknown"
    if ctx.plan.tier_hops[0].layer == "cluster":
        return "the external load balancer sends straight to Kubernetes"
    return None


EXTERNAL_LB_OUTLIVES_FIRST_TIER = Rule(
    code="LB104",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "external_lb:backend_idle_timeout",
        "kong:client_keepalive.timeout",
        "kubernetes:services.*.app.idle_timeout",
        "nginx_http:client_keepalive.timeout",
        "nginx_stream:proxy_timeout",
    ),
    name="external-lb-outlives-first-tier-keepalive",
    severity=Severity.ERROR,
    summary="A cloud load balancer keeps connections to the first tier idle longer than it does",
    tiers=frozenset({"external_lb", "nginx_http", "nginx_stream", "kong"}),
    check=_external_lb_outlives_first_tier,
    versions="GCP application LB (backend keep-alive 600s, fixed); AWS ALB (idle 60s default)",
    applies=_needs_external_lb,
    doc=RuleDoc(
        what=(
            "The external load balancer's backend idle timeout (GCP application LB: 600s, "
            "fixed; AWS ALB: 60s unless changed) against the first tier's client-side idle "
            "timeout: nginx `keepalive_timeout` (default 75s), nginx stream `proxy_timeout` "
            "(default 10m), or Kong's client keep-alive (75s). An L4 first tier relays each "
            "load-balancer connection as one TCP connection, so the rule follows it to the "
            "first hop that terminates HTTP keep-alive — Kong's client keep-alive, or the app "
            "servers when the L4 tier sends straight to a Service — and compares that too. "
            "A hop that closes first but by less than lbgen's keep-alive margin (10% of the "
            "load balancer's timeout, at least 1s, or `keepalive_margin`) is a warning; one "
            "that closes at or before the load balancer's timeout is an error."
        ),
        why=(
            "The load balancer reuses its idle backend connections; if the first tier closes "
            "them first, the load balancer sends requests into closing sockets and answers 502 "
            "(`backend_connection_closed_before_data_sent_to_client` on GCP). Google and AWS "
            "both document that the backend's keep-alive must be longer than the load "
            "balancer's; on GCP the 600s cannot be changed, so the edge needs more (lbgen derives "
            "660s: 600s plus its 10% margin). "
            "nginx's 75s default is fine behind an ALB (60s) and wrong behind GCP."
        ),
        example="""\
name: shop
external_lb: {kind: gcp-application}
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    client_keepalive: {timeout: 75s}
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        fix="""\
name: shop
external_lb: {kind: gcp-application}
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    client_keepalive: {timeout: 660s}
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(
            ("https://cloud.google.com/load-balancing/docs/https#timeouts_and_retries "
             "(backend keepalive timeout fixed at 600s; backends must use more than 600s)"),
            "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout",
            "https://nginx.org/en/docs/http/ngx_http_core_module.html#keepalive_timeout",
            f"{NGINX_STREAM_PROXY}#proxy_timeout",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB105 pool idle time vs kube-proxy's connection tracking (KA-004)
# ---------------------------------------------------------------------------------------


def _pool_outlives_nat_state(ctx: RuleContext) -> Iterator[Violation]:
    plan = ctx.plan
    front, nat = plan.front_of_cluster, plan.cluster.nat_idle_limit
    if front is None or front.dials_pods or nat is None:
        return
    pool, closer = front.pool, front.idle_close
    if front.layer == "l7" and pool is not None:
        if pool.connections.value == 0:
            return
        forever = front.keeps_idle_forever
        idle, held = pool.idle_timeout.value, pool.idle_timeout.shown()
        setting: tuple[str, ...] = ("upstream_keepalive", "idle_timeout")
        what = "pooled connections"
    elif front.layer == "l4" and closer is not None:
        forever = False
        idle, held = closer.value.value, closer.value.shown()
        setting, what = closer.key, f"idle connections ({closer.name})"
    else:
        return
    limit, label, limit_path = nat.value, nat.label, ctx.hop_path(plan.cluster, *nat.key)
    if not forever and idle is not None and idle < limit:
        return
    if idle is None:
        held_text = "until the pods close them (nginx < 1.15.3 has no upstream keepalive_timeout)"
    elif forever:
        held_text = "forever (upstream_keepalive_idle_timeout 0)"
    else:
        held_text = f"for {held}"
    yield Violation(
        message=(
            f"{front.name} keeps {what} through the Services' ClusterIP open {held_text} but "
            f"kube-proxy's NAT entry expires after {limit} idle ({label}); the next request on "
            "such a connection is dropped or reset instead of reaching the pod"
        ),
        hint=(
            (
                f"upgrade {front.name} to nginx ≥ 1.15.3 (lbgen then renders keepalive_timeout) "
                "or set upstream_keepalive.connections: 0"
                if idle is None
                else f"lower {front.name} {'.'.join(setting)} below {limit}"
                + (" (Kong's 0 means forever; leave it unset so lbgen derives it)" if forever else "")
            )
            + ", or target pod endpoints (backend_targets: pod_endpoints) so no NAT sits in between"
        ),
        path=ctx.hop_path(front, *setting),
        related_path=limit_path,
    )


def _needs_cluster_ip_path(ctx: RuleContext) -> str | None:
    plan = ctx.plan
    front, cluster = plan.front_of_cluster, plan.cluster
    if front is None or front.dials_pods:
        where = (
            ctx.hop_path(front, *front.targets_key)
            if front is not None and front.targets_key is not None
            else ctx.hop_path(cluster)
        )
        return SkipReason(
            "the hop in front of Kubernetes reaches pod IPs directly (no kube-proxy NAT)", where
        )
    if cluster.tier.platform == "gke-dataplane-v2":
        return SkipReason(
            "GKE Dataplane V2 has no kube-proxy; the idle timeouts of its eBPF connection "
            "tracking are not documented by GKE",
            ctx.hop_path(cluster, "platform"),
        )
    return None


POOL_OUTLIVES_NAT_STATE = Rule(
    code="LB105",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:upstream_keepalive.connections",
        "kong:upstream_keepalive.idle_timeout",
        "nginx_http:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.idle_timeout",
        "nginx_stream:proxy_timeout",
    ),
    name="pool-outlives-kube-proxy-connection-tracking",
    severity=Severity.WARNING,
    summary="Connections through a ClusterIP idle longer than kube-proxy keeps their NAT entry",
    tiers=frozenset({"kong", "nginx_http", "nginx_stream", "kubernetes"}),
    check=_pool_outlives_nat_state,
    versions="kube-proxy iptables/nftables (conntrack 24h) and IPVS (kernel 900s); all Kong 3.x",
    applies=_needs_cluster_ip_path,
    doc=RuleDoc(
        what=(
            "When the hop in front of Kubernetes connects to a Service's ClusterIP, its idle "
            "connection lifetime (Kong's `upstream_keepalive_idle_timeout`, where 0 means "
            "forever; the edge's upstream `keepalive_timeout`; an L4 tier's `proxy_timeout`) "
            "against the lifetime of kube-proxy's NAT state for an idle TCP connection: the "
            "IPVS tcp timeout in IPVS mode (kernel default 900s, kept when `ipvs.tcpTimeout` "
            "is 0) or conntrack's `tcpEstablishedTimeout` (kube-proxy default 24h)."
        ),
        why=(
            "kube-proxy picks a pod when a connection starts and rewrites its packets from then "
            "on using a conntrack (or IPVS) entry. When the entry expires while the connection "
            "is idle, neither end is told; the next request on the pooled connection is a "
            "mid-stream packet with no translation and is dropped or reset, which surfaces as a "
            "timeout or 502 after a quiet period."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    backend_targets: cluster_ip
    upstream_keepalive: {connections: 256, idle_timeout: 0s}
  - kind: kubernetes
    name: cluster
    platform: self-managed
    kube_proxy: {mode: ipvs}
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
    backend_targets: cluster_ip
    upstream_keepalive: {connections: 256, idle_timeout: 60s}
  - kind: kubernetes
    name: cluster
    platform: self-managed
    kube_proxy: {mode: ipvs}
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        references=(
            f"{KONG_CONF} (upstream_keepalive_idle_timeout)",
            (
                "https://kubernetes.io/docs/reference/config-api/kube-proxy-config.v1alpha1/ "
                "(conntrack.tcpEstablishedTimeout, default 24h; ipvs.tcpTimeout)"
            ),
            ("https://github.com/kubernetes/kubernetes/issues/84041 "
             "(ipvsadm -l --timeout: 900 120 300)"),
            ("https://github.com/kubernetes/kubernetes/pull/85517 "
             "(0 keeps the kernel's IPVS timeouts)"),
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB106 app server that never keeps connections alive (KA-009)
# ---------------------------------------------------------------------------------------


def _app_closes_every_connection(ctx: RuleContext) -> Iterator[Violation]:
    found = app_facing_pool(ctx)
    if found is None:
        return
    tier, pool = found
    if pool.connections.value == 0:
        return
    for index, service in enumerate(ctx.spec.services):
        if service.app.preset != "gunicorn-sync":
            continue
        yield Violation(
            message=(
                f"{service.name} runs gunicorn sync workers, which close the connection after "
                f"every response, so {tier.name}'s pool of {pool.connections.value} idle "
                "connections per worker is never reused for it: every request opens a new TCP "
                "connection to a pod"
            ),
            hint=(
                "use gunicorn's gthread (or an async) worker class so --keep-alive takes effect "
                "and set app.preset accordingly, or accept a connect per request"
            ),
            path=("services", index, "app", "preset"),
            related_path=ctx.hop_path(tier, "upstream_keepalive", "connections"),
        )


APP_CLOSES_EVERY_CONNECTION = Rule(
    code="LB106",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.connections",
    ),
    name="app-server-closes-every-connection",
    severity=Severity.INFO,
    summary="The app server closes every connection, so the gateway's pool is never reused",
    tiers=frozenset({"kong", "nginx_http", "app"}),
    check=_app_closes_every_connection,
    versions="gunicorn (all versions: sync workers ignore --keep-alive)",
    applies=_needs_pooled_l7,
    doc=RuleDoc(
        what=(
            "Services whose app server is gunicorn with the `sync` worker class, behind a tier "
            "that keeps a pool of idle connections to the pods (Kong, or the edge without Kong)."
        ),
        why=(
            "gunicorn's sync workers do not support persistent connections: `--keep-alive` is "
            "ignored and every response ends the connection. There is no 502 race, but the "
            "gateway's keep-alive pool is useless for this service, each request pays a TCP "
            "(and possibly TLS) handshake, and connection churn shows up as TIME_WAIT sockets "
            "on the gateway."
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
    app: {preset: gunicorn-sync}
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
    app: {preset: gunicorn}
""",
        references=(
            ("https://github.com/benoitc/gunicorn/blob/master/gunicorn/config.py "
             "(Keepalive: \"sync worker does not support persistent connections\")"),
            "https://docs.gunicorn.org/en/stable/settings.html#keepalive",
            f"{KONG_CONF} (upstream_keepalive_pool_size)",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB107 nginx upstream keep-alive limits set to 0 (keep-alive defeated)
# ---------------------------------------------------------------------------------------

_NO_REUSE_EFFECT = {
    "max_requests": (
        "keepalive_requests",
        (
            "nginx closes every upstream connection after its first request (it caches a "
            "connection only while its request count is below keepalive_requests)"
        ),
    ),
    "max_lifetime": (
        "keepalive_time",
        (
            "nginx closes every upstream connection that is older than 0 ms when its request "
            "ends, i.e. after its first request"
        ),
    ),
    "idle_timeout": (
        "keepalive_timeout",
        "nginx arms a 0 ms idle timer on every cached connection and closes it at once",
    ),
}


def _nginx_limit_disables_reuse(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.hops_of(NginxHttpHop):
        yield from _nginx_limits_defeating_reuse(ctx, hop)


def _nginx_limits_defeating_reuse(ctx: RuleContext, hop: NginxHttpHop) -> Iterator[Violation]:
    pool = hop.pool
    if pool.connections.value == 0:
        return
    if not hop.has_pool_timers:
        return  # upstream keepalive_timeout/_requests do not exist; lbgen does not render them
    edge, settings = hop.tier, hop.tier.upstream_keepalive
    # Values below which a pooled connection can never serve a second request.
    defeated: list[tuple[str, str]] = []
    if settings.max_requests is not None and settings.max_requests <= 1:
        defeated.append(("max_requests", str(settings.max_requests)))
    if settings.max_lifetime is not None and settings.max_lifetime.ms == 0:
        defeated.append(("max_lifetime", "0"))
    if settings.idle_timeout is not None and settings.idle_timeout.ms == 0:
        defeated.append(("idle_timeout", "0"))
    for field, value in defeated:
        directive, effect = _NO_REUSE_EFFECT[field]
        kong_meaning = (
            " (in Kong, 0 means unlimited; in nginx it disables reuse)" if value == "0" else ""
        )
        yield Violation(
            message=(
                f"{edge.name} sets upstream_keepalive.{field} {value} ({directive} {value}): "
                f"{effect}, so its pool of {pool.connections.value} connections is never "
                f"reused{kong_meaning}"
            ),
            hint=(
                f"remove upstream_keepalive.{field} to use nginx's default, or set a larger "
                "limit; to turn pooling off on purpose set upstream_keepalive.connections: 0"
            ),
            path=ctx.tier_path(edge, "upstream_keepalive", field),
            related_path=ctx.tier_path(edge, "upstream_keepalive", "connections"),
        )


def _needs_edge(ctx: RuleContext) -> str | None:
    return None if ctx.plan.hops_of(NginxHttpHop) else "no nginx_http tier"


NGINX_ZERO_LIMIT = Rule(
    code="LB107",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "nginx_http:upstream_keepalive.connections",
    ),
    name="nginx-keepalive-limit-disables-reuse",
    severity=Severity.WARNING,
    summary="An nginx upstream keep-alive limit of 0 (or 1 request) silently turns reuse off",
    tiers=frozenset({"nginx_http"}),
    check=_nginx_limit_disables_reuse,
    versions="nginx ≥ 1.15.3 (keepalive_requests/_timeout in upstream), ≥ 1.19.10 (keepalive_time)",
    applies=_needs_edge,
    doc=RuleDoc(
        what=(
            "The edge's `upstream_keepalive.max_requests` set to 0 or 1, or `max_lifetime` or "
            "`idle_timeout` set to 0, while its pool is enabled (`connections` > 0)."
        ),
        why=(
            "The same numbers mean opposite things on two hops: Kong's "
            "`upstream_keepalive_max_requests = 0` and `upstream_keepalive_idle_timeout = 0` "
            "mean unlimited/forever, but nginx caches an upstream connection only while "
            "`requests < keepalive_requests` and `age <= keepalive_time`, and closes it after "
            "`keepalive_timeout` idle. A 0 copied from Kong therefore makes nginx open a new "
            "connection (through the L4 tier to Kong) for every request while the spec says "
            "keep-alive is on."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    upstream_keepalive: {connections: 32, max_requests: 0}
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
    upstream_keepalive: {connections: 32, max_requests: 1000}
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
            f"{NGINX_UPSTREAM}#keepalive_requests",
            f"{NGINX_UPSTREAM}#keepalive_time",
            ("https://github.com/nginx/nginx/blob/master/src/http/modules/"
             "ngx_http_upstream_keepalive_module.c (ngx_http_upstream_free_keepalive_peer)"),
            f"{KONG_CONF} (upstream_keepalive_max_requests: 0 = unlimited)",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB108 Kong connections that never recycle through a ClusterIP (KA-010)
# ---------------------------------------------------------------------------------------


def _kong_pool_never_recycles(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.hops_of(KongHop):
        pool = hop.pool
        if hop.dials_pods or hop is not ctx.plan.front_of_cluster:
            continue
        if pool.connections.value == 0 or pool.max_requests.value != 0:
            continue
        yield Violation(
            message=(
                f"{hop.name} reaches the pods through each Service's ClusterIP and sets "
                "upstream_keepalive.max_requests 0 (unlimited), and Kong has no connection "
                f"lifetime limit: a busy pooled connection is never closed, so the pod kube-proxy "
                f"picked when it was opened keeps all of its requests and pods added by a "
                f"scale-up or rollout get none of that traffic until {hop.name} restarts or the "
                f"connection idles for {pool.idle_timeout.value}"
            ),
            hint=(
                "set upstream_keepalive.max_requests to a finite value (Kong's default is 10000; "
                "lower recycles faster), or use backend_targets: pod_endpoints so Kong balances "
                "each request itself"
            ),
            path=ctx.hop_path(hop, "upstream_keepalive", "max_requests"),
            related_path=ctx.hop_path(hop, "backend_targets"),
        )


def _needs_kong_on_cluster_ip(ctx: RuleContext) -> str | None:
    kongs = ctx.plan.hops_of(KongHop)
    if not kongs:
        return "no kong tier"
    if all(hop.dials_pods for hop in kongs):
        return SkipReason(
            "Kong targets pod endpoints and balances every request itself",
            ctx.hop_path(kongs[0], "backend_targets"),
        )
    return None


KONG_POOL_NEVER_RECYCLES = Rule(
    code="LB108",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:upstream_keepalive.connections",
        "kong:upstream_keepalive.idle_timeout",
        "kong:upstream_keepalive.max_requests",
    ),
    name="gateway-pool-never-recycles-through-cluster-ip",
    severity=Severity.WARNING,
    summary="Kong's pooled connections to a ClusterIP never recycle, freezing kube-proxy's choice",
    tiers=frozenset({"kong", "kubernetes"}),
    check=_kong_pool_never_recycles,
    versions="Kong 3.x (upstream_keepalive_max_requests; no lifetime setting)",
    applies=_needs_kong_on_cluster_ip,
    doc=RuleDoc(
        what=(
            "Kong targeting Services by ClusterIP (`backend_targets: cluster_ip`, KIC "
            "`ingress.kubernetes.io/service-upstream: \"true\"`) with "
            "`upstream_keepalive_max_requests = 0`, which Kong documents as unlimited."
        ),
        why=(
            "kube-proxy balances connections, not requests: it picks a pod when a connection "
            "opens. Kong has no keep-alive lifetime setting, so with an unlimited request count "
            "a busy pooled connection only closes when it idles out — under steady load, never. "
            "The request split across pods is then frozen at whatever kube-proxy chose when the "
            "pool filled, and new pods from a scale-up get little or no traffic."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    backend_targets: cluster_ip
    upstream_keepalive: {max_requests: 0}
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
    backend_targets: cluster_ip
    upstream_keepalive: {max_requests: 1000}
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 8
    app: {preset: go}
""",
        references=(
            f"{KONG_CONF} (upstream_keepalive_max_requests: 0 = unlimited)",
            "https://developer.konghq.com/kubernetes-ingress-controller/reference/annotations/#ingress-kubernetes-io-service-upstream",
            "https://kubernetes.io/docs/reference/networking/virtual-ips/",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB109 the edge's pool through the L4 tier never recycles (the "hop-B" problem)
# ---------------------------------------------------------------------------------------

# The lifetime nginx gives a pooled connection by default (keepalive_time 1h, ≥ 1.19.10):
# a pool that keeps connections at least this long *and* lets each serve more requests than
# nginx's default keepalive_requests has given up both of nginx's recycling limits.
_LONGEST_REBALANCE = Duration(3_600_000)


def _edge_pool_through_l4_never_recycles(ctx: RuleContext) -> Iterator[Violation]:
    for caller, relay in ctx.plan.relayed_pairs():
        behind = ctx.plan.next_hop(relay)
        if isinstance(caller, NginxHttpHop) and behind is not None and behind.layer == "l7":
            yield from _pinned_through_relay(ctx, caller, relay, behind)
        # through L4 to a ClusterIP the pods are pinned: LB410


def _pinned_through_relay(
    ctx: RuleContext, caller: NginxHttpHop, l4: HopPlan, kong: HopPlan
) -> Iterator[Violation]:
    edge, pool = caller.tier, caller.pool
    if pool.connections.value == 0:
        return
    default_requests = caller.default_max_requests
    requests = pool.max_requests.value
    if requests is not None and requests <= default_requests:
        return  # a busy connection recycles after at most nginx's default request count
    has_lifetime = caller.has_pool_lifetime  # as rendered
    lifetime = pool.max_lifetime.value if has_lifetime else None
    if lifetime is not None and lifetime < _LONGEST_REBALANCE:
        return
    kept = (
        f"for {lifetime} at most (upstream keepalive_time)"
        if lifetime is not None
        else f"with no age limit (nginx {edge.version} has no upstream keepalive_time; it "
        "came in 1.19.10)"
    )
    yield Violation(
        message=(
            f"{edge.name} pools up to {pool.connections.value} connections per worker through "
            f"{l4.name} and lets each serve {requests} requests, {kept}: {l4.name} picks a "
            f"{kong.name} node once per connection, so after a {kong.name} node restarts or "
            "one is added the spread of busy pooled connections over the nodes stays as it "
            "was — the new or restarted node gets little traffic until connections recycle"
        ),
        hint=(
            f"set {edge.name} upstream_keepalive.max_lifetime (keepalive_time, e.g. 10m) so "
            f"pooled connections reopen and {l4.name} spreads them again, or lower "
            f"upstream_keepalive.max_requests to nginx's default {default_requests}"
            if has_lifetime
            else f"lower {edge.name} upstream_keepalive.max_requests (nginx's default is "
            f"{default_requests}), or upgrade {edge.name} to nginx ≥ 1.19.10 and set "
            "upstream_keepalive.max_lifetime"
        ),
        path=ctx.hop_path(caller, "upstream_keepalive", "max_requests"),
        related_path=ctx.hop_path(l4),
    )


def _needs_edge_l4_kong(ctx: RuleContext) -> str | None:
    plan = ctx.plan
    pairs = [(c, r) for c, r in plan.relayed_pairs() if isinstance(c, NginxHttpHop)]
    if not pairs:
        return "no nginx_http tier pooling through an nginx_stream tier"
    if not any(plan.l7_callee(c) is not None for c, _ in pairs):
        return "the nginx_stream tier forwards to a Service (LB410 covers that)"
    if not any(c.has_pool_timers for c, _ in pairs):
        return "nginx < 1.15.3 has no upstream keepalive_requests (LB110 covers its timers)"
    return None


EDGE_POOL_THROUGH_L4_NEVER_RECYCLES = Rule(
    code="LB109",
    status="preview",
    since=NEXT_RELEASE,
    reads=(
        "nginx_http:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.max_lifetime",
        "nginx_http:upstream_keepalive.max_requests",
    ),
    name="edge-pool-through-l4-never-recycles",
    severity=Severity.WARNING,
    summary="The edge's pooled connections through the L4 tier never recycle, freezing its spread",
    tiers=frozenset({"nginx_http", "nginx_stream", "kong"}),
    check=_edge_pool_through_l4_never_recycles,
    versions="nginx ≥ 1.15.3 (keepalive_requests); keepalive_time from 1.19.10",
    applies=_needs_edge_l4_kong,
    doc=RuleDoc(
        what=(
            "The edge's upstream pool towards an L4 tier in front of Kong when each pooled "
            "connection may serve more requests than nginx's default `keepalive_requests` "
            "(1000 since 1.19.10, 100 before) and lives at least nginx's default "
            "`keepalive_time` of 1h — or forever on nginx < 1.19.10, which has no "
            "`keepalive_time`."
        ),
        why=(
            "An L4 tier balances connections, not requests: it picks a Kong node when the "
            "edge opens a pooled connection, and every request on that connection goes to "
            "that node. Pooled connections close only when they idle out, reach "
            "`keepalive_requests` or reach `keepalive_time`; under steady load they never "
            "idle. With both limits raised or absent, the spread over the Kong nodes is "
            "frozen: after a node restarts, its connections move to the surviving nodes and "
            "stay there; a node added by a scale-out receives only new connections. Capping "
            "the lifetime (e.g. `keepalive_time 10m`) makes the edge reopen connections and "
            "the L4 tier spread them again."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    version: "1.30.0"
    instances: [{name: edge-1, address: 10.0.0.1}]
    upstream_keepalive: {connections: 32, max_requests: 1000000, max_lifetime: 24h}
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
    replicas: 4
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    version: "1.30.0"
    instances: [{name: edge-1, address: 10.0.0.1}]
    upstream_keepalive: {connections: 32, max_requests: 1000000, max_lifetime: 10m}
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
    replicas: 4
    app: {preset: go}
""",
        references=(
            f"{NGINX_UPSTREAM}#keepalive_requests (default 1000 since 1.19.10, 100 before)",
            f"{NGINX_UPSTREAM}#keepalive_time (1.19.10, default 1h)",
            f"{NGINX_STREAM_PROXY}#proxy_pass (one upstream connection per client connection)",
            "https://nginx.org/en/CHANGES (1.19.10: keepalive_time; keepalive_requests 1000)",
        ),
    ),
)

# ---------------------------------------------------------------------------------------
# LB110 nginx < 1.15.3 pools upstream connections with no idle timer of its own
# ---------------------------------------------------------------------------------------


def _first_callee_close(ctx: RuleContext, caller: HopPlan) -> tuple[Duration, str] | None:
    """The shortest server-side idle timeout behind a caller's pooled connections: an L4
    tier relays them, so its proxy_timeout and the next L7 hop's keep-alive both apply."""
    found: list[tuple[Duration, str]] = []
    for callee in ctx.plan.relayed_callees(caller):
        closer = callee.idle_close
        if closer is not None:
            found.append((closer.value.value, f"{callee.name} {closer.name}"))
        elif isinstance(callee, KubernetesHop):
            for service, planned in zip(ctx.spec.services, callee.services, strict=True):
                app_idle = planned.app_idle_timeout.value
                if app_idle is not None:
                    found.append((app_idle, f"the {service.app.preset} server of {service.name}"))
    return min(found, key=lambda item: item[0]) if found else None


def _pool_without_idle_timer(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.hops_of(NginxHttpHop):
        edge, pool = hop.tier, hop.pool
        if not pool.connections.value:
            continue
        if pool.idle_timeout.value is not None:
            continue  # nginx ≥ 1.15.3: lbgen renders keepalive_timeout below the callee's
        closer = _first_callee_close(ctx, hop)
        if closer is None:
            continue  # nothing behind closes idle connections: no race
        callee_idle, callee = closer
        yield Violation(
            message=(
                f"{edge.name} runs nginx {edge.version}, which has no upstream keepalive_timeout "
                f"(appeared in 1.15.3), yet pools {pool.connections.value} connections per worker: "
                f"an idle pooled connection stays open until {callee} closes it after "
                f"{callee_idle}, so the callee always closes first and a request sent on a "
                "connection it is closing fails (intermittent 502 / \"upstream prematurely closed\")"
            ),
            hint=(
                f"upgrade {edge.name} to nginx ≥ 1.15.3 (lbgen then renders keepalive_timeout below "
                f"{callee_idle}), or set upstream_keepalive.connections: 0 to disable pooling"
            ),
            path=ctx.hop_path(hop, "version"),
            related_path=ctx.hop_path(hop, "upstream_keepalive", "connections"),
        )


def _needs_old_edge(ctx: RuleContext) -> str | None:
    edges = ctx.plan.hops_of(NginxHttpHop)
    if not edges:
        return "no nginx_http tier"
    if all(hop.has_pool_timers for hop in edges):
        return f"the edge runs nginx {edges[0].tier.version} (≥ 1.15.3 has an upstream idle timer)"
    return None


NGINX_POOL_WITHOUT_IDLE_TIMER = Rule(
    code="LB110",
    status="preview",
    since=NEXT_RELEASE,
    reads=(
        "kong:client_keepalive.timeout",
        "kubernetes:services.*.app.idle_timeout",
        "nginx_http:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.idle_timeout",
        "nginx_stream:proxy_timeout",
    ),
    name="nginx-pool-without-idle-timer",
    severity=Severity.ERROR,
    summary="nginx < 1.15.3 pools upstream connections but cannot close idle ones before the callee",
    tiers=frozenset({"nginx_http"}),
    check=_pool_without_idle_timer,
    versions="nginx < 1.15.3 (upstream keepalive_timeout/keepalive_requests appeared in 1.15.3)",
    applies=_needs_old_edge,
    doc=RuleDoc(
        what=(
            "An edge nginx older than 1.15.3 with upstream pooling on "
            "(`upstream_keepalive.connections` > 0), in front of a hop that closes idle "
            "connections (Kong's client keep-alive, an L4 tier's `proxy_timeout`, or an app "
            "server's idle timeout)."
        ),
        why=(
            "Upstream `keepalive_timeout` and `keepalive_requests` appeared in nginx 1.15.3. "
            "Before, a connection in the `keepalive` cache has no idle timer of its own: it "
            "stays cached until the next hop closes it. The caller can therefore never close "
            "first — the keep-alive invariant cannot hold — and every idle close by the callee "
            "races with a request nginx is sending on that connection; the request fails with "
            "`upstream prematurely closed connection` and the client gets a 502. lbgen does not "
            "pool by default on such versions; this rule fires where the spec turns pooling on."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    version: "1.14.2"
    instances: [{name: edge-1, address: 10.0.0.1}]
    upstream_keepalive: {connections: 32}
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
    version: "1.18.0"
    instances: [{name: edge-1, address: 10.0.0.1}]
    upstream_keepalive: {connections: 32}
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
            f"{NGINX_UPSTREAM}#keepalive_timeout (\"This directive appeared in version 1.15.3\")",
            f"{NGINX_UPSTREAM}#keepalive_requests (\"This directive appeared in version 1.15.3\")",
            (
                "https://nginx.org/en/CHANGES-1.16 (1.15.3: \"the keepalive_timeout and "
                "keepalive_requests directives in the upstream block\")"
            ),
            f"{NGINX_UPSTREAM}#keepalive",
        ),
    ),
)

RULES: tuple[Rule, ...] = (
    EDGE_POOL_OUTLIVES_GATEWAY,
    EDGE_POOL_OUTLIVES_L4,
    GATEWAY_POOL_OUTLIVES_APP,
    EXTERNAL_LB_OUTLIVES_FIRST_TIER,
    POOL_OUTLIVES_NAT_STATE,
    APP_CLOSES_EVERY_CONNECTION,
    NGINX_ZERO_LIMIT,
    KONG_POOL_NEVER_RECYCLES,
    EDGE_POOL_THROUGH_L4_NEVER_RECYCLES,
    NGINX_POOL_WITHOUT_IDLE_TIMER,
)
