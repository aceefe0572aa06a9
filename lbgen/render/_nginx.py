"""Pieces shared by the nginx http (L7) and stream (L4) renderers.

Decisions live here as plain functions returning `Directive`s; the templates only lay them
out. Each version gate cites the nginx change that introduced the behaviour.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from msgspec import Struct

from lbgen import defaults
from lbgen.model.common import Listener, NginxBalancing, NginxPassiveHealth, NginxResolver
from lbgen.model.service import Service
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxStreamTier
from lbgen.model.types import Duration, Version
from lbgen.plan.topology import (
    backend_address,
    has_grpc,
    has_http1,
    is_dns_name,
    kong_entry_listener,
)

UPSTREAM_DOC = defaults.NGINX_UPSTREAM_DOC
STREAM_UPSTREAM_DOC = defaults.NGINX_STREAM_UPSTREAM_DOC


class Directive(Struct, frozen=True):
    """One nginx directive: `name args…;`, optionally preceded by a `# comment` line.

    Arguments are quoted by the template's `nginx_quote` filter, so a value can never
    end the directive early.
    """

    name: str
    args: tuple[str, ...] = ()
    comment: str = ""


def directive(name: str, *args: str | int | Duration, comment: str = "") -> Directive:
    return Directive(name, tuple(_arg(a) for a in args), comment)


def _arg(value: str | int | Duration) -> str:
    if isinstance(value, Duration):
        return value.nginx()
    return str(value)


class UpstreamView(Struct, frozen=True):
    """An `upstream NAME { … }` block: balancing method, servers, keep-alive pool."""

    name: str
    comment: str
    directives: tuple[Directive, ...]


def balancing_directive(balancing: NginxBalancing, *, stream: bool) -> Directive | None:
    """The load-balancing method directive; None for the default weighted round-robin.

    The caller puts it first in the upstream block: before nginx 1.29.7 a method had to be
    activated before `keepalive` (upstream module docs, #keepalive).
    """
    algorithm = balancing.algorithm
    if algorithm == "round-robin":
        return None
    if algorithm == "least_conn":
        return directive("least_conn")
    if algorithm == "ip_hash":
        # http only: the model refuses ip_hash on stream tiers (no such directive there).
        return directive("ip_hash")
    if algorithm == "hash":
        assert balancing.hash_key is not None  # the model requires it with algorithm hash
        if balancing.consistent:
            return directive("hash", balancing.hash_key, "consistent")
        return directive("hash", balancing.hash_key)
    if algorithm == "random":
        return directive("random")
    if algorithm == "random-two":
        # `two` picks two servers at random, then the one with fewer connections
        # (the default method of `random two` is least_conn).
        return directive("random", "two")
    # least_time (open source since 1.31.0; the model rejects older versions). http measures
    # the time to the response header; stream measures the time to connect, the only
    # per-connection signal that does not depend on what the client sends.
    if stream:
        return directive("least_time", "connect")
    return directive("least_time", "header")


def server_directive(
    host: str, port: int, health: NginxPassiveHealth, *, resolve: bool = False
) -> Directive:
    """`server host:port [max_fails=N] [fail_timeout=T] [resolve]`.

    `resolve` (nginx ≥ 1.27.3, needs the group's `zone` and a `resolver`) re-resolves a name
    while nginx runs; without it a name is resolved once, at load (upstream module #resolve).
    """
    params: list[str] = ["resolve"] if resolve and is_dns_name(host) else []
    if health.max_fails is not None:
        params.append(f"max_fails={health.max_fails}")
    if health.fail_timeout is not None:
        params.append(f"fail_timeout={health.fail_timeout.nginx()}")
    return Directive("server", (host_port(host, port), *params))


# Shared memory for one upstream group's run-time state: `resolve` keeps the addresses of
# its names there (upstream module #zone). 64k holds a few hundred servers.
UPSTREAM_ZONE_SIZE = "64k"


def resolver_directives(
    upstream: str, resolver: NginxResolver | None, hosts: Sequence[str]
) -> list[Directive]:
    """`zone` + `resolver` for an upstream group that dials names, when the tier has a resolver.

    Both are valid in `upstream {}` since 1.27.3 (CHANGES 1.27.3), in http and stream; the
    model refuses `resolver` on older versions. A group of IP addresses needs neither.
    """
    if resolver is None or not any(is_dns_name(host) for host in hosts):
        return []
    args: list[str] = list(resolver.addresses)
    if resolver.valid is not None:
        args.append(f"valid={resolver.valid.ms // 1000}s")
    return [
        directive(
            "zone",
            upstream,
            UPSTREAM_ZONE_SIZE,
            comment="shared memory for the group's run-time addresses; `resolve` needs it "
            f"({UPSTREAM_DOC}#zone)",
        ),
        directive(
            "resolver",
            *args,
            comment="asked again while nginx runs, when an answer's TTL (or valid=) runs out, "
            f"so the servers below follow their names ({UPSTREAM_DOC}#resolver)",
        ),
    ]


def host_port(host: str, port: int) -> str:
    """`host:port`, with IPv6 literals in brackets as nginx requires."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def service_upstream_name(service: Service) -> str:
    """Upstream name of one Kubernetes Service: `<name>.<namespace>`.

    Both parts are RFC 1035 labels (no dots), so the name is unique per Service and reads
    like the Service's DNS name without being one.
    """
    return f"{service.name}.{service.namespace}"


def listener_label(entry: Listener) -> str:
    """`proxy_listen port 8443 (tls, http2)`, for comments."""
    flags = [
        flag
        for flag, on in (
            ("tls", entry.tls),
            ("http2", entry.http2),
            ("proxy_protocol", entry.proxy_protocol),
        )
        if on
    ]
    return f"proxy_listen port {entry.port} ({', '.join(flags) or 'cleartext'})"


class StreamTarget(Struct, frozen=True):
    """Where an nginx stream tier forwards its connections."""

    upstream: str
    servers: tuple[tuple[str, int], ...]
    tls: bool
    """The L7 listener behind speaks TLS (the edge must then use https:// / grpcs://)."""
    comment: str


def stream_grpc_target(spec: Spec, l4: NginxStreamTier) -> StreamTarget | None:
    """Where the L4 tier's `grpc_listen_port` forwards: Kong's http2 listener (None without
    that port, or when gRPC does not go on to Kong)."""
    callee = spec.next_tier(l4)
    if l4.grpc_listen_port is None or not isinstance(callee, KongTier) or not has_grpc(spec):
        return None
    entry = kong_entry_listener(callee, proxy_protocol=l4.send_proxy_protocol, grpc=True)
    return StreamTarget(
        upstream=f"{callee.name}-grpc",
        servers=tuple((instance.address, entry.port) for instance in callee.instances),
        tls=entry.tls,
        comment=f"Kong tier {callee.name}, gRPC only: {listener_label(entry)}",
    )


def stream_target(spec: Spec, l4: NginxStreamTier) -> StreamTarget:
    callee = spec.next_tier(l4)
    if isinstance(callee, KongTier):
        split = stream_grpc_target(spec, l4) is not None
        entry = kong_entry_listener(
            callee,
            proxy_protocol=l4.send_proxy_protocol,
            grpc=has_grpc(spec) and not split,
            http1=has_http1(spec),
        )
        return StreamTarget(
            upstream=callee.name,
            servers=tuple((instance.address, entry.port) for instance in callee.instances),
            tls=entry.tls,
            comment=f"Kong tier {callee.name}: {listener_label(entry)}",
        )
    assert isinstance(callee, KubernetesTier)  # the model allows no other callee for stream
    # The model allows a single Service behind a stream tier. A stream proxy has no
    # backend_targets setting: it reaches the Service's ClusterIP on the Service port.
    service = spec.services[0]
    host, port = backend_address(spec, service, "cluster_ip")
    return StreamTarget(
        upstream=service_upstream_name(service),
        servers=((host, port),),
        tls=False,
        comment=f"Kubernetes Service {service.namespace}/{service.name} (ClusterIP)",
    )


def target_comment(kind: str, tier_name: str, version: Version, *, build: str | None = None) -> str:
    """Second line of every nginx.conf: the nginx version (and, for stream, the build) the
    file was written for.

    `lbgen.verify.nginx` reads it back to compare with the installed nginx.
    """
    about = f"tier {tier_name}, kind {kind}" + (f", build {build}" if build else "")
    return f"# lbgen-target: nginx {version} ({about})\n"
