"""LB4xx — balancing settings that have no effect, or that skew load, across hops.

A balancing decision needs a choice: an algorithm aimed at a single ClusterIP has one
target; a Service setting is bypassed when the proxy dials pod IPs; a client-IP key seen
behind a proxy has a handful of values; an L4 hop balances connections, and pooled
connections carry many requests each.
"""

from __future__ import annotations

from collections.abc import Iterator

from lbgen.model.service import KongServiceSettings
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, NginxHttpTier, NginxStreamTier
from lbgen.plan.hops import HopPlan, KongHop, NginxHttpHop, NginxStreamHop
from lbgen.plan.topology import (
    backend_targets,
    describe_instances,
    front_of_cluster,
    headless_fqdn,
    service_fqdn,
    through_cluster_ip,
)
from lbgen.rules._base import (
    FIRST_RELEASE,
    NEXT_RELEASE,
    Rule,
    RuleContext,
    RuleDoc,
    Severity,
    SkipReason,
    Violation,
)
from lbgen.rules._topology import (
    gateway_client_address,
    pooled_connections,
    targets_path,
)

K8S_VIRTUAL_IPS = "https://kubernetes.io/docs/reference/networking/virtual-ips/"
KIC_SERVICE_UPSTREAM = (
    "https://developer.konghq.com/kubernetes-ingress-controller/reference/annotations/"
    "#ingress-kubernetes-io-service-upstream"
)
KONG_UPSTREAM_DOC = "https://developer.konghq.com/gateway/entities/upstream/"
KONG_HEALTH_DOC = (
    "https://developer.konghq.com/gateway/traffic-control/health-checks-circuit-breakers/"
)


def _self_managed_only(ctx: RuleContext) -> str | None:
    spec = ctx.spec
    if spec.cluster.platform != "self-managed":
        return SkipReason(
            f"kube-proxy IPVS settings only take effect on self-managed clusters "
            f"(this cluster is {spec.cluster.platform}; see LB701/LB702)",
            ("tiers", spec.tier_index(spec.cluster), "platform"),
        )
    return None


# --- LB401 ---------------------------------------------------------------------------------


