"""LB1xx — keep-alive and idle-timeout ordering across hops (the 502 race).

On every connection that is pooled, the side that reuses it (the caller) must close it
before the side that accepts it (the callee) does; otherwise the caller sends a request on a
connection the callee is closing, and the client gets a 502. These rules compare the
*effective* values of adjacent hops, as resolved by the keep-alive budget (`ctx.budget`).
"""

from __future__ import annotations

from collections.abc import Iterator

from lbgen import defaults
from lbgen.budget import Resolved, service_key
from lbgen.model.spec import ExternalLoadBalancer, Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxHttpTier, NginxStreamTier
from lbgen.model.types import Duration
from lbgen.rules._base import (
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
    app_facing_pool,
    listing,
    pool_keeps_forever,
    shown,
)
from lbgen.rules._topology import front_of_cluster, through_cluster_ip

NGINX_UPSTREAM = "https://nginx.org/en/docs/http/ngx_http_upstream_module.html"
NGINX_STREAM_PROXY = "https://nginx.org/en/docs/stream/ngx_stream_proxy_module.html"
KONG_CONF = "https://github.com/Kong/kong/blob/master/kong.conf.default"

# ---------------------------------------------------------------------------------------
# LB101 edge pool vs Kong's client keep-alive
# ---------------------------------------------------------------------------------------


def _edge_pool_outlives_gateway(ctx: RuleContext) -> Iterator[Violation]:
    spec, budget = ctx.spec, ctx.budget
    edge, kong = spec.edge, spec.kong
    if (
        edge is None
        or kong is None
        or budget.edge_upstream is None
        or budget.kong_client_keepalive is None
    ):
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


def _needs_edge_and_kong(spec: Spec) -> str | None:
    if spec.edge is None:
        return "no nginx_http tier"
    if spec.kong is None:
        return "no kong tier"
    return None


