"""The resolved plan: every hop of the path, in the order a request crosses them, with the
values its product will actually use.

`resolve(spec)` is computed once per run (the CLI passes the plan to the rules and the
renderers). A hop plan is typed per product (its values are fields); `HopPlan.settings()`
lists them uniformly, keyed like the spec (`upstream_keepalive.idle_timeout`), for
`lbgen plan` and `lbgen explain HOP.SETTING`.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import ClassVar, Literal, NamedTuple, TypedDict, TypeVar

from msgspec import Struct

from lbgen import defaults, versions
from lbgen.model.naming import kic_file_path, service_bundle_path
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxHttpTier, NginxStreamTier, Tier
from lbgen.model.types import Duration, Version
from lbgen.plan import topology, values
from lbgen.plan._resolved import Resolved
from lbgen.plan.budget import Budget, UpstreamBudget, resolve_budget, service_key

HopKind = Literal["external_lb", "nginx_http", "nginx_stream", "kong", "kubernetes"]
Protocol = Literal["h1", "h2", "grpc", "tcp", "tcp+PROXY", "h1+grpc"]
TargetKind = Literal["instance", "cluster_ip", "headless", "pod_endpoints"]


class Setting(Struct, frozen=True):
    """One effective value of a hop, as `lbgen plan` and `lbgen explain` show it."""

    key: str
    """Dotted like the spec: `upstream_keepalive.idle_timeout`, `services.api.timeouts.read`."""
    title: str
    """What it is, in the product's words: `pooled connection idle timeout`."""
    value: Resolved[object]
    directive: str = ""
    """The product setting that carries it (`keepalive_timeout`, `read_timeout`)."""
    anchor: str = ""
    """Where the rendered line is: the first line that sets `directive` after the first line
    containing `anchor` (empty: from the top) in the hop's rendered files."""
    depends: str = ""
    """What depends on it: the hop on the other side of the timer, in words."""
    inline: bool = False
    """`directive` is a parameter inside a line (`server … max_fails=1`), not its start."""
    file: str = ""
    """The rendered file that carries it when that is not under the hop's own directory
    (KIC reads a Service's timeouts from its annotations); empty: the hop's files."""
    in_item: bool = False
    """`anchor` names a YAML list item (a kong.yaml entity): search that item only."""

    def sets_it(self, line: str) -> bool:
        """Whether a rendered line sets this value (comments never do)."""
        text = line.strip().removeprefix("- ")  # a YAML list item's first key
        if not self.directive or text.startswith("#"):
            return False
        if self.inline:
            return f"{self.directive}=" in text
        return any(text.startswith(self.directive + end) for end in (" ", "=", ":", ";"))


class Target(Struct, frozen=True):
    """One address a hop connects to."""

    kind: TargetKind
    name: str
    host: str
    port: int


class IdleClose(Struct, frozen=True):
    """How long a hop keeps an idle connection it accepted before closing it: the timer a
    pooled caller in front of it must stay below (the callee side of the LB1xx race)."""

    value: Resolved[Duration]
    key: tuple[str, ...]
    """Its field path inside the tier (`client_keepalive.timeout`, `proxy_timeout`)."""
    name: str
    """What it is called in messages (`client keep-alive`, `proxy_timeout`)."""
    knob: str
    """The spec field with the product directive, for hints
    (`client_keepalive.timeout (keepalive_timeout)`)."""
    default: Duration | None = None
    """The product's own default, for hints (None: lbgen names none)."""


HopT = TypeVar("HopT", bound="HopPlan")


WorkerAccept = Literal["reuseport", "rotating", "first"]
"""How an instance's worker processes share the connections it accepts. `reuseport`: each
worker has a listening socket of its own and the kernel hashes every connection onto one (a
uniform choice). Otherwise the workers share one socket in EPOLLEXCLUSIVE mode (nginx 1.11.3+,
accept_mutex off), where Linux wakes the worker that added it first: `first`, that worker takes
nearly every connection (nginx before 1.21.6); `rotating`, each worker takes one connection and
goes to the back of the queue, then each takes 16 in turn (ngx_reorder_accept_events)."""


def nginx_worker_accept(version: Version) -> WorkerAccept:
    """An nginx tier's listening sockets: lbgen renders no `reuseport` on them."""
    return "rotating" if versions.NGINX_ACCEPT_REORDER.reached(version) else "first"


