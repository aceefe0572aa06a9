"""A backend service: its route, its Kubernetes Service, its pods and their app server."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from lbgen.model._base import StrictModel, Suppression
from lbgen.model.common import KongProxyTimeouts
from lbgen.model.limits import HTTP_STATUS_RANGE, INT32_MAX, KONG_HEALTHCHECK_CONCURRENCY_MAX
from lbgen.model.types import (
    Duration,
    HeaderName,
    HostName,
    HttpPath,
    LabelKey,
    LabelValue,
    Name,
    Port,
    Version,
)

AppServerPreset = Literal[
    "uvicorn", "uvicorn-gunicorn", "gunicorn", "gunicorn-sync", "nodejs", "go", "tomcat",
    "spring-boot", "custom"
]


class AppServer(StrictModel):
    """The HTTP server inside the pods; its idle timeout is the innermost of the path."""

    preset: AppServerPreset
    """Known server whose default idle (keep-alive) timeout lbgen knows, or `custom`."""
    version: Version | None = None
    """Server/runtime version where the default changed (Node.js 26 raised it to 65s)."""
    idle_timeout: Duration | None = None
    """The server's keep-alive timeout as configured. Unset: the preset's default.
    `custom` requires it. For `go`, unset means `read_timeout`, or no idle timeout at all.
    `uvicorn-gunicorn` (gunicorn -k uvicorn.workers.UvicornWorker) is gunicorn's `--keep-alive`,
    not uvicorn's `--timeout-keep-alive`."""
    read_timeout: Duration | None = None
    """`go` only: http.Server.ReadTimeout. With IdleTimeout unset (0) Go uses it as the idle
    timeout of kept-alive connections (net/http Server docs)."""

    @model_validator(mode="after")
    def _custom_needs_timeout(self) -> AppServer:
        if self.preset == "custom" and self.idle_timeout is None:
            raise ValueError("preset 'custom' needs idle_timeout (the server's keep-alive timeout)")
        if self.read_timeout is not None and self.preset != "go":
            raise ValueError("read_timeout is Go's http.Server.ReadTimeout: only for preset go")
        return self


class Route(StrictModel):
    """How the gateway (Kong, or the edge when there is no Kong) selects this service."""

    paths: list[HttpPath] = Field(default_factory=list)
    """Path prefixes. Unset: `/<service name>`."""
    hosts: list[HostName] = Field(default_factory=list)
    strip_path: bool = False


SessionAffinity = Literal["None", "ClientIP"]


class KubernetesServiceSettings(StrictModel):
    """The Kubernetes `Service` object in front of the pods."""

    port: Port = 80
    target_port: Port = 8080
    """Container port of the app server."""
    session_affinity: SessionAffinity = "None"
    session_affinity_timeout: int | None = Field(default=None, gt=0, le=86400)
    """`sessionAffinityConfig.clientIP.timeoutSeconds` (Kubernetes default 10800)."""
    internal_traffic_policy: Literal["Cluster", "Local"] | None = None
    traffic_distribution: Literal["PreferClose", "PreferSameZone", "PreferSameNode"] | None = None
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    selector: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    """Pod selector. Unset: `app: <service name>`."""

    @model_validator(mode="after")
    def _affinity_timeout_needs_affinity(self) -> KubernetesServiceSettings:
        if self.session_affinity_timeout is not None and self.session_affinity != "ClientIP":
            raise ValueError("session_affinity_timeout only applies with session_affinity: ClientIP")
        return self


KongAlgorithm = Literal[
    "round-robin", "least-connections", "consistent-hashing", "latency", "sticky-sessions"
]
KongHashOn = Literal["none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"]
KongCheckType = Literal["http", "https", "tcp", "grpc", "grpcs"]


HttpStatus = Annotated[int, Field(ge=HTTP_STATUS_RANGE[0], le=HTTP_STATUS_RANGE[1])]


class KongActiveHealthy(StrictModel):
    interval: int = Field(default=0, ge=0, le=65535)
    """Seconds between checks of healthy targets; 0 disables."""
    successes: int = Field(default=0, ge=0, le=255)
    http_statuses: list[HttpStatus] | None = None


