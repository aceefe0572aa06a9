"""Product defaults lbgen relies on, each with the primary source it was read from.

Sources are abbreviated; the full citations are in docs (README "Sources") and in
`../shared/research/domain-facts.md` §§1–6 of the project's research notes.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from msgspec import Struct

from lbgen import versions
from lbgen.model.common import NextUpstreamCondition
from lbgen.model.service import AppServer
from lbgen.model.types import Duration, Version

T_co = TypeVar("T_co", covariant=True)


class Fact(Struct, Generic[T_co], frozen=True):
    """A default value together with where it comes from."""

    value: T_co
    source: str


def _s(seconds: int) -> Duration:
    return Duration(seconds * 1000)


NGINX_UPSTREAM_DOC = "nginx.org/en/docs/http/ngx_http_upstream_module.html"
NGINX_PROXY_DOC = "nginx.org/en/docs/http/ngx_http_proxy_module.html"
NGINX_CORE_DOC = "nginx.org/en/docs/http/ngx_http_core_module.html"
NGINX_STREAM_PROXY_DOC = "nginx.org/en/docs/stream/ngx_stream_proxy_module.html"
NGINX_STREAM_UPSTREAM_DOC = "nginx.org/en/docs/stream/ngx_stream_upstream_module.html"
NGINX_STREAM_REALIP_DOC = "nginx.org/en/docs/stream/ngx_stream_realip_module.html"
NGINX_REALIP_DOC = "nginx.org/en/docs/http/ngx_http_realip_module.html"
NGINX_GRPC_DOC = "nginx.org/en/docs/http/ngx_http_grpc_module.html"
NGINX_HTTP2_DOC = "nginx.org/en/docs/http/ngx_http_v2_module.html"
KONG_CONF_DOC = "kong.conf.default (Kong/kong kong/templates/kong_defaults.lua)"

def nginx_upstream_keepalive_connections(version: Version) -> Fact[int | None]:
    if versions.NGINX_KEEPALIVE_BY_DEFAULT.reached(version):
        return Fact(32, f"nginx ≥ 1.29.7 default `keepalive 32 local` ({NGINX_UPSTREAM_DOC}#keepalive)")
    return Fact(None, f"nginx < 1.29.7: no upstream keep-alive unless set ({NGINX_UPSTREAM_DOC}#keepalive)")


NGINX_NO_UPSTREAM_IDLE_TIMER = (
    f"nginx < 1.15.3 has no upstream keepalive_timeout ({NGINX_UPSTREAM_DOC}#keepalive_timeout, "
    "appeared in 1.15.3): an idle pooled connection stays open until the next hop closes it"
)
NGINX_NO_UPSTREAM_REQUEST_LIMIT = (
    f"nginx < 1.15.3 has no upstream keepalive_requests ({NGINX_UPSTREAM_DOC}#keepalive_requests, "
    "appeared in 1.15.3): no limit of requests per pooled connection"
)

NGINX_UPSTREAM_KEEPALIVE_TIMEOUT = Fact(_s(60), f"{NGINX_UPSTREAM_DOC}#keepalive_timeout")
NGINX_UPSTREAM_KEEPALIVE_TIME = Fact(_s(3600), f"{NGINX_UPSTREAM_DOC}#keepalive_time")


def nginx_keepalive_requests(version: Version) -> Fact[int]:
    value = 1000 if versions.NGINX_UPSTREAM_KEEPALIVE_TIME_SINCE.reached(version) else 100
    return Fact(value, f"{NGINX_UPSTREAM_DOC}#keepalive_requests")


NGINX_CLIENT_KEEPALIVE_TIMEOUT = Fact(_s(75), f"{NGINX_CORE_DOC}#keepalive_timeout")
NGINX_PROXY_CONNECT_TIMEOUT = Fact(_s(60), f"{NGINX_PROXY_DOC}#proxy_connect_timeout")
NGINX_PROXY_READ_TIMEOUT = Fact(_s(60), f"{NGINX_PROXY_DOC}#proxy_read_timeout")
NGINX_PROXY_SEND_TIMEOUT = Fact(_s(60), f"{NGINX_PROXY_DOC}#proxy_send_timeout")
NGINX_MAX_FAILS = Fact(1, f"{NGINX_UPSTREAM_DOC}#server")
NGINX_FAIL_TIMEOUT = Fact(_s(10), f"{NGINX_UPSTREAM_DOC}#server")
NGINX_NEXT_UPSTREAM: Fact[tuple[NextUpstreamCondition, ...]] = Fact(
    ("error", "timeout"), f"{NGINX_PROXY_DOC}#proxy_next_upstream"
)

# Where Debian/Ubuntu's libnginx-mod-stream installs the stream module (`nginx -V` of Debian's
# package: --modules-path=/usr/lib/nginx/modules --with-stream=dynamic). nginx.org packages and
# the official Docker image configure `--with-stream` (built in): nginx.org/en/linux_packages.html.
DEBIAN_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

NGINX_STREAM_PROXY_TIMEOUT = Fact(_s(600), f"{NGINX_STREAM_PROXY_DOC}#proxy_timeout")
NGINX_STREAM_CONNECT_TIMEOUT = Fact(_s(60), f"{NGINX_STREAM_PROXY_DOC}#proxy_connect_timeout")

# Kong embeds OpenResty 1.27.1.x, so nginx 1.29.7 defaults never apply inside Kong.
KONG_UPSTREAM_KEEPALIVE_IDLE_TIMEOUT = Fact(_s(60), f"{KONG_CONF_DOC}: upstream_keepalive_idle_timeout")
KONG_CLIENT_KEEPALIVE_TIMEOUT = Fact(
    _s(75), "Kong sets no keepalive_timeout, so nginx's 75s applies (kong/templates/nginx_kong.lua)"
)
KONG_SERVICE_RETRIES = Fact(5, "kong/db/schema/entities/services.lua: retries default 5")
KONG_SERVICE_TIMEOUT = Fact(_s(60), "kong/db/schema/entities/services.lua: *_timeout default 60000 ms")
KONG_UPSTREAM_SLOTS = Fact(10000, "kong/db/schema/entities/upstreams.lua: slots default 10000")
KONG_HASH_POINTS = Fact(
    160, "kong/runloop/balancer/consistent_hashing.lua: SERVER_POINTS, each address's points on the continuum "
    "at equal weights; the continuum has `slots` points, at least MIN_CONTINUUM_SIZE 1000")


def kong_h2c_shares_http1(version: Version) -> bool:
    """Whether this Kong's cleartext `http2` proxy_listen also serves HTTP/1.1 (Kong ≥ 3.6)."""
    return versions.NGINX_H2C_SHARES_HTTP1_SINCE.reached(versions.kong_bundle(version).nginx)


