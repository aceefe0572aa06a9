"""Hypothesis strategies: valid lbgen specs (as plain data), and ways to break them.

`specs()` builds specs that satisfy every model rule by construction: an in-order subset of
the tiers, 1–5 services, every algorithm each product version accepts, durations in
several notations, Kong modes and editions, Kubernetes platforms and kube-proxy modes.
`mutations()` turns a valid spec into an invalid one (bad enum, negative number, unknown
key, wrong type) and says where in the data the mistake is.
"""

from __future__ import annotations

import copy
import ipaddress
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from hypothesis import assume
from hypothesis import strategies as st
from pydantic import BaseModel

from lbgen.model.common import NextUpstreamCondition
from lbgen.model.spec import Spec
from lbgen.model.types import Version

NGINX_VERSIONS = ("1.18.0", "1.20.2", "1.22.1", "1.24.0", "1.25.5", "1.26.3", "1.27.5",
                  "1.28.0", "1.29.7", "1.30.0", "1.31.0")
KONG_VERSIONS = ("3.0", "3.2", "3.4", "3.6", "3.8", "3.9", "3.10", "3.11", "3.12")
KUBERNETES_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35")
PRESETS = ("uvicorn", "uvicorn-gunicorn", "gunicorn", "gunicorn-sync", "nodejs", "go", "tomcat",
           "spring-boot", "custom")
HTTP_HASH_KEYS = ("$remote_addr", "$request_uri", "$binary_remote_addr", "$http_x_user_id",
                  "$remote_addr$request_uri", "$cookie_session")
STREAM_HASH_KEYS = ("$remote_addr", "$binary_remote_addr", "$remote_addr$server_port")
NEXT_UPSTREAM: tuple[str, ...] = typing.get_args(NextUpstreamCondition)
TIER_NAMES = {
    "nginx_http": ("edge", "front", "web"),
    "nginx_stream": ("l4", "tcp", "stream"),
    "kong": ("gateway", "kong", "api-gw"),
    "kubernetes": ("cluster", "gke", "k8s"),
}

Draw = Callable[[st.SearchStrategy[Any]], Any]


