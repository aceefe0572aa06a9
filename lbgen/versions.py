"""Every product version gate lbgen knows, one row each, with its primary source.

A gate is handled one way: the plan (`lbgen.plan`) and the renderers say what a version
does; the model refuses what the product refuses; the rules report what is legal but
harmful. All of them read the version from the row here, never a literal of their own.
`lbgen.versions.GATES` lists the rows (docs and tests read it).
"""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from lbgen.model.types import Version

Product = Literal["nginx", "Kong", "KIC", "Kubernetes", "kube-proxy", "Linux", "Node.js"]


class VersionGate(Struct, frozen=True):
    """From `since` on, `product` does `what` (`source` says so)."""

    product: Product
    since: Version
    what: str
    source: str

    def reached(self, version: Version) -> bool:
        """Whether `version` of the product has it."""
        return version >= self.since


def _gate(product: Product, since: str, what: str, source: str) -> VersionGate:
    return VersionGate(product, Version(since), what, source)


# --- nginx -------------------------------------------------------------------------------------

NGINX_RANDOM = _gate(
    "nginx", "1.15.1", "`random [two]` load balancing",
    "nginx.org ngx_http_upstream_module #random: appeared in 1.15.1",
)
# Before, a cached connection has no idle timer of its own and no request limit: it stays in
# the pool until the next hop closes it, so the callee's idle timeout always wins the race.
NGINX_UPSTREAM_KEEPALIVE_TUNING_SINCE = _gate(
    "nginx", "1.15.3", "upstream `keepalive_timeout` and `keepalive_requests`",
    "nginx CHANGES-1.16: the keepalive_timeout and keepalive_requests directives in the "
    "upstream block; ngx_http_upstream_module: appeared in 1.15.3",
)
# Before, a worker that added the shared listening socket to its epoll set first takes nearly
# every connection (EPOLLEXCLUSIVE wakes it first); from here on the workers take turns.
NGINX_ACCEPT_REORDER = _gate(
    "nginx", "1.21.6", "workers take turns accepting connections on a shared listening socket",
    "nginx CHANGES 1.21.6: when using EPOLLEXCLUSIVE on Linux client connections were unevenly "
    "distributed among worker processes; src/event/ngx_event_accept.c ngx_reorder_accept_events",
)
NGINX_ERROR_LOG_OPTION = _gate(
    "nginx", "1.19.5", "the `-e` command-line option (error log file)",
    "nginx CHANGES 1.19.5: the -e switch (nginx.org/en/docs/switches.html)",
)
NGINX_UPSTREAM_KEEPALIVE_TIME_SINCE = _gate(
    "nginx", "1.19.10", "upstream `keepalive_time` (connection lifetime); keepalive_requests default 1000 (was 100)",
    "nginx CHANGES-1.20 (1.19.10); ngx_http_upstream_module #keepalive_time, #keepalive_requests",
)
# nginx 1.25.1 serves HTTP/2 per server (`http2 on`) and detects the HTTP/2 preface on a
# cleartext connection, so h2c and HTTP/1.1 share one cleartext listener (nginx's own
# description in nginxinc/kubernetes-ingress discussion #4117). Before, a cleartext
# `listen … http2` speaks HTTP/2 only: an HTTP/1.1 request gets no response (tried on nginx
# 1.22.1). Over TLS, ALPN picks the protocol per connection on every version.
NGINX_HTTP2_DIRECTIVE_SINCE = _gate(
    "nginx", "1.25.1", "the `http2 on` directive (`listen … http2` deprecated)",
    "nginx CHANGES 1.25.1; ngx_http_v2_module #http2",
)
NGINX_H2C_SHARES_HTTP1_SINCE = _gate(
    "nginx", "1.25.1", "a cleartext HTTP/2 listener also serves HTTP/1.1 (preface detection)",
    "nginx CHANGES 1.25.1; nginxinc/kubernetes-ingress discussion #4117",
)
# `server … resolve` (re-resolve a name in an upstream group while nginx runs; needs `zone`)
# and `resolver` inside `upstream {}`, in http and stream alike. Before, a name in an
# upstream is resolved once, when the configuration is loaded.
NGINX_UPSTREAM_RESOLVE_SINCE = _gate(
    "nginx", "1.27.3", "`server … resolve` and `resolver` in upstream blocks (open source)",
    "nginx CHANGES 1.27.3; ngx_http_upstream_module #resolve, #resolver",
)
# Before, `keepalive` had no default and pooling was off.
NGINX_KEEPALIVE_BY_DEFAULT = _gate(
    "nginx", "1.29.7", "upstream keep-alive on by default (`keepalive 32 local`); `keepalive 0` valid",
    "nginx CHANGES 1.29.7; ngx_http_upstream_module #keepalive",
)
NGINX_LEAST_TIME = _gate(
    "nginx", "1.31.0", "`least_time` load balancing in open-source nginx",
    "nginx CHANGES 1.31.0",
)

