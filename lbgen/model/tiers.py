"""The four kinds of tier, from the edge inward.

A spec lists tiers in traffic order. Each kind appears at most once and in this order:
``nginx_http`` (L7 edge) → ``nginx_stream`` (L4) → ``kong`` (gateway) → ``kubernetes``
(Services and pods, always last).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from lbgen import versions
from lbgen.defaults import kong_h2c_shares_http1
from lbgen.model._base import StrictModel, Suppression
from lbgen.model.common import (
    ClientKeepalive,
    Instance,
    Listener,
    NginxBalancing,
    NginxPassiveHealth,
    NginxRealIp,
    NginxResolver,
    NginxRetry,
    ProxyTimeouts,
    TlsFiles,
    UpstreamKeepalive,
)
from lbgen.model.limits import (
    INT32_MAX,
    KUBE_PROXY_DEFAULT_SYNC_PERIOD_MS,
    NGINX_MAX_NUMBER,
    NGINX_MAX_WORKER_PROCESSES,
)
from lbgen.model.types import (
    Cidr,
    DnsResolver,
    DnsSubdomain,
    Duration,
    FilePath,
    HeaderName,
    Name,
    NginxDuration,
    Port,
    Version,
)
from lbgen.versions import (
    KIC_DRAIN_SUPPORT_SINCE,
    NGINX_UPSTREAM_KEEPALIVE_TUNING_SINCE,
    NGINX_UPSTREAM_RESOLVE_SINCE,
)


def _check_worker_processes(value: int | str) -> int | str:
    if isinstance(value, int) and not 1 <= value <= NGINX_MAX_WORKER_PROCESSES:
        raise ValueError(f"worker_processes {value} is out of range; use 1 to "
                         f"{NGINX_MAX_WORKER_PROCESSES} (nginx's process table) or auto")
    return value


WorkerProcesses = Annotated[int | Literal["auto"], AfterValidator(_check_worker_processes)]
"""nginx `worker_processes`: 1 to 1024 (NGX_MAX_PROCESSES), or `auto` (one per core)."""

BackendTargets = Literal["pod_endpoints", "cluster_ip"]
"""How the hop in front of Kubernetes reaches pods: each pod's IP (through a headless
Service or the Kong Ingress Controller) or the Service's single ClusterIP."""


class _TierBase(StrictModel):
    name: Name
    """Tier name; also the output directory of its files."""
    suppress: list[Suppression] = Field(default_factory=list)
    """Rules accepted on this tier, each with a reason."""


class NginxHttpTier(_TierBase):
    """An nginx L7 reverse proxy (`http {}`), usually the edge."""

    kind: Literal["nginx_http"]
    version: Version = Field(default_factory=lambda: Version("1.30.0"))
    """nginx version running this tier; defaults change in 1.29.7."""
    instances: list[Instance] = Field(min_length=1)
    listen: list[Listener] = Field(default_factory=lambda: [Listener(port=80)], min_length=1)
    tls: TlsFiles | None = None
    """Certificate files for listeners with `tls: true`."""
    worker_processes: WorkerProcesses = "auto"
    client_keepalive: ClientKeepalive = Field(default_factory=ClientKeepalive)
    upstream_keepalive: UpstreamKeepalive = Field(default_factory=UpstreamKeepalive)
    balancing: NginxBalancing = Field(default_factory=NginxBalancing)
    timeouts: ProxyTimeouts = Field(default_factory=ProxyTimeouts)
    retry: NginxRetry = Field(default_factory=NginxRetry)
    passive_health: NginxPassiveHealth = Field(default_factory=NginxPassiveHealth)
    real_ip: NginxRealIp | None = None
    forwarded_headers: bool = True
    """Send X-Forwarded-For/-Proto/-Host and X-Real-IP to the next hop."""
    resolver: NginxResolver | None = None
    """DNS servers for the names this tier dials (nginx ≥ 1.27.3): the upstream blocks with
    a name get `zone`, `resolver` and `server … resolve`, so nginx follows address changes
    while it runs. Unset: names are resolved once, when nginx loads its configuration."""
    backend_targets: BackendTargets = "cluster_ip"
    """Only used when this tier talks to Kubernetes directly. `pod_endpoints` dials the pods
    through a headless Service name: set `resolver` so nginx follows the pods (LB310)."""

    @field_validator("resolver")
    @classmethod
    def _resolver_needs_version(
        cls, value: NginxResolver | None, info: ValidationInfo
    ) -> NginxResolver | None:
        return _resolver_version_check(value, info)

    @model_validator(mode="after")
    def _version_supports_features(self) -> NginxHttpTier:
        _nginx_method_version_check(self.balancing.algorithm, self.version)
        if any(listener.tls for listener in self.listen) and self.tls is None:
            raise ValueError("a listener has tls: true, so set tls.certificate/certificate_key")
        if self.upstream_keepalive.max_lifetime is not None and not self.version.at_least(
            "1.19.10"
        ):
            raise ValueError("upstream_keepalive.max_lifetime (keepalive_time) needs nginx ≥ 1.19.10")
        if self.version < NGINX_UPSTREAM_KEEPALIVE_TUNING_SINCE.since:
            for field, directive in (("idle_timeout", "keepalive_timeout"),
                                     ("max_requests", "keepalive_requests")):
                if getattr(self.upstream_keepalive, field) is not None:
                    raise ValueError(
                        f"upstream_keepalive.{field} (upstream {directive}) needs nginx ≥ 1.15.3; "
                        f"nginx {self.version} keeps a pooled connection until the next hop "
                        "closes it. Upgrade nginx, or remove the setting"
                    )
        return self