class HopPlan(Struct, frozen=True):
    name: str
    kind: HopKind
    tier_index: int | None
    """Index in `spec.tiers` (None: the external load balancer, which is not a tier)."""
    protocol_out: Protocol
    """What the hop speaks to the next one."""
    client_address: str
    """Whose address this hop sees as the client's."""
    pools_upstream: bool
    """Keeps idle connections towards the next hop for reuse."""
    sends_proxy_protocol: bool
    dials_pods: bool
    """Connects to pod IPs (rather than a ClusterIP or another proxy)."""
    targets: tuple[Target, ...]
    source_tier: Tier | None = None
    """The tier this hop plans (None: the external load balancer); the rules read names and
    model paths from it (`RuleContext.tier_path`)."""

    product: ClassVar[str] = ""
    """The product that runs this hop, as messages name it (`nginx`, `Kong`)."""
    layer: ClassVar[Literal["lb", "l7", "l4", "cluster"]] = "lb"
    """`l7` terminates HTTP (pools, retries, reads headers); `l4` relays each connection one
    to one, so a caller's pooled connection runs through it to the next hop."""
    zero_idle_keeps_forever: ClassVar[bool] = False
    """An upstream idle timeout of 0 keeps idle pooled connections forever (Kong,
    kong.conf.default); nginx has no such meaning for 0."""
    targets_key: ClassVar[tuple[str, ...] | None] = None
    """The tier field that chooses how it reaches pods (`backend_targets`); None: fixed."""
    group_size: int = 1
    """Servers in the hop's upstream group towards the next hop: the next tier's instances;
    towards Kubernetes one ClusterIP, or the pods behind a Service when it dials pods (the
    smallest Service's replicas when there are several)."""

    @property
    def keeps_idle_forever(self) -> bool:
        """Its pooled connections have no idle end of their own: no idle timer in this version
        (nginx < 1.15.3: they wait for the callee), or an idle timeout of 0 that means forever."""
        pool = self.pool
        if pool is None:
            return False
        idle = pool.idle_timeout.value
        return idle is None or (self.zero_idle_keeps_forever and idle.ms == 0)

    @property
    def pool(self) -> UpstreamBudget | None:
        """The idle pool towards the next hop, if the product keeps one (it may be size 0)."""
        return None

    @property
    def idle_close(self) -> IdleClose | None:
        """The idle timer of the connections this hop accepts (None: not a proxy's)."""
        return None

    @property
    def read_timeout_out(self) -> Resolved[Duration] | None:
        """How long one attempt waits for the next hop's response (None: not an L7 proxy)."""
        return None

    @property
    def worker_accept(self) -> WorkerAccept | None:
        """How the connections an instance accepts are shared by its worker processes (None:
        not a proxy lbgen runs with workers)."""
        return None

    def settings(self) -> Iterator[Setting]:
        return iter(())

    def setting(self, key: str) -> Setting | None:
        return next((s for s in self.settings() if s.key == key), None)


class ExternalLbHop(HopPlan, frozen=True, kw_only=True):
    backend_idle_timeout: Resolved[Duration | None]

    def settings(self) -> Iterator[Setting]:
        yield Setting("backend_idle_timeout", "backend (LB → first tier) idle timeout",
                      self.backend_idle_timeout,
                      depends="the first tier's client keep-alive timeout must outlast it")


def _pool_settings(
    pool: UpstreamBudget, *, nginx: bool, callee: str
) -> Iterator[Setting]:
    anchor = "upstream " if nginx else ""
    names = (
        ("keepalive", "keepalive_timeout", "keepalive_requests", "keepalive_time")
        if nginx
        else ("upstream_keepalive_pool_size", "upstream_keepalive_idle_timeout",
              "upstream_keepalive_max_requests", "")
    )
    yield Setting("upstream_keepalive.connections", "idle pool size", pool.connections, names[0], anchor)
    yield Setting("upstream_keepalive.idle_timeout", "pooled connection idle timeout",
                  pool.idle_timeout, names[1], anchor,
                  depends=f"must end before {callee} closes the idle connection (LB1xx)")
    yield Setting("upstream_keepalive.max_requests", "max requests per pooled connection",
                  pool.max_requests, names[2], anchor)
    if names[3]:
        yield Setting("upstream_keepalive.max_lifetime", "max pooled connection lifetime",
                      pool.max_lifetime, names[3], anchor)


