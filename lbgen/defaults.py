"""Product defaults lbgen relies on, each with the primary source it was read from.

Sources are abbreviated; the full citations are in docs (README "Sources") and in
`../shared/research/domain-facts.md` §§1–6 of the project's research notes.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbgen.model.service import AppServer
from lbgen.model.types import Duration, Version


@dataclass(frozen=True)
class Fact:
    """A default value together with where it comes from."""

    value: Duration | int | None
    source: str


def _s(seconds: int) -> Duration:
    return Duration(seconds * 1000)


NGINX_UPSTREAM_DOC = "nginx.org/en/docs/http/ngx_http_upstream_module.html"
NGINX_PROXY_DOC = "nginx.org/en/docs/http/ngx_http_proxy_module.html"
NGINX_CORE_DOC = "nginx.org/en/docs/http/ngx_http_core_module.html"
NGINX_STREAM_PROXY_DOC = "nginx.org/en/docs/stream/ngx_stream_proxy_module.html"
KONG_CONF_DOC = "kong.conf.default (Kong/kong kong/templates/kong_defaults.lua)"

# Keep-alive caching became the default in upstream blocks in nginx 1.29.7 (CHANGES 1.29.7);
# before that `keepalive` had no default and pooling was off.
NGINX_KEEPALIVE_BY_DEFAULT = Version("1.29.7")


def nginx_upstream_keepalive_connections(version: Version) -> Fact:
    if version >= NGINX_KEEPALIVE_BY_DEFAULT:
        return Fact(32, f"nginx ≥ 1.29.7 default `keepalive 32 local` ({NGINX_UPSTREAM_DOC}#keepalive)")
    return Fact(None, f"nginx < 1.29.7: no upstream keep-alive unless set ({NGINX_UPSTREAM_DOC}#keepalive)")


NGINX_UPSTREAM_KEEPALIVE_TIMEOUT = Fact(_s(60), f"{NGINX_UPSTREAM_DOC}#keepalive_timeout")
NGINX_UPSTREAM_KEEPALIVE_TIME = Fact(_s(3600), f"{NGINX_UPSTREAM_DOC}#keepalive_time")


def nginx_keepalive_requests(version: Version) -> Fact:
    # 100 before 1.19.10 (CHANGES-1.20).
    value = 1000 if version.at_least("1.19.10") else 100
    return Fact(value, f"{NGINX_UPSTREAM_DOC}#keepalive_requests")


NGINX_CLIENT_KEEPALIVE_TIMEOUT = Fact(_s(75), f"{NGINX_CORE_DOC}#keepalive_timeout")
NGINX_PROXY_CONNECT_TIMEOUT = Fact(_s(60), f"{NGINX_PROXY_DOC}#proxy_connect_timeout")
NGINX_PROXY_READ_TIMEOUT = Fact(_s(60), f"{NGINX_PROXY_DOC}#proxy_read_timeout")
NGINX_PROXY_SEND_TIMEOUT = Fact(_s(60), f"{NGINX_PROXY_DOC}#proxy_send_timeout")
NGINX_MAX_FAILS = Fact(1, f"{NGINX_UPSTREAM_DOC}#server")
NGINX_FAIL_TIMEOUT = Fact(_s(10), f"{NGINX_UPSTREAM_DOC}#server")
NGINX_NEXT_UPSTREAM = ("error", "timeout")  # proxy_module #proxy_next_upstream

NGINX_STREAM_PROXY_TIMEOUT = Fact(_s(600), f"{NGINX_STREAM_PROXY_DOC}#proxy_timeout")
NGINX_STREAM_CONNECT_TIMEOUT = Fact(_s(60), f"{NGINX_STREAM_PROXY_DOC}#proxy_connect_timeout")

# Kong embeds OpenResty 1.27.1.x, so nginx 1.29.7 defaults never apply inside Kong.
KONG_UPSTREAM_KEEPALIVE_IDLE_TIMEOUT = Fact(_s(60), f"{KONG_CONF_DOC}: upstream_keepalive_idle_timeout")
KONG_CLIENT_KEEPALIVE_TIMEOUT = Fact(
    _s(75), "Kong sets no keepalive_timeout, so nginx's 75s applies (kong/templates/nginx_kong.lua)"
)
KONG_SERVICE_RETRIES = Fact(5, "kong/db/schema/entities/services.lua: retries default 5")
KONG_SERVICE_TIMEOUT = Fact(_s(60), "kong/db/schema/entities/services.lua: *_timeout default 60000 ms")


def kong_upstream_keepalive_pool_size(version: Version) -> Fact:
    value = 512 if version.at_least("3.5") else 60
    return Fact(value, f"{KONG_CONF_DOC}: upstream_keepalive_pool_size (512 since 3.5.0)")


def kong_upstream_keepalive_max_requests(version: Version) -> Fact:
    if version.at_least("3.6"):
        value = 10000
    elif version.at_least("3.5"):
        value = 1000
    else:
        value = 100
    return Fact(value, f"{KONG_CONF_DOC}: upstream_keepalive_max_requests (10000 since 3.6.0)")


def app_idle_timeout(app: AppServer) -> Fact:
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
        if app.version is not None and app.version.at_least("26.0"):
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


def external_lb_backend_idle(kind: str) -> Fact:
    if kind == "gcp-application":
        return Fact(_s(600), "GCP application LB backend keep-alive timeout is fixed at 600s (cloud.google.com/load-balancing/docs/https)")
    if kind == "aws-alb":
        return Fact(_s(60), "AWS ALB idle timeout default 60s (docs.aws.amazon.com elasticloadbalancing)")
    return Fact(None, "unknown load balancer: set backend_idle_timeout")


# kube-proxy / kernel idle limits (domain facts §4.3).
CONNTRACK_TCP_ESTABLISHED = Fact(_s(86400), "kube-proxy conntrack.tcpEstablishedTimeout default 24h")
IPVS_KERNEL_TCP_TIMEOUT = Fact(_s(900), "kernel IPVS tcp timeout 900s (kubernetes PR #85517)")


# trafficDistribution values and the first Kubernetes release where each is GA, so the API
# server accepts it without feature gates: PreferClose GA 1.33 (KEP-4444); PreferSameZone and
# PreferSameNode GA 1.35 (KEP-3015). Source: virtual-ips.md, domain facts §4.1.
TRAFFIC_DISTRIBUTION_SINCE: dict[str, Version] = {
    "PreferClose": Version("1.33"),
    "PreferSameZone": Version("1.35"),
    "PreferSameNode": Version("1.35"),
}


# --- Kubernetes rollout safety -------------------------------------------------------------

# The `sleep` action of container lifecycle hooks (KEP-3960, feature gate
# PodLifecycleSleepAction): alpha (off) in 1.29, beta and on by default from 1.30, GA 1.34
# (kubernetes/website content/en/docs/reference/command-line-tools-reference/feature-gates/
# PodLifecycleSleepAction.md; kubernetes.dev/resources/keps/3960). Below 1.30 lbgen renders an
# `exec` of `sleep`, which needs a sleep binary in the image.
K8S_PRESTOP_SLEEP_ACTION_SINCE = Version("1.30")

# gRPC container probes (feature gate GRPCContainerProbe): alpha 1.23, beta and on by default
# 1.24, GA 1.27 (kubernetes/website feature-gates/GRPCContainerProbe.md). lbgen renders a
# `grpc` readinessProbe for gRPC services and refuses it on older clusters.
K8S_GRPC_PROBE_SINCE = Version("1.24")

# Kong Ingress Controller `--enable-drain-support` (CONTROLLER_ENABLE_DRAIN_SUPPORT), default
# false: terminating endpoints stay in Kong's upstream with weight 0 so existing sessions finish.
# New in KIC 3.5 (developer.konghq.com/kubernetes-ingress-controller/upgrade/ "3.5 … Connection
# Draining: … Enable with the --enable-drain-support flag"; the sticky-sessions reference page
# declares min_version kic 3.5).
KIC_DRAIN_SUPPORT_SINCE = Version("3.5")