class NginxStreamTier(_TierBase):
    """An nginx L4 proxy (`stream {}`): one upstream connection per client connection."""

    kind: Literal["nginx_stream"]
    version: Version = Field(default_factory=lambda: Version("1.30.0"))
    instances: list[Instance] = Field(min_length=1)
    listen_port: Port = 8080
    grpc_listen_port: Port | None = None
    """A second listener for the edge's gRPC, forwarded to Kong's h2c (`http2`) listener while
    `listen_port` forwards HTTP/1.1 to a plain one. Needed before Kong 3.6, whose cleartext
    http2 listener speaks HTTP/2 only, when both go through this tier in cleartext."""
    accept_proxy_protocol: bool = False
    """Expect a PROXY protocol header from the previous hop (`listen … proxy_protocol`)."""
    send_proxy_protocol: bool = False
    """Send a PROXY protocol header to the next hop (`proxy_protocol on`)."""
    worker_processes: WorkerProcesses = "auto"
    proxy_timeout: NginxDuration | None = None
    """Idle time after which both legs are closed (nginx default 10m)."""
    connect_timeout: NginxDuration | None = None
    balancing: NginxBalancing = Field(default_factory=NginxBalancing)
    passive_health: NginxPassiveHealth = Field(default_factory=NginxPassiveHealth)
    next_upstream: bool | None = None
    """Try the next server when a connection cannot be established (nginx default on)."""
    next_upstream_tries: int | None = Field(default=None, ge=0, le=NGINX_MAX_NUMBER)
    build: Literal["nginx.org", "debian"] | None = None
    """Which nginx build runs this tier, so that nginx.conf loads what that build needs.
    `nginx.org` (the default): nginx.org packages and the official Docker image, stream built
    in. `debian`: Debian/Ubuntu packages, where stream is the dynamic module
    libnginx-mod-stream, loaded with `load_module` (Debian/Ubuntu ship no nginx 1.30, so the
    default version implies an nginx.org build)."""
    stream_module_path: FilePath | None = None
    """With `build: debian`: where the stream module is (default
    /usr/lib/nginx/modules/ngx_stream_module.so, Debian/Ubuntu's `--modules-path`)."""
    load_module: bool = False
    """Older spelling of `build: debian`."""
    trusted_proxies: list[Cidr] = Field(default_factory=list)
    """`set_real_ip_from` for addresses in received PROXY headers (stream realip module)."""
    resolver: NginxResolver | None = None
    """DNS servers for the names this tier dials (nginx ≥ 1.27.3), as on nginx_http."""

    @field_validator("resolver")
    @classmethod
    def _resolver_needs_version(
        cls, value: NginxResolver | None, info: ValidationInfo
    ) -> NginxResolver | None:
        return _resolver_version_check(value, info)

    @property
    def stream_build(self) -> Literal["nginx.org", "debian"]:
        """The build this tier's nginx.conf is written for (`load_module: true` = debian)."""
        if self.build is not None:
            return self.build
        return "debian" if self.load_module else "nginx.org"

    @model_validator(mode="after")
    def _version_supports_features(self) -> NginxStreamTier:
        _nginx_method_version_check(self.balancing.algorithm, self.version)
        if self.grpc_listen_port is not None and self.grpc_listen_port == self.listen_port:
            raise ValueError("grpc_listen_port must differ from listen_port")
        if self.load_module and self.build == "nginx.org":
            raise ValueError(
                "load_module: true means build: debian, but build says nginx.org (stream built "
                "in, nothing to load); remove load_module"
            )
        if self.stream_module_path is not None and self.stream_build != "debian":
            raise ValueError(
                "stream_module_path only applies to build: debian (a dynamic stream module); "
                "nginx.org builds have stream built in"
            )
        if self.balancing.algorithm == "ip_hash":
            # ngx_stream_upstream_module has no ip_hash (only hash, least_conn, random…).
            raise ValueError(
                "stream {} has no ip_hash; use algorithm: hash with hash_key: $remote_addr"
            )
        key = self.balancing.hash_key or ""
        unknown = sorted(set(_VARIABLE_RE.findall(key)) - _STREAM_HASH_VARIABLES)
        if unknown:
            raise ValueError(
                f"hash_key uses {', '.join(unknown)}, which the stream module does not have "
                f"(it sees connections, not requests); use one of {sorted(_STREAM_HASH_VARIABLES)}"
            )
        return self