class KongActiveUnhealthy(StrictModel):
    interval: int = Field(default=0, ge=0, le=65535)
    http_failures: int = Field(default=0, ge=0, le=255)
    tcp_failures: int = Field(default=0, ge=0, le=255)
    timeouts: int = Field(default=0, ge=0, le=255)
    http_statuses: list[HttpStatus] | None = None


class KongActiveHealthcheck(StrictModel):
    type: KongCheckType = "http"
    http_path: HttpPath = "/"
    timeout: int = Field(default=1, ge=1, le=65535)
    """Whole seconds (decK rejects fractions)."""
    concurrency: int = Field(default=10, ge=1, le=KONG_HEALTHCHECK_CONCURRENCY_MAX)
    healthy: KongActiveHealthy = Field(default_factory=KongActiveHealthy)
    unhealthy: KongActiveUnhealthy = Field(default_factory=KongActiveUnhealthy)


class KongPassiveHealthy(StrictModel):
    successes: int = Field(default=0, ge=0, le=255)
    http_statuses: list[HttpStatus] | None = None


class KongPassiveUnhealthy(StrictModel):
    http_failures: int = Field(default=0, ge=0, le=255)
    tcp_failures: int = Field(default=0, ge=0, le=255)
    timeouts: int = Field(default=0, ge=0, le=255)
    http_statuses: list[HttpStatus] | None = None


class KongPassiveHealthcheck(StrictModel):
    type: KongCheckType = "http"
    healthy: KongPassiveHealthy = Field(default_factory=KongPassiveHealthy)
    unhealthy: KongPassiveUnhealthy = Field(default_factory=KongPassiveUnhealthy)


class KongHealthchecks(StrictModel):
    active: KongActiveHealthcheck | None = None
    passive: KongPassiveHealthcheck | None = None
    threshold: float = Field(default=0, ge=0, le=100)


class KongServiceSettings(StrictModel):
    """Per-service Kong settings: the Service entity and its Upstream."""

    algorithm: KongAlgorithm = "round-robin"
    hash_on: KongHashOn = "none"
    hash_on_header: HeaderName | None = None
    hash_on_cookie: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    hash_fallback: KongHashOn = "none"
    hash_fallback_header: HeaderName | None = None
    slots: int | None = Field(default=None, ge=10, le=65536)
    retries: int | None = Field(default=None, ge=0, le=32767)
    """Kong default 5: up to retries+1 attempts on connection errors and timeouts."""
    timeouts: KongProxyTimeouts = Field(default_factory=KongProxyTimeouts)
    response_buffering: bool | None = None
    """Route `response_buffering` (KIC: `konghq.com/response-buffering`). Unset: Kong's
    default `true`, except for services with `streaming: [sse]`, where lbgen renders
    `false` so events reach the client as the pods send them."""
    healthchecks: KongHealthchecks | None = None
    sticky_sessions_cookie: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """Cookie Kong sets with algorithm sticky-sessions (Upstream `sticky_sessions_cookie`,
    KongUpstreamPolicy `stickySessions.cookie`, which the CRD requires)."""

    @model_validator(mode="after")
    def _kong_upstream_entity_checks(self) -> KongServiceSettings:
        if (self.algorithm == "sticky-sessions") != (self.sticky_sessions_cookie is not None):
            raise ValueError(
                "algorithm sticky-sessions and sticky_sessions_cookie go together "
                "(the cookie names the session; Kong ≥ 3.11 app/_gateway_entities/upstream.md)"
            )
        # Mirrors entity_checks in Kong/kong kong/db/schema/entities/upstreams.lua (3.9.3).
        if self.hash_on != "none" and self.algorithm not in ("consistent-hashing", "sticky-sessions"):
            raise ValueError(
                f"hash_on: {self.hash_on} only works with algorithm consistent-hashing "
                "(Kong switches the algorithm silently otherwise)"
            )
        if self.algorithm == "consistent-hashing" and self.hash_on == "none":
            raise ValueError("algorithm consistent-hashing needs hash_on (ip, header, cookie, …)")
        if self.hash_on == "none" and self.hash_fallback != "none":
            raise ValueError("hash_fallback needs hash_on to be set")
        if self.hash_on == "cookie" and self.hash_fallback != "none":
            raise ValueError("hash_on: cookie cannot have a hash_fallback (Kong forces none)")
        if self.hash_on == "header" and self.hash_on_header is None:
            raise ValueError("hash_on: header needs hash_on_header")
        if self.hash_on == "cookie" and self.hash_on_cookie is None:
            raise ValueError("hash_on: cookie needs hash_on_cookie")
        if self.hash_fallback == "header" and self.hash_fallback_header is None:
            raise ValueError("hash_fallback: header needs hash_fallback_header")
        if self.algorithm == "sticky-sessions" and self.hash_on != "none":
            # KIC's CRD: stickySessions "requires … setting hash_on to none".
            raise ValueError("sticky-sessions needs hash_on: none")
        if self.hash_fallback == "cookie" and self.hash_on_cookie is None:
            raise ValueError("hash_fallback: cookie needs hash_on_cookie (the cookie's name)")
        if self.hash_on in ("query_arg", "uri_capture") or self.hash_fallback in (
            "query_arg",
            "uri_capture",
        ):
            raise ValueError("hash_on query_arg/uri_capture are not supported by lbgen yet")
        if self.hash_on != "none" and self.hash_on == self.hash_fallback and self.hash_on != "header":
            raise ValueError("hash_fallback must differ from hash_on")
        if (
            self.hash_on == "header"
            and self.hash_fallback == "header"
            and self.hash_on_header == self.hash_fallback_header
        ):
            raise ValueError("hash_on_header and hash_fallback_header must differ")
        return self