class NginxHttpHop(HopPlan, frozen=True, kw_only=True):
    client_keepalive: Resolved[Duration]
    upstream: UpstreamBudget
    callee: str
    connect_timeout: Resolved[Duration]
    read_timeout: Resolved[Duration]
    send_timeout: Resolved[Duration]
    retry_conditions: Resolved[tuple[str, ...]]
    max_fails: Resolved[int]
    fail_timeout: Resolved[Duration]
    balancing: Resolved[str]
    hash_key: Resolved[str] | None
    """With `balancing: hash`: the key (`$remote_addr`, …)."""

    product: ClassVar[str] = "nginx"
    layer: ClassVar[Literal["lb", "l7", "l4", "cluster"]] = "l7"
    targets_key: ClassVar[tuple[str, ...] | None] = ("backend_targets",)

    @property
    def tier(self) -> NginxHttpTier:
        assert isinstance(self.source_tier, NginxHttpTier)
        return self.source_tier

    @property
    def worker_accept(self) -> WorkerAccept:
        return nginx_worker_accept(self.tier.version)

    @property
    def has_pool_timers(self) -> bool:
        """Its version has upstream `keepalive_timeout`/`keepalive_requests` (nginx ≥ 1.15.3)."""
        return versions.NGINX_UPSTREAM_KEEPALIVE_TUNING_SINCE.reached(self.tier.version)

    @property
    def has_pool_lifetime(self) -> bool:
        """Its version has upstream `keepalive_time` (nginx ≥ 1.19.10); lbgen renders it only there."""
        return versions.NGINX_UPSTREAM_KEEPALIVE_TIME_SINCE.reached(self.tier.version)

    @property
    def default_retry_conditions(self) -> tuple[str, ...]:
        """nginx's own `proxy_next_upstream` (`error timeout`)."""
        return defaults.NGINX_NEXT_UPSTREAM.value

    @property
    def default_max_requests(self) -> int:
        """nginx's own `keepalive_requests` in this version (100, 1000 from 1.19.10)."""
        return defaults.nginx_keepalive_requests(self.tier.version).value

    @property
    def pool(self) -> UpstreamBudget:
        return self.upstream

    @property
    def idle_close(self) -> IdleClose:
        return IdleClose(self.client_keepalive, ("client_keepalive", "timeout"), "client keep-alive",
                         "client_keepalive.timeout (keepalive_timeout)")

    @property
    def read_timeout_out(self) -> Resolved[Duration]:
        return self.read_timeout

    def settings(self) -> Iterator[Setting]:
        yield Setting("client_keepalive.timeout", "client keep-alive timeout", self.client_keepalive,
                      "keepalive_timeout", "server {",
                      depends="must outlast the idle timeout of the caller's pool (LB1xx)")
        yield from _pool_settings(self.upstream, nginx=True, callee=self.callee)
        yield Setting("timeouts.connect", "upstream connect timeout", self.connect_timeout,
                      "proxy_connect_timeout")
        yield Setting("timeouts.read", "upstream read timeout", self.read_timeout, "proxy_read_timeout",
                      depends="a slower answer from the next hop is a 504 here (LB2xx)")
        yield Setting("timeouts.send", "upstream send timeout", self.send_timeout, "proxy_send_timeout")
        yield Setting("retry.conditions", "retry conditions", self.retry_conditions, "proxy_next_upstream")
        yield Setting("passive_health.max_fails", "failures before a server is skipped", self.max_fails,
                      "max_fails", "upstream ", inline=True)
        yield Setting("passive_health.fail_timeout", "failure window and skip time", self.fail_timeout,
                      "fail_timeout", "upstream ", inline=True)
        yield Setting("active_health", "active health checks", values.NGINX_ACTIVE_HEALTH)
        yield Setting("balancing.algorithm", "load-balancing method", self.balancing)
        if self.hash_key is not None:
            yield Setting("balancing.hash_key", "hash key", self.hash_key, "hash", "upstream ")


class NginxStreamHop(HopPlan, frozen=True, kw_only=True):
    proxy_timeout: Resolved[Duration]
    connect_timeout: Resolved[Duration]
    balancing: Resolved[str]

    product: ClassVar[str] = "nginx"
    layer: ClassVar[Literal["lb", "l7", "l4", "cluster"]] = "l4"

    @property
    def tier(self) -> NginxStreamTier:
        assert isinstance(self.source_tier, NginxStreamTier)
        return self.source_tier

    @property
    def worker_accept(self) -> WorkerAccept:
        return nginx_worker_accept(self.tier.version)

    @property
    def idle_close(self) -> IdleClose:
        return IdleClose(self.proxy_timeout, ("proxy_timeout",), "proxy_timeout", "proxy_timeout",
                         defaults.NGINX_STREAM_PROXY_TIMEOUT.value)

    def settings(self) -> Iterator[Setting]:
        yield Setting("proxy_timeout", "idle timeout (both legs)", self.proxy_timeout, "proxy_timeout",
                      depends="must outlast the idle timeout of the L7 pool that runs through it (LB1xx)")
        yield Setting("connect_timeout", "upstream connect timeout", self.connect_timeout,
                      "proxy_connect_timeout")
        yield Setting("balancing.algorithm", "load-balancing method", self.balancing)


class _Where(NamedTuple):
    """Where a Kong setting is rendered (`Setting.anchor`, `.file`, `.in_item`)."""

    anchor: str = ""
    file: str = ""
    in_item: bool = False


class KongServicePlan(Struct, frozen=True):
    service: str
    kong_name: str
    """The Kong Service entity's name (`namespace.name`)."""
    upstream: str
    """The Kong Upstream entity's name (`topology.upstream_name`)."""
    kic_files: tuple[str, str] | None
    """Under KIC: the Service's manifest (timeouts, retries as annotations) and the file with
    its KongUpstreamPolicy (balancing, health checks); None for DB-less Kong."""
    connect_timeout: Resolved[Duration]
    read_timeout: Resolved[Duration]
    send_timeout: Resolved[Duration]
    retries: Resolved[int]
    balancing: Resolved[str]
    hash_on: Resolved[str]
    active_health: Resolved[str]
    passive_health: Resolved[str]