def _resolver_version_check(
    resolver: NginxResolver | None, info: ValidationInfo
) -> NginxResolver | None:
    version = info.data.get("version")
    if resolver is not None and version is not None and version < NGINX_UPSTREAM_RESOLVE_SINCE.since:
        raise ValueError(
            f"this tier says nginx {version}, but re-resolving names in an upstream "
            "(`server … resolve`, `resolver` in `upstream`) is in open-source nginx only since "
            "1.27.3 (CHANGES 1.27.3); declare version ≥ 1.27.3, or remove resolver and give "
            "IP addresses (names are then resolved once, when nginx loads: LB310)"
        )
    return resolver


_VARIABLE_RE = re.compile(r"\$[a-z_][a-z0-9_]*")
# Connection-level variables of ngx_stream_core_module (and ssl_preread) that make sense as a
# hash key; HTTP variables such as $request_uri do not exist in stream {}.
_STREAM_HASH_VARIABLES = frozenset(
    {"$remote_addr", "$binary_remote_addr", "$remote_port", "$server_addr", "$server_port",
     "$ssl_preread_server_name", "$proxy_protocol_addr"}
)


def _nginx_method_version_check(algorithm: str, version: Version) -> None:
    if algorithm == "least_time" and not versions.NGINX_LEAST_TIME.reached(version):
        raise ValueError(
            f"least_time is only in open-source nginx ≥ 1.31.0 (this tier says {version}); "
            "use least_conn or random-two"
        )
    if algorithm in ("random", "random-two") and not versions.NGINX_RANDOM.reached(version):
        raise ValueError(f"random needs nginx ≥ 1.15.1 (this tier says {version})")


class KongRealIp(StrictModel):
    """kong.conf `real_ip_header`, `real_ip_recursive`, `trusted_ips`."""

    header: Literal["X-Real-IP", "X-Forwarded-For", "proxy_protocol"] | HeaderName = "X-Real-IP"
    recursive: bool = False
    trusted_ips: list[Cidr] = Field(default_factory=list)


def _default_kong_listeners() -> list[Listener]:
    # kong.conf.default: proxy_listen = 0.0.0.0:8000 reuseport backlog=16384,
    #                                   0.0.0.0:8443 http2 ssl reuseport backlog=16384
    return [Listener(port=8000), Listener(port=8443, tls=True, http2=True)]


class KicSettings(StrictModel):
    """The Kong Ingress Controller that runs this Kong (mode: kic only)."""

    version: Version | None = None
    """KIC version (not Kong Gateway's). Unset: not known; drain support then needs it."""
    drain_support: bool = False
    """`--enable-drain-support` (env CONTROLLER_ENABLE_DRAIN_SUPPORT; KIC ≥ 3.5, default
    false): terminating pods stay in Kong's upstream with weight 0 so existing sessions finish."""


