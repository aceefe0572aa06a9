"""Keep-alive budgets: the idle timeouts of every hop, resolved and explained.

The invariant lbgen derives towards: on every connection that is pooled, the *caller*
closes an idle connection before the *callee* does, by a margin. Otherwise the caller may
send a request on a connection the callee is closing, which surfaces as an intermittent
502 / "upstream prematurely closed" (AWS ALB, GCP LB and every proxy document this race).

Values the user sets are kept as set; the rules report conflicts. Unset values are either
the product default (when it already satisfies the invariant) or derived from the next hop.
"""

from __future__ import annotations

from typing import TypeVar

from msgspec import Struct, field

from lbgen import defaults, versions
from lbgen.model.service import Service
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, NginxHttpTier, NginxStreamTier
from lbgen.model.types import Duration
from lbgen.plan._resolved import Origin, Resolved, given

T = TypeVar("T")


class UpstreamBudget(Struct, frozen=True):
    connections: Resolved[int | None]
    idle_timeout: Resolved[Duration | None]
    """None: the caller has no idle timer of its own (nginx < 1.15.3), so an idle pooled
    connection lives until the callee closes it."""
    max_requests: Resolved[int | None]
    """None: the version has no per-connection request limit (nginx < 1.15.3)."""
    max_lifetime: Resolved[Duration | None]


class BudgetRow(Struct, frozen=True):
    """One line of the hop-by-hop budget table in the rendered README."""

    hop: str
    setting: str
    value: str
    origin: Origin
    note: str


class Budget(Struct, frozen=True):
    margin_note: str
    app_idle: dict[str, Resolved[Duration | None]]
    """Per service (`namespace/name`): the app server's idle timeout (None = never closes
    idle connections, or keeps none)."""
    kong_upstream: UpstreamBudget | None = None
    kong_client_keepalive: Resolved[Duration] | None = None
    l4_proxy_timeout: Resolved[Duration] | None = None
    edge_upstream: UpstreamBudget | None = None
    edge_client_keepalive: Resolved[Duration] | None = None
    external_lb_idle: Resolved[Duration | None] | None = None
    rows: list[BudgetRow] = field(default_factory=list)