# --- Kong Gateway --------------------------------------------------------------------------------

KONG_LATENCY = _gate(
    "Kong", "3.2", "the `latency` load-balancing algorithm",
    "Kong/kong CHANGELOG.md §3.2.0 (latency algorithm, peak EWMA)",
)
KONG_POOL_512 = _gate(
    "Kong", "3.5", "upstream_keepalive_pool_size default 512 (was 60); upstream_keepalive_max_requests 1000 (was 100)",
    "kong.conf.default (Kong/kong kong/templates/kong_defaults.lua), 3.5.0",
)
KONG_MAX_REQUESTS_10000 = _gate(
    "Kong", "3.6", "upstream_keepalive_max_requests default 10000",
    "kong.conf.default (Kong/kong kong/templates/kong_defaults.lua), 3.6.0",
)
KONG_STICKY_SESSIONS = _gate(
    "Kong", "3.11", "the `sticky-sessions` algorithm (Kong Enterprise only)",
    "developer.konghq.com app/_gateway_entities/upstream.md (new_in 3.11); KIC CRD docs (Enterprise)",
)
KONG_NEXT_MAJOR = _gate(
    "Kong", "4.0", "a major release lbgen does not model (lbgen accepts Kong 3.x)",
    "semver: Kong 4.0 may change configuration keys and defaults",
)

# Kong Ingress Controller `--enable-drain-support` (CONTROLLER_ENABLE_DRAIN_SUPPORT), default
# false: terminating endpoints stay in Kong's upstream with weight 0 so existing sessions finish.
KIC_DRAIN_SUPPORT_SINCE = _gate(
    "KIC", "3.5", "`--enable-drain-support` (connection draining, default off)",
    "developer.konghq.com/kubernetes-ingress-controller/upgrade/ (3.5 … Connection Draining)",
)

# The OpenResty (and so nginx core) each Kong line embeds decides which nginx gates apply
# inside Kong.

class KongBundle(Struct, frozen=True):
    """The OpenResty (and so nginx core) a Kong Gateway release line bundles."""

    kong_since: Version
    openresty: str
    nginx: Version
    source: str


# OpenResty bundled with each Kong Gateway 3.x line, newest last; a Kong version uses the last
# row whose `kong_since` it reaches. Kong pins it in its `.requirements` file (RESTY_VERSION=,
# later OPENRESTY=) per release tag, and each bump is in Kong/kong CHANGELOG.md:
# - 3.0: `.requirements` RESTY_VERSION=1.21.4.1 (Kong/kong@003f87d, the 3.0 line);
# - 3.5.0: "Bumped OpenResty from 1.21.4.1 to 1.21.4.2" (Kong/kong#11360);
# - 3.6.0: "Bumped OpenResty from 1.21.4.2 to 1.25.3.1" (Kong/kong#12327);
# - 3.8.0: "Bumped OpenResty to 1.25.3.2" (Kong/kong#12327);
# - 3.10.0: "Bumped OpenResty from 1.25.3.2 to 1.27.1.1" (Kong Gateway 3.10.0.0 changelog,
#   Kong/docs.konghq.com); master's `.requirements` (3.10.0, Kong/kong@22246ef2) pins 1.27.1.2.
# The nginx core is OpenResty's first three numbers.
KONG_BUNDLED_OPENRESTY: tuple[KongBundle, ...] = (
    KongBundle(Version("3.0"), "1.21.4.1", Version("1.21.4"), "Kong/kong .requirements (3.0)"),
    KongBundle(Version("3.5"), "1.21.4.2", Version("1.21.4"), "Kong/kong CHANGELOG 3.5.0 (#11360)"),
    KongBundle(Version("3.6"), "1.25.3.1", Version("1.25.3"), "Kong/kong CHANGELOG 3.6.0 (#12327)"),
    KongBundle(Version("3.8"), "1.25.3.2", Version("1.25.3"), "Kong/kong CHANGELOG 3.8.0 (#12327)"),
    KongBundle(Version("3.10"), "1.27.1.1", Version("1.27.1"), "Kong Gateway changelog 3.10.0.0"),
)


def kong_bundle(version: Version) -> KongBundle:
    """The OpenResty/nginx a Kong 3.x version runs (the model accepts 3.x only)."""
    found = KONG_BUNDLED_OPENRESTY[0]
    for bundle in KONG_BUNDLED_OPENRESTY:
        if version >= bundle.kong_since:
            found = bundle
    return found


# --- Kubernetes and kube-proxy --------------------------------------------------------------------

