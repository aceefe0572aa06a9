"""The four kinds of tier, from the edge inward.

A spec lists tiers in traffic order. Each kind appears at most once and in this order:
``nginx_http`` (L7 edge) → ``nginx_stream`` (L4) → ``kong`` (gateway) → ``kubernetes``
(Services and pods, always last).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from lbgen.defaults import KIC_DRAIN_SUPPORT_SINCE
from lbgen.model._base import StrictModel, Suppression
from lbgen.model.common import (
    ClientKeepalive,
    Instance,
    Listener,
    NginxBalancing,
    NginxPassiveHealth,
    NginxRealIp,
    NginxRetry,
    ProxyTimeouts,
    TlsFiles,
    UpstreamKeepalive,
)
from lbgen.model.types import Cidr, DnsResolver, Duration, HeaderName, Name, Port, Version

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
    worker_processes: int | Literal["auto"] = "auto"
    client_keepalive: ClientKeepalive = Field(default_factory=ClientKeepalive)
    upstream_keepalive: UpstreamKeepalive = Field(default_factory=UpstreamKeepalive)
    balancing: NginxBalancing = Field(default_factory=NginxBalancing)
    timeouts: ProxyTimeouts = Field(default_factory=ProxyTimeouts)
    retry: NginxRetry = Field(default_factory=NginxRetry)
    passive_health: NginxPassiveHealth = Field(default_factory=NginxPassiveHealth)
    real_ip: NginxRealIp | None = None
    forwarded_headers: bool = True
    """Send X-Forwarded-For/-Proto/-Host and X-Real-IP to the next hop."""
    backend_targets: BackendTargets = "cluster_ip"
    """Only used when this tier talks to Kubernetes directly."""

    @model_validator(mode="after")
    def _version_supports_features(self) -> NginxHttpTier:
        _nginx_method_version_check(self.balancing.algorithm, self.version)
        if any(listener.tls for listener in self.listen) and self.tls is None:
            raise ValueError("a listener has tls: true, so set tls.certificate/certificate_key")
        if self.upstream_keepalive.max_lifetime is not None and not self.version.at_least(
            "1.19.10"
        ):
            raise ValueError("upstream_keepalive.max_lifetime (keepalive_time) needs nginx ≥ 1.19.10")
        return self


class NginxStreamTier(_TierBase):
    """An nginx L4 proxy (`stream {}`): one upstream connection per client connection."""

    kind: Literal["nginx_stream"]
    version: Version = Field(default_factory=lambda: Version("1.30.0"))
    instances: list[Instance] = Field(min_length=1)
    listen_port: Port = 8080
    accept_proxy_protocol: bool = False
    """Expect a PROXY protocol header from the previous hop (`listen … proxy_protocol`)."""
    send_proxy_protocol: bool = False
    """Send a PROXY protocol header to the next hop (`proxy_protocol on`)."""
    worker_processes: int | Literal["auto"] = "auto"
    proxy_timeout: Duration | None = None
    """Idle time after which both legs are closed (nginx default 10m)."""
    connect_timeout: Duration | None = None
    balancing: NginxBalancing = Field(default_factory=NginxBalancing)
    passive_health: NginxPassiveHealth = Field(default_factory=NginxPassiveHealth)
    next_upstream: bool | None = None
    """Try the next server when a connection cannot be established (nginx default on)."""
    next_upstream_tries: int | None = Field(default=None, ge=0)
    load_module: bool = False
    """Emit `load_module` for distributions that build stream as a dynamic module (Debian)."""
    trusted_proxies: list[Cidr] = Field(default_factory=list)
    """`set_real_ip_from` for addresses in received PROXY headers (stream realip module)."""

    @model_validator(mode="after")
    def _version_supports_features(self) -> NginxStreamTier:
        _nginx_method_version_check(self.balancing.algorithm, self.version)
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


_VARIABLE_RE = re.compile(r"\$[a-z_][a-z0-9_]*")
# Connection-level variables of ngx_stream_core_module (and ssl_preread) that make sense as a
# hash key; HTTP variables such as $request_uri do not exist in stream {}.
_STREAM_HASH_VARIABLES = frozenset(
    {"$remote_addr", "$binary_remote_addr", "$remote_port", "$server_addr", "$server_port",
     "$ssl_preread_server_name", "$proxy_protocol_addr"}
)


def _nginx_method_version_check(algorithm: str, version: Version) -> None:
    # least_time became free in nginx 1.31.0 (CHANGES 1.31.0); random in 1.15.1.
    if algorithm == "least_time" and not version.at_least("1.31.0"):
        raise ValueError(
            f"least_time is only in open-source nginx ≥ 1.31.0 (this tier says {version}); "
            "use least_conn or random-two"
        )
    if algorithm in ("random", "random-two") and not version.at_least("1.15.1"):
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
            if kic_version is None or kic_version < KIC_DRAIN_SUPPORT_SINCE:
                raise ValueError(
                    f"kic.drain_support needs the Kong Ingress Controller ≥ {KIC_DRAIN_SUPPORT_SINCE} "
                    f"(kic.version says {kic_version or 'nothing'}): older controllers have no "
                    "--enable-drain-support flag; set kic.version or drop drain_support"
                )
        if not (self.version.at_least("3.0") and self.version < Version("4.0")):
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
    max_per_core: int | None = Field(default=None, ge=0)
    min: int | None = Field(default=None, ge=0)
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
    cluster_domain: str = Field(default="cluster.local", pattern=r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


Tier = Annotated[
    NginxHttpTier | NginxStreamTier | KongTier | KubernetesTier,
    Field(discriminator="kind"),
]

TIER_ORDER: tuple[str, ...] = ("nginx_http", "nginx_stream", "kong", "kubernetes")