def _algorithm_on_cluster_ip(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    front = through_cluster_ip(spec)
    if front is None:
        return
    related = targets_path(ctx, front)
    hop = ctx.plan.hop_of(front)
    if isinstance(front, KongTier):
        assert isinstance(hop, KongHop)
        for index, service in enumerate(spec.services):
            algorithm = hop.services[index].balancing.value
            if algorithm == "round-robin":
                continue
            yield Violation(
                message=(
                    f"service {service.name}: {front.name} balances with {algorithm} over a "
                    f"single target, the ClusterIP {service_fqdn(spec, service)} "
                    f"(backend_targets: cluster_ip), so {algorithm} has nothing to choose "
                    f"from; kube-proxy picks one of the {service.replicas} pods per connection"
                ),
                hint=(
                    f"set {front.name} backend_targets: pod_endpoints so Kong applies "
                    f"{algorithm} across the pods, or drop the algorithm (round-robin) so the "
                    "spec says what really happens"
                ),
                path=("services", index, "kong", "algorithm"),
                related_path=related,
            )
        return
    assert isinstance(hop, NginxHttpHop | NginxStreamHop)
    method = hop.balancing.value
    if method == "round-robin":
        return
    where = (
        "its one upstream server, the Service's ClusterIP"
        if isinstance(front, NginxStreamTier)
        else "each service's upstream, which holds one server (the Service's ClusterIP)"
    )
    hint = (
        f"remove balancing.algorithm from {front.name}: kube-proxy, not nginx, picks the pod"
        if isinstance(front, NginxStreamTier)
        else f"set {front.name} backend_targets: pod_endpoints so nginx balances across the pods, "
        "and resolver (nginx ≥ 1.27.3) so the headless Service name follows the pods"
    )
    yield Violation(
        message=(
            f"{front.name} balances with {method} over {where}, so {method} has no "
            "effect; kube-proxy picks a pod per connection"
        ),
        hint=hint,
        path=ctx.tier_path(front, "balancing", "algorithm"),
        related_path=related,
    )


BALANCER_ON_SINGLE_CLUSTER_IP = Rule(
    code="LB401",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:services.*.algorithm",
        "nginx_http:balancing.algorithm",
        "nginx_stream:balancing.algorithm",
    ),
    name="balancer-on-single-cluster-ip",
    severity=Severity.WARNING,
    summary="A balancing algorithm is aimed at a Service's single ClusterIP, so it has no effect",
    tiers=frozenset({"kong", "nginx_http", "nginx_stream", "kubernetes"}),
    check=_algorithm_on_cluster_ip,
    doc=RuleDoc(
        what=(
            "The tier in front of Kubernetes (Kong, or nginx when there is no Kong) reaches a "
            "Service through its ClusterIP (`backend_targets: cluster_ip`; KIC's "
            "`ingress.kubernetes.io/service-upstream: \"true\"`) and still sets a balancing "
            "algorithm other than round-robin: Kong `least-connections`, `latency`, "
            "`consistent-hashing`, `sticky-sessions`; nginx `least_conn`, `hash`, `ip_hash`, "
            "`random`."
        ),
        why=(
            "A ClusterIP is one address, so the Kong Upstream (or nginx upstream) has one "
            "target and the algorithm never has a choice to make. The real choice happens in "
            "kube-proxy, which picks a pod at random for each new connection, and pooled "
            "connections then carry many requests to that pod. Least-connections, latency "
            "and hashing silently do nothing."
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
    platform: self-managed
services:
  - name: orders
    replicas: 8
    app: {preset: uvicorn}
    kong: {algorithm: least-connections}
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
    platform: self-managed
services:
  - name: orders
    replicas: 8
    app: {preset: uvicorn}
    kong: {algorithm: least-connections}
""",
        references=(
            KIC_SERVICE_UPSTREAM,
            KONG_UPSTREAM_DOC,
            K8S_VIRTUAL_IPS + "#proxy-mode-iptables",
            "https://nginx.org/en/docs/http/ngx_http_upstream_module.html#upstream",
        ),
    ),
)


# --- LB402 ---------------------------------------------------------------------------------


def _healthchecks_on_cluster_ip(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    front = through_cluster_ip(spec)
    if not isinstance(front, KongTier):
        return
    for index, service in enumerate(spec.services):
        checks = service.kong.healthchecks
        if checks is None:
            continue
        active = checks.active
        passive = checks.passive
        part = None
        if active is not None and (active.healthy.interval > 0 or active.unhealthy.interval > 0):
            part = "active"
        elif passive is not None and (
            passive.unhealthy.http_failures > 0
            or passive.unhealthy.tcp_failures > 0
            or passive.unhealthy.timeouts > 0
        ):
            part = "passive"
        if part is None:
            continue
        yield Violation(
            message=(
                f"service {service.name}: {front.name} runs {part} health checks against a "
                f"single target, the ClusterIP {service_fqdn(spec, service)}, so each check "
                f"lands on a random one of the {service.replicas} pods and one failing pod can "
                "mark the whole Service unhealthy: Kong then answers 503 for every request"
            ),
            hint=(
                f"set {front.name} backend_targets: pod_endpoints so each pod is its own "
                "target, or remove kong.healthchecks and rely on readiness probes, which "
                "take a single pod out of the Service"
            ),
            path=("services", index, "kong", "healthchecks", part),
            related_path=targets_path(ctx, front),
        )


HEALTHCHECKS_ON_SINGLE_CLUSTER_IP = Rule(
    code="LB402",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="healthchecks-on-single-cluster-ip",
    severity=Severity.WARNING,
    summary="Kong health checks judge a whole Service through its ClusterIP",
    tiers=frozenset({"kong", "kubernetes"}),
    check=_healthchecks_on_cluster_ip,
    doc=RuleDoc(
        what=(
            "Kong reaches a Service through its ClusterIP and the service's Kong Upstream "
            "has active health checks (a non-zero `healthy.interval` or `unhealthy.interval`) "
            "or passive ones (a non-zero unhealthy counter)."
        ),
        why=(
            "With one target, Kong's verdict covers every pod behind the ClusterIP: failures "
            "from one bad pod (or a check that kube-proxy happened to send to it) mark the "
            "only target unhealthy, and Kong returns 503 for all requests. Passive checks "
            "never re-enable a target on their own. A readiness probe removes just the bad "
            "pod; per-pod health checks need pod targets."
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
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    kong:
      healthchecks:
        passive:
          healthy: {successes: 5}
          unhealthy: {http_failures: 3}
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
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    kong:
      healthchecks:
        passive:
          healthy: {successes: 5}
          unhealthy: {http_failures: 3}
""",
        references=(
            KONG_HEALTH_DOC,
            KIC_SERVICE_UPSTREAM,
            "https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/",
        ),
    ),
)


# --- LB403 ---------------------------------------------------------------------------------


def _bypassed_service_settings(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    front = front_of_cluster(spec)
    if front is None or backend_targets(front) != "pod_endpoints":
        return
    how = (
        "through the Kong Ingress Controller's pod endpoints"
        if isinstance(front, KongTier) and front.mode == "kic"
        else "through lbgen's headless Service"
    )
    related = targets_path(ctx, front)
    for index, service in enumerate(spec.services):
        k8s = service.kubernetes
        settings: list[tuple[str, str, str]] = []
        if k8s.session_affinity == "ClientIP":
            settings.append(("session_affinity", "sessionAffinity", "ClientIP"))
        if k8s.internal_traffic_policy == "Local":
            settings.append(("internal_traffic_policy", "internalTrafficPolicy", "Local"))
        if k8s.traffic_distribution is not None:
            settings.append(
                ("traffic_distribution", "trafficDistribution", k8s.traffic_distribution)
            )
        for field, api_name, value in settings:
            yield Violation(
                message=(
                    f"service {service.name}: {api_name} {value} does not apply to traffic "
                    f"from {front.name}, which connects to pod IPs directly {how} "
                    "(backend_targets: pod_endpoints) and so bypasses kube-proxy; it only "
                    "affects other clients of the Service's ClusterIP"
                ),
                hint=(
                    f"remove kubernetes.{field} if {front.name} is the Service's only client; "
                    f"balance or pin in {front.name} instead"
                ),
                path=("services", index, "kubernetes", field),
                related_path=related,
            )


SERVICE_SETTINGS_BYPASSED = Rule(
    code="LB403",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="service-settings-bypassed-by-pod-endpoints",
    severity=Severity.INFO,
    summary="Service affinity/traffic settings are bypassed by a proxy that dials pod IPs",
    tiers=frozenset({"kong", "nginx_http", "kubernetes"}),
    check=_bypassed_service_settings,
    doc=RuleDoc(
        what=(
            "The tier in front of Kubernetes reaches pods directly (`backend_targets: "
            "pod_endpoints`: KIC's default, or lbgen's headless Service) while a Service sets "
            "`sessionAffinity: ClientIP`, `internalTrafficPolicy: Local` or "
            "`trafficDistribution`."
        ),
        why=(
            "These fields are implemented by kube-proxy (or the dataplane) for traffic sent "
            "to the Service's virtual IP. A proxy that connects to pod IPs never goes "
            "through that virtual IP, so the settings have no effect on it: they only matter "
            "for other in-cluster clients. Expecting them to pin or localise gateway traffic "
            "is a mistake; do it in the gateway instead."
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
    kubernetes: {session_affinity: ClientIP}
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
    kong: {algorithm: consistent-hashing, hash_on: header, hash_on_header: X-User}
""",
        references=(
            KIC_SERVICE_UPSTREAM,
            K8S_VIRTUAL_IPS + "#session-affinity",
            "https://kubernetes.io/docs/concepts/services-networking/service/#headless-services",
            "https://kubernetes.io/docs/concepts/services-networking/service-traffic-policy/",
        ),
    ),
)


# --- LB404 ---------------------------------------------------------------------------------


def _affinity_on_proxy_clients(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    front = through_cluster_ip(spec)
    if front is None:
        return
    clients = describe_instances(front.instances)
    for index, service in enumerate(spec.services):
        k8s = service.kubernetes
        if k8s.session_affinity != "ClientIP":
            continue
        affinity = ctx.plan.cluster.services[index].session_affinity_timeout
        assert affinity is not None  # the plan resolves it for every ClientIP Service
        timeout = affinity.value
        reach = min(len(front.instances), service.replicas)
        yield Violation(
            message=(
                f"service {service.name}: sessionAffinity ClientIP keys on the source address, "
                f"but every connection to the Service comes from {front.name}'s {clients}, so "
                f"each {front.name} instance sticks to one pod for {timeout}s: at most {reach} "
                f"of the {service.replicas} pods get traffic"
            ),
            hint=(
                f"remove kubernetes.session_affinity; if users must stick to a pod, hash on a "
                f"cookie or header in {front.name} with backend_targets: pod_endpoints"
            ),
            path=("services", index, "kubernetes", "session_affinity"),
            related_path=ctx.tier_path(front, "instances"),
        )


SESSION_AFFINITY_ON_PROXY_CLIENTS = Rule(
    code="LB404",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kubernetes:services.*.kubernetes.session_affinity_timeout",
    ),
    name="session-affinity-on-proxy-clients",
    severity=Severity.WARNING,
    summary="sessionAffinity ClientIP on a Service whose only clients are a few proxies",
    tiers=frozenset({"kong", "nginx_http", "nginx_stream", "kubernetes"}),
    check=_affinity_on_proxy_clients,
    doc=RuleDoc(
        what=(
            "A Service sets `sessionAffinity: ClientIP` while the tier in front of Kubernetes "
            "reaches it through its ClusterIP, so the Service's clients are that tier's "
            "instances, not the end users."
        ),
        why=(
            "ClientIP affinity sends every connection from one source address to the same "
            "pod for `timeoutSeconds` (default 10800, 3 hours). Behind Kong or nginx there "
            "are only as many source addresses as proxy instances, so a few pods take all "
            "the traffic and new pods after a scale-up get none until the affinity expires."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
    backend_targets: cluster_ip
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 8
    app: {preset: uvicorn}
    kubernetes: {session_affinity: ClientIP}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
    backend_targets: cluster_ip
  - kind: kubernetes
    name: cluster
    platform: gke
services:
  - name: orders
    replicas: 8
    app: {preset: uvicorn}
""",
        references=(
            K8S_VIRTUAL_IPS + "#session-affinity",
            "https://kubernetes.io/docs/reference/kubernetes-api/service-resources/service-v1/",
            KONG_UPSTREAM_DOC + "#consistent-hashing",
        ),
    ),
)


# --- LB405 ---------------------------------------------------------------------------------

_ADDRESS_VARIABLES = ("$remote_addr", "$binary_remote_addr", "$realip_remote_addr")


def _hashes_on_address(tier: NginxHttpTier | NginxStreamTier) -> str | None:
    """The client-address key an nginx tier balances on, if any."""
    balancing = tier.balancing
    if balancing.algorithm == "ip_hash":
        return "ip_hash"
    key = balancing.hash_key or ""
    if balancing.algorithm == "hash" and any(v in key for v in _ADDRESS_VARIABLES):
        return f"hash {key}"
    return None


def _through_one_cluster_ip(ctx: RuleContext, hop: HopPlan) -> bool:
    """`hop` fronts the cluster and reaches each Service through its single ClusterIP."""
    return hop is ctx.plan.front_of_cluster and not hop.dials_pods


def _client_ip_hash_on_proxies(ctx: RuleContext) -> Iterator[Violation]:
    plan = ctx.plan
    for hop in plan.hops_of(NginxStreamHop):
        outer = plan.previous_tier_hop(hop)
        if isinstance(outer, NginxHttpHop):
            yield from _l4_hashes_on_edge(ctx, hop.tier, outer.tier)
    first = plan.tier_hops[0]
    if isinstance(first, NginxHttpHop):
        yield from _edge_hashes_on_lb(ctx, first.tier)
    for kong in plan.hops_of(KongHop):
        yield from _kong_hashes_on_proxies(ctx, kong)


def _l4_hashes_on_edge(ctx: RuleContext, l4: NginxStreamTier, outer: NginxHttpTier) -> Iterator[Violation]:
    key = _hashes_on_address(l4)
    if key is not None:
        yield Violation(
            message=(
                f"{l4.name} balances with {key}, but its only clients are {outer.name}'s "
                f"{describe_instances(outer.instances)}, and nginx http cannot send a PROXY "
                f"header with the user's address: the key takes at most "
                f"{len(outer.instances)} values, so a few backends get all the traffic"
            ),
            hint=(
                f"use least_conn or random-two on {l4.name}; hash on the user in an L7 tier "
                "(a cookie or header), where the address is known"
            ),
            path=ctx.tier_path(l4, "balancing"),
            related_path=ctx.tier_path(outer, "instances"),
        )


def _edge_hashes_on_lb(ctx: RuleContext, edge: NginxHttpTier) -> Iterator[Violation]:
    spec = ctx.spec
    if spec.external_lb is not None and edge.real_ip is None:
        key = _hashes_on_address(edge)
        if key is not None:
            octets = (
                " (ip_hash uses only the first three octets of an IPv4 address)"
                if key == "ip_hash"
                else ""
            )
            yield Violation(
                message=(
                    f"{edge.name} balances with {key}, but its clients are the "
                    f"{spec.external_lb.kind} load balancer's proxies and {edge.name} has no "
                    f"real_ip settings, so the key is the load balancer's address, not the "
                    f"user's{octets}: a few backends get all the traffic"
                ),
                hint=(
                    f"set {edge.name} real_ip (header X-Forwarded-For, trusted: the load "
                    "balancer's proxy ranges, recursive: true), or hash on a cookie or header"
                ),
                path=ctx.tier_path(edge, "balancing"),
                related_path=("external_lb",),
            )


def _kong_hashes_on_proxies(ctx: RuleContext, hop: KongHop) -> Iterator[Violation]:
    spec, kong = ctx.spec, hop.tier
    if _through_one_cluster_ip(ctx, hop):
        return  # with one ClusterIP target, hashing has no effect at all (LB401)
    address = gateway_client_address(ctx)
    if address is None or address.is_end_user:
        return
    for index, service in enumerate(spec.services):
        settings = service.kong
        field = (
            "hash_on" if settings.hash_on == "ip"
            else "hash_fallback" if settings.hash_fallback == "ip"
            else None
        )
        if field is None:
            continue
        yield Violation(
            message=(
                f"service {service.name}: {kong.name} hashes on the client IP ({field}: ip), "
                f"but {address.reason}: every request hashes to one of a few proxy addresses"
            ),
            hint=(
                f"make {kong.name} see the user's address (real_ip.header X-Forwarded-For, "
                "recursive: true, trusted_ips covering the proxies in front), or hash on a "
                "header or cookie"
            ),
            path=("services", index, "kong", field),
            related_path=address.path,
        )


CLIENT_IP_HASH_ON_PROXIES = Rule(
    code="LB405",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="client-ip-hash-on-proxy-addresses",
    severity=Severity.WARNING,
    summary="Balancing hashes on a client address that is really a proxy's",
    tiers=frozenset({"nginx_http", "nginx_stream", "kong", "external_lb"}),
    check=_client_ip_hash_on_proxies,
    doc=RuleDoc(
        what=(
            "A tier balances on the client address — nginx `ip_hash` or `hash $remote_addr`, "
            "Kong `hash_on: ip` (or `hash_fallback: ip`) — while the address it sees is a "
            "proxy's: the L4 tier behind the nginx edge; the edge behind a cloud load balancer "
            "without real-IP settings; Kong when it does not trust the hop in front, when "
            "that hop sends no X-Forwarded-For, or when the PROXY header describes the edge."
        ),
        why=(
            "A hash over a handful of proxy addresses sends all traffic to a handful of "
            "backends, whatever the number of users. nginx's `ip_hash` makes it worse by "
            "hashing only the first three octets of IPv4 addresses, so proxies in one /24 "
            "all land on the same server. Kong's docs tell you to review the real-IP "
            "settings when hashing on `ip`."
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
    replicas: 6
    app: {preset: go}
    kong: {algorithm: consistent-hashing, hash_on: ip}
""",
        fix="""\
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
    real_ip: {header: X-Forwarded-For, recursive: true, trusted_ips: [10.0.0.0/24]}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 6
    app: {preset: go}
    kong: {algorithm: consistent-hashing, hash_on: ip}
""",
        references=(
            "https://nginx.org/en/docs/http/ngx_http_upstream_module.html#ip_hash",
            "https://nginx.org/en/docs/stream/ngx_stream_upstream_module.html#hash",
            KONG_UPSTREAM_DOC + "#consistent-hashing",
            "https://developer.konghq.com/gateway/configuration/#real-ip-config",
        ),
    ),
)


# --- LB406 ---------------------------------------------------------------------------------

# IPVS schedulers that choose by the number of connections (kubernetes.io virtual-ips:
# "lc: least connection (smallest number of open connections)").
_CONNECTION_COUNTING = {"lc", "wlc", "sed", "nq", "lblc", "lblcr"}


def _ipvs_counts_connections(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    proxy = spec.cluster.kube_proxy
    if proxy is None or proxy.mode != "ipvs" or proxy.ipvs is None:
        return
    scheduler = proxy.ipvs.scheduler or ""
    if scheduler not in _CONNECTION_COUNTING:
        return
    front = through_cluster_ip(spec)
    if front is None:
        return
    pooling = front if not isinstance(front, NginxStreamTier) else spec.previous_tier(front)
    if pooling is None:
        return
    pool = pooled_connections(ctx, pooling)
    if pool == 0:
        return
    yield Violation(
        message=(
            f"kube-proxy's IPVS scheduler {scheduler} sends each new connection to the pod "
            f"with the fewest connections, but {pooling.name} keeps up to {pool} idle "
            f"connections per pool and sends many requests over each, so IPVS balances "
            f"connections while load follows requests"
        ),
        hint=(
            f"balance requests in {front.name} (backend_targets: pod_endpoints), or recycle "
            f"{pooling.name}'s pooled connections often (upstream_keepalive.max_requests); "
            "the scheduler alone cannot see requests"
        ),
        path=ctx.tier_path(spec.cluster, "kube_proxy", "ipvs", "scheduler"),
        related_path=ctx.tier_path(pooling, "upstream_keepalive", "connections"),
    )


IPVS_COUNTS_CONNECTIONS = Rule(
    code="LB406",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.connections",
    ),
    name="ipvs-least-connection-counts-connections",
    severity=Severity.WARNING,
    summary="An IPVS least-connection scheduler behind pooled keep-alive connections",
    tiers=frozenset({"kubernetes", "kong", "nginx_http", "nginx_stream"}),
    check=_ipvs_counts_connections,
    versions="self-managed clusters with kube-proxy in IPVS mode",
    applies=_self_managed_only,
    doc=RuleDoc(
        what=(
            "kube-proxy runs in IPVS mode with a connection-counting scheduler (`lc`, `wlc`, "
            "`sed`, `nq`, `lblc`, `lblcr`) and the Service's client is a proxy that pools "
            "keep-alive connections (Kong or nginx with an upstream keep-alive pool)."
        ),
        why=(
            "IPVS schedules connections: `lc` picks the real server with the fewest open "
            "connections. A keep-alive pool opens a few connections and sends thousands of "
            "requests over each, so the connection counts stay even while the request load "
            "does not. It is not the request-level least-connections the setting suggests."
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
    version: "1.33"
    platform: self-managed
    kube_proxy:
      mode: ipvs
      ipvs: {scheduler: lc}
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
    backend_targets: pod_endpoints
  - kind: kubernetes
    name: cluster
    version: "1.33"
    platform: self-managed
    kube_proxy:
      mode: ipvs
      ipvs: {scheduler: lc}
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    kong: {algorithm: least-connections}
""",
        references=(
            K8S_VIRTUAL_IPS + "#proxy-mode-ipvs",
            "https://kubernetes.io/docs/reference/config-api/kube-proxy-config.v1alpha1/",
            "https://github.com/Kong/kong/blob/master/kong.conf.default (upstream_keepalive_*)",
        ),
    ),
)


# --- LB407 ---------------------------------------------------------------------------------


def _local_policy_behind_proxy(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    front = through_cluster_ip(spec)
    if front is None:
        return
    clients = describe_instances(front.instances)
    for index, service in enumerate(spec.services):
        if service.kubernetes.internal_traffic_policy != "Local":
            continue
        yield Violation(
            message=(
                f"service {service.name}: internalTrafficPolicy Local makes the node's proxy "
                f"drop connections from a node that runs none of the {service.replicas} pods, "
                f"and {front.name} ({clients}) reaches the Service through its ClusterIP: its "
                "instances on nodes without one of those pods get every connection dropped"
            ),
            hint=(
                "remove kubernetes.internal_traffic_policy, or schedule a pod on every node "
                f"that runs {front.name} (for example a DaemonSet), or use backend_targets: "
                "pod_endpoints"
            ),
            path=("services", index, "kubernetes", "internal_traffic_policy"),
            related_path=targets_path(ctx, front),
        )


LOCAL_POLICY_BEHIND_PROXY = Rule(
    code="LB407",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="internal-traffic-policy-local-behind-proxy",
    severity=Severity.WARNING,
    summary="internalTrafficPolicy Local on a Service a proxy reaches through its ClusterIP",
    tiers=frozenset({"kubernetes", "kong", "nginx_http", "nginx_stream"}),
    check=_local_policy_behind_proxy,
    doc=RuleDoc(
        what=(
            "A Service sets `internalTrafficPolicy: Local` while the tier in front of "
            "Kubernetes sends to its ClusterIP."
        ),
        why=(
            "With `Local`, a node only forwards to pods on the same node; when there is none "
            "the traffic is dropped. The proxy's instances run on whatever nodes they were "
            "scheduled on, so unless every such node also runs a pod of the Service, part "
            "of the gateway's traffic is black-holed, and the rest is skewed onto co-located "
            "pods."
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
    platform: self-managed
services:
  - name: orders
    replicas: 3
    app: {preset: go}
    kubernetes: {internal_traffic_policy: Local}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    backend_targets: cluster_ip
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 3
    app: {preset: go}
""",
        references=(
            "https://kubernetes.io/docs/concepts/services-networking/service-traffic-policy/",
            K8S_VIRTUAL_IPS + "#internal-traffic-policy",
        ),
    ),
)


# --- LB408 ---------------------------------------------------------------------------------


def _hashing_on_hostname_targets(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.hops_of(KongHop):
        yield from _kong_hashes_on_hostnames(ctx, hop)


def _kong_hashes_on_hostnames(ctx: RuleContext, hop: KongHop) -> Iterator[Violation]:
    spec, kong = ctx.spec, hop.tier
    if (
        kong.mode != "db-less"
        or kong.backend_targets != "pod_endpoints"
        or len(kong.instances) < 2
    ):
        return
    for index, service in enumerate(spec.services):
        planned = hop.services[index]
        if planned.balancing.value != "consistent-hashing":
            continue
        yield Violation(
            message=(
                f"service {service.name}: consistent-hashing ({planned.hash_on.value}) on "
                f"{kong.name}'s {len(kong.instances)} nodes, but the Upstream's target is the "
                f"hostname {headless_fqdn(spec, service)}: each node re-resolves it on its own "
                "schedule, so the nodes' hash rings drift apart and one key reaches different "
                "pods depending on the node"
            ),
            hint=(
                f"run {kong.name} with mode: kic (KIC writes pod IPs as targets), or use one "
                "Kong node, or an algorithm that does not depend on a shared ring"
            ),
            path=("services", index, "kong", "algorithm"),
            related_path=ctx.tier_path(kong, "instances"),
        )


HASHING_ON_HOSTNAME_TARGETS = Rule(
    code="LB408",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:services.*.algorithm",
        "kong:services.*.hash_on",
    ),
    name="consistent-hashing-on-hostname-targets",
    severity=Severity.WARNING,
    summary="Kong consistent-hashing over a DNS-name target on several Kong nodes",
    tiers=frozenset({"kong", "kubernetes"}),
    check=_hashing_on_hostname_targets,
    versions="Kong DB-less (declarative) with pod endpoints",
    doc=RuleDoc(
        what=(
            "Kong runs DB-less on more than one node, reaches pods through lbgen's headless "
            "Service (its Target is a DNS name that resolves to the pod IPs) and a service "
            "uses `consistent-hashing`."
        ),
        why=(
            "Kong's documentation: when using hashing in a cluster, add Targets by IP "
            "address and avoid hostnames — the balancers slowly diverge because DNS TTLs "
            "have second precision and are renewed when a name is used, and some "
            "nameservers do not return all entries. Diverged rings send the same user to "
            "different pods, which defeats the point of hashing. KIC avoids it by writing "
            "pod IPs as Targets."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: carts
    replicas: 4
    app: {preset: go}
    kong: {algorithm: consistent-hashing, hash_on: header, hash_on_header: X-Cart}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    mode: kic
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: carts
    replicas: 4
    app: {preset: go}
    kong: {algorithm: consistent-hashing, hash_on: header, hash_on_header: X-Cart}
""",
        references=(
            KONG_UPSTREAM_DOC + "#consistent-hashing",
            "https://developer.konghq.com/gateway/entities/target/",
        ),
    ),
)


# --- LB409 ---------------------------------------------------------------------------------


def _latency_on_streams(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    balancing = [hop for hop in ctx.plan.hops_of(KongHop) if not _through_one_cluster_ip(ctx, hop)]
    if not balancing:
        return
    for index, service in enumerate(spec.services):
        if balancing[0].services[index].balancing.value != "latency" or service.stream_idle is None:
            continue
        yield Violation(
            message=(
                f"service {service.name}: Kong's latency algorithm measures each request "
                f"from connect to the end of the response, but this service holds long-lived "
                f"streams (silent for up to {service.stream_idle}), whose duration says "
                "nothing about a pod's speed: the balancer avoids the pods serving streams "
                "and piles short requests elsewhere"
            ),
            hint="use least-connections (it counts in-flight requests) or round-robin",
            path=("services", index, "kong", "algorithm"),
            related_path=("services", index, "stream_idle"),
        )


LATENCY_ON_STREAMS = Rule(
    code="LB409",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:services.*.algorithm",
    ),
    name="latency-balancer-on-long-lived-streams",
    severity=Severity.WARNING,
    summary="Kong's latency algorithm on a service with long-lived streams",
    tiers=frozenset({"kong"}),
    check=_latency_on_streams,
    versions="Kong ≥ 3.2 (latency algorithm)",
    doc=RuleDoc(
        what=(
            "A service that holds long-lived streams (`stream_idle` set: WebSocket, SSE, "
            "gRPC streaming) uses Kong's `latency` algorithm."
        ),
        why=(
            "The latency algorithm (peak EWMA of the full request cycle, connect to end of "
            "body) is documented by Kong as not suitable for long-lived connections like "
            "websockets or server-sent events: a stream's lifetime is not latency, and it "
            "skews the moving average of the pods that serve streams."
        ),
        example="""\
name: live
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: feed
    replicas: 4
    app: {preset: nodejs}
    stream_idle: 30s
    kong: {algorithm: latency}
""",
        fix="""\
name: live
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: feed
    replicas: 4
    app: {preset: nodejs}
    stream_idle: 30s
    kong: {algorithm: least-connections}
""",
        references=(KONG_UPSTREAM_DOC + "#latency",),
    ),
)


# --- LB410 ---------------------------------------------------------------------------------


def _pool_pins_cluster_ip(ctx: RuleContext) -> Iterator[Violation]:
    """The pooled L7 hop whose connections end at a ClusterIP: straight (its backend_targets)
    or through an L4 tier, which relays each pooled connection as one connection to the
    ClusterIP — so either way kube-proxy picks a pod once per pooled connection."""
    spec = ctx.spec
    front = through_cluster_ip(spec)
    if front is None:
        return
    relay: NginxStreamTier | None = None
    if isinstance(front, NginxStreamTier):
        relay, caller = front, spec.previous_tier(front)
        if not isinstance(caller, NginxHttpTier):
            return  # clients connect to the L4 tier directly: no pool in front of it
        pooled: KongTier | NginxHttpTier = caller
    else:
        pooled = front
    pool = pooled_connections(ctx, pooled)
    if pool == 0:
        return
    upstream = ctx.plan.hop_of(pooled).pool
    max_requests = upstream.max_requests.value if upstream is not None else 0
    if isinstance(pooled, KongTier) and max_requests == 0:
        return  # connections that never recycle are LB108's finding
    per_connection = f"up to {max_requests}" if max_requests else "an unlimited number of"
    grpc = sum(1 for s in spec.services if s.protocol == "grpc")
    grpc_note = f" ({grpc} of them gRPC, where every call rides those connections)" if grpc else ""
    count = len(spec.services)
    route = (
        f"through {relay.name}, which forwards each of its connections to the Service's "
        "ClusterIP,"
        if relay is not None
        else f"through {'their' if count != 1 else 'its'} ClusterIP"
    )
    yield Violation(
        message=(
            f"{pooled.name} reaches {count} Service{'s' if count != 1 else ''}{grpc_note} "
            f"{route} and reuses up to {pool} pooled connections per pool, "
            f"{per_connection} requests each; kube-proxy picks a pod once per connection, so "
            "requests stay on the pods those connections were opened to and pods added by a "
            "scale-up or rollout get little traffic until connections recycle"
        ),
        hint=(
            f"put a tier that balances each request in front of the pods (Kong with "
            f"backend_targets: pod_endpoints, or {pooled.name} itself without {relay.name}), "
            "or lower upstream_keepalive.max_requests (and set max_lifetime) so connections "
            "recycle"
            if relay is not None
            else f"set {pooled.name} backend_targets: pod_endpoints so it balances each "
            "request; otherwise lower upstream_keepalive.max_requests so connections recycle"
        ),
        path=targets_path(ctx, front),
        related_path=ctx.tier_path(pooled, "upstream_keepalive", "connections"),
    )


POOL_PINS_CLUSTER_IP = Rule(
    code="LB410",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:upstream_keepalive.connections",
        "kong:upstream_keepalive.max_requests",
        "nginx_http:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.max_requests",
    ),
    name="pooled-connections-pin-cluster-ip-pods",
    severity=Severity.WARNING,
    summary="A keep-alive pool through a ClusterIP pins requests to the pods it first reached",
    tiers=frozenset({"kong", "nginx_http", "nginx_stream", "kubernetes"}),
    check=_pool_pins_cluster_ip,
    doc=RuleDoc(
        what=(
            "A hop that keeps an upstream keep-alive pool — Kong (default pool 512 "
            "connections, 10000 requests each since 3.6) or the nginx edge — whose pooled "
            "connections end at a Service's ClusterIP: directly (`backend_targets: "
            "cluster_ip`), or through an L4 tier, which relays each pooled connection as one "
            "connection to the ClusterIP, so the choice of pod is made behind the pool."
        ),
        why=(
            "kube-proxy chooses a pod when a connection is opened; every request sent on a "
            "pooled connection goes to that pod. With few long-lived connections the spread "
            "is fixed when the pool fills: pods added by a scale-up or a rollout receive "
            "traffic only as connections recycle, and gRPC calls are pinned the same way. "
            "KIC's default sends to pod IPs for exactly this reason."
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
            KIC_SERVICE_UPSTREAM,
            K8S_VIRTUAL_IPS,
            "https://github.com/Kong/kong/blob/master/kong.conf.default (upstream_keepalive_*)",
            "https://kubernetes.io/blog/2018/11/07/grpc-load-balancing-on-kubernetes-without-tears/",
        ),
    ),
)


# --- LB411 ---------------------------------------------------------------------------------

# Hash keys a request may lack. `ip` and `path` are always present, and a missing `cookie`
# is generated by Kong (a UUID it sets with Set-Cookie), so they never yield "".
_MAY_BE_MISSING = {"header", "consumer"}


def _hash_key(settings: KongServiceSettings, which: str) -> str:
    if which == "hash_on":
        kind, header = settings.hash_on, settings.hash_on_header
    else:
        kind, header = settings.hash_fallback, settings.hash_fallback_header
    if kind == "header":
        return f"header {header}"
    if kind == "consumer":
        return "the authenticated consumer (or credential)"
    return kind


def _hash_without_fallback(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.hops_of(KongHop):
        # One ClusterIP target: hashing chooses nothing (LB401).
        if not _through_one_cluster_ip(ctx, hop):
            yield from _kong_hash_without_fallback(ctx, hop.tier)


def _kong_hash_without_fallback(ctx: RuleContext, kong: KongTier) -> Iterator[Violation]:
    spec = ctx.spec
    for index, service in enumerate(spec.services):
        settings = service.kong
        if settings.algorithm != "consistent-hashing" or settings.hash_on not in _MAY_BE_MISSING:
            continue
        if settings.hash_fallback not in _MAY_BE_MISSING | {"none"}:
            continue  # the fallback (ip, path, cookie) always yields a key
        key = _hash_key(settings, "hash_on")
        if settings.hash_fallback == "none":
            missing, fallback = f"without {key}", "no fallback"
        else:
            missing = f"without {key} and without {_hash_key(settings, 'hash_fallback')}"
            fallback = "a fallback that can be missing too"
        yield Violation(
            message=(
                f"service {service.name}: {kong.name} hashes on {key} with {fallback}"
                f": Kong hashes every request {missing} on the empty string, so all of them "
                f"go to one of the {service.replicas} pods (health checks, clients without "
                "the key, unauthenticated calls)"
            ),
            hint=(
                "set kong.hash_fallback to a key every request has (ip — behind proxies only "
                "with the client address resolved, see LB405 — or path), or make sure every "
                "request carries the key"
            ),
            path=("services", index, "kong", "hash_fallback"),
            related_path=("services", index, "kong", "hash_on"),
        )


HASH_WITHOUT_FALLBACK = Rule(
    code="LB411",
    status="preview",
    since=NEXT_RELEASE,
    reads=(),
    name="consistent-hash-key-without-fallback",
    severity=Severity.WARNING,
    summary="Kong hashes on a header or consumer with no fallback: requests without it share a pod",
    tiers=frozenset({"kong"}),
    check=_hash_without_fallback,
    versions="Kong 3.x (kong/runloop/balancer: a missing key hashes as \"\")",
    doc=RuleDoc(
        what=(
            "A service whose Kong Upstream uses `consistent-hashing` on a `header` or on the "
            "`consumer`, with `hash_fallback: none` (or a fallback that can be missing as "
            "well), while Kong balances across the pods itself (pod endpoints). Hashing on "
            "`ip` or `path` always has a key, and a missing hash `cookie` is generated by "
            "Kong, so those are not reported."
        ),
        why=(
            "Kong computes the key once per request in `get_value_to_hash`; when neither the "
            "primary key nor the fallback yields a value it returns nothing, and the caller "
            "uses `hash_value = get_value_to_hash(upstream, ctx) or \"\"`. Every request "
            "without the header (health probes, other clients, a client that forgot it) or "
            "without an authenticated consumer (routes without an auth plugin, anonymous "
            "access) hashes to the same point of the ring and lands on one pod, which can be "
            "most of the traffic."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    mode: kic
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: carts
    replicas: 4
    app: {preset: go}
    kong: {algorithm: consistent-hashing, hash_on: header, hash_on_header: X-Cart}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    mode: kic
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: carts
    replicas: 4
    app: {preset: go}
    kong:
      algorithm: consistent-hashing
      hash_on: header
      hash_on_header: X-Cart
      hash_fallback: path
""",
        references=(
            ("https://github.com/Kong/kong/blob/master/kong/runloop/balancer/init.lua "
             "(get_value_to_hash; execute: hash_value = get_value_to_hash(upstream, ctx) or \"\")"),
            KONG_UPSTREAM_DOC + " (hash_on, hash_fallback)",
            "https://developer.konghq.com/gateway/traffic-control/load-balancing-reference/",
        ),
    ),
)


# --- LB412 / LB413: connection churn towards one ClusterIP --------------------------------

# "Far below": the pool's idle connections cover less than a tenth of the requests in
# flight, so most requests open and close a connection of their own.
_POOL_FAR_BELOW = 10
K8S_KUBE_PROXY_FLAGS = "https://kubernetes.io/docs/reference/generated/kube-proxy/"
KERNEL_IP_SYSCTL = "https://docs.kernel.org/networking/ip-sysctl.html (ip_local_port_range)"
KERNEL_CONNTRACK_SYSCTL = (
    "https://docs.kernel.org/networking/nf_conntrack-sysctl.html "
    "(nf_conntrack_tcp_timeout_time_wait 120s)"
)


def _pool_to_cluster_ip(
    spec: Spec,
) -> tuple[KongTier | NginxHttpTier, NginxHttpTier | NginxStreamTier | KongTier] | None:
    """(the L7 tier whose connections end at a ClusterIP, the tier that dials it) — the
    dialer is that tier itself, or the L4 tier it pools through. None when no L7 tier's
    connections reach a ClusterIP (pods by IP, or clients straight to an L4 tier)."""
    front = through_cluster_ip(spec)
    if front is None:
        return None
    if isinstance(front, NginxStreamTier):
        caller = spec.previous_tier(front)
        return (caller, front) if isinstance(caller, NginxHttpTier) else None
    return front, front


def _churn_numbers(ctx: RuleContext, dialer_instances: int, new_per_s: float) -> str:
    """What `new_per_s` new connections per second to one ClusterIP cost, for messages."""
    limits = ctx.plan.cluster.churn_limits
    assert limits is not None  # resolve() fills it
    ports = limits.ephemeral_ports
    time_wait = limits.time_wait.ms // 1000
    ct_wait = limits.conntrack_time_wait.ms // 1000
    per_instance = new_per_s / dialer_instances
    lingering = round(per_instance * time_wait)
    entries = round(new_per_s * ct_wait)
    floor, label = limits.conntrack_floor, limits.conntrack_floor_label
    ports_text = (
        f"more than the {ports} local ports Linux has for one destination by default, so "
        "connects fail (EADDRNOTAVAIL) where the proxy closes first"
        if lingering >= ports
        else f"of the {ports} local ports Linux has for one destination"
    )
    conntrack_text = (
        f"above {label} ({floor}): kube-proxy sizes the table max(maxPerCore × cores, min), "
        "check it holds them"
        if entries >= floor
        else f"against {label} ({floor})"
    )
    return (
        f"about {per_instance:g} new connections/s per dialing instance: {lingering} sockets "
        f"in TIME_WAIT ({time_wait}s) per instance, {ports_text}; and {entries} conntrack "
        f"entries in TIME_WAIT ({ct_wait}s) {conntrack_text}"
    )


def _connection_churn(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    found = _pool_to_cluster_ip(spec)
    if found is None:
        return
    pooled, dialer = found
    pool = pooled_connections(ctx, pooled)
    workload = spec.workload
    rate = workload.rate if workload is not None else None
    concurrency = workload.concurrency if workload is not None else None
    via = f" through {dialer.name}" if dialer is not pooled else ""
    target = f"the Service ClusterIP{via}"
    if pool == 0:
        numbers = f"; at {rate:g} requests/s that is " + _churn_numbers(
            ctx, len(dialer.instances), rate
        ) if rate is not None else ""
        yield Violation(
            message=(
                f"{pooled.name} keeps no idle connections to {target} "
                "(upstream_keepalive.connections 0), so every request opens and closes its "
                "own TCP connection to one ClusterIP:port — a local port, a TCP handshake and "
                f"a conntrack entry per request{numbers}"
            ),
            hint=(
                f"turn {pooled.name}'s pool on (remove upstream_keepalive.connections 0, or "
                "set it to cover the requests in flight), or target pod endpoints so the "
                "connections spread over many destinations"
            ),
            path=ctx.tier_path(pooled, "upstream_keepalive", "connections"),
            related_path=("workload", "rate") if rate is not None else targets_path(ctx, dialer),
        )
        return
    if concurrency is None:
        return
    workers = pooled.worker_processes if isinstance(pooled, NginxHttpTier) else "auto"
    per_node = pool * (workers if isinstance(workers, int) else 1)
    capacity = per_node * len(pooled.instances)
    if concurrency < _POOL_FAR_BELOW * capacity:
        return
    counted = (
        f"{pool} per worker × {workers} workers" if isinstance(workers, int)
        else f"{pool} (per worker; lbgen counts one worker where worker_processes is auto)"
    )
    numbers = ""
    if rate is not None:
        churned = rate * (1 - capacity / concurrency)
        numbers = f"; at {rate:g} requests/s that is " + _churn_numbers(
            ctx, len(dialer.instances), churned
        )
    yield Violation(
        message=(
            f"{pooled.name} keeps at most {capacity} idle connections to {target} "
            f"({counted} on {len(pooled.instances)} node"
            f"{'s' if len(pooled.instances) != 1 else ''}) for {concurrency} requests in "
            "flight: most connections close after one request and the next opens a new one "
            f"to the same ClusterIP:port{numbers}"
        ),
        hint=(
            f"raise {pooled.name} upstream_keepalive.connections towards "
            f"{-(-concurrency // max(1, len(pooled.instances)))} per node (divided by the "
            "worker count), or target pod endpoints"
        ),
        path=ctx.tier_path(pooled, "upstream_keepalive", "connections"),
        related_path=("workload", "concurrency"),
    )


def _needs_pool_to_cluster_ip(ctx: RuleContext) -> str | None:
    spec = ctx.spec
    if _pool_to_cluster_ip(spec) is None:
        return "no L7 tier's connections end at a Service ClusterIP"
    return None


CONNECTION_CHURN = Rule(
    code="LB412",
    status="preview",
    since=NEXT_RELEASE,
    reads=(
        "kong:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.connections",
    ),
    name="connection-churn-to-cluster-ip",
    severity=Severity.WARNING,
    summary="Pooling off, or a pool far below the requests in flight, towards one ClusterIP",
    tiers=frozenset({"nginx_http", "nginx_stream", "kong", "kubernetes"}),
    check=_connection_churn,
    versions="all (Linux defaults; kube-proxy conntrack settings when given)",
    applies=_needs_pool_to_cluster_ip,
    doc=RuleDoc(
        what=(
            "The L7 tier whose connections end at a Service's ClusterIP (directly, or "
            "through an L4 tier) with its upstream pool turned off (`connections: 0`), or — "
            "when the spec's `workload.concurrency` is given — with fewer than a tenth as "
            "many idle connections as requests in flight. With `workload.rate` the finding "
            "counts new connections per second, TIME_WAIT sockets and conntrack entries, "
            "set against the cluster's `kube_proxy.conntrack` settings when given."
        ),
        why=(
            "Every connection to one ClusterIP:port needs its own local port on the proxy "
            "(Linux's default range has 28232), and a socket that the proxy closes stays in "
            "TIME_WAIT for 60s holding its port; the node's conntrack keeps a NAT entry for "
            "each, 120s after the close. At a few hundred requests/s without reuse a proxy "
            "runs out of ports to that single destination (connect() fails with "
            "EADDRNOTAVAIL, the client gets a 502) and conntrack tables fill (`nf_conntrack: "
            "table full, dropping packet`). Reuse, or many destinations (pod endpoints), "
            "avoid both."
        ),
        example="""\
name: shop
workload: {rate: 2000}
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    backend_targets: cluster_ip
    upstream_keepalive: {connections: 0}
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
workload: {rate: 2000}
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    backend_targets: pod_endpoints
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        references=(
            KERNEL_IP_SYSCTL,
            KERNEL_CONNTRACK_SYSCTL,
            K8S_KUBE_PROXY_FLAGS + " (--conntrack-min 131072, --conntrack-max-per-core 32768)",
            "https://github.com/torvalds/linux/blob/master/include/net/tcp.h (TCP_TIMEWAIT_LEN)",
            "https://nginx.org/en/docs/http/ngx_http_upstream_module.html#keepalive",
        ),
    ),
)


def _app_closes_toward_cluster_ip(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    found = _pool_to_cluster_ip(spec)
    if found is None:
        return
    pooled, dialer = found
    if pooled_connections(ctx, pooled) == 0:
        return  # nothing to reuse in the first place: LB412
    rate = spec.workload.rate if spec.workload is not None else None
    for index, service in enumerate(spec.services):
        app = service.app
        if app.preset == "gunicorn-sync":
            why, field = "gunicorn sync workers close the connection after every response", "preset"
        elif app.idle_timeout is not None and app.idle_timeout.ms == 0:
            why, field = "its app server's keep-alive is 0 (off)", "idle_timeout"
        else:
            continue
        numbers = ""
        if rate is not None:
            numbers = f"; at up to {rate:g} requests/s that is " + _churn_numbers(
                ctx, len(dialer.instances), rate
            )
        yield Violation(
            message=(
                f"service {service.name}: {why}, so {pooled.name}'s pooled connections to its "
                f"ClusterIP{' through ' + dialer.name if dialer is not pooled else ''} last "
                "one request each: every request is a new connection to one ClusterIP:port, "
                f"with a TCP handshake, a kube-proxy NAT decision and a conntrack entry{numbers}"
            ),
            hint=(
                "run the app with persistent connections (gunicorn gthread or an async worker "
                "class with --keep-alive, or a keep-alive timeout above the pool's idle "
                "timeout) and set app accordingly, or target pod endpoints"
            ),
            path=("services", index, "app", field),
            related_path=ctx.tier_path(pooled, "upstream_keepalive", "connections"),
        )


APP_CLOSES_TOWARD_CLUSTER_IP = Rule(
    code="LB413",
    status="preview",
    since=NEXT_RELEASE,
    reads=(
        "kong:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.connections",
    ),
    name="app-closes-every-connection-through-cluster-ip",
    severity=Severity.WARNING,
    summary="An app that closes every connection behind a pool that reaches it by ClusterIP",
    tiers=frozenset({"nginx_http", "nginx_stream", "kong", "kubernetes", "app"}),
    check=_app_closes_toward_cluster_ip,
    versions="gunicorn sync workers (all versions); any app with keep-alive 0",
    applies=_needs_pool_to_cluster_ip,
    doc=RuleDoc(
        what=(
            "A service whose app server closes the connection after every response "
            "(`preset: gunicorn-sync`, or `app.idle_timeout: 0`) while a pooled L7 tier "
            "reaches it through the Service's ClusterIP (directly or through an L4 tier). "
            "LB106 reports the wasted pool on any path; this rule the churn towards one "
            "ClusterIP, sized with `workload.rate` when given."
        ),
        why=(
            "A pool cannot reuse a connection the server closes. Towards pod IPs the new "
            "connections spread over many destinations; towards one ClusterIP:port each "
            "request costs a local port on the proxy, a kube-proxy NAT decision and a "
            "conntrack entry that lingers 120s in TIME_WAIT, so at high request rates the "
            "node's conntrack table and the proxy's port range for that one destination fill "
            "up, and every request pays a handshake."
        ),
        example="""\
name: shop
workload: {rate: 1500}
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    backend_targets: cluster_ip
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: legacy
    replicas: 4
    app: {preset: gunicorn-sync}
""",
        fix="""\
name: shop
workload: {rate: 1500}
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    backend_targets: cluster_ip
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: legacy
    replicas: 4
    app: {preset: gunicorn}
""",
        references=(
            ("https://github.com/benoitc/gunicorn/blob/master/gunicorn/config.py "
             "(Keepalive: \"sync worker does not support persistent connections\")"),
            KERNEL_CONNTRACK_SYSCTL,
            KERNEL_IP_SYSCTL,
            K8S_VIRTUAL_IPS,
        ),
    ),
)


RULES: tuple[Rule, ...] = (
    BALANCER_ON_SINGLE_CLUSTER_IP,
    HEALTHCHECKS_ON_SINGLE_CLUSTER_IP,
    SERVICE_SETTINGS_BYPASSED,
    SESSION_AFFINITY_ON_PROXY_CLIENTS,
    CLIENT_IP_HASH_ON_PROXIES,
    IPVS_COUNTS_CONNECTIONS,
    LOCAL_POLICY_BEHIND_PROXY,
    HASHING_ON_HOSTNAME_TARGETS,
    LATENCY_ON_STREAMS,
    POOL_PINS_CLUSTER_IP,
    HASH_WITHOUT_FALLBACK,
    CONNECTION_CHURN,
    APP_CLOSES_TOWARD_CLUSTER_IP,
)

__all__ = ["RULES"]