class KongProxyService(StrictModel):
    """The Service (type LoadBalancer/NodePort, e.g. from Kong's Helm chart) through which a
    cloud load balancer reaches Kong in the cluster. Not rendered; used by the rules (LB507)."""

    external_traffic_policy: Literal["Cluster", "Local"] = "Cluster"
    """`spec.externalTrafficPolicy` (Kubernetes default Cluster)."""
    lb_targets: Literal["nodes", "pods"] = "nodes"
    """What the load balancer sends to: node ports (kube-proxy forwards to a Kong pod) or Kong
    pod IPs directly (container-native load balancing: GKE NEGs, AWS target type ip), where
    externalTrafficPolicy plays no part."""


class KongTier(_TierBase):
    """A Kong Gateway 3.x data plane: DB-less with a declarative file, or run by KIC."""

    kind: Literal["kong"]
    version: Version = Field(default_factory=lambda: Version("3.10"))
    edition: Literal["oss", "enterprise"] = "oss"
    mode: Literal["db-less", "kic"] = "db-less"
    """`db-less`: kong.yaml + kong.conf. `kic`: Kong Ingress Controller resources."""
    instances: list[Instance] = Field(min_length=1)
    proxy_listen: list[Listener] = Field(default_factory=_default_kong_listeners, min_length=1)
    client_keepalive: ClientKeepalive = Field(default_factory=ClientKeepalive)
    """Rendered as `nginx_http_keepalive_timeout`; unset means nginx's 75s."""
    upstream_keepalive: UpstreamKeepalive = Field(default_factory=UpstreamKeepalive)
    """`upstream_keepalive_pool_size`, `_idle_timeout`, `_max_requests` (global in kong.conf)."""
    real_ip: KongRealIp = Field(default_factory=KongRealIp)
    backend_targets: BackendTargets = "pod_endpoints"
    location: Literal["cluster", "outside"] = "cluster"
    """Where the Kong data plane runs: `cluster` (pods, with the cluster's DNS and pod
    network) or `outside` (VMs or hosts beside the cluster). Outside, Kong needs
    `dns_resolver` to resolve the Services' cluster names, and pod IPs routable from its
    hosts (on GKE a VPC-native cluster); ClusterIPs only with `cluster_ip_routed`."""
    dns_resolver: list[DnsResolver] = Field(default_factory=list, max_length=8)
    """kong.conf `dns_resolver`: nameservers (`ip` or `ip:port`, IPv6 as `[ip]:port`) that
    answer the cluster's names (`*.svc.<cluster_domain>`), e.g. the cluster DNS exposed on an
    internal load balancer. Unset: the hosts' resolv.conf."""
    cluster_ip_routed: bool = False
    """With `location: outside` and `backend_targets: cluster_ip`: you route the cluster's
    Service CIDR from Kong's hosts to the nodes, so ClusterIPs are reachable there."""
    kic: KicSettings | None = None
    """The controller's version and flags (mode: kic). Used by the rules (LB309)."""
    proxy_service: KongProxyService | None = None
    """Kong's own proxy Service when Kong runs in the cluster behind a cloud load balancer
    (not rendered; LB507). Unset: externalTrafficPolicy Cluster, the LB targets nodes."""

    def listener_serves(self, entry: Listener, *, grpc: bool, http1: bool) -> bool:
        """Whether a proxy_listen entry can carry a caller's gRPC (h2c/h2) and HTTP/1.1.

        gRPC needs `http2`. Before Kong 3.6 (OpenResty < nginx 1.25.1) a cleartext `http2`
        entry speaks HTTP/2 only, so HTTP/1.1 cannot use it; over TLS, ALPN picks per
        connection (`lbgen.defaults.kong_h2c_shares_http1`).
        """
        if grpc and not entry.http2:
            return False
        h2c_only = entry.http2 and not entry.tls and not kong_h2c_shares_http1(self.version)
        return not (http1 and h2c_only)

    @model_validator(mode="after")
    def _kong_constraints(self) -> KongTier:
        if self.cluster_ip_routed and not (
            self.location == "outside" and self.backend_targets == "cluster_ip"
        ):
            raise ValueError(
                "cluster_ip_routed only applies with location: outside and backend_targets: cluster_ip"
            )
        if self.proxy_service is not None and self.location != "cluster":
            raise ValueError("proxy_service describes Kong's Service in the cluster: only with location: cluster")
        if self.kic is not None and self.mode != "kic":
            raise ValueError("kic settings only apply with mode: kic")
        if self.kic is not None and self.kic.drain_support:
            kic_version = self.kic.version
            if kic_version is None or kic_version < KIC_DRAIN_SUPPORT_SINCE.since:
                raise ValueError(
                    f"kic.drain_support needs the Kong Ingress Controller ≥ {KIC_DRAIN_SUPPORT_SINCE.since} "
                    f"(kic.version says {kic_version or 'nothing'}): older controllers have no "
                    "--enable-drain-support flag; set kic.version or drop drain_support"
                )
        if not (self.version.at_least("3.0") and self.version < versions.KONG_NEXT_MAJOR.since):
            raise ValueError(f"lbgen supports Kong Gateway 3.x; this tier says {self.version}")
        if self.upstream_keepalive.max_lifetime is not None:
            raise ValueError(
                "Kong has no upstream keep-alive lifetime setting; use "
                "upstream_keepalive.max_requests to recycle connections"
            )
        return self