class KongHop(HopPlan, frozen=True, kw_only=True):
    client_keepalive: Resolved[Duration]
    upstream: UpstreamBudget
    entry_listener: Resolved[str] | None
    services: tuple[KongServicePlan, ...]

    product: ClassVar[str] = "Kong"
    layer: ClassVar[Literal["lb", "l7", "l4", "cluster"]] = "l7"
    zero_idle_keeps_forever: ClassVar[bool] = True
    targets_key: ClassVar[tuple[str, ...] | None] = ("backend_targets",)

    @property
    def tier(self) -> KongTier:
        assert isinstance(self.source_tier, KongTier)
        return self.source_tier

    @property
    def worker_accept(self) -> WorkerAccept:
        # lbgen renders every proxy_listen with `reuseport`, as kong.conf.default has it.
        return "reuseport"

    @property
    def pool(self) -> UpstreamBudget:
        return self.upstream

    @property
    def idle_close(self) -> IdleClose:
        return IdleClose(self.client_keepalive, ("client_keepalive", "timeout"), "client keep-alive",
                         "client_keepalive.timeout (nginx_http_keepalive_timeout)")

    def settings(self) -> Iterator[Setting]:
        yield Setting("client_keepalive.timeout", "client keep-alive timeout", self.client_keepalive,
                      "nginx_http_keepalive_timeout",
                      depends="must outlast the idle timeout of the caller's pool (LB1xx)")
        yield from _pool_settings(self.upstream, nginx=False, callee="the app server")
        if self.entry_listener is not None:
            yield Setting("proxy_listen", "entry listener the caller connects to", self.entry_listener,
                          "proxy_listen")
        for s in self.services:
            base = f"services.{s.service}"
            if s.kic_files is None:
                # DB-less: the Service and Upstream entities of kong.yaml.
                entity = _Where(f"name: {s.kong_name}", in_item=True)
                upstream = _Where(f"name: {s.upstream}", in_item=True)
                names = ("connect_timeout", "read_timeout", "write_timeout", "retries",
                         "algorithm", "hash_on", "active", "passive")
            else:
                # KIC: annotations on the Kubernetes Service, and the KongUpstreamPolicy.
                entity = _Where(file=s.kic_files[0])
                upstream = _Where("kind: KongUpstreamPolicy", file=s.kic_files[1])
                names = ("konghq.com/connect-timeout", "konghq.com/read-timeout",
                         "konghq.com/write-timeout", "konghq.com/retries", "algorithm", "hashOn",
                         "active", "passive")
            for key, title, value, name, where, depends in (
                ("timeouts.connect", "connect timeout", s.connect_timeout, names[0], entity, ""),
                ("timeouts.read", "read timeout", s.read_timeout, names[1], entity,
                 "the edge's read timeout should outlast Kong's tries (LB2xx)"),
                ("timeouts.send", "write timeout", s.send_timeout, names[2], entity, ""),
                ("retries", "retries on connection errors and timeouts", s.retries, names[3], entity, ""),
                ("algorithm", "load-balancing method", s.balancing, names[4], upstream, ""),
                ("hash_on", "hash key", s.hash_on, names[5], upstream, ""),
                ("healthchecks.active", "active health checks", s.active_health, names[6], upstream, ""),
                ("healthchecks.passive", "passive health checks", s.passive_health, names[7], upstream,
                 ""),
            ):
                yield Setting(f"{base}.{key}", title, value, name, where.anchor, depends,
                              file=where.file, in_item=where.in_item)


class ServicePlan(Struct, frozen=True):
    service: str
    """`namespace/name`."""
    app_idle_timeout: Resolved[Duration | None]
    session_affinity_timeout: Resolved[int] | None
    """`ClientIP` affinity's timeoutSeconds (None: no affinity)."""
    termination_grace_period: Resolved[Duration] | None = None
    """`terminationGracePeriodSeconds` of its pods (None only for hand-built plans)."""


class NatIdleLimit(Struct, frozen=True):
    """How long kube-proxy's NAT state survives an idle connection through a ClusterIP."""

    value: Duration
    label: str
    """Which setting it is, in words (`conntrack.tcpEstablishedTimeout`, `the kernel's …`)."""
    key: tuple[str, ...]
    """The setting's field path inside the kubernetes tier."""


