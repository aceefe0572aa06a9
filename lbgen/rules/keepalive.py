"""LB1xx — keep-alive and idle-timeout ordering across hops (the 502 race)."""

from __future__ import annotations

from collections.abc import Iterator

from lbgen.rules._base import Rule, RuleContext, RuleDoc, Severity, Violation


def _edge_pool_outlives_gateway(ctx: RuleContext) -> Iterator[Violation]:
    spec, budget = ctx.spec, ctx.budget
    edge, kong = spec.edge, spec.kong
    if edge is None or kong is None or budget.edge_upstream is None or budget.kong_client_keepalive is None:
        return
    if budget.edge_upstream.connections.value == 0:
        return
    caller = budget.edge_upstream.idle_timeout.value
    callee = budget.kong_client_keepalive.value
    if caller >= callee:
        yield Violation(
            message=(
                f"{edge.name} keeps idle upstream connections for {caller} but {kong.name} "
                f"closes idle client connections after {callee}, so {edge.name} can send a "
                "request on a connection Kong is closing (intermittent 502)"
            ),
            hint=(
                f"lower {edge.name} upstream_keepalive.idle_timeout below {callee} (or leave it "
                f"unset to derive it), or raise {kong.name} client_keepalive.timeout above {caller}"
            ),
            path=ctx.tier_path(edge, "upstream_keepalive", "idle_timeout"),
            related_path=ctx.tier_path(kong, "client_keepalive", "timeout"),
        )


EDGE_POOL_OUTLIVES_GATEWAY = Rule(
    code="LB101",
    name="edge-pool-outlives-gateway-keepalive",
    severity=Severity.ERROR,
    summary="The edge keeps pooled connections to Kong idle longer than Kong keeps them open",
    tiers=frozenset({"nginx_http", "kong"}),
    check=_edge_pool_outlives_gateway,
    doc=RuleDoc(
        what=(
            "The edge nginx's upstream `keepalive_timeout` (how long it keeps an idle pooled "
            "connection) against Kong's client-side `keepalive_timeout` (nginx default 75s, "
            "`nginx_http_keepalive_timeout` in kong.conf), through an L4 tier if there is one."
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
            "https://nginx.org/en/docs/http/ngx_http_upstream_module.html#keepalive_timeout",
            "https://nginx.org/en/docs/http/ngx_http_core_module.html#keepalive_timeout",
            "https://github.com/Kong/kong/blob/master/kong.conf.default (NGINX injected directives)",
            "https://cloud.google.com/load-balancing/docs/https (backend keepalive must exceed the LB's)",
        ),
    ),
)

RULES: tuple[Rule, ...] = (EDGE_POOL_OUTLIVES_GATEWAY,)
