"""LB7xx — platform limits: what kube-proxy can do on this platform and version.

GKE offers two datapaths and no kube-proxy mode setting; Dataplane V2 has no kube-proxy at
all. On self-managed clusters the IPVS scheduler must exist, IPVS is deprecated, and the
nftables mode needs a recent Kubernetes and kernel. Product versions set limits too: Kong
before 3.6 embeds an nginx whose cleartext HTTP/2 listener cannot serve HTTP/1.1.
"""

from __future__ import annotations

from collections.abc import Iterator

from lbgen import defaults, versions
from lbgen.model.spec import Spec
from lbgen.plan.hops import KongHop
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
from lbgen.versions import (
    IPVS_DEPRECATED,
    IPVS_DISABLED_BY_DEFAULT,
    NFTABLES_ALPHA,
    NFTABLES_BETA,
    NFTABLES_MIN_KERNEL,
    SCHEDULER_VALIDATION_REMOVED,
)

GKE_DATAPATH = (
    "https://cloud.google.com/kubernetes-engine/docs/reference/rest/v1/DatapathProvider"
)
GKE_DPV2 = "https://cloud.google.com/kubernetes-engine/docs/concepts/dataplane-v2"
K8S_VIRTUAL_IPS = "https://kubernetes.io/docs/reference/networking/virtual-ips/"
KUBE_PROXY_CONFIG = "https://kubernetes.io/docs/reference/config-api/kube-proxy-config.v1alpha1/"

# Linux IPVS schedulers (ip_vs_<name> modules, net/netfilter/ipvs/Kconfig).
KERNEL_IPVS_SCHEDULERS = frozenset(
    {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}
)
# What kube-proxy's validation accepted before kubernetes PR #114878 removed it in v1.27.
PRE_127_SCHEDULERS = frozenset({"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq"})


def _cluster_path(spec: Spec, field: str) -> ModelPath:
    return ("tiers", spec.tier_index(spec.cluster), field)


def _gke_only(ctx: RuleContext) -> str | None:
    spec = ctx.spec
    if spec.cluster.platform != "gke":
        return SkipReason(
            "only GKE's legacy datapath runs a managed kube-proxy "
            f"(this is {spec.cluster.platform})",
            _cluster_path(spec, "platform"),
        )
    return None


def _managed_only(ctx: RuleContext) -> str | None:
    spec = ctx.spec
    if spec.cluster.platform == "self-managed":
        return SkipReason(
            "on self-managed clusters kube-proxy settings are yours to set",
            _cluster_path(spec, "platform"),
        )
    return None


def _self_managed_only(ctx: RuleContext) -> str | None:
    spec = ctx.spec
    if spec.cluster.platform != "self-managed":
        return SkipReason(
            "kube-proxy mode and scheduler rules only apply to self-managed clusters "
            f"(this is {spec.cluster.platform}: see LB701/LB702)",
            _cluster_path(spec, "platform"),
        )
    return None


# --- LB701 ---------------------------------------------------------------------------------


def _mode_on_gke(ctx: RuleContext) -> Iterator[Violation]:
    cluster = ctx.spec.cluster
    proxy = cluster.kube_proxy
    if proxy is None or proxy.mode not in ("ipvs", "nftables"):
        return
    yield Violation(
        message=(
            f"{cluster.name} runs on GKE, whose legacy datapath is the iptables kube-proxy "
            f"that Google manages; GKE has no setting for kube-proxy mode {proxy.mode}, so it "
            "never takes effect and the behaviour it was chosen for (IPVS schedulers, nftables "
            "performance) never happens"
        ),
        hint=(
            "remove kube_proxy.mode (GKE is iptables, or eBPF with platform: "
            "gke-dataplane-v2); balance in Kong across pod endpoints instead"
        ),
        path=ctx.tier_path(cluster, "kube_proxy", "mode"),
        related_path=ctx.tier_path(cluster, "platform"),
    )