def _nat_idle_limit(cluster: KubernetesTier) -> NatIdleLimit:
    kube_proxy = cluster.kube_proxy
    if cluster.platform == "self-managed" and kube_proxy is not None and kube_proxy.mode == "ipvs":
        key: tuple[str, ...] = ("kube_proxy", "ipvs", "tcp_timeout")
        ipvs = kube_proxy.ipvs
        if ipvs is not None and ipvs.tcp_timeout is not None and ipvs.tcp_timeout.ms > 0:
            return NatIdleLimit(ipvs.tcp_timeout, "ipvs.tcpTimeout", key)
        label = "the kernel's IPVS tcp timeout, kept by kube-proxy while ipvs.tcpTimeout is unset"
        return NatIdleLimit(defaults.IPVS_KERNEL_TCP_TIMEOUT.value, label, key)
    key = ("kube_proxy", "conntrack", "tcp_established_timeout")
    conntrack = kube_proxy.conntrack if kube_proxy is not None else None
    if (
        conntrack is not None
        and conntrack.tcp_established_timeout is not None
        and conntrack.tcp_established_timeout.ms > 0
    ):
        return NatIdleLimit(conntrack.tcp_established_timeout, "conntrack.tcpEstablishedTimeout", key)
    return NatIdleLimit(defaults.CONNTRACK_TCP_ESTABLISHED.value,
                        "kube-proxy's default conntrack.tcpEstablishedTimeout", key)


class EndpointPropagation(Struct, frozen=True):
    """How long the hop in front of Kubernetes keeps sending to a terminating pod."""

    value: Duration
    how: str
    """Which delay dominates it, in words."""
    key: tuple[str, ...] | None
    """The kubernetes tier's setting that dominates it, when the spec has one."""


def _endpoint_propagation(spec: Spec) -> EndpointPropagation | None:
    """None when lbgen cannot estimate it (GKE Dataplane V2, or an nginx edge resolving a
    headless name only at reload)."""
    front, cluster = topology.front_of_cluster(spec), spec.cluster
    if front is None:
        return None
    if topology.through_cluster_ip(spec) is not None:
        if cluster.platform == "gke-dataplane-v2":
            return None
        kube_proxy = cluster.kube_proxy
        if kube_proxy is not None and kube_proxy.min_sync_period is not None:
            return EndpointPropagation(kube_proxy.min_sync_period,
                                       f"kube-proxy minSyncPeriod {kube_proxy.min_sync_period}",
                                       ("kube_proxy", "min_sync_period"))
        return EndpointPropagation(defaults.KUBE_PROXY_MIN_SYNC.value,
                                   "kube-proxy minSyncPeriod 1s (default)", None)
    if isinstance(front, KongTier) and front.mode == "kic":
        total = defaults.KIC_PROXY_SYNC.value + defaults.KONG_WORKER_STATE_UPDATE.value
        return EndpointPropagation(
            total, f"KIC --proxy-sync-seconds 3s + Kong worker_state_update_frequency 5s = {total}", None
        )
    if isinstance(front, KongTier):
        return EndpointPropagation(
            defaults.CLUSTER_DNS_TTL.value,
            "the headless Service's DNS TTL (30s as kube-dns/CoreDNS are deployed), after which "
            f"{front.name} re-resolves the pod list",
            None,
        )
    return None  # nginx_http resolving a headless name: only at reload (LB4xx)


class ChurnLimits(Struct, frozen=True):
    """The Linux and kube-proxy limits that connection churn towards one ClusterIP meets."""

    ephemeral_ports: int
    """Local ports one source address has for one destination."""
    time_wait: Duration
    """How long a closed socket stays in TIME_WAIT on the side that closed first."""
    conntrack_time_wait: Duration
    conntrack_floor: int
    """The smallest conntrack table kube-proxy leaves on a node …"""
    conntrack_floor_label: str
    """… and how it was set (`conntrack.min`, or kube-proxy's default)."""


def _churn_limits(cluster: KubernetesTier) -> ChurnLimits:
    kube_proxy = cluster.kube_proxy
    conntrack = kube_proxy.conntrack if kube_proxy is not None else None
    floor, label = (
        (conntrack.min, "conntrack.min")
        if conntrack is not None and conntrack.min is not None
        else (defaults.KUBE_PROXY_CONNTRACK_MIN.value, "kube-proxy's default conntrack.min")
    )
    return ChurnLimits(defaults.LINUX_EPHEMERAL_PORTS.value, defaults.LINUX_TCP_TIME_WAIT.value,
                       defaults.CONNTRACK_TCP_TIME_WAIT.value, floor, label)


