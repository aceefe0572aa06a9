"""LB4xx — balancing settings that have no effect, or that skew load, across hops.

A balancing decision needs a choice: an algorithm aimed at a single ClusterIP has one
target; a Service setting is bypassed when the proxy dials pod IPs; a client-IP key seen
behind a proxy has a handful of values; an L4 hop balances connections, and pooled
connections carry many requests each.
"""

from __future__ import annotations

from collections.abc import Iterator

from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, NginxHttpTier, NginxStreamTier
from lbgen.render._names import headless_fqdn, service_fqdn
from lbgen.rules._base import Rule, RuleContext, RuleDoc, Severity, SkipReason, Violation
from lbgen.rules._topology import (
    backend_targets,
    describe_instances,
    front_of_cluster,
    gateway_client_address,
    pooled_connections,
    targets_path,
    through_cluster_ip,
)

# Kubernetes `ClientIPConfig.timeoutSeconds` default (core/v1 types.go; virtual-ips docs).
SESSION_AFFINITY_DEFAULT_TIMEOUT = 10800

K8S_VIRTUAL_IPS = "https://kubernetes.io/docs/reference/networking/virtual-ips/"
KIC_SERVICE_UPSTREAM = (
    "https://developer.konghq.com/kubernetes-ingress-controller/reference/annotations/"
    "#ingress-kubernetes-io-service-upstream"
)
KONG_UPSTREAM_DOC = "https://developer.konghq.com/gateway/entities/upstream/"
KONG_HEALTH_DOC = (
    "https://developer.konghq.com/gateway/traffic-control/health-checks-circuit-breakers/"
)


def _self_managed_only(spec: Spec) -> str | None:
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
    if isinstance(front, KongTier):
        for index, service in enumerate(spec.services):
            algorithm = service.kong.algorithm
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
    method = front.balancing.algorithm
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
        else f"set {front.name} backend_targets: pod_endpoints so nginx balances across the pods"
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
        timeout = k8s.session_affinity_timeout or SESSION_AFFINITY_DEFAULT_TIMEOUT
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


def _client_ip_hash_on_proxies(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    l4, edge, kong = spec.l4, spec.edge, spec.kong
    outer = spec.previous_tier(l4) if l4 is not None else None
    if l4 is not None and isinstance(outer, NginxHttpTier):
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
    if edge is not None and spec.external_lb is not None and edge.real_ip is None:
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
    if kong is None or through_cluster_ip(spec) is kong:
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
    spec = ctx.spec
    kong = spec.kong
    if (
        kong is None
        or kong.mode != "db-less"
        or kong.backend_targets != "pod_endpoints"
        or len(kong.instances) < 2
    ):
        return
    for index, service in enumerate(spec.services):
        if service.kong.algorithm != "consistent-hashing":
            continue
        yield Violation(
            message=(
                f"service {service.name}: consistent-hashing ({service.kong.hash_on}) on "
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
    kong = spec.kong
    if kong is None or through_cluster_ip(spec) is kong:
        return
    for index, service in enumerate(spec.services):
        if service.kong.algorithm != "latency" or service.stream_idle is None:
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
    spec = ctx.spec
    front = through_cluster_ip(spec)
    if front is None or isinstance(front, NginxStreamTier):
        return
    pool = pooled_connections(ctx, front)
    if pool == 0:
        return
    upstream = ctx.budget.kong_upstream if isinstance(front, KongTier) else ctx.budget.edge_upstream
    max_requests = upstream.max_requests.value if upstream is not None else 0
    if isinstance(front, KongTier) and max_requests == 0:
        return  # connections that never recycle are LB108's finding
    per_connection = f"up to {max_requests}" if max_requests else "an unlimited number of"
    grpc = sum(1 for s in spec.services if s.protocol == "grpc")
    grpc_note = f" ({grpc} of them gRPC, where every call rides those connections)" if grpc else ""
    count = len(spec.services)
    yield Violation(
        message=(
            f"{front.name} reaches {count} Service{'s' if count != 1 else ''}{grpc_note} "
            f"through {'their' if count != 1 else 'its'} ClusterIP and reuses up to {pool} "
            "pooled connections per pool, "
            f"{per_connection} requests each; kube-proxy picks a pod once per connection, so "
            "requests stay on the pods those connections were opened to and pods added by a "
            "scale-up or rollout get little traffic until connections recycle"
        ),
        hint=(
            f"set {front.name} backend_targets: pod_endpoints so it balances each request; "
            "otherwise lower upstream_keepalive.max_requests so connections recycle"
        ),
        path=targets_path(ctx, front),
        related_path=ctx.tier_path(front, "upstream_keepalive", "connections"),
    )


POOL_PINS_CLUSTER_IP = Rule(
    code="LB410",
    name="pooled-connections-pin-cluster-ip-pods",
    severity=Severity.WARNING,
    summary="A keep-alive pool through a ClusterIP pins requests to the pods it first reached",
    tiers=frozenset({"kong", "nginx_http", "kubernetes"}),
    check=_pool_pins_cluster_ip,
    doc=RuleDoc(
        what=(
            "Kong (or the nginx edge talking to Kubernetes directly) reaches Services through "
            "their ClusterIP while keeping an upstream keep-alive pool (Kong's default pool "
            "is 512 connections, 10000 requests each since 3.6)."
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
)

__all__ = ["RULES"]