EDGE_POOL_OUTLIVES_GATEWAY = Rule(
    code="LB101",
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
    spec, budget = ctx.spec, ctx.budget
    edge, l4 = spec.edge, spec.l4
    if edge is None or l4 is None:
        return
    if budget.edge_upstream is None or budget.l4_proxy_timeout is None:
        return
    pool = budget.edge_upstream
    if pool.connections.value == 0:
        return
    caller, callee = pool.idle_timeout.value, budget.l4_proxy_timeout.value
    if caller >= callee:
        yield Violation(
            message=(
                f"{edge.name} keeps idle pooled connections to {l4.name} for "
                f"{shown(pool.idle_timeout)} but {l4.name} closes a connection after "
                f"{shown(budget.l4_proxy_timeout)} without data (proxy_timeout), so {edge.name} "
                f"can send a request on a connection {l4.name} is closing (intermittent 502, "
                "and non-idempotent requests are not retried)"
            ),
            hint=(
                f"lower {edge.name} upstream_keepalive.idle_timeout below {callee} (or leave it "
                f"unset so lbgen derives it), or raise {l4.name} proxy_timeout above {caller} "
                "(nginx's default is 10m)"
            ),
            path=ctx.tier_path(edge, "upstream_keepalive", "idle_timeout"),
            related_path=ctx.tier_path(l4, "proxy_timeout"),
        )


def _needs_edge_and_l4(spec: Spec) -> str | None:
    if spec.l4 is None:
        return "no nginx_stream tier"
    if spec.edge is None:
        return "no nginx_http tier in front of the nginx_stream tier"
    return None


EDGE_POOL_OUTLIVES_L4 = Rule(
    code="LB102",
    name="edge-pool-outlives-l4-idle-timeout",
    severity=Severity.ERROR,
    summary="The edge keeps pooled connections idle longer than the L4 tier's proxy_timeout",
    tiers=frozenset({"nginx_http", "nginx_stream"}),
    check=_edge_pool_outlives_l4,
    versions="nginx ≥ 1.15.3 (upstream keepalive_timeout); on by default since 1.29.7",
    applies=_needs_edge_and_l4,
    doc=RuleDoc(
        what=(
            "The edge's effective upstream `keepalive_timeout` (set, or derived by lbgen) "
            "against the L4 tier's `proxy_timeout`, the idle timer of nginx `stream` that "
            "closes both legs of a connection when no data moved for that long (default 10m)."
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
    forever = pool_keeps_forever(tier, pool)
    caller = pool.idle_timeout.value
    # One pass over the services: the shortest conflicting app idle timeout is the one to
    # report (fixing it fixes the others); the rest are counted.
    worst: tuple[Duration, int] | None = None
    conflicting: list[str] = []
    for index, service in enumerate(ctx.spec.services):
        app_idle = ctx.budget.app_idle[service_key(service)].value
        if app_idle is None:  # never closes idle connections, or keeps none (LB106)
            continue
        if forever or caller >= app_idle:
            conflicting.append(service.name)
            if worst is None or app_idle < worst[0]:
                worst = (app_idle, index)
    if worst is None:
        return
    app_idle, index = worst
    service = ctx.spec.services[index]
    held = (
        "forever (upstream_keepalive_idle_timeout 0)"
        if forever
        else f"for {shown(pool.idle_timeout)}"
    )
    others = f" (services affected: {listing(conflicting)})" if len(conflicting) > 1 else ""
    yield Violation(
        message=(
            f"{tier.name} keeps idle connections to the pods {held} but the "
            f"{service.app.preset} server of {service.name} closes idle connections after "
            f"{shown(ctx.budget.app_idle[service_key(service)])}{others}, so {tier.name} can "
            "reuse a connection the app is closing (intermittent 502; a request already sent "
            "is not retried)"
        ),
        hint=(
            f"lower {tier.name} upstream_keepalive.idle_timeout below {app_idle} (or leave it "
            "unset so lbgen derives it from the shortest app idle timeout), or raise "
            f"{APP_KEEPALIVE_KNOB[service.app.preset]} above "
            f"{'the pool idle timeout' if forever else caller} and set app.idle_timeout to match"
        ),
        path=ctx.tier_path(tier, "upstream_keepalive", "idle_timeout"),
        related_path=("services", index, "app", "idle_timeout"),
    )


def _needs_pooled_l7(spec: Spec) -> str | None:
    if spec.kong is None and spec.edge is None:
        return "no nginx_http or kong tier keeps pooled connections to the pods"
    return None


GATEWAY_POOL_OUTLIVES_APP = Rule(
    code="LB103",
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
            "means \"keep forever\" and always conflicts."
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


def _external_lb_outlives_first_tier(ctx: RuleContext) -> Iterator[Violation]:
    spec, budget = ctx.spec, ctx.budget
    lb = spec.external_lb
    if lb is None:
        return
    lb_idle = budget.external_lb_idle or _external_lb_idle(lb)
    if lb_idle.value is None:
        return
    first = spec.tiers[0]
    if isinstance(first, NginxHttpTier) and budget.edge_client_keepalive is not None:
        callee = budget.edge_client_keepalive
        setting: tuple[str, ...] = ("client_keepalive", "timeout")
        knob = "client_keepalive.timeout (keepalive_timeout)"
    elif isinstance(first, NginxStreamTier) and budget.l4_proxy_timeout is not None:
        callee, setting, knob = budget.l4_proxy_timeout, ("proxy_timeout",), "proxy_timeout"
    elif isinstance(first, KongTier) and budget.kong_client_keepalive is not None:
        callee, setting = budget.kong_client_keepalive, ("client_keepalive", "timeout")
        knob = "client_keepalive.timeout (nginx_http_keepalive_timeout)"
    else:
        return
    if callee.value.ms == 0:  # keep-alive off: every response closes the connection
        return
    if lb_idle.value >= callee.value:
        lb_shown = (
            f"{lb_idle.value} (fixed by Google, not configurable)"
            if lb.kind == "gcp-application" and lb_idle.origin != "set"
            else shown(lb_idle)
        )
        yield Violation(
            message=(
                f"the {lb.kind} load balancer keeps idle connections to {first.name} for "
                f"{lb_shown} but {first.name} closes idle client connections after "
                f"{shown(callee)}, so the load balancer can send a request on a connection "
                f"{first.name} is closing (502 from the load balancer)"
            ),
            hint=(
                f"raise {first.name} {knob} above {lb_idle.value} (Google suggests 620s behind "
                "its 600s) or leave it unset so lbgen derives it from the load balancer"
                if lb.kind == "gcp-application"
                else f"raise {first.name} {knob} above {lb_idle.value}, or lower "
                f"external_lb.backend_idle_timeout (and the load balancer's idle timeout) "
                f"below {callee.value}"
            ),
            path=ctx.tier_path(first, *setting),
            related_path=("external_lb", "backend_idle_timeout"),
        )


def _external_lb_idle(lb: ExternalLoadBalancer) -> Resolved[Duration | None]:
    """The load balancer's backend idle timeout when the budget has none (the budget resolves
    it only for an nginx_http first tier): as set, or the product default with its source."""
    if lb.backend_idle_timeout is not None:
        return Resolved(lb.backend_idle_timeout, "set", "")
    fact = defaults.external_lb_backend_idle(lb.kind)
    value = fact.value if isinstance(fact.value, Duration) else None
    return Resolved(value, "product default", fact.source)


def _needs_external_lb(spec: Spec) -> str | None:
    lb = spec.external_lb
    if lb is None:
        return "no external_lb in front of the first tier"
    if lb.kind == "other" and lb.backend_idle_timeout is None:
        return "external_lb kind other has no backend_idle_timeout: its idle timeout is unknown"
    if isinstance(spec.tiers[0], KubernetesTier):
        return "the external load balancer sends straight to Kubernetes"
    return None


EXTERNAL_LB_OUTLIVES_FIRST_TIER = Rule(
    code="LB104",
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
            "(default 10m), or Kong's client keep-alive (75s)."
        ),
        why=(
            "The load balancer reuses its idle backend connections; if the first tier closes "
            "them first, the load balancer sends requests into closing sockets and answers 502 "
            "(`backend_connection_closed_before_data_sent_to_client` on GCP). Google and AWS "
            "both document that the backend's keep-alive must be longer than the load "
            "balancer's; on GCP the 600s cannot be changed, so the edge needs e.g. 620s. "
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
    client_keepalive: {timeout: 620s}
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


def _nat_idle_limit(ctx: RuleContext) -> tuple[Duration, str, ModelPath]:
    """How long kube-proxy's NAT state survives an idle connection, its label and its path."""
    cluster = ctx.spec.cluster
    kube_proxy = cluster.kube_proxy
    if cluster.platform == "self-managed" and kube_proxy is not None and kube_proxy.mode == "ipvs":
        path = ctx.tier_path(cluster, "kube_proxy", "ipvs", "tcp_timeout")
        ipvs = kube_proxy.ipvs
        if ipvs is not None and ipvs.tcp_timeout is not None and ipvs.tcp_timeout.ms > 0:
            return ipvs.tcp_timeout, "ipvs.tcpTimeout", path
        limit = defaults.IPVS_KERNEL_TCP_TIMEOUT.value
        assert isinstance(limit, Duration)
        label = "the kernel's IPVS tcp timeout, kept by kube-proxy while ipvs.tcpTimeout is unset"
        return limit, label, path
    path = ctx.tier_path(cluster, "kube_proxy", "conntrack", "tcp_established_timeout")
    conntrack = kube_proxy.conntrack if kube_proxy is not None else None
    if (
        conntrack is not None
        and conntrack.tcp_established_timeout is not None
        and conntrack.tcp_established_timeout.ms > 0
    ):
        return conntrack.tcp_established_timeout, "conntrack.tcpEstablishedTimeout", path
    limit = defaults.CONNTRACK_TCP_ESTABLISHED.value
    assert isinstance(limit, Duration)
    return limit, "kube-proxy's default conntrack.tcpEstablishedTimeout", path


def _pool_outlives_nat_state(ctx: RuleContext) -> Iterator[Violation]:
    spec, budget = ctx.spec, ctx.budget
    front = front_of_cluster(spec)
    if front is None or through_cluster_ip(spec) is None:
        return
    if isinstance(front, KongTier | NginxHttpTier):
        pool = budget.kong_upstream if isinstance(front, KongTier) else budget.edge_upstream
        if pool is None or pool.connections.value == 0:
            return
        forever = pool_keeps_forever(front, pool)
        idle, held = pool.idle_timeout.value, shown(pool.idle_timeout)
        setting: tuple[str, ...] = ("upstream_keepalive", "idle_timeout")
        what = "pooled connections"
    elif isinstance(front, NginxStreamTier) and budget.l4_proxy_timeout is not None:
        forever = False
        idle, held = budget.l4_proxy_timeout.value, shown(budget.l4_proxy_timeout)
        setting, what = ("proxy_timeout",), "idle connections (proxy_timeout)"
    else:
        return
    limit, label, limit_path = _nat_idle_limit(ctx)
    if not forever and idle < limit:
        return
    held_text = "forever (upstream_keepalive_idle_timeout 0)" if forever else f"for {held}"
    yield Violation(
        message=(
            f"{front.name} keeps {what} through the Services' ClusterIP open {held_text} but "
            f"kube-proxy's NAT entry expires after {limit} idle ({label}); the next request on "
            "such a connection is dropped or reset instead of reaching the pod"
        ),
        hint=(
            f"lower {front.name} {'.'.join(setting)} below {limit}"
            + (" (Kong's 0 means forever; leave it unset so lbgen derives it)" if forever else "")
            + ", or target pod endpoints (backend_targets: pod_endpoints) so no NAT sits in between"
        ),
        path=ctx.tier_path(front, *setting),
        related_path=limit_path,
    )


def _needs_cluster_ip_path(spec: Spec) -> str | None:
    if through_cluster_ip(spec) is None:
        front = front_of_cluster(spec)
        where = (
            ("tiers", spec.tier_index(front), "backend_targets")
            if front is not None and hasattr(front, "backend_targets")
            else ("tiers", spec.tier_index(spec.cluster))
        )
        return SkipReason(
            "the hop in front of Kubernetes reaches pod IPs directly (no kube-proxy NAT)", where
        )
    if spec.cluster.platform == "gke-dataplane-v2":
        return SkipReason(
            "GKE Dataplane V2 has no kube-proxy; the idle timeouts of its eBPF connection "
            "tracking are not documented by GKE",
            ("tiers", spec.tier_index(spec.cluster), "platform"),
        )
    return None


POOL_OUTLIVES_NAT_STATE = Rule(
    code="LB105",
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
            related_path=ctx.tier_path(tier, "upstream_keepalive", "connections"),
        )


APP_CLOSES_EVERY_CONNECTION = Rule(
    code="LB106",
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
    edge, pool = ctx.spec.edge, ctx.budget.edge_upstream
    if edge is None or pool is None or pool.connections.value == 0:
        return
    if not edge.version.at_least("1.15.3"):
        return  # upstream keepalive_timeout/_requests do not exist; lbgen does not render them
    settings = edge.upstream_keepalive
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


def _needs_edge(spec: Spec) -> str | None:
    return None if spec.edge is not None else "no nginx_http tier"


NGINX_ZERO_LIMIT = Rule(
    code="LB107",
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
    kong, pool = ctx.spec.kong, ctx.budget.kong_upstream
    if kong is None or pool is None or kong.backend_targets != "cluster_ip":
        return
    if pool.connections.value == 0 or pool.max_requests.value != 0:
        return
    yield Violation(
        message=(
            f"{kong.name} reaches the pods through each Service's ClusterIP and sets "
            "upstream_keepalive.max_requests 0 (unlimited), and Kong has no connection "
            f"lifetime limit: a busy pooled connection is never closed, so the pod kube-proxy "
            f"picked when it was opened keeps all of its requests and pods added by a "
            f"scale-up or rollout get none of that traffic until {kong.name} restarts or the "
            f"connection idles for {pool.idle_timeout.value}"
        ),
        hint=(
            "set upstream_keepalive.max_requests to a finite value (Kong's default is 10000; "
            "lower recycles faster), or use backend_targets: pod_endpoints so Kong balances "
            "each request itself"
        ),
        path=ctx.tier_path(kong, "upstream_keepalive", "max_requests"),
        related_path=ctx.tier_path(kong, "backend_targets"),
    )


def _needs_kong_on_cluster_ip(spec: Spec) -> str | None:
    if spec.kong is None:
        return "no kong tier"
    if spec.kong.backend_targets != "cluster_ip":
        return SkipReason(
            "Kong targets pod endpoints and balances every request itself",
            ("tiers", spec.tier_index(spec.kong), "backend_targets"),
        )
    return None


KONG_POOL_NEVER_RECYCLES = Rule(
    code="LB108",
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

RULES: tuple[Rule, ...] = (
    EDGE_POOL_OUTLIVES_GATEWAY,
    EDGE_POOL_OUTLIVES_L4,
    GATEWAY_POOL_OUTLIVES_APP,
    EXTERNAL_LB_OUTLIVES_FIRST_TIER,
    POOL_OUTLIVES_NAT_STATE,
    APP_CLOSES_EVERY_CONNECTION,
    NGINX_ZERO_LIMIT,
    KONG_POOL_NEVER_RECYCLES,
)