MODE_ON_GKE = Rule(
    code="LB701",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="kube-proxy-mode-unavailable-on-gke",
    severity=Severity.ERROR,
    summary="kube-proxy IPVS or nftables mode requested on GKE, which only offers iptables",
    tiers=frozenset({"kubernetes"}),
    check=_mode_on_gke,
    versions="GKE (legacy datapath)",
    applies=_gke_only,
    doc=RuleDoc(
        what="`platform: gke` with `kube_proxy.mode: ipvs` or `nftables`.",
        why=(
            "GKE's API offers two datapaths: LEGACY_DATAPATH, 'the IPTables implementation "
            "based on kube-proxy', and ADVANCED_DATAPATH, the eBPF Dataplane V2. There is no "
            "field for a kube-proxy mode: GKE deploys and manages kube-proxy itself, so an "
            "IPVS or nftables configuration cannot be applied and any plan that relies on it "
            "(least-connection schedulers, nftables scalability) silently does not happen. "
            "(That the mode cannot be changed is derived from the API's two datapath values; "
            "GKE documents no kube-proxy mode setting.)"
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: gke
    platform: gke
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
  - kind: kubernetes
    name: gke
    platform: gke
services:
  - name: orders
    replicas: 4
    app: {preset: go}
    kong: {algorithm: least-connections}
""",
        references=(GKE_DATAPATH, GKE_DPV2, K8S_VIRTUAL_IPS + "#proxy-modes"),
    ),
)


# --- LB702 ---------------------------------------------------------------------------------


def _settings_on_managed(ctx: RuleContext) -> Iterator[Violation]:
    cluster = ctx.spec.cluster
    proxy = cluster.kube_proxy
    if proxy is None:
        return
    if cluster.platform == "gke-dataplane-v2":
        yield Violation(
            message=(
                f"{cluster.name} runs GKE Dataplane V2, which implements Services in eBPF "
                "without kube-proxy, so none of the kube_proxy settings has any effect"
            ),
            hint="remove kube_proxy: Dataplane V2's Service balancing is not configurable",
            path=ctx.tier_path(cluster, "kube_proxy"),
            related_path=ctx.tier_path(cluster, "platform"),
        )
        return
    # Legacy GKE: the mode itself is LB701; every other setting is Google's to manage.
    fields = [
        name
        for name in ("sync_period", "min_sync_period", "ipvs", "conntrack", "cluster_cidrs")
        if getattr(proxy, name)
    ]
    for name in fields:
        yield Violation(
            message=(
                f"{cluster.name} runs on GKE, which deploys and configures kube-proxy itself: "
                f"kube_proxy.{name} cannot be applied there"
            ),
            hint=f"remove kube_proxy.{name}",
            path=ctx.tier_path(cluster, "kube_proxy", name),
            related_path=ctx.tier_path(cluster, "platform"),
        )


SETTINGS_ON_MANAGED = Rule(
    code="LB702",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="kube-proxy-settings-on-managed-platform",
    severity=Severity.WARNING,
    summary="kube-proxy settings on GKE, where Google manages kube-proxy (or there is none)",
    tiers=frozenset({"kubernetes"}),
    check=_settings_on_managed,
    versions="GKE and GKE Dataplane V2",
    applies=_managed_only,
    doc=RuleDoc(
        what=(
            "`kube_proxy` settings on `platform: gke-dataplane-v2` (any), or on `platform: "
            "gke` (anything but the mode, which LB701 covers)."
        ),
        why=(
            "GKE Dataplane V2 is 'implemented without kube-proxy and does not rely on "
            "iptables for service routing': the anetd (Cilium) DaemonSet programs eBPF. On "
            "the legacy datapath GKE runs and configures kube-proxy itself. lbgen renders no "
            "kube-proxy ConfigMap for either, so these settings describe a configuration "
            "that does not exist."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: gke
    platform: gke-dataplane-v2
    kube_proxy:
      conntrack: {tcp_established_timeout: 1h}
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
  - kind: kubernetes
    name: gke
    platform: gke-dataplane-v2
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        references=(GKE_DPV2, GKE_DATAPATH),
    ),
)


# --- LB703 ---------------------------------------------------------------------------------


def _unknown_scheduler(ctx: RuleContext) -> Iterator[Violation]:
    cluster = ctx.spec.cluster
    proxy = cluster.kube_proxy
    if proxy is None or proxy.mode != "ipvs" or proxy.ipvs is None or not proxy.ipvs.scheduler:
        return
    scheduler = proxy.ipvs.scheduler
    path = ctx.tier_path(cluster, "kube_proxy", "ipvs", "scheduler")
    if scheduler not in KERNEL_IPVS_SCHEDULERS:
        known = ", ".join(sorted(KERNEL_IPVS_SCHEDULERS))
        yield Violation(
            message=(
                f"IPVS scheduler {scheduler!r} is not a Linux IPVS scheduler ({known}), so "
                "kube-proxy cannot create its virtual servers and fails to start"
            ),
            hint="use rr (the default), wrr, lc, wlc, sh, mh or another kernel scheduler",
            path=path,
            related_path=ctx.tier_path(cluster, "kube_proxy", "mode"),
        )
    elif scheduler not in PRE_127_SCHEDULERS and cluster.version < SCHEDULER_VALIDATION_REMOVED.since:
        yield Violation(
            message=(
                f"IPVS scheduler {scheduler!r} is rejected by kube-proxy {cluster.version}'s "
                "configuration validation, which accepts only rr, wrr, lc, wlc, lblc, lblcr, "
                "sh, dh, sed and nq before Kubernetes 1.27"
            ),
            hint=f"use one of those schedulers, or upgrade to Kubernetes ≥ 1.27 for {scheduler}",
            path=path,
            related_path=ctx.tier_path(cluster, "version"),
        )


UNKNOWN_SCHEDULER = Rule(
    code="LB703",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="ipvs-scheduler-unavailable",
    severity=Severity.ERROR,
    summary="The IPVS scheduler does not exist, or this kube-proxy version rejects it",
    tiers=frozenset({"kubernetes"}),
    check=_unknown_scheduler,
    versions="self-managed clusters; validation differs before and after Kubernetes 1.27",
    applies=_self_managed_only,
    doc=RuleDoc(
        what=(
            "`kube_proxy.ipvs.scheduler` in IPVS mode: it must name a Linux IPVS scheduler "
            "(rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos), and before "
            "Kubernetes 1.27 one of the ten that kube-proxy's validation listed."
        ),
        why=(
            "Until 1.27 kube-proxy validated the scheduler against rr, wrr, lc, wlc, lblc, "
            "lblcr, sh, dh, sed and nq, so `mh` (Maglev) or `fo` were rejected. Kubernetes PR "
            "#114878 (v1.27) removed that list: kube-proxy now tries the scheduler and, if "
            "the kernel does not have it, fails to start ('same as before but different log "
            "printouts'). A misspelt scheduler therefore takes every node's Service routing "
            "down on any version."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    version: "1.33"
    platform: self-managed
    kube_proxy:
      mode: ipvs
      ipvs: {scheduler: leastc}
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
  - kind: kubernetes
    name: cluster
    version: "1.33"
    platform: self-managed
    kube_proxy:
      mode: ipvs
      ipvs: {scheduler: rr}
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        references=(
            "https://github.com/kubernetes/kubernetes/pull/114878",
            "https://github.com/kubernetes/kubernetes/blob/master/pkg/proxy/apis/config/validation/validation.go",
            K8S_VIRTUAL_IPS + "#proxy-mode-ipvs",
            KUBE_PROXY_CONFIG,
        ),
    ),
)


# --- LB704 ---------------------------------------------------------------------------------


def _ipvs_deprecated(ctx: RuleContext) -> Iterator[Violation]:
    cluster = ctx.spec.cluster
    proxy = cluster.kube_proxy
    if proxy is None or proxy.mode != "ipvs":
        return
    later = (
        f"; from {IPVS_DISABLED_BY_DEFAULT.since} it is planned to be off by default (KubeProxyIPVS "
        "feature gate) and kube-proxy then refuses to start in it"
        if cluster.version >= IPVS_DISABLED_BY_DEFAULT.since
        else f", planned to be disabled by default in {IPVS_DISABLED_BY_DEFAULT.since} and removed later"
    )
    yield Violation(
        message=(
            f"kube-proxy's ipvs mode is deprecated since Kubernetes {IPVS_DEPRECATED.since} "
            f"(this cluster runs {cluster.version}){later}"
        ),
        hint=(
            "move to mode: nftables (GA since 1.33, needs node kernel ≥ 5.13) or iptables; "
            "note nftables picks endpoints at random, like iptables"
        ),
        path=ctx.tier_path(cluster, "kube_proxy", "mode"),
        related_path=ctx.tier_path(cluster, "version"),
    )


def _ipvs_deprecation_applies(ctx: RuleContext) -> str | None:
    spec = ctx.spec
    reason = _self_managed_only(ctx)
    if reason is not None:
        return reason
    if spec.cluster.version < IPVS_DEPRECATED.since:
        return SkipReason(
            f"IPVS mode is deprecated from Kubernetes {IPVS_DEPRECATED.since}; "
            f"this cluster is {spec.cluster.version}",
            _cluster_path(spec, "version"),
        )
    return None


IPVS_MODE_DEPRECATED = Rule(
    code="LB704",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="ipvs-mode-deprecated",
    severity=Severity.WARNING,
    summary="kube-proxy ipvs mode is deprecated (Kubernetes ≥ 1.35)",
    tiers=frozenset({"kubernetes"}),
    check=_ipvs_deprecated,
    versions="Kubernetes ≥ 1.35, self-managed",
    applies=_ipvs_deprecation_applies,
    doc=RuleDoc(
        what="`kube_proxy.mode: ipvs` on a self-managed cluster running Kubernetes ≥ 1.35.",
        why=(
            "KEP-5495 deprecated the IPVS proxy mode in 1.35 (kube-proxy logs a warning and "
            "SIG Network tells users to move to nftables). The plan adds a KubeProxyIPVS "
            "feature gate in 1.37, turns it off by default in 1.40 and removes the mode "
            "in 1.43: a cluster upgrade will eventually stop kube-proxy from starting."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    version: "1.35"
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
  - kind: kubernetes
    name: cluster
    version: "1.35"
    platform: self-managed
    node_kernel: "6.1"
    kube_proxy: {mode: nftables}
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        references=(
            "https://github.com/kubernetes/enhancements/issues/5495",
            "https://github.com/kubernetes/kubernetes/pull/134539",
            K8S_VIRTUAL_IPS + "#proxy-mode-ipvs",
        ),
    ),
)


# --- LB705 ---------------------------------------------------------------------------------


def _nftables_version(ctx: RuleContext) -> Iterator[Violation]:
    cluster = ctx.spec.cluster
    proxy = cluster.kube_proxy
    if proxy is None or proxy.mode != "nftables" or cluster.version >= NFTABLES_BETA.since:
        return
    if cluster.version < NFTABLES_ALPHA.since:
        why = f"kube-proxy {cluster.version} has no nftables mode (it arrived in {NFTABLES_ALPHA.since})"
    else:
        why = (
            f"in Kubernetes {cluster.version} the nftables mode is alpha and needs the "
            "NFTablesProxyMode feature gate, which lbgen's kube-proxy configuration does not "
            "enable"
        )
    yield Violation(
        message=f"{why}, so kube-proxy exits instead of programming Services",
        hint=(
            f"upgrade to Kubernetes ≥ {NFTABLES_BETA.since} (beta, on by default; GA in 1.33), or "
            "use mode: iptables"
        ),
        path=ctx.tier_path(cluster, "kube_proxy", "mode"),
        related_path=ctx.tier_path(cluster, "version"),
    )


NFTABLES_VERSION = Rule(
    code="LB705",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="nftables-mode-unavailable-in-version",
    severity=Severity.ERROR,
    summary="kube-proxy nftables mode on a Kubernetes version without it enabled",
    tiers=frozenset({"kubernetes"}),
    check=_nftables_version,
    versions="self-managed; nftables alpha 1.29 (feature gate), beta 1.31, GA 1.33",
    applies=_self_managed_only,
    doc=RuleDoc(
        what="`kube_proxy.mode: nftables` with a cluster version below 1.31.",
        why=(
            "KEP-3866: the nftables backend is alpha in 1.29 behind the NFTablesProxyMode "
            "feature gate, beta and enabled by default in 1.31, GA in 1.33. Before 1.29 the "
            "mode does not exist; in 1.29–1.30 kube-proxy rejects it unless the gate is on. "
            "An unusable mode makes kube-proxy exit with an error."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    version: "1.30"
    platform: self-managed
    kube_proxy: {mode: nftables}
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
  - kind: kubernetes
    name: cluster
    version: "1.33"
    platform: self-managed
    kube_proxy: {mode: nftables}
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        references=(
            "https://github.com/kubernetes/enhancements/blob/master/keps/sig-network/3866-nftables-proxy/kep.yaml",
            "https://github.com/kubernetes/kubernetes/pull/124383",
            K8S_VIRTUAL_IPS + "#proxy-mode-nftables",
        ),
    ),
)


# --- LB706 ---------------------------------------------------------------------------------


def _nftables_kernel(ctx: RuleContext) -> Iterator[Violation]:
    cluster = ctx.spec.cluster
    proxy = cluster.kube_proxy
    kernel = cluster.node_kernel
    if proxy is None or proxy.mode != "nftables" or kernel is None:
        return
    if kernel >= NFTABLES_MIN_KERNEL.since:
        return
    yield Violation(
        message=(
            f"kube-proxy's nftables mode requires Linux kernel ≥ {NFTABLES_MIN_KERNEL.since}, but the "
            f"nodes run {kernel}, so kube-proxy cannot start in it"
        ),
        hint=f"upgrade the node kernel to ≥ {NFTABLES_MIN_KERNEL.since}, or use mode: iptables",
        path=ctx.tier_path(cluster, "node_kernel"),
        related_path=ctx.tier_path(cluster, "kube_proxy", "mode"),
    )


NFTABLES_KERNEL = Rule(
    code="LB706",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="nftables-mode-needs-kernel-5-13",
    severity=Severity.ERROR,
    summary="kube-proxy nftables mode on nodes with a Linux kernel older than 5.13",
    tiers=frozenset({"kubernetes"}),
    check=_nftables_kernel,
    versions="self-managed; nodes' kernel given in node_kernel",
    applies=_self_managed_only,
    doc=RuleDoc(
        what="`kube_proxy.mode: nftables` with `node_kernel` below 5.13.",
        why=(
            "The nftables backend 'requires Linux kernel version 5.13 or later' (release "
            "note of kubernetes PR #124383, beta in 1.31; kubernetes.io virtual-ips). On an "
            "older kernel kube-proxy cannot use the mode and exits, so no Service works on "
            "that node."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    version: "1.33"
    platform: self-managed
    node_kernel: "5.10"
    kube_proxy: {mode: nftables}
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
  - kind: kubernetes
    name: cluster
    version: "1.33"
    platform: self-managed
    node_kernel: "6.1"
    kube_proxy: {mode: nftables}
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        references=(
            K8S_VIRTUAL_IPS + "#proxy-mode-nftables",
            "https://github.com/kubernetes/kubernetes/pull/124383",
        ),
    ),
)


# --- LB707 ---------------------------------------------------------------------------------


def _kong_h2c_listener_for_clients(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.hops_of(KongHop):
        yield from _kong_h2c_entry_for_clients(ctx, hop)


def _kong_h2c_entry_for_clients(ctx: RuleContext, hop: KongHop) -> Iterator[Violation]:
    spec, kong = ctx.spec, hop.tier
    if defaults.kong_h2c_shares_http1(kong.version):
        return
    if any(callee is hop for _, callee in ctx.plan.l7_pairs()):
        return  # lbgen's own edge in front picks a listener that serves it (or refuses)
    http1 = [s.name for s in spec.services if s.protocol != "grpc"]
    if not http1:
        return
    bundle = versions.kong_bundle(kong.version)
    for index, entry in enumerate(kong.proxy_listen):
        if not entry.http2 or entry.tls:
            continue
        front = (
            f"the {spec.external_lb.kind} load balancer" if spec.external_lb is not None
            else "clients"
        )
        relay = ctx.plan.previous_tier_hop(hop)
        if relay is not None and relay.layer == "l4":
            front += f" (through {relay.name}, which relays their connections)"
        yield Violation(
            message=(
                f"{kong.name} runs Kong {kong.version}, which bundles OpenResty "
                f"{bundle.openresty} (nginx {bundle.nginx}): its cleartext http2 listener on "
                f"port {entry.port} speaks HTTP/2 only, so {front} connecting there with "
                f"HTTP/1.1 get no response, yet it routes HTTP services "
                f"({', '.join(http1[:3])}{', …' if len(http1) > 3 else ''})"
            ),
            hint=(
                f"keep port {entry.port} for gRPC/h2c clients only and give HTTP/1.1 clients a "
                "listener without http2 (or a TLS one, where ALPN picks per connection), or "
                "upgrade to Kong ≥ 3.6 (nginx ≥ 1.25.1 serves both on one cleartext port)"
            ),
            path=ctx.tier_path(kong, "proxy_listen", index, "http2"),
            related_path=ctx.tier_path(kong, "version"),
        )


def _kong_first_before_3_6(ctx: RuleContext) -> str | None:
    kongs = ctx.plan.hops_of(KongHop)
    if not kongs:
        return "no kong tier"
    kong = kongs[0].tier
    if defaults.kong_h2c_shares_http1(kong.version):
        return f"Kong {kong.version} bundles nginx ≥ 1.25.1 (h2c and HTTP/1.1 share a listener)"
    if ctx.plan.l7_pairs():
        return "an nginx_http edge in front of Kong: lbgen picks its listeners (or refuses the spec)"
    return None


KONG_H2C_LISTENER_FOR_CLIENTS = Rule(
    code="LB707",
    status="preview",
    since=NEXT_RELEASE,
    reads=(),
    name="kong-h2c-listener-refuses-http1",
    severity=Severity.WARNING,
    summary="Kong < 3.6 takes clients on a cleartext http2 listener, which answers HTTP/2 only",
    tiers=frozenset({"kong"}),
    check=_kong_h2c_listener_for_clients,
    versions="Kong < 3.6 (OpenResty 1.21.4, nginx < 1.25.1)",
    applies=_kong_first_before_3_6,
    doc=RuleDoc(
        what=(
            "A Kong tier older than 3.6 that clients (or a cloud load balancer) reach without an "
            "lbgen edge in front — directly or through an L4 tier, which relays their "
            "connections — with a cleartext `proxy_listen` entry flagged `http2`, while it "
            "routes HTTP (non-gRPC) services."
        ),
        why=(
            "Kong 3.0–3.5 bundle OpenResty 1.21.4 (Kong's `.requirements` and CHANGELOG; "
            "OpenResty 1.25.3 from Kong 3.6.0). Before nginx 1.25.1 a cleartext `listen … "
            "http2` speaks HTTP/2 with prior knowledge only: an HTTP/1.1 request on it gets no "
            "response. nginx 1.25.1 made HTTP/2 a per-server setting that detects the HTTP/2 "
            "preface, so h2c and HTTP/1.1 share a cleartext port from Kong 3.6. Where lbgen "
            "renders the edge in front of Kong it sends HTTP/1.1 and gRPC to listeners that "
            "serve them, or refuses the spec; what clients speak is outside its output, so this "
            "is reported instead."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    version: "3.4"
    instances: [{name: kong-1, address: 10.0.1.1}]
    proxy_listen:
      - {port: 8000, http2: true}
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
  - kind: kong
    name: gateway
    version: "3.4"
    instances: [{name: kong-1, address: 10.0.1.1}]
    proxy_listen:
      - {port: 8000}
      - {port: 8443, tls: true, http2: true}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(
            ("https://github.com/Kong/kong/blob/master/CHANGELOG.md (3.6.0: \"Bumped OpenResty "
            "from 1.21.4.2 to 1.25.3.1\", #12327; 3.5.0: 1.21.4.1 to 1.21.4.2, #11360)"),
            "https://github.com/Kong/kong/blob/master/.requirements (RESTY_VERSION / OPENRESTY)",
            "https://nginx.org/en/CHANGES (1.25.1: the \"http2\" directive, HTTP/2 per server)",
            "https://nginx.org/en/docs/http/ngx_http_v2_module.html#http2",
            ("https://github.com/nginxinc/kubernetes-ingress/discussions/4117 (HTTP/1.1 and "
            "HTTP/2 on one cleartext port from nginx 1.25.1)"),
            "https://github.com/Kong/kong/blob/master/kong.conf.default (proxy_listen flags)",
        ),
    ),
)


# --- LB708 ---------------------------------------------------------------------------------


def _kube_proxy_incomplete(ctx: RuleContext) -> Iterator[Violation]:
    cluster = ctx.spec.cluster
    proxy = cluster.kube_proxy
    if proxy is None:
        return
    missing = []
    if proxy.mode is None:
        missing.append(("mode", "the mode (unset would switch an ipvs or nftables cluster to iptables)"))
    if "cluster_cidrs" not in proxy.model_fields_set:
        missing.append(("cluster_cidrs", "clusterCIDR (unset drops the pod CIDR the live file has)"))
    if not missing:
        return
    yield Violation(
        message=(
            f"{cluster.name} gives kube_proxy settings but not "
            f"{' and '.join(what for _, what in missing)}: kube-proxy's config.conf is one file "
            "that lbgen would replace as a whole, so lbgen renders no kube-proxy configuration "
            "for it and the settings are not applied"
        ),
        hint=(
            "copy mode and clusterCIDR from the live configuration (`kubectl -n kube-system get "
            "configmap kube-proxy -o jsonpath='{.data.config\\.conf}'`) into kube_proxy.mode and "
            "kube_proxy.cluster_cidrs ([] if it has none), or drop kube_proxy"
        ),
        path=ctx.tier_path(cluster, "kube_proxy", missing[0][0]),
        related_path=ctx.tier_path(cluster, "kube_proxy"),
    )


KUBE_PROXY_INCOMPLETE = Rule(
    code="LB708",
    status="preview",
    since=NEXT_RELEASE,
    reads=(),
    name="kube-proxy-settings-incomplete-for-whole-file",
    severity=Severity.ERROR,
    summary="kube-proxy settings without the mode and clusterCIDR a whole-file replacement needs",
    tiers=frozenset({"kubernetes"}),
    check=_kube_proxy_incomplete,
    versions="all kube-proxy versions (KubeProxyConfiguration v1alpha1), self-managed",
    applies=_self_managed_only,
    doc=RuleDoc(
        what=(
            "`kube_proxy` settings on a self-managed cluster without `mode` or without "
            "`cluster_cidrs` (`[]` states that the live configuration has none)."
        ),
        why=(
            "kube-proxy reads one configuration file (`--config`, kubeadm's `config.conf` key "
            "of the kube-system/kube-proxy ConfigMap); every field the file leaves out takes "
            "its default. A file that sets, say, an IPVS timeout but no `mode` turns an ipvs or "
            "nftables cluster into an iptables one on the next kube-proxy restart, and one "
            "without `clusterCIDR` drops the pod CIDR kube-proxy uses to tell pod traffic "
            "from external traffic (masquerading, `detectLocalMode: ClusterCIDR`). lbgen "
            "therefore renders kube-proxy's configuration only when the spec states both."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
    kube_proxy:
      conntrack: {tcp_established_timeout: 2h}
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
  - kind: kubernetes
    name: cluster
    platform: self-managed
    kube_proxy:
      mode: nftables
      cluster_cidrs: [10.244.0.0/16]
      conntrack: {tcp_established_timeout: 2h}
    node_kernel: "6.1"
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        references=(
            f"{KUBE_PROXY_CONFIG} (KubeProxyConfiguration: mode, clusterCIDR, defaults)",
            ("https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/ "
             "(--config; --cluster-cidr: used to tell cluster traffic from external traffic)"),
            ("https://github.com/kubernetes/kubernetes/blob/master/cmd/kubeadm/app/phases/addons/"
             "proxy/manifests.go (the kube-proxy ConfigMap and its config.conf key)"),
        ),
    ),
)


RULES: tuple[Rule, ...] = (
    MODE_ON_GKE,
    SETTINGS_ON_MANAGED,
    UNKNOWN_SCHEDULER,
    IPVS_MODE_DEPRECATED,
    NFTABLES_VERSION,
    NFTABLES_KERNEL,
    KONG_H2C_LISTENER_FOR_CLIENTS,
    KUBE_PROXY_INCOMPLETE,
)

__all__ = ["RULES"]