class Probe(StrictModel):
    """Readiness probe of the pods: an HTTP GET, or the gRPC health protocol for
    `protocol: grpc` services."""

    path: HttpPath = "/healthz"
    """HTTP path answering 2xx/3xx when the pod can serve (not for gRPC services)."""
    port: Port | None = None
    """Unset: the Service's target_port."""
    period_seconds: int = Field(default=10, ge=1, le=INT32_MAX)
    timeout_seconds: int = Field(default=1, ge=1, le=INT32_MAX)
    failure_threshold: int = Field(default=3, ge=1, le=INT32_MAX)


class Autoscaling(StrictModel):
    """HorizontalPodAutoscaler (autoscaling/v2) on CPU utilisation."""

    min_replicas: int = Field(ge=1, le=INT32_MAX)
    max_replicas: int = Field(ge=1, le=INT32_MAX)
    target_cpu_utilization: int = Field(default=70, ge=1, le=100)

    @model_validator(mode="after")
    def _min_le_max(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


_PERCENT = re.compile(r"[0-9]{1,3}%")


class DisruptionBudget(StrictModel):
    """PodDisruptionBudget (policy/v1): exactly one of the two fields."""

    max_unavailable: int | str | None = Field(default=None, union_mode="left_to_right")
    min_available: int | str | None = Field(default=None, union_mode="left_to_right")

    @model_validator(mode="after")
    def _exactly_one(self) -> DisruptionBudget:
        if (self.max_unavailable is None) == (self.min_available is None):
            raise ValueError("set exactly one of max_unavailable and min_available")
        return self

    @field_validator("max_unavailable", "min_available")
    @classmethod
    def _count_or_percentage(cls, value: int | str | None) -> int | str | None:
        # ASCII digits only (str.isdigit() also takes e.g. Arabic-Indic digits); the API
        # takes int32 counts and percentages up to 100% (policy/v1 validation).
        if isinstance(value, str) and not (_PERCENT.fullmatch(value) and int(value[:-1]) <= 100):
            raise ValueError(f"{value!r} must be an integer or a percentage from 0% to 100% "
                             "such as '25%'")
        if isinstance(value, int) and not 0 <= value <= INT32_MAX:
            raise ValueError(f"disruption budget values are counts from 0 to {INT32_MAX}")
        return value


class Service(StrictModel):
    """One backend service behind the gateway, served by `replicas` pods."""

    name: Name
    namespace: Name = "default"
    protocol: Literal["http", "grpc"] = "http"
    """`grpc` means HTTP/2 cleartext (h2c) to the pods."""
    replicas: int = Field(ge=1, le=INT32_MAX)
    """Pods expected to serve (with an HPA: the usual count)."""
    deployment: Name | None = None
    """Workload name targeted by the HPA/PDB and the rollout-safety patch. Unset: the service
    name."""
    container: Name | None = None
    """Name of the app's container in that Deployment: the rollout-safety patch (readiness,
    pre_stop_delay, termination_grace_period) merges into the container of this name
    (strategic merge matches containers by name). Unset: the workload name."""
    route: Route = Field(default_factory=Route)
    app: AppServer
    kubernetes: KubernetesServiceSettings = Field(default_factory=KubernetesServiceSettings)
    kong: KongServiceSettings = Field(default_factory=KongServiceSettings)
    """Used when the path has a Kong tier."""
    readiness: Probe | None = None
    """Rendered as the container's `readinessProbe` in the Deployment patch. Unset: no probe
    (LB307 reports it when a proxy dials the pods or the Service)."""
    autoscaling: Autoscaling | None = None
    disruption_budget: DisruptionBudget | None = None
    termination_grace_period: Duration | None = None
    """Rendered as `terminationGracePeriodSeconds` (rounded up to whole seconds) in the
    Deployment patch. Unset: Kubernetes' 30s."""
    pre_stop_delay: Duration | None = None
    """Sleep in a preStop hook before the app starts shutting down, rendered in the Deployment
    patch (the `sleep` action from Kubernetes 1.30, an `exec` of `sleep` before; rounded up to
    whole seconds). Unset: no preStop hook (LB305 reports it when a proxy dials the pods)."""
    streaming: list[Literal["websocket", "sse"]] = Field(default_factory=list)
    """Long-lived streams the service carries over HTTP/1.1: `websocket` (the proxies pass
    the `Upgrade` handshake on and then tunnel the bytes) and/or `sse` (server-sent events:
    no proxy may buffer the response). Unset: ordinary requests only."""
    stream_idle: Duration | None = None
    """Longest silence on a long-lived stream this service holds open (WebSocket, SSE, gRPC
    streaming). Unset: requests are short-lived. Rules compare it with every hop's idle timer."""
    suppress: list[Suppression] = Field(default_factory=list)

    @model_validator(mode="after")
    def _grpc_probe_has_no_path(self) -> Service:
        if self.protocol == "grpc" and self.readiness is not None and "path" in self.readiness.model_fields_set:
            raise ValueError(
                "a gRPC service is probed with the gRPC health protocol (grpc.health.v1), "
                "which has no path: drop readiness.path"
            )
        return self

    @model_validator(mode="after")
    def _grpc_routes_keep_path(self) -> Service:
        # Kong routes_subschemas.lua: grpc/grpcs routes require strip_path = false.
        if self.protocol == "grpc" and self.route.strip_path:
            raise ValueError("gRPC routes cannot strip the path (Kong refuses strip_path on grpc routes)")
        if self.protocol == "grpc" and self.streaming:
            raise ValueError(
                "streaming (WebSocket/SSE over HTTP/1.1) does not apply to a gRPC service: gRPC "
                "streams are HTTP/2 streams; set stream_idle for them instead"
            )
        if len(set(self.streaming)) != len(self.streaming):
            raise ValueError("list each streaming kind once")
        return self

    @property
    def paths(self) -> list[str]:
        return self.route.paths or [f"/{self.name}"]

    @property
    def workload(self) -> str:
        return self.deployment or self.name

    @property
    def container_name(self) -> str:
        return self.container or self.workload

    @property
    def has_rollout_settings(self) -> bool:
        """Whether the spec sets anything the Deployment patch renders."""
        return (
            self.readiness is not None
            or self.pre_stop_delay is not None
            or self.termination_grace_period is not None
        )

    @property
    def selector(self) -> dict[str, str]:
        """Pod selector, sorted by key so every output is independent of the spec's key order."""
        return dict(sorted((self.kubernetes.selector or {"app": self.name}).items()))