def kong_upstream_keepalive_pool_size(version: Version) -> Fact[int]:
    value = 512 if versions.KONG_POOL_512.reached(version) else 60
    return Fact(value, f"{KONG_CONF_DOC}: upstream_keepalive_pool_size (512 since 3.5.0)")


def kong_upstream_keepalive_max_requests(version: Version) -> Fact[int]:
    if versions.KONG_MAX_REQUESTS_10000.reached(version):
        value = 10000
    elif versions.KONG_POOL_512.reached(version):
        value = 1000
    else:
        value = 100
    return Fact(value, f"{KONG_CONF_DOC}: upstream_keepalive_max_requests (10000 since 3.6.0)")


def app_idle_timeout(app: AppServer) -> Fact[Duration | None]:
    """The app server's idle keep-alive timeout when the spec does not set it.

    A value of None means the server never closes idle connections (Go's zero value) or
    never keeps them (gunicorn's sync worker).
    """
    preset = app.preset
    if preset == "uvicorn":
        return Fact(_s(5), "uvicorn --timeout-keep-alive default 5 (encode/uvicorn uvicorn/config.py)")
    if preset == "gunicorn":
        return Fact(_s(2), "gunicorn --keep-alive default 2 (benoitc/gunicorn gunicorn/config.py)")
    if preset == "uvicorn-gunicorn":
        # UvicornWorker passes gunicorn's setting to uvicorn: config_kwargs
        # "timeout_keep_alive": self.cfg.keepalive (encode/uvicorn uvicorn/workers.py; the
        # same in the uvicorn-worker package), so uvicorn's own 5s default never applies.
        return Fact(
            _s(2),
            "gunicorn -k uvicorn.workers.UvicornWorker: gunicorn --keep-alive default 2, "
            "passed as uvicorn's timeout_keep_alive (encode/uvicorn uvicorn/workers.py; "
            "benoitc/gunicorn gunicorn/config.py)",
        )
    if preset == "gunicorn-sync":
        return Fact(None, "gunicorn sync workers do not keep connections alive (gunicorn/config.py Keepalive)")
    if preset == "nodejs":
        if app.version is not None and versions.NODE_KEEPALIVE_65S.reached(app.version):
            return Fact(_s(65), "Node.js ≥ 26 server.keepAliveTimeout 65000 ms (nodejs/node#62782)")
        return Fact(_s(5), "Node.js ≤ 25 server.keepAliveTimeout 5000 ms (nodejs.org/api/http.html)")
    if preset == "go":
        if app.read_timeout is not None and app.read_timeout.ms > 0:
            # "IdleTimeout … If zero, the value of ReadTimeout is used. If negative, or if zero
            # and ReadTimeout is zero or negative, there is no timeout." (pkg.go.dev/net/http#Server)
            return Fact(
                app.read_timeout,
                f"Go net/http: IdleTimeout unset (0) uses ReadTimeout {app.read_timeout} "
                "(pkg.go.dev/net/http#Server)",
            )
        return Fact(None, "Go net/http Server.IdleTimeout and ReadTimeout zero: no idle timeout (pkg.go.dev/net/http#Server)")
    if preset == "tomcat":
        return Fact(_s(20), "Tomcat keepAliveTimeout = connectionTimeout, 20000 ms in the stock server.xml")
    if preset == "spring-boot":
        return Fact(_s(60), "Spring Boot embedded Tomcat: connectionTimeout default 60000 ms")
    return Fact(None, "custom server: idle_timeout must be set")