class KubernetesHop(HopPlan, frozen=True, kw_only=True):
    kube_proxy_mode: Resolved[str]
    services: tuple[ServicePlan, ...]
    nat_idle_limit: NatIdleLimit | None = None
    """The NAT state's idle lifetime (None only for hand-built plans)."""
    endpoint_propagation: EndpointPropagation | None = None
    """None: lbgen cannot estimate it (see `_endpoint_propagation`)."""
    churn_limits: ChurnLimits | None = None
    """None only for hand-built plans."""

    product: ClassVar[str] = "Kubernetes"
    layer: ClassVar[Literal["lb", "l7", "l4", "cluster"]] = "cluster"

    @property
    def tier(self) -> KubernetesTier:
        assert isinstance(self.source_tier, KubernetesTier)
        return self.source_tier

    def settings(self) -> Iterator[Setting]:
        yield Setting("kube_proxy.mode", "kube-proxy mode", self.kube_proxy_mode, "mode")
        for s in self.services:
            name = s.service.split("/", 1)[1]
            yield Setting(f"services.{name}.app.idle_timeout", f"app server idle timeout ({s.service})",
                          s.app_idle_timeout,
                          depends="every pooled caller in front must close idle connections first (LB1xx)")
            if s.session_affinity_timeout is not None:
                yield Setting(f"services.{name}.kubernetes.session_affinity_timeout",
                              "ClientIP affinity timeout (seconds)", s.session_affinity_timeout,
                              "timeoutSeconds", f"name: {name}")


class Plan(Struct, frozen=True):
    """The path as it will run: hops in request order, and the keep-alive budget."""

    hops: tuple[HopPlan, ...]
    budget: Budget

    def hop(self, name: str) -> HopPlan | None:
        return next((h for h in self.hops if h.name == name), None)

    def hop_of(self, tier: Tier) -> HopPlan:
        return next(h for h in self.hops if h.kind == tier.kind and h.name == tier.name)

    @property
    def tier_hops(self) -> tuple[HopPlan, ...]:
        """The hops that are tiers of the spec (all but the external load balancer)."""
        return tuple(h for h in self.hops if h.tier_index is not None)

    def hops_of(self, kind: type[HopT]) -> list[HopT]:
        """The hops of one product, in request order (rules about one product's settings)."""
        return [h for h in self.hops if isinstance(h, kind)]

    def first_of(self, kind: type[HopT]) -> HopT | None:
        return next((h for h in self.hops if isinstance(h, kind)), None)

    def _index(self, hop: HopPlan) -> int:
        return next(i for i, h in enumerate(self.hops) if h is hop)

    def next_hop(self, hop: HopPlan) -> HopPlan | None:
        index = self._index(hop)
        return self.hops[index + 1] if index + 1 < len(self.hops) else None

    def previous_hop(self, hop: HopPlan) -> HopPlan | None:
        index = self._index(hop)
        return self.hops[index - 1] if index > 0 else None

    def previous_tier_hop(self, hop: HopPlan) -> HopPlan | None:
        """The tier in front of `hop` (never the external load balancer)."""
        before = self.previous_hop(hop)
        return before if before is not None and before.tier_index is not None else None

    def pairs(self) -> Iterator[tuple[HopPlan, HopPlan]]:
        """Adjacent tier hops, caller first."""
        tiers = self.tier_hops
        return pairwise(tiers)

    def relayed_callees(self, caller: HopPlan) -> list[HopPlan]:
        """The hops whose idle timers a caller's pooled connection meets: every L4 relay
        behind it, then the first hop that is not a relay (a relay keeps one connection
        towards the next hop per connection it accepted)."""
        out: list[HopPlan] = []
        after = self.next_hop(caller)
        while after is not None:
            out.append(after)
            if after.layer != "l4":
                break
            after = self.next_hop(after)
        return out

    def l7_callee(self, caller: HopPlan) -> HopPlan | None:
        """The next hop behind `caller` (through L4 relays) that terminates HTTP itself."""
        callees = self.relayed_callees(caller)
        last = callees[-1] if callees else None
        return last if last is not None and last.layer == "l7" else None

    def relayed_pairs(self) -> list[tuple[HopPlan, HopPlan]]:
        """Each L7 hop with every L4 relay its pooled connections run through."""
        return [
            (caller, relay)
            for caller in self.tier_hops
            if caller.layer == "l7"
            for relay in self.relayed_callees(caller)
            if relay.layer == "l4"
        ]

    def l7_pairs(self) -> list[tuple[HopPlan, HopPlan]]:
        """Each L7 hop with the L7 hop its pooled connections end at (through L4 relays)."""
        return [
            (caller, callee)
            for caller in self.tier_hops
            if caller.layer == "l7" and (callee := self.l7_callee(caller)) is not None
        ]

    @property
    def cluster(self) -> KubernetesHop:
        found = self.first_of(KubernetesHop)
        assert found is not None  # the model requires a kubernetes tier, last
        return found

    @property
    def front_of_cluster(self) -> HopPlan | None:
        """The tier hop that connects to the Kubernetes Services (None: clients do)."""
        return self.previous_tier_hop(self.cluster)

    def app_facing_pool(self) -> HopPlan | None:
        """The L7 hop whose pooled connections end at the app servers (through any L4
        relays, which keep a pooled connection open end to end); None when there is none."""
        hop = self.front_of_cluster
        while hop is not None and hop.layer == "l4":
            hop = self.previous_tier_hop(hop)
        return hop if hop is not None and hop.pool is not None else None