# gRPC container probes (feature gate GRPCContainerProbe): alpha 1.23, beta and on by default
# 1.24, GA 1.27. lbgen renders a `grpc` readinessProbe for gRPC services and refuses it on
# older clusters.
K8S_GRPC_PROBE_SINCE = _gate(
    "Kubernetes", "1.24", "gRPC readiness probes on by default (GRPCContainerProbe beta)",
    "kubernetes/website feature-gates/GRPCContainerProbe.md",
)
# The `sleep` action of container lifecycle hooks (KEP-3960, feature gate
# PodLifecycleSleepAction): alpha (off) in 1.29, beta and on by default from 1.30, GA 1.34.
# Below 1.30 lbgen renders an `exec` of `sleep`, which needs a sleep binary in the image.
K8S_PRESTOP_SLEEP_ACTION_SINCE = _gate(
    "Kubernetes", "1.30", "the `sleep` lifecycle-hook action on by default",
    "kubernetes/website feature-gates/PodLifecycleSleepAction.md; KEP-3960",
)
# trafficDistribution values and the first Kubernetes release where each is GA, so the API
# server accepts it without feature gates (virtual-ips.md, domain facts §4.1).
TRAFFIC_DISTRIBUTION_SINCE: dict[str, VersionGate] = {
    "PreferClose": _gate("Kubernetes", "1.33", "trafficDistribution: PreferClose GA", "KEP-4444"),
    "PreferSameZone": _gate("Kubernetes", "1.35", "trafficDistribution: PreferSameZone GA", "KEP-3015"),
    "PreferSameNode": _gate("Kubernetes", "1.35", "trafficDistribution: PreferSameNode GA", "KEP-3015"),
}
SCHEDULER_VALIDATION_REMOVED = _gate(
    "kube-proxy", "1.27", "any kernel IPVS scheduler accepted (validation list removed)",
    "kubernetes PR #114878",
)
NFTABLES_ALPHA = _gate(
    "kube-proxy", "1.29", "nftables mode (alpha, feature gate NFTablesProxyMode)",
    "kubernetes.io virtual-ips (nftables proxy mode); KEP-3866",
)
NFTABLES_BETA = _gate(
    "kube-proxy", "1.31", "nftables mode beta, on by default (GA 1.33)",
    "kubernetes.io virtual-ips (nftables proxy mode); KEP-3866",
)
IPVS_DEPRECATED = _gate(
    "kube-proxy", "1.35", "ipvs mode deprecated",
    "kubernetes/enhancements#5495 (KEP-5495): deprecated in 1.35",
)
IPVS_DISABLED_BY_DEFAULT = _gate(
    "kube-proxy", "1.40", "ipvs mode planned off by default (KubeProxyIPVS gate)",
    "kubernetes/enhancements#5495 (KEP-5495): disabling planned for 1.40",
)
NFTABLES_MIN_KERNEL = _gate(
    "Linux", "5.13", "the nftables features kube-proxy's nftables mode needs",
    "kubernetes.io virtual-ips (nftables proxy mode: kernel 5.13 or later)",
)

# --- app servers -----------------------------------------------------------------------------------

NODE_KEEPALIVE_65S = _gate(
    "Node.js", "26.0", "server.keepAliveTimeout default 65000 ms (was 5000)",
    "nodejs/node#62782",
)

GATES: tuple[VersionGate, ...] = (
    NGINX_RANDOM,
    NGINX_UPSTREAM_KEEPALIVE_TUNING_SINCE,
    NGINX_ACCEPT_REORDER,
    NGINX_ERROR_LOG_OPTION,
    NGINX_UPSTREAM_KEEPALIVE_TIME_SINCE,
    NGINX_HTTP2_DIRECTIVE_SINCE,
    NGINX_H2C_SHARES_HTTP1_SINCE,
    NGINX_UPSTREAM_RESOLVE_SINCE,
    NGINX_KEEPALIVE_BY_DEFAULT,
    NGINX_LEAST_TIME,
    KONG_LATENCY,
    KONG_POOL_512,
    KONG_MAX_REQUESTS_10000,
    KONG_STICKY_SESSIONS,
    KONG_NEXT_MAJOR,
    KIC_DRAIN_SUPPORT_SINCE,
    K8S_GRPC_PROBE_SINCE,
    K8S_PRESTOP_SLEEP_ACTION_SINCE,
    *TRAFFIC_DISTRIBUTION_SINCE.values(),
    SCHEDULER_VALIDATION_REMOVED,
    NFTABLES_ALPHA,
    NFTABLES_BETA,
    IPVS_DEPRECATED,
    IPVS_DISABLED_BY_DEFAULT,
    NFTABLES_MIN_KERNEL,
    NODE_KEEPALIVE_65S,
)
"""Every gate, by product and version (`KONG_BUNDLED_OPENRESTY` above maps Kong versions to
the nginx they embed, so nginx's gates apply to Kong through it)."""