def external_lb_backend_idle(kind: str) -> Fact[Duration | None]:
    if kind == "gcp-application":
        return Fact(_s(600), "GCP application LB backend keep-alive timeout is fixed at 600s (cloud.google.com/load-balancing/docs/https)")
    if kind == "aws-alb":
        return Fact(_s(60), "AWS ALB idle timeout default 60s (docs.aws.amazon.com elasticloadbalancing)")
    return Fact(None, "unknown load balancer: set backend_idle_timeout")


# kube-proxy's mode when none is configured on Linux: iptables (virtual-ips.md; kube-proxy
# --proxy-mode "on Linux … 'iptables' (default)").
CLUSTER_DNS_TTL = Fact(
    _s(30),
    "cluster DNS TTL 30s as deployed (kube-dns; CoreDNS Corefile `ttl 30`, "
    "kubernetes/kubernetes#76238)",
)
"""How long a resolver may keep a headless Service's answer: the health rules' drain
estimate and the simulator's delay before a new pod is seen both read it."""
KUBE_PROXY_DEFAULT_MODE = Fact(
    "iptables", "kube-proxy --proxy-mode default on Linux: iptables (kubernetes.io virtual-ips)"
)
# Service `sessionAffinityConfig.clientIP.timeoutSeconds` default: 10800 s = 3 h (core/v1
# ClientIPConfig types.go; kubernetes.io virtual-ips docs).
K8S_SESSION_AFFINITY_TIMEOUT = Fact(
    10800, "core/v1 ClientIPConfig.timeoutSeconds default 10800 (kubernetes.io virtual-ips)"
)

# Endpoint-propagation delays (domain facts §3.5, §3.6, §4.3). Each is the *default* of the
# component that has to notice a terminating pod before the hop in front stops using it.
KIC_PROXY_SYNC = Fact(
    _s(3),
    "Kong Ingress Controller --proxy-sync-seconds default 3 "
    "(developer.konghq.com/kubernetes-ingress-controller/reference/configuration-options/)",
)
KONG_WORKER_STATE_UPDATE = Fact(
    _s(5), "kong.conf worker_state_update_frequency default 5 (kong.conf.default)"
)
KUBE_PROXY_MIN_SYNC = Fact(
    _s(1), "kube-proxy iptables/ipvs/nftables minSyncPeriod default 1s (kube-proxy config)"
)
K8S_TERMINATION_GRACE_PERIOD = Fact(
    _s(30),
    "terminationGracePeriodSeconds default 30 "
    "(https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination)",
)

# kube-proxy / kernel idle limits (domain facts §4.3).
CONNTRACK_TCP_ESTABLISHED = Fact(_s(86400), "kube-proxy conntrack.tcpEstablishedTimeout default 24h")
IPVS_KERNEL_TCP_TIMEOUT = Fact(_s(900), "kernel IPVS tcp timeout 900s (kubernetes PR #85517)")


# Linux and kube-proxy limits that connection churn towards one ClusterIP runs into (LB412,
# LB413). One destination (ClusterIP:port) gives a proxy one local port per connection.
LINUX_EPHEMERAL_PORTS = Fact(
    60999 - 32768 + 1,
    "net.ipv4.ip_local_port_range default 32768 60999 (kernel Documentation/networking/ip-sysctl.rst)",
)
LINUX_TCP_TIME_WAIT = Fact(_s(60), "TCP_TIMEWAIT_LEN 60s (linux include/net/tcp.h)")
CONNTRACK_TCP_TIME_WAIT = Fact(
    _s(120),
    "nf_conntrack_tcp_timeout_time_wait default 120s (kernel Documentation/networking/nf_conntrack-sysctl.rst)",
)
KUBE_PROXY_CONNTRACK_MIN = Fact(
    131072, "kube-proxy conntrack.min default 131072 (kubernetes.io/docs/reference/generated/kube-proxy)"
)
KUBE_PROXY_CONNTRACK_MAX_PER_CORE = Fact(
    32768, "kube-proxy conntrack.maxPerCore default 32768 (kubernetes.io/docs/reference/generated/kube-proxy)"
)


# Mozilla Server Side TLS "intermediate" profile (mozilla/server-side-tls,
# json/server-side-tls-conf-5.0.json): TLS 1.2 and 1.3, these TLS 1.2 suites, HSTS 2 years.
MOZILLA_INTERMEDIATE_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
MOZILLA_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
)
MOZILLA_HSTS_MAX_AGE = 63072000