class _Common(TypedDict):
    name: str
    kind: HopKind
    tier_index: int
    protocol_out: Protocol
    client_address: str
    sends_proxy_protocol: bool
    dials_pods: bool
    source_tier: Tier
    group_size: int


def _group_size(spec: Spec, tier: Tier) -> int:
    following = spec.next_tier(tier)
    if following is None:
        return 0
    if not isinstance(following, KubernetesTier):
        return len(following.instances)
    if topology.front_of_cluster(spec) is tier and topology.dials_pods(spec):
        return min(service.replicas for service in spec.services)
    return 1


EXTERNAL_LB_HOP = "external_lb"
"""The external load balancer's hop name (it is not a tier and has no name of its own)."""


def _balancing(algorithm: str, default: str, product: str, source: str) -> Resolved[str]:
    if algorithm == default:
        return Resolved(default, "product default", source, product=product)
    return Resolved(algorithm, "set")


def _targets(spec: Spec, tier: NginxHttpTier | NginxStreamTier | KongTier) -> tuple[Target, ...]:
    following = spec.next_tier(tier)
    if isinstance(following, NginxStreamTier | KongTier):
        port = (
            following.listen_port
            if isinstance(following, NginxStreamTier)
            else topology.gateway_entry_listener(spec, following)[1].port
        )
        return tuple(Target("instance", i.name, i.address, port) for i in following.instances)
    how = topology.backend_targets(tier)
    out: list[Target] = []
    for service in spec.services:
        if how == "pod_endpoints":
            kic = isinstance(tier, KongTier) and tier.mode == "kic"
            host, port = (
                (f"EndpointSlices of {service.namespace}/{service.name}", service.kubernetes.target_port)
                if kic
                else topology.backend_address(spec, service, how)
            )
            out.append(Target("pod_endpoints" if kic else "headless", service_key(service), host, port))
        else:
            host, port = topology.backend_address(spec, service, how)
            out.append(Target("cluster_ip", service_key(service), host, port))
    return tuple(out)


def _protocol_out(spec: Spec, tier: Tier) -> Protocol:
    if isinstance(tier, NginxStreamTier):
        return "tcp+PROXY" if tier.send_proxy_protocol else "tcp"
    grpc, http1 = topology.has_grpc(spec), topology.has_http1(spec)
    if grpc and http1:
        return "h1+grpc"
    return "grpc" if grpc else "h1"


def _client_address(spec: Spec, tier: Tier) -> str:
    peer = spec.previous_tier(tier)
    if peer is None:
        if spec.external_lb is not None:
            if isinstance(tier, NginxHttpTier) and tier.real_ip is not None:
                return f"the end user's, from {tier.real_ip.header} sent by the external load balancer"
            return "the external load balancer's"
        return "the end user's (the connection's peer)"
    if isinstance(tier, KongTier):
        seen = topology.gateway_client(spec)
        if seen is not None and not seen.is_end_user:
            return f"a proxy's: {seen.reason}"
        return "the end user's"
    if isinstance(tier, NginxStreamTier):
        return f"{peer.name}'s (a stream proxy reads no headers)"
    if isinstance(tier, KubernetesTier):
        if isinstance(peer, NginxHttpTier | KongTier):
            return f"{peer.name}'s; the end user's travels in X-Forwarded-For"
        return f"{peer.name}'s"
    return f"{peer.name}'s"


def _kube_proxy_mode(cluster: KubernetesTier) -> Resolved[str]:
    if cluster.platform == "gke-dataplane-v2":
        return Resolved("none (eBPF)", "product default",
                        "GKE Dataplane V2 replaces kube-proxy with Cilium's eBPF datapath")
    if cluster.platform == "gke":
        return Resolved("iptables", "product default", "GKE's legacy datapath runs kube-proxy in iptables mode")
    return values.kube_proxy_mode(cluster)


