"""Effective values that are not keep-alive settings: timeouts, retries, failure accounting.

Each is the spec's value when set, else the product default from `lbgen.defaults` (written
down once, with its source). Keep-alive values come from `lbgen.plan.budget`, which derives
them across hops. Every function is O(1); rules and renderers call them per service.
"""

from __future__ import annotations

from lbgen import defaults
from lbgen.model.common import NextUpstreamCondition
from lbgen.model.service import Service
from lbgen.model.tiers import KubernetesTier, NginxHttpTier, NginxStreamTier
from lbgen.model.types import Duration
from lbgen.plan._resolved import Resolved, given
from lbgen.plan.budget import product_default


def _nginx(fact: defaults.Fact[defaults.T_co]) -> Resolved[defaults.T_co]:
    return product_default(fact, "nginx")


def _kong(fact: defaults.Fact[defaults.T_co]) -> Resolved[defaults.T_co]:
    return product_default(fact, "Kong")


def edge_connect_timeout(edge: NginxHttpTier) -> Resolved[Duration]:
    return given(edge.timeouts.connect, _nginx(defaults.NGINX_PROXY_CONNECT_TIMEOUT))


def edge_read_timeout(edge: NginxHttpTier) -> Resolved[Duration]:
    return given(edge.timeouts.read, _nginx(defaults.NGINX_PROXY_READ_TIMEOUT))


def edge_send_timeout(edge: NginxHttpTier) -> Resolved[Duration]:
    return given(edge.timeouts.send, _nginx(defaults.NGINX_PROXY_SEND_TIMEOUT))


def edge_retry_conditions(edge: NginxHttpTier) -> Resolved[tuple[NextUpstreamCondition, ...]]:
    """`proxy_next_upstream` as it will run: unset is nginx's `error timeout`."""
    conditions = edge.retry.conditions
    return given(None if conditions is None else tuple(conditions), _nginx(defaults.NGINX_NEXT_UPSTREAM))


def edge_max_fails(edge: NginxHttpTier) -> Resolved[int]:
    return given(edge.passive_health.max_fails, _nginx(defaults.NGINX_MAX_FAILS))


def edge_fail_timeout(edge: NginxHttpTier) -> Resolved[Duration]:
    return given(edge.passive_health.fail_timeout, _nginx(defaults.NGINX_FAIL_TIMEOUT))


def l4_connect_timeout(l4: NginxStreamTier) -> Resolved[Duration]:
    return given(l4.connect_timeout, _nginx(defaults.NGINX_STREAM_CONNECT_TIMEOUT))


def kong_connect_timeout(service: Service) -> Resolved[Duration]:
    return given(service.kong.timeouts.connect, _kong(defaults.KONG_SERVICE_TIMEOUT))


def kong_read_timeout(service: Service) -> Resolved[Duration]:
    return given(service.kong.timeouts.read, _kong(defaults.KONG_SERVICE_TIMEOUT))


def kong_send_timeout(service: Service) -> Resolved[Duration]:
    return given(service.kong.timeouts.send, _kong(defaults.KONG_SERVICE_TIMEOUT))


def kong_retries(service: Service) -> Resolved[int]:
    return given(service.kong.retries, _kong(defaults.KONG_SERVICE_RETRIES))


KONG_UPSTREAMS_SCHEMA = "kong/db/schema/entities/upstreams.lua"


def kong_active_health(service: Service) -> Resolved[str]:
    """Whether Kong probes the targets itself: only with an interval above 0."""
    checks = service.kong.healthchecks
    active = checks.active if checks is not None else None
    if active is None or (active.healthy.interval == 0 and active.unhealthy.interval == 0):
        return Resolved(
            "off", "set" if active is not None else "product default",
            "" if active is not None else f"{KONG_UPSTREAMS_SCHEMA}: healthchecks.active.*.interval default 0",
            "both intervals are 0: no probes" if active is not None else "",
            product="Kong",
        )
    probe = f"{active.type} {active.http_path}" if active.type in ("http", "https") else active.type
    return Resolved(
        f"{probe} every {active.healthy.interval}s (healthy) / {active.unhealthy.interval}s (unhealthy)",
        "set",
    )


def kong_passive_health(service: Service) -> Resolved[str]:
    """Whether Kong marks a target unhealthy from the traffic it proxies (a counter above 0)."""
    checks = service.kong.healthchecks
    passive = checks.passive if checks is not None else None
    counts = (
        [(n, what) for n, what in ((passive.unhealthy.http_failures, "http failures"),
                                   (passive.unhealthy.tcp_failures, "tcp failures"),
                                   (passive.unhealthy.timeouts, "timeouts")) if n > 0]
        if passive is not None else []
    )
    if not counts:
        return Resolved(
            "off", "set" if passive is not None else "product default",
            "" if passive is not None else f"{KONG_UPSTREAMS_SCHEMA}: healthchecks.passive.unhealthy.* default 0",
            "every unhealthy counter is 0: never trips" if passive is not None else "",
            product="Kong",
        )
    return Resolved("unhealthy after " + " or ".join(f"{n} {what}" for n, what in counts), "set")


NGINX_ACTIVE_HEALTH = Resolved(
    "none", "not in this version",
    "nginx.org/en/docs/http/ngx_http_upstream_hc_module.html: health_check is part of the "
    "commercial subscription (NGINX Plus)",
    "open-source nginx only marks a server failed from proxied traffic (max_fails/fail_timeout)",
)
"""Active health checks of an open-source nginx upstream group: there are none."""


def session_affinity_timeout(service: Service) -> Resolved[int]:
    """`sessionAffinityConfig.clientIP.timeoutSeconds` (meaningful with ClientIP affinity)."""
    return given(
        service.kubernetes.session_affinity_timeout,
        product_default(defaults.K8S_SESSION_AFFINITY_TIMEOUT, "Kubernetes"),
    )


def termination_grace_period(service: Service) -> Resolved[Duration]:
    """`terminationGracePeriodSeconds` of the service's pods: as set, else Kubernetes' 30s."""
    return given(
        service.termination_grace_period,
        product_default(defaults.K8S_TERMINATION_GRACE_PERIOD, "Kubernetes"),
    )


def kube_proxy_mode(cluster: KubernetesTier) -> Resolved[str]:
    """The proxy mode kube-proxy runs in when lbgen configures it: as set, else its default."""
    mode = cluster.kube_proxy.mode if cluster.kube_proxy is not None else None
    return given(mode, product_default(defaults.KUBE_PROXY_DEFAULT_MODE, "kube-proxy"))


__all__ = [
    "NGINX_ACTIVE_HEALTH",
    "edge_connect_timeout",
    "edge_fail_timeout",
    "edge_max_fails",
    "edge_read_timeout",
    "edge_retry_conditions",
    "edge_send_timeout",
    "kong_active_health",
    "kong_connect_timeout",
    "kong_passive_health",
    "kong_read_timeout",
    "kong_retries",
    "kong_send_timeout",
    "kube_proxy_mode",
        "l4_connect_timeout",
    "session_affinity_timeout",
    "termination_grace_period",
]