def durations(low: int = 1, high: int = 600) -> st.SearchStrategy[Any]:
    """A duration of `low`..`high` seconds, as an integer or in nginx notation."""
    seconds = st.integers(low, high)
    return st.one_of(
        seconds,
        seconds.map(lambda s: f"{s}s"),
        seconds.map(lambda s: f"{s * 1000}ms"),
        st.integers(max(1, -(-low // 60)), max(1, high // 60)).map(lambda m: f"{m}m"),
        st.integers(low, high).map(lambda s: f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"),
    )


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` unless the drawn value is None (the field is left to its default)."""
    if value is not None:
        target[key] = value


def _at_least(version: str, minimum: str) -> bool:
    return Version(version) >= Version(minimum)


@st.composite
def addresses(draw: Draw, block: int) -> str:
    kind = draw(st.sampled_from(("ipv4", "ipv4", "dns", "ipv6")))
    host = draw(st.integers(2, 250))
    if kind == "ipv4":
        return f"10.{block}.0.{host}"
    if kind == "ipv6":
        return str(ipaddress.IPv6Address(f"fd00:{block}::{host:x}"))
    return f"node-{host}.tier{block}.internal.example"


@st.composite
def instances(draw: Draw, tier: str, block: int) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 3))
    hosts = draw(st.lists(addresses(block), min_size=count, max_size=count, unique=True))
    return [{"name": f"{tier}-{i + 1}", "address": host} for i, host in enumerate(hosts)]


@st.composite
def upstream_keepalive(draw: Draw, *, lifetime: bool) -> dict[str, Any]:
    pool: dict[str, Any] = {}
    _put(pool, "connections", draw(optional(st.integers(0, 512))))
    _put(pool, "idle_timeout", draw(optional(durations(1, 300))))
    _put(pool, "max_requests", draw(optional(st.integers(0, 100_000))))
    if lifetime:
        _put(pool, "max_lifetime", draw(optional(durations(60, 7200))))
    return pool


@st.composite
def client_keepalive(draw: Draw) -> dict[str, Any]:
    keepalive: dict[str, Any] = {}
    _put(keepalive, "timeout", draw(optional(durations(1, 600))))
    _put(keepalive, "max_requests", draw(optional(st.integers(1, 100_000))))
    return keepalive


@st.composite
def nginx_balancing(draw: Draw, version: str, *, stream: bool) -> dict[str, Any]:
    algorithms = ["round-robin", "least_conn", "hash"]
    if not stream:
        algorithms.append("ip_hash")
    if _at_least(version, "1.15.1"):
        algorithms += ["random", "random-two"]
    if _at_least(version, "1.31.0"):
        algorithms.append("least_time")
    algorithm = draw(st.sampled_from(algorithms))
    balancing: dict[str, Any] = {"algorithm": algorithm}
    if algorithm == "hash":
        balancing["hash_key"] = draw(st.sampled_from(STREAM_HASH_KEYS if stream else HTTP_HASH_KEYS))
        balancing["consistent"] = draw(st.booleans())
    return balancing


@st.composite
def passive_health(draw: Draw) -> dict[str, Any]:
    health: dict[str, Any] = {}
    _put(health, "max_fails", draw(optional(st.integers(0, 10))))
    _put(health, "fail_timeout", draw(optional(durations(1, 120))))
    return health


@st.composite
def cidrs(draw: Draw, block: int) -> list[str]:
    chosen: list[str] = draw(st.lists(st.sampled_from([f"10.{block}.0.0/16", f"10.{block}.1.0/24",
                                                       "192.168.0.0/16", f"fd00:{block}::/64"]),
                                      min_size=1, max_size=3, unique=True))
    return chosen


@st.composite
def nginx_http_tier(draw: Draw, name: str, versions: Sequence[str]) -> dict[str, Any]:
    version = draw(st.sampled_from(versions))
    ports = draw(st.lists(st.sampled_from((80, 443, 8080, 8443)), min_size=1, max_size=2,
                          unique=True))
    listen = [
        {"port": port, "tls": draw(st.booleans()), "http2": draw(st.booleans()),
         "proxy_protocol": draw(st.booleans())}
        for port in ports
    ]
    tier: dict[str, Any] = {
        "kind": "nginx_http",
        "name": name,
        "version": version,
        "instances": draw(instances(name, 1)),
        "listen": listen,
        "balancing": draw(nginx_balancing(version, stream=False)),
        "upstream_keepalive": draw(upstream_keepalive(lifetime=_at_least(version, "1.19.10"))),
        "client_keepalive": draw(client_keepalive()),
        "passive_health": draw(passive_health()),
        "forwarded_headers": draw(st.booleans()),
    }
    if any(listener["tls"] for listener in listen):
        tier["tls"] = {"certificate": f"/etc/nginx/tls/{name}.crt",
                       "certificate_key": f"/etc/nginx/tls/{name}.key"}
    _put(tier, "worker_processes", draw(optional(st.one_of(st.just("auto"), st.integers(1, 8)))))
    timeouts: dict[str, Any] = {}
    for key in ("connect", "read", "send"):
        _put(timeouts, key, draw(optional(durations(1, 300))))
    tier["timeouts"] = timeouts
    retry: dict[str, Any] = {}
    _put(retry, "conditions", draw(optional(st.lists(st.sampled_from(NEXT_UPSTREAM), max_size=4,
                                                     unique=True))))
    _put(retry, "tries", draw(optional(st.integers(0, 5))))
    _put(retry, "timeout", draw(optional(durations(1, 60))))
    tier["retry"] = retry
    if draw(st.booleans()):
        tier["real_ip"] = {
            "header": draw(st.sampled_from(("X-Forwarded-For", "X-Real-IP", "proxy_protocol",
                                            "X-Client-Ip"))),
            "trusted": draw(cidrs(0)),
            "recursive": draw(st.booleans()),
        }
    tier["backend_targets"] = draw(st.sampled_from(("cluster_ip", "pod_endpoints")))
    return tier


@st.composite
def nginx_stream_tier(draw: Draw, name: str, versions: Sequence[str]) -> dict[str, Any]:
    version = draw(st.sampled_from(versions))
    tier: dict[str, Any] = {
        "kind": "nginx_stream",
        "name": name,
        "version": version,
        "instances": draw(instances(name, 2)),
        "listen_port": draw(st.sampled_from((8000, 8080, 9000, 443))),
        "accept_proxy_protocol": draw(st.booleans()),
        "send_proxy_protocol": draw(st.booleans()),
        "balancing": draw(nginx_balancing(version, stream=True)),
        "passive_health": draw(passive_health()),
        "load_module": draw(st.booleans()),
        "trusted_proxies": draw(st.one_of(st.just([]), cidrs(0))),
    }
    _put(tier, "worker_processes", draw(optional(st.one_of(st.just("auto"), st.integers(1, 8)))))
    _put(tier, "proxy_timeout", draw(optional(durations(1, 3600))))
    _put(tier, "connect_timeout", draw(optional(durations(1, 60))))
    _put(tier, "next_upstream", draw(optional(st.booleans())))
    _put(tier, "next_upstream_tries", draw(optional(st.integers(0, 5))))
    return tier


@st.composite
def kong_tier(draw: Draw, name: str, versions: Sequence[str]) -> dict[str, Any]:
    version = draw(st.sampled_from(versions))
    tier: dict[str, Any] = {
        "kind": "kong",
        "name": name,
        "version": version,
        "edition": draw(st.sampled_from(("oss", "enterprise"))),
        "mode": draw(st.sampled_from(("db-less", "kic"))),
        "instances": draw(instances(name, 3)),
        "client_keepalive": draw(client_keepalive()),
        "upstream_keepalive": draw(upstream_keepalive(lifetime=False)),
        "backend_targets": draw(st.sampled_from(("pod_endpoints", "cluster_ip"))),
    }
    if draw(st.booleans()):
        ports = draw(st.lists(st.sampled_from((8000, 8443, 9000)), min_size=1, max_size=2,
                              unique=True))
        tier["proxy_listen"] = [
            {"port": port, "tls": draw(st.booleans()), "http2": draw(st.booleans()),
             "proxy_protocol": draw(st.booleans())}
            for port in ports
        ]
    if draw(st.booleans()):
        tier["real_ip"] = {
            "header": draw(st.sampled_from(("X-Forwarded-For", "X-Real-IP", "proxy_protocol"))),
            "recursive": draw(st.booleans()),
            "trusted_ips": draw(cidrs(1)),
        }
    return tier


@st.composite
def kubernetes_tier(draw: Draw, name: str) -> dict[str, Any]:
    platform = draw(st.sampled_from(("gke", "gke-dataplane-v2", "self-managed")))
    tier: dict[str, Any] = {
        "kind": "kubernetes",
        "name": name,
        "version": draw(st.sampled_from(KUBERNETES_VERSIONS)),
        "platform": platform,
        "cluster_domain": draw(st.sampled_from(("cluster.local", "cluster.example", "k8s.local"))),
    }
    if platform == "self-managed":
        mode = draw(st.sampled_from((None, "iptables", "ipvs", "nftables")))
        proxy: dict[str, Any] = {}
        _put(proxy, "mode", mode)
        # kube-proxy wants min_sync_period ≤ sync_period (default 30s).
        sync = draw(optional(st.integers(1, 60)))
        _put(proxy, "sync_period", None if sync is None else f"{sync}s")
        least = draw(optional(st.integers(0, min(10, 30 if sync is None else sync))))
        _put(proxy, "min_sync_period", None if least is None else f"{least}s")
        if mode == "ipvs" and draw(st.booleans()):
            ipvs: dict[str, Any] = {}
            _put(ipvs, "scheduler", draw(optional(st.sampled_from(("rr", "lc", "sh", "wrr")))))
            _put(ipvs, "tcp_timeout", draw(optional(durations(0, 3600))))
            _put(ipvs, "tcp_fin_timeout", draw(optional(durations(0, 600))))
            _put(ipvs, "udp_timeout", draw(optional(durations(0, 600))))
            _put(ipvs, "strict_arp", draw(optional(st.booleans())))
            proxy["ipvs"] = ipvs
        if draw(st.booleans()):
            conntrack: dict[str, Any] = {}
            _put(conntrack, "max_per_core", draw(optional(st.integers(0, 262_144))))
            _put(conntrack, "min", draw(optional(st.integers(0, 524_288))))
            _put(conntrack, "tcp_established_timeout", draw(optional(durations(60, 86_400))))
            _put(conntrack, "tcp_close_wait_timeout", draw(optional(durations(1, 3600))))
            proxy["conntrack"] = conntrack
        _put(proxy, "cluster_cidrs", draw(optional(st.sampled_from(
            (["10.244.0.0/16"], ["10.244.0.0/16", "fd00:244::/56"])))))
        tier["kube_proxy"] = proxy
        if mode == "nftables" or draw(st.booleans()):
            tier["node_kernel"] = draw(st.sampled_from(("5.15", "6.1", "6.8")))
    return tier


@st.composite
def kong_settings(draw: Draw, kong: dict[str, Any] | None) -> dict[str, Any]:
    version = kong["version"] if kong else "3.10"
    algorithms = ["round-robin", "least-connections", "consistent-hashing"]
    if _at_least(version, "3.2"):
        algorithms.append("latency")
    if kong and kong["edition"] == "enterprise" and _at_least(version, "3.11"):
        algorithms.append("sticky-sessions")
    algorithm = draw(st.sampled_from(algorithms))
    settings: dict[str, Any] = {"algorithm": algorithm}
    if algorithm == "consistent-hashing":
        hash_on = draw(st.sampled_from(("ip", "header", "cookie", "consumer", "path")))
        settings["hash_on"] = hash_on
        if hash_on == "header":
            settings["hash_on_header"] = "X-User-Id"
        if hash_on == "cookie":
            settings["hash_on_cookie"] = draw(st.sampled_from(("session", "sticky_id")))
        else:
            fallback = draw(st.sampled_from(
                [f for f in ("none", "ip", "header", "consumer", "path") if f != hash_on or
                 f == "header"]))
            settings["hash_fallback"] = fallback
            if fallback == "header":
                settings["hash_fallback_header"] = "X-Session-Id"
    if algorithm == "sticky-sessions":
        settings["sticky_sessions_cookie"] = draw(st.sampled_from(("lb-sticky", "route_id")))
    _put(settings, "slots", draw(optional(st.integers(10, 65536))))
    _put(settings, "retries", draw(optional(st.integers(0, 10))))
    timeouts: dict[str, Any] = {}
    for key in ("connect", "read", "send"):
        _put(timeouts, key, draw(optional(durations(1, 300))))
    settings["timeouts"] = timeouts
    if draw(st.booleans()):
        checks: dict[str, Any] = {}
        if draw(st.booleans()):
            checks["active"] = {
                "type": draw(st.sampled_from(("http", "https", "tcp"))),
                "http_path": draw(st.sampled_from(("/", "/healthz", "/status/ready"))),
                "timeout": draw(st.integers(1, 10)),
                "concurrency": draw(st.integers(1, 20)),
                "healthy": {"interval": draw(st.integers(0, 30)),
                            "successes": draw(st.integers(0, 10))},
                "unhealthy": {"interval": draw(st.integers(0, 30)),
                              "http_failures": draw(st.integers(0, 10)),
                              "tcp_failures": draw(st.integers(0, 10)),
                              "timeouts": draw(st.integers(0, 10))},
            }
        if draw(st.booleans()):
            checks["passive"] = {
                "type": draw(st.sampled_from(("http", "tcp"))),
                "healthy": {"successes": draw(st.integers(0, 10))},
                "unhealthy": {"http_failures": draw(st.integers(0, 10)),
                              "tcp_failures": draw(st.integers(0, 10)),
                              "timeouts": draw(st.integers(0, 10))},
            }
        checks["threshold"] = draw(st.integers(0, 100))
        settings["healthchecks"] = checks
    return settings


@st.composite
def service(draw: Draw, index: int, name: str, kong: dict[str, Any] | None) -> dict[str, Any]:
    protocol = draw(st.sampled_from(("http", "http", "grpc")))
    port = draw(st.sampled_from((80, 8080, 50051)))
    svc: dict[str, Any] = {
        "name": name,
        "namespace": draw(st.sampled_from(("default", "shop", "api"))),
        "protocol": protocol,
        "replicas": draw(st.integers(1, 20)),
        "route": {"paths": [f"/{name}", *draw(st.lists(st.just(f"/v{index}/{name}"), max_size=1))],
                  "strip_path": False if protocol == "grpc" else draw(st.booleans())},
        "kubernetes": {"port": port, "target_port": draw(st.sampled_from((8000, 8080, 50051)))},
        "kong": draw(kong_settings(kong)),
    }
    if draw(st.booleans()):
        svc["route"]["hosts"] = [f"{name}.example.com"]
    preset = draw(st.sampled_from(PRESETS))
    app: dict[str, Any] = {"preset": preset}
    if preset == "custom" or draw(st.booleans()):
        app["idle_timeout"] = draw(durations(1, 600))
    if preset == "nodejs" and draw(st.booleans()):
        app["version"] = draw(st.sampled_from(("18.0", "20.11", "22.3", "26.0")))
    svc["app"] = app
    k8s = svc["kubernetes"]
    if draw(st.booleans()):
        k8s["session_affinity"] = "ClientIP"
        _put(k8s, "session_affinity_timeout", draw(optional(st.integers(1, 86_400))))
    _put(k8s, "internal_traffic_policy", draw(optional(st.sampled_from(("Cluster", "Local")))))
    _put(k8s, "traffic_distribution", draw(optional(st.sampled_from(("PreferClose",)))))
    if draw(st.booleans()):
        k8s["labels"] = {"team": draw(st.sampled_from(("shop", "core"))),
                         "example.com/tier": "backend"}
    if draw(st.booleans()):
        k8s["selector"] = {"app": name, "track": "stable"}
    _put(svc, "deployment", draw(optional(st.just(f"{name}-app"))))
    if draw(st.booleans()):
        svc["readiness"] = {"path": draw(st.sampled_from(("/healthz", "/ready"))),
                            "period_seconds": draw(st.integers(1, 30)),
                            "timeout_seconds": draw(st.integers(1, 5)),
                            "failure_threshold": draw(st.integers(1, 5))}
        if protocol == "grpc":
            del svc["readiness"]["path"]  # the gRPC health protocol has no path
    if draw(st.booleans()):
        low = draw(st.integers(1, 5))
        svc["autoscaling"] = {"min_replicas": low, "max_replicas": draw(st.integers(low, 20)),
                              "target_cpu_utilization": draw(st.integers(10, 100))}
    if draw(st.booleans()):
        value = draw(st.one_of(st.integers(0, 3), st.sampled_from(("25%", "50%"))))
        svc["disruption_budget"] = {draw(st.sampled_from(("max_unavailable", "min_available"))):
                                    value}
    _put(svc, "termination_grace_period", draw(optional(durations(1, 120))))
    _put(svc, "pre_stop_delay", draw(optional(durations(1, 30))))
    _put(svc, "stream_idle", draw(optional(durations(1, 3600))))
    return svc


SERVICE_NAMES = ("orders", "cart", "users", "search", "billing", "inventory", "auth")


@st.composite
def specs(
    draw: Draw,
    *,
    require: Sequence[str] = (),
    nginx_versions: Sequence[str] = NGINX_VERSIONS,
    kong_versions: Sequence[str] = KONG_VERSIONS,
) -> dict[str, Any]:
    """A valid spec as plain data. `require`: tier kinds that must be present."""
    kinds = [kind for kind in ("nginx_http", "nginx_stream", "kong")
             if kind in require or draw(st.booleans())]
    tiers: list[dict[str, Any]] = []
    for kind in kinds:
        name = draw(st.sampled_from(TIER_NAMES[kind]))
        if kind == "nginx_http":
            tiers.append(draw(nginx_http_tier(name, nginx_versions)))
        elif kind == "nginx_stream":
            tiers.append(draw(nginx_stream_tier(name, nginx_versions)))
        else:
            tiers.append(draw(kong_tier(name, kong_versions)))
    tiers.append(draw(kubernetes_tier(draw(st.sampled_from(TIER_NAMES["kubernetes"])))))
    kong = next((t for t in tiers if t["kind"] == "kong"), None)
    stream_in_front = len(tiers) >= 2 and tiers[-2]["kind"] == "nginx_stream"
    count = 1 if stream_in_front else draw(st.integers(1, 5))
    names = draw(st.lists(st.sampled_from(SERVICE_NAMES), min_size=count, max_size=count,
                          unique=True))
    spec: dict[str, Any] = {
        "name": draw(st.sampled_from(("shop", "api", "payments-path"))),
        "tiers": tiers,
        "services": [draw(service(i, name, kong)) for i, name in enumerate(names)],
    }
    if draw(st.booleans()):
        lb: dict[str, Any] = {"kind": draw(st.sampled_from(("gcp-application", "aws-alb",
                                                            "other")))}
        _put(lb, "backend_idle_timeout", draw(optional(durations(1, 600))))
        spec["external_lb"] = lb
    _put(spec, "keepalive_margin", draw(optional(durations(1, 10))))
    cluster_version = Version(tiers[-1].get("version", "1.33"))
    for svc in spec["services"]:
        # trafficDistribution below its GA release is an input error (Spec.placement_problems).
        if cluster_version < Version("1.33"):
            svc["kubernetes"].pop("traffic_distribution", None)
    # Combinations the loader refuses with a located error (Spec.refusals, e.g. Kong < 3.6
    # h2c-only listeners for the edge's HTTP/1.1) are not valid specs.
    assume(not Spec.model_validate(spec).refusals())
    return spec


# --- breaking a valid spec ----------------------------------------------------------------

MutationKind = Literal["bad-enum", "negative-number", "unknown-key", "wrong-type"]
DataPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Mutation:
    kind: MutationKind
    path: DataPath
    """Where the mistake is: the changed value, or the added key."""
    value: Any


def _alternatives(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _alternatives(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [alt for arg in typing.get_args(annotation) for alt in _alternatives(arg)]
    return [annotation]


def _lower_bound(annotation: Any) -> int | None:
    """The `ge`/`gt` of an int field (Field(ge=…) or an annotated type such as Port)."""
    found: list[Any] = []
    if typing.get_origin(annotation) is typing.Annotated:
        found.extend(typing.get_args(annotation)[1:])
    for alt in typing.get_args(annotation) or ():
        if typing.get_origin(alt) is typing.Annotated:
            found.extend(typing.get_args(alt)[1:])
    for meta in found:
        for attr in ("ge", "gt"):
            bound = getattr(meta, attr, None)
            if isinstance(bound, int):
                return bound
        for inner in getattr(meta, "metadata", ()):
            for attr in ("ge", "gt"):
                bound = getattr(inner, attr, None)
                if isinstance(bound, int):
                    return bound
    return None


def _model_of(annotation: Any, value: Any) -> type[BaseModel] | None:
    models = [a for a in _alternatives(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    if len(models) > 1 and isinstance(value, dict):
        for model in models:
            kind = model.model_fields.get("kind")
            if kind is not None and value.get("kind") in typing.get_args(kind.annotation):
                return model
    return models[0] if models else None


def mutation_sites(data: dict[str, Any], model: type[BaseModel] = Spec,
                   path: DataPath = ()) -> Iterator[Mutation]:
    """Every mutation that makes `data` (valid for `model`) invalid at a known place."""
    yield Mutation("unknown-key", (*path, "bogus_setting"), 1)
    for name, info in model.model_fields.items():
        if name not in data:
            continue
        value = data[name]
        alternatives = _alternatives(info.annotation)
        here = (*path, name)
        literals = [a for a in alternatives if typing.get_origin(a) is Literal]
        if literals and isinstance(value, str) and name != "kind":
            yield Mutation("bad-enum", here, "no such choice!")
        if isinstance(value, bool):
            yield Mutation("wrong-type", here, "maybe")
        elif isinstance(value, int) and int in alternatives:
            bound = _lower_bound(info.annotation)
            if bound is not None and bound >= 0:
                yield Mutation("negative-number", here, -5)
            yield Mutation("wrong-type", here, "eight")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            item_model = _model_of(typing.get_args(alternatives[0])[0], value[0])
            if item_model is not None:
                yield Mutation("wrong-type", here, "not-a-list")
                for index, item in enumerate(value):
                    yield from mutation_sites(item, item_model, (*here, index))
        elif isinstance(value, dict):
            sub = _model_of(info.annotation, value)
            if sub is not None:
                yield Mutation("wrong-type", here, ["not", "a", "mapping"])
                yield from mutation_sites(value, sub, here)


@st.composite
def mutated_specs(draw: Draw) -> tuple[dict[str, Any], Mutation]:
    """(invalid spec, the mutation that broke it)."""
    spec = draw(specs())
    choices = list(mutation_sites(spec))
    mutation = draw(st.sampled_from(choices))
    broken = copy.deepcopy(spec)
    node: Any = broken
    for part in mutation.path[:-1]:
        node = node[part]
    node[mutation.path[-1]] = mutation.value
    return broken, mutation


def yaml_line(text: str, path: DataPath, *, key: bool = False) -> int:
    """1-based line of the value at `path` in YAML `text` (of its key with `key=True`),
    found by PyYAML's parser: an oracle independent of lbgen's loader."""
    node = yaml.compose(text)
    assert node is not None
    for depth, part in enumerate(path):
        if isinstance(node, yaml.MappingNode):
            key_node, value_node = next((k, v) for k, v in node.value if k.value == part)
            if key and depth == len(path) - 1:
                return int(key_node.start_mark.line) + 1
            node = value_node
        else:
            assert isinstance(node, yaml.SequenceNode) and isinstance(part, int)
            node = node.value[part]
    return int(node.start_mark.line) + 1