def margin_for(spec: Spec, callee: Duration) -> Duration:
    """How much earlier the caller closes: the spec's margin, or max(1s, 10% of callee)."""
    if spec.keepalive_margin is not None:
        return spec.keepalive_margin
    return Duration(max(1000, callee.ms // 10 // 1000 * 1000))


def service_key(service: Service) -> str:
    return f"{service.namespace}/{service.name}"


def product_default(fact: defaults.Fact[T], product: str = "") -> Resolved[T]:
    """A product's default, citing its source."""
    return Resolved(fact.value, "product default", fact.source, product=product)


def _caller_idle(
    spec: Spec, set_value: Duration | None, default: defaults.Fact[Duration], callee: Duration | None,
    callee_label: str,
) -> Resolved[Duration]:
    """A pooled caller's idle timeout: as set, or the default capped below its callee."""
    if set_value is not None:
        return Resolved(set_value, "set")
    fallback = product_default(default)
    if callee is None:
        return fallback
    limit = callee - margin_for(spec, callee)
    limit = Duration(limit.ms // 1000 * 1000)  # whole seconds: Kong and logs read seconds
    if fallback.value <= limit:
        return Resolved(
            fallback.value, "product default", default.source, f"already below {callee_label} {callee}"
        )
    return Resolved(
        limit, "derived", reasoning=f"{callee_label} {callee} minus margin {margin_for(spec, callee)}"
    )


def _callee_idle(
    spec: Spec, set_value: Duration | None, default: defaults.Fact[Duration], caller: Duration | None,
    caller_label: str,
) -> Resolved[Duration]:
    """A callee's idle timeout: as set, or the default raised above its caller's."""
    if set_value is not None:
        return Resolved(set_value, "set")
    fallback = product_default(default)
    if caller is None:
        return fallback
    needed = caller + margin_for(spec, caller)
    if fallback.value >= needed:
        return fallback
    return Resolved(
        needed, "derived", reasoning=f"{caller_label} {caller} plus margin {margin_for(spec, caller)}"
    )


def resolve_budget(spec: Spec) -> Budget:
    """Resolve every keep-alive/idle setting of the path, innermost first."""
    rows: list[BudgetRow] = []

    app_idle: dict[str, Resolved[Duration | None]] = {}
    for service in spec.services:
        resolved = given(service.app.idle_timeout, product_default(defaults.app_idle_timeout(service.app)))
        app_idle[service_key(service)] = resolved
        rows.append(
            BudgetRow(f"app {service_key(service)} ({service.app.preset})", "server idle timeout",
                      _fmt(resolved.value, "never closes / no keep-alive"), resolved.origin, resolved.note)
        )
    finite = [r.value for r in app_idle.values() if r.value is not None]
    innermost = min(finite) if finite else None

    lb_idle: Resolved[Duration | None] | None = None
    kong_upstream: UpstreamBudget | None = None
    kong_client: Resolved[Duration] | None = None
    l4_timeout: Resolved[Duration] | None = None
    edge_upstream: UpstreamBudget | None = None
    edge_client: Resolved[Duration] | None = None
    if spec.external_lb is not None:
        lb_idle = given(
            spec.external_lb.backend_idle_timeout,
            product_default(defaults.external_lb_backend_idle(spec.external_lb.kind)),
        )
    # The server-side idle timeout the hop in front of each tier must stay below.
    server_idle: Duration | None = innermost
    server_label = "shortest app idle timeout"

    # Innermost first: each tier's default is derived from the one behind it.
    for tier in reversed(spec.tiers):
        if isinstance(tier, KongTier):
            kong = tier
            kong_upstream = _kong_upstream(spec, kong, innermost)
            rows += _upstream_rows(kong.name, "Kong → pods", kong_upstream)
            caller_idle = _outer_caller_idle(spec, kong, lb_idle)
            client = _callee_idle(
                spec, kong.client_keepalive.timeout, defaults.KONG_CLIENT_KEEPALIVE_TIMEOUT,
                caller_idle, "caller's upstream idle timeout",
            )
            kong_client = client
            rows.append(BudgetRow(kong.name, "client keep-alive timeout (nginx_http_keepalive_timeout)",
                                  _fmt(client.value), client.origin, client.note))
            server_idle, server_label = client.value, f"{kong.name} client keep-alive"
        elif isinstance(tier, NginxStreamTier):
            l4 = tier
            caller_idle = _outer_caller_idle(spec, l4, lb_idle)
            proxy_timeout = _callee_idle(
                spec, l4.proxy_timeout, defaults.NGINX_STREAM_PROXY_TIMEOUT, caller_idle,
                "caller's upstream idle timeout",
            )
            l4_timeout = proxy_timeout
            rows.append(BudgetRow(l4.name, "proxy_timeout (idle, both legs)", _fmt(proxy_timeout.value),
                                  proxy_timeout.origin, proxy_timeout.note))
            if server_idle is None or proxy_timeout.value < server_idle:
                server_idle, server_label = proxy_timeout.value, f"{l4.name} proxy_timeout"
        elif isinstance(tier, NginxHttpTier):
            edge = tier
            edge_up = edge_upstream = _edge_upstream(spec, edge, server_idle, server_label)
            next_tier = spec.next_tier(edge)
            rows += _upstream_rows(edge.name, f"{edge.name} → {next_tier.name if next_tier else '?'}", edge_up)
            # The model puts nginx_http first, so the external load balancer is its caller.
            client = _callee_idle(
                spec, edge.client_keepalive.timeout, defaults.NGINX_CLIENT_KEEPALIVE_TIMEOUT,
                lb_idle.value if lb_idle else None, "external LB backend idle timeout",
            )
            edge_client = client
            rows.append(BudgetRow(edge.name, "client keep-alive timeout (keepalive_timeout)",
                                  _fmt(client.value), client.origin, client.note))

    if spec.external_lb is not None and lb_idle is not None:
        rows.append(BudgetRow(f"external LB ({spec.external_lb.kind})", "backend idle timeout",
                              _fmt(lb_idle.value, "unknown"), lb_idle.origin, lb_idle.note))

    margin = (
        f"set to {spec.keepalive_margin}" if spec.keepalive_margin is not None
        else "10% of the callee's timeout, at least 1s"
    )
    return Budget(
        margin_note=margin, app_idle=app_idle, kong_upstream=kong_upstream,
        kong_client_keepalive=kong_client, l4_proxy_timeout=l4_timeout, edge_upstream=edge_upstream,
        edge_client_keepalive=edge_client, external_lb_idle=lb_idle, rows=list(reversed(rows)),
    )


def _outer_caller_idle(
    spec: Spec, tier: KongTier | NginxStreamTier, lb_idle: Resolved[Duration | None] | None
) -> Duration | None:
    """The idle timeout of the pooled caller in front of `tier`, if that caller's value can
    push this callee's default up: a value the user *set* on the edge (a derived one is
    already below the callee's by construction), or the external load balancer's when no
    L7 tier stands between it and `tier` (an L4 tier relays the same connections)."""
    for outer in reversed(spec.tiers[: spec.tier_index(tier)]):
        if isinstance(outer, NginxHttpTier):
            return outer.upstream_keepalive.idle_timeout
        if isinstance(outer, KongTier):
            return None  # Kong's own pool is not a caller of the L4 tier behind it
    return lb_idle.value if lb_idle is not None else None


def _kong_upstream(spec: Spec, kong: KongTier, innermost: Duration | None) -> UpstreamBudget:
    ka = kong.upstream_keepalive
    pool_fact = defaults.kong_upstream_keepalive_pool_size(kong.version)
    requests_fact = defaults.kong_upstream_keepalive_max_requests(kong.version)
    idle = _caller_idle(
        spec, ka.idle_timeout, defaults.KONG_UPSTREAM_KEEPALIVE_IDLE_TIMEOUT, innermost,
        "shortest app idle timeout",
    )
    connections: Resolved[int | None] = given(ka.connections, product_default(pool_fact))
    if idle.origin == "derived" and idle.value.ms < 1000 and ka.connections is None:
        # Kong reads whole seconds and 0 means "keep forever": the only safe pool is none.
        connections = Resolved(
            0, "derived", reasoning="app idle timeout too short to pool safely; pool disabled"
        )
        idle = Resolved(Duration(1000), "derived", reasoning="unused: pool disabled")
    return UpstreamBudget(
        connections=connections,
        idle_timeout=idle,
        max_requests=given(ka.max_requests, product_default(requests_fact)),
        max_lifetime=Resolved(None, "product default", "Kong has no upstream connection lifetime"),
    )


def _edge_upstream(spec: Spec, edge: NginxHttpTier, callee: Duration | None, callee_label: str) -> UpstreamBudget:
    ka = edge.upstream_keepalive
    pool_fact = defaults.nginx_upstream_keepalive_connections(edge.version)
    if edge.version < versions.NGINX_UPSTREAM_KEEPALIVE_TUNING_SINCE.since:
        return _edge_upstream_without_timers(edge, callee, callee_label)
    if ka.connections is not None:
        connections: Resolved[int | None] = Resolved(ka.connections, "set")
    elif pool_fact.value is not None:
        connections = product_default(pool_fact)
    else:
        connections = Resolved(
            32, "lbgen default", reasoning="pool like nginx ≥ 1.29.7 does by default (`keepalive 32`)"
        )
    requests_fact = defaults.nginx_keepalive_requests(edge.version)
    return UpstreamBudget(
        connections=connections,
        idle_timeout=_caller_idle(spec, ka.idle_timeout, defaults.NGINX_UPSTREAM_KEEPALIVE_TIMEOUT, callee, callee_label),
        max_requests=given(ka.max_requests, product_default(requests_fact)),
        max_lifetime=given(ka.max_lifetime, product_default(defaults.NGINX_UPSTREAM_KEEPALIVE_TIME)),
    )


def _edge_upstream_without_timers(
    edge: NginxHttpTier, callee: Duration | None, callee_label: str
) -> UpstreamBudget:
    """nginx < 1.15.3: a pooled connection has no idle timer and no request limit of the
    caller's own, so it lives until the callee closes it and the callee always wins the
    idle race (LB110). lbgen does not pool by default there; a pool the user sets is kept."""
    ka = edge.upstream_keepalive
    closes = (
        f"here {callee_label} ({callee}) always closes it first (LB110)"
        if callee is not None
        else ""
    )
    connections: Resolved[int | None] = (
        Resolved(ka.connections, "set")
        if ka.connections is not None
        else Resolved(0, "lbgen default", reasoning="no pool: this nginx cannot close idle pooled "
                      "connections before the next hop does (upstream keepalive_timeout needs "
                      "nginx ≥ 1.15.3)")
    )
    return UpstreamBudget(
        connections=connections,
        idle_timeout=Resolved(None, "not in this version", defaults.NGINX_NO_UPSTREAM_IDLE_TIMER, closes),
        max_requests=Resolved(None, "not in this version", defaults.NGINX_NO_UPSTREAM_REQUEST_LIMIT),
        max_lifetime=Resolved(None, "not in this version", "upstream keepalive_time needs nginx ≥ 1.19.10"),
    )


def _upstream_rows(hop: str, leg: str, up: UpstreamBudget) -> list[BudgetRow]:
    rows = [
        BudgetRow(hop, f"{leg}: idle pool size", _fmt(up.connections.value, "off"),
                  up.connections.origin, up.connections.note),
    ]
    rows += [
        BudgetRow(hop, f"{leg}: pooled connection idle timeout",
                  _fmt(up.idle_timeout.value, "none: kept until the next hop closes it"),
                  up.idle_timeout.origin, up.idle_timeout.note),
        BudgetRow(hop, f"{leg}: max requests per connection", _fmt(up.max_requests.value, "no limit"),
                  up.max_requests.origin, up.max_requests.note),
    ]
    if up.max_lifetime.value is not None:
        rows.append(BudgetRow(hop, f"{leg}: max connection lifetime", _fmt(up.max_lifetime.value),
                              up.max_lifetime.origin, up.max_lifetime.note))
    return list(reversed(rows))


def _fmt(value: Duration | int | None, none: str = "none") -> str:
    if value is None:
        return none
    return str(value)


__all__ = ["Budget", "BudgetRow", "Resolved", "UpstreamBudget", "margin_for", "product_default", "resolve_budget",
           "service_key"]