def resolve(spec: Spec) -> Plan:
    """Resolve every hop of `spec`: one pass, linear in tiers, instances and services."""
    budget = resolve_budget(spec)
    hops: list[HopPlan] = []
    if spec.external_lb is not None and budget.external_lb_idle is not None:
        hops.append(ExternalLbHop(
            EXTERNAL_LB_HOP, "external_lb", None, "h1", "the end user's", True, False, False,
            tuple(Target("instance", i.name, i.address, 0) for i in spec.tiers[0].instances)
            if not isinstance(spec.tiers[0], KubernetesTier) else (),
            backend_idle_timeout=budget.external_lb_idle,
        ))
    for index, tier in enumerate(spec.tiers):
        dials_pods = topology.front_of_cluster(spec) is tier and topology.dials_pods(spec)
        following = spec.next_tier(tier)
        common = _Common(
            name=tier.name, kind=tier.kind, tier_index=index,
            protocol_out=_protocol_out(spec, tier), client_address=_client_address(spec, tier),
            sends_proxy_protocol=topology.sends_proxy_protocol(tier), dials_pods=dials_pods,
            source_tier=tier, group_size=_group_size(spec, tier),
        )
        if isinstance(tier, NginxHttpTier):
            assert budget.edge_upstream is not None and budget.edge_client_keepalive is not None
            hops.append(NginxHttpHop(
                **common,
                pools_upstream=bool(budget.edge_upstream.connections.value),
                targets=_targets(spec, tier),
                client_keepalive=budget.edge_client_keepalive,
                upstream=budget.edge_upstream,
                callee=following.name if following is not None else "the next hop",
                connect_timeout=values.edge_connect_timeout(tier),
                read_timeout=values.edge_read_timeout(tier),
                send_timeout=values.edge_send_timeout(tier),
                retry_conditions=values.edge_retry_conditions(tier),
                max_fails=values.edge_max_fails(tier),
                fail_timeout=values.edge_fail_timeout(tier),
                balancing=_balancing(tier.balancing.algorithm, "round-robin", "nginx",
                                     f"{defaults.NGINX_UPSTREAM_DOC} (weighted round-robin)"),
                hash_key=(
                    Resolved(tier.balancing.hash_key, "set")
                    if tier.balancing.algorithm == "hash" and tier.balancing.hash_key is not None
                    else None
                ),
            ))
        elif isinstance(tier, NginxStreamTier):
            assert budget.l4_proxy_timeout is not None
            hops.append(NginxStreamHop(
                **common,
                pools_upstream=False,
                targets=_targets(spec, tier),
                proxy_timeout=budget.l4_proxy_timeout,
                connect_timeout=values.l4_connect_timeout(tier),
                balancing=_balancing(tier.balancing.algorithm, "round-robin", "nginx",
                                     "nginx.org/en/docs/stream/ngx_stream_upstream_module.html"),
            ))
        elif isinstance(tier, KongTier):
            assert budget.kong_upstream is not None and budget.kong_client_keepalive is not None
            entry: Resolved[str] | None = None
            if spec.previous_tier(tier) is not None:
                _, listener = topology.gateway_entry_listener(spec, tier)
                entry = Resolved(
                    f"port {listener.port}" + "".join(
                        f", {flag}" for flag, on in (("tls", listener.tls), ("http2", listener.http2),
                                                      ("proxy_protocol", listener.proxy_protocol)) if on
                    ),
                    "derived",
                    reasoning="the proxy_listen entry whose proxy_protocol flag matches what the "
                    "caller sends; cleartext first, HTTP/2 first for gRPC",
                )
            hops.append(KongHop(
                **common,
                pools_upstream=bool(budget.kong_upstream.connections.value),
                targets=_targets(spec, tier),
                client_keepalive=budget.kong_client_keepalive,
                upstream=budget.kong_upstream,
                entry_listener=entry,
                services=tuple(
                    KongServicePlan(
                        service.name,
                        f"{service.namespace}.{service.name}",
                        topology.upstream_name(service),
                        (service_bundle_path(spec, service), kic_file_path(tier, service))
                        if tier.mode == "kic" else None,
                        values.kong_connect_timeout(service),
                        values.kong_read_timeout(service),
                        values.kong_send_timeout(service),
                        values.kong_retries(service),
                        _balancing(service.kong.algorithm, "round-robin", "Kong",
                                   "kong/db/schema/entities/upstreams.lua: algorithm default round-robin"),
                        _balancing(service.kong.hash_on, "none", "Kong",
                                   "kong/db/schema/entities/upstreams.lua: hash_on default none"),
                        values.kong_active_health(service),
                        values.kong_passive_health(service),
                    )
                    for service in spec.services
                ),
            ))
        else:
            mode = _kube_proxy_mode(tier)
            hops.append(KubernetesHop(
                **common,
                pools_upstream=False,
                targets=(),
                kube_proxy_mode=mode,
                nat_idle_limit=_nat_idle_limit(tier),
                endpoint_propagation=_endpoint_propagation(spec),
                churn_limits=_churn_limits(tier),
                services=tuple(
                    ServicePlan(
                        service_key(service),
                        budget.app_idle[service_key(service)],
                        values.session_affinity_timeout(service)
                        if service.kubernetes.session_affinity == "ClientIP" else None,
                        values.termination_grace_period(service),
                    )
                    for service in spec.services
                ),
            ))
    return Plan(hops=tuple(hops), budget=budget)


__all__ = [
    "EXTERNAL_LB_HOP",
    "ChurnLimits",
    "EndpointPropagation",
    "ExternalLbHop",
    "HopPlan",
    "IdleClose",
    "KongHop",
    "KongServicePlan",
    "KubernetesHop",
    "NatIdleLimit",
    "NginxHttpHop",
    "NginxStreamHop",
    "Plan",
    "ServicePlan",
    "Setting",
    "Target",
    "resolve",
]