class IpvsSettings(StrictModel):
    scheduler: str | None = Field(default=None, pattern=r"^[a-z]{0,8}$")
    """IPVS scheduler; unset means round-robin (`rr`)."""
    tcp_timeout: Duration | None = None
    tcp_fin_timeout: Duration | None = None
    udp_timeout: Duration | None = None
    strict_arp: bool | None = None


class ConntrackSettings(StrictModel):
    max_per_core: int | None = Field(default=None, ge=0, le=INT32_MAX)
    min: int | None = Field(default=None, ge=0, le=INT32_MAX)
    tcp_established_timeout: Duration | None = None
    tcp_close_wait_timeout: Duration | None = None


class KubeProxySettings(StrictModel):
    mode: Literal["iptables", "ipvs", "nftables"] | None = None
    """The proxy mode the cluster runs. lbgen renders kube-proxy's configuration only when it
    is set together with cluster_cidrs (the file replaces the whole configuration; LB708).
    Unset: the rules assume iptables, the Linux default."""
    sync_period: Duration | None = None
    min_sync_period: Duration | None = None
    ipvs: IpvsSettings | None = None
    conntrack: ConntrackSettings | None = None
    cluster_cidrs: list[Cidr] = Field(default_factory=list, max_length=2)
    """Pod network CIDR(s) (kubeadm `podSubnet`; two for dual-stack), rendered as
    `clusterCIDR`: kube-proxy uses it to tell pod traffic from external traffic. Needed (`[]`
    when the live configuration has none) before lbgen renders config.conf, which replaces the
    whole file (LB708)."""

    @model_validator(mode="after")
    def _sync_periods_in_order(self) -> KubeProxySettings:
        # kube-proxy validation.go: syncPeriod > 0, minSyncPeriod ≤ syncPeriod.
        if self.sync_period is not None and self.sync_period.ms == 0:
            raise ValueError("sync_period must be longer than 0 (kube-proxy refuses 0)")
        sync = self.sync_period or Duration(KUBE_PROXY_DEFAULT_SYNC_PERIOD_MS)
        if self.min_sync_period is not None and self.min_sync_period > sync:
            which = "sync_period" if self.sync_period is not None else "the default sync_period"
            raise ValueError(
                f"min_sync_period {self.min_sync_period} is longer than {which} {sync} "
                "(kube-proxy refuses it); use a min_sync_period at most as long"
            )
        return self


class KubernetesTier(_TierBase):
    """The cluster running the backend Services and their pods."""

    kind: Literal["kubernetes"]
    version: Version = Field(default_factory=lambda: Version("1.33"))
    platform: Literal["gke", "gke-dataplane-v2", "self-managed"]
    """`gke`: iptables kube-proxy managed by Google; `gke-dataplane-v2`: eBPF, no kube-proxy;
    `self-managed`: you run kube-proxy and own its ConfigMap."""
    kube_proxy: KubeProxySettings | None = None
    """kube-proxy's settings as the cluster runs them. On self-managed clusters lbgen renders
    the kube-proxy ConfigMap only when they are given with mode and cluster_cidrs; unset leaves
    kube-proxy's configuration alone."""
    node_kernel: Version | None = None
    """Linux kernel of the nodes (nftables mode needs ≥ 5.13)."""
    cluster_domain: DnsSubdomain = "cluster.local"


Tier = Annotated[
    NginxHttpTier | NginxStreamTier | KongTier | KubernetesTier,
    Field(discriminator="kind"),
]

TIER_ORDER: tuple[str, ...] = ("nginx_http", "nginx_stream", "kong", "kubernetes")
