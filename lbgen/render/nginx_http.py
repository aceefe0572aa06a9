"""Renderer for the nginx L7 tier (`http {}`): a complete nginx.conf and an includable snippet.

Files: `<tier>/nginx.conf` (worker_processes, events, `http { include conf.d/<spec>.conf; }`)
and `<tier>/conf.d/<spec>.conf` (upstream and server blocks), so the snippet can also be
included into an existing `http {}`.

Every decision is made in `build_view`; the templates in templates/nginx_http/ only lay the
view out. Version gates and their sources:

- nginx ≥ 1.29.7 pools upstream connections by default (`keepalive 32 local`), speaks
  HTTP/1.1 to upstreams and no longer sends `Connection: close` (CHANGES 1.29.7). Before,
  keep-alive needs `keepalive N`, `proxy_http_version 1.1` and a cleared `Connection` header
  (upstream module #keepalive; proxy module #proxy_http_version).
- Upstream `keepalive_timeout`/`keepalive_requests` appeared in 1.15.3, `keepalive_time` in
  1.19.10 (upstream module docs).
- `http2 on` replaced `listen … http2` in 1.25.1 (CHANGES 1.25.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lbgen.budget import Budget, UpstreamBudget
from lbgen.defaults import NGINX_KEEPALIVE_BY_DEFAULT, NGINX_UPSTREAM_KEEPALIVE_TIME_SINCE
from lbgen.model.service import Service
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxHttpTier, NginxStreamTier
from lbgen.model.types import Version
from lbgen.render._base import RenderContext, RenderedFile
from lbgen.render._names import backend_address
from lbgen.render._nginx import (
    UPSTREAM_DOC,
    Directive,
    UpstreamView,
    balancing_directive,
    directive,
    has_grpc,
    kong_entry_listener,
    listener_label,
    origin_comment,
    server_directive,
    service_upstream_name,
    stream_grpc_target,
    stream_target,
    target_comment,
)

HTTP2_DIRECTIVE_SINCE = Version("1.25.1")
KEEPALIVE_TIME_SINCE = NGINX_UPSTREAM_KEEPALIVE_TIME_SINCE
PROXY_DOC = "nginx.org/en/docs/http/ngx_http_proxy_module.html"
# Each upstream block has its own keep-alive cache, so gRPC (HTTP/2) and proxied HTTP/1.1
# never pick up each other's idle connections, whatever the nginx version.
GRPC_OWN_POOL = "a separate upstream block, so HTTP/2 and HTTP/1.1 never share pooled connections"


@dataclass(frozen=True)
class LocationView:
    match: tuple[str, ...]
    """`location` arguments, e.g. ("/orders",) or ("=", "/orders")."""
    comment: str
    directives: tuple[Directive, ...]


@dataclass(frozen=True)
class ServerView:
    comment: str
    directives: tuple[Directive, ...]
    locations: tuple[LocationView, ...]


@dataclass(frozen=True)
class NginxHttpView:
    header: str
    target: str
    worker_processes: str
    include: str
    """Path of the snippet, relative to nginx.conf's directory (nginx resolves it there)."""
    upstreams: tuple[UpstreamView, ...]
    servers: tuple[ServerView, ...]


@dataclass(frozen=True)
class PassTarget:
    """Where one location sends its requests."""

    upstream: str
    tls: bool
    """The next hop's listener speaks TLS: https:// (grpcs:// for gRPC)."""


def render(ctx: RenderContext) -> list[RenderedFile]:
    edge = ctx.spec.edge
    if edge is None:
        return []
    view = build_view(ctx, edge)
    env = ctx.env
    return [
        RenderedFile(
            f"{edge.name}/nginx.conf",
            env.get_template("nginx_http/nginx.conf.j2").render(view=view),
        ),
        RenderedFile(
            f"{edge.name}/{view.include}",
            env.get_template("nginx_http/snippet.conf.j2").render(view=view),
        ),
    ]


def build_view(ctx: RenderContext, edge: NginxHttpTier) -> NginxHttpView:
    spec = ctx.spec
    budget = ctx.budget.edge_upstream
    assert budget is not None  # resolve_budget fills it whenever the spec has an edge
    pool = pool_directives(edge, budget)
    pooled = budget.connections.value not in (None, 0)
    shared = [*client_keepalive_directives(edge, ctx.budget), *_real_ip(edge)]
    callee = spec.next_tier(edge)

    upstreams: list[UpstreamView] = []
    servers: list[ServerView]
    if isinstance(callee, NginxStreamTier):
        target = stream_target(spec, callee)
        addresses = [(i.address, callee.listen_port) for i in callee.instances]
        about = (
            f"nginx stream tier {callee.name} (port {callee.listen_port}), which forwards to "
            f"{target.comment}"
        )
        upstreams.append(_upstream(callee.name, about, edge, addresses, pool))
        http_target = PassTarget(callee.name, target.tls)
        grpc_target = http_target
        if has_grpc(spec):
            # With grpc_listen_port the L4 tier relays gRPC on a port of its own to Kong's h2c
            # listener (Kong < 3.6 cannot take HTTP/1.1 and h2c on one cleartext port).
            split = stream_grpc_target(spec, callee)
            grpc_about, grpc_addresses, grpc_tls = about, addresses, target.tls
            if split is not None and callee.grpc_listen_port is not None:
                grpc_addresses = [(i.address, callee.grpc_listen_port) for i in callee.instances]
                grpc_about = (
                    f"nginx stream tier {callee.name} (gRPC port {callee.grpc_listen_port}), "
                    f"which forwards to {split.comment}"
                )
                grpc_tls = split.tls
            grpc_target = PassTarget(f"{callee.name}-grpc", grpc_tls)
            upstreams.append(
                _upstream(
                    grpc_target.upstream,
                    f"{grpc_about}; gRPC only: {GRPC_OWN_POOL}",
                    edge,
                    grpc_addresses,
                    pool,
                )
            )
        servers = [_proxy_all_server(spec, edge, shared, http_target, grpc_target, pooled)]
    elif isinstance(callee, KongTier):
        http_entry = kong_entry_listener(callee, proxy_protocol=False, grpc=False, http1=True)
        upstreams.append(
            _upstream(
                callee.name,
                f"Kong tier {callee.name}: {listener_label(http_entry)}",
                edge,
                [(i.address, http_entry.port) for i in callee.instances],
                pool,
            )
        )
        http_target = PassTarget(callee.name, http_entry.tls)
        grpc_target = http_target
        if has_grpc(spec):
            # gRPC needs an HTTP/2 listener (Kong's stock cleartext 8000 has none) and a pool
            # of its own.
            grpc_entry = kong_entry_listener(callee, proxy_protocol=False, grpc=True)
            grpc_target = PassTarget(f"{callee.name}-grpc", grpc_entry.tls)
            upstreams.append(
                _upstream(
                    grpc_target.upstream,
                    f"Kong tier {callee.name}, gRPC only: {listener_label(grpc_entry)}; "
                    f"{GRPC_OWN_POOL}",
                    edge,
                    [(i.address, grpc_entry.port) for i in callee.instances],
                    pool,
                )
            )
        servers = [_proxy_all_server(spec, edge, shared, http_target, grpc_target, pooled)]
    else:
        assert isinstance(callee, KubernetesTier)  # the model puts kubernetes last
        for service in spec.services:
            host, port = backend_address(spec, service, edge.backend_targets)
            how = (
                "headless Service: one server per ready pod, resolved when nginx loads"
                if edge.backend_targets == "pod_endpoints"
                else "ClusterIP: kube-proxy picks a pod per connection"
            )
            upstreams.append(
                _upstream(
                    service_upstream_name(service),
                    f"Kubernetes Service {service.namespace}/{service.name} ({how})",
                    edge,
                    [(host, port)],
                    pool,
                )
            )
        servers = _gateway_servers(spec, edge, shared, pooled)

    return NginxHttpView(
        header=ctx.header(),
        target=target_comment("nginx_http", edge.name, edge.version),
        worker_processes=str(edge.worker_processes),
        include=f"conf.d/{spec.name}.conf",
        upstreams=tuple(upstreams),
        servers=tuple(servers),
    )


# --- upstream blocks -------------------------------------------------------------------------


def _upstream(
    name: str,
    comment: str,
    edge: NginxHttpTier,
    addresses: Sequence[tuple[str, int]],
    pool: Sequence[Directive],
) -> UpstreamView:
    # Method first: before 1.29.7 it had to precede `keepalive` (upstream module #keepalive).
    method = balancing_directive(edge.balancing, stream=False)
    lines = [method] if method is not None else []
    lines += [server_directive(host, port, edge.passive_health) for host, port in addresses]
    lines += pool
    return UpstreamView(name, comment, tuple(lines))


def pool_directives(edge: NginxHttpTier, budget: UpstreamBudget) -> list[Directive]:
    """`keepalive*` lines of the upstream blocks, from the resolved keep-alive budget."""
    version = edge.version
    connections = budget.connections.value
    if not connections:
        if version >= NGINX_KEEPALIVE_BY_DEFAULT:
            # Silence would mean `keepalive 32 local` on these versions.
            return [
                directive(
                    "keepalive",
                    0,
                    comment=f"pool disabled ({origin_comment(budget.connections)}); nginx ≥ 1.29.7 "
                    f"would pool 32 per worker by default ({UPSTREAM_DOC}#keepalive)",
                )
            ]
        return []  # no `keepalive`: no pool before 1.29.7 (and `keepalive 0` is invalid there)
    lines = [
        directive(
            "keepalive",
            connections,
            comment=f"pool of idle connections per worker ({origin_comment(budget.connections)}). "
            "Without `local` (1.29.7): every location using this upstream proxies it the same way "
            "(gRPC has upstream blocks of its own), so sharing the pool is safe, and the line is "
            "valid on older nginx too",
        )
    ]
    idle, requests = budget.idle_timeout.value, budget.max_requests.value
    if idle is not None and requests is not None:  # None: nginx < 1.15.3 has neither directive
        lines.append(
            directive(
                "keepalive_timeout",
                idle,
                comment="a pooled connection idle this long is closed, before the next hop would "
                f"close it ({origin_comment(budget.idle_timeout)})",
            )
        )
        lines.append(
            directive(
                "keepalive_requests",
                requests,
                comment=f"requests per pooled connection ({origin_comment(budget.max_requests)})",
            )
        )
    lifetime = budget.max_lifetime.value
    if lifetime is not None and version >= KEEPALIVE_TIME_SINCE:
        lines.append(
            directive(
                "keepalive_time",
                lifetime,
                comment=f"lifetime of a pooled connection ({origin_comment(budget.max_lifetime)})",
            )
        )
    return lines


# --- server blocks ---------------------------------------------------------------------------


def _proxy_all_server(
    spec: Spec,
    edge: NginxHttpTier,
    shared: Sequence[Directive],
    http_target: PassTarget,
    grpc_target: PassTarget,
    pooled: bool,
) -> ServerView:
    """The edge in front of another proxy: everything goes to it; it does the routing.

    gRPC services still get their own locations: gRPC must leave nginx over HTTP/2
    (`grpc_pass`), which `proxy_pass` cannot do before 1.29.4.
    """
    locations: list[LocationView] = []
    for service in spec.services:
        if service.protocol != "grpc":
            continue
        for path in service.paths:
            if path == "/":
                continue  # `location /` below; a gRPC catch-all path is not meaningful
            locations.append(
                _grpc_location(
                    (path,), f"gRPC service {service.namespace}/{service.name}", edge, grpc_target
                )
            )
    locations.append(
        _http_location(
            ("/",),
            f"everything else: routing happens at {http_target.upstream}",
            edge,
            http_target,
            pooled,
            uri="",
        )
    )
    return ServerView(
        "", tuple(_server_directives(edge, shared, default_server=False)), tuple(locations)
    )


def _gateway_servers(
    spec: Spec, edge: NginxHttpTier, shared: Sequence[Directive], pooled: bool
) -> list[ServerView]:
    """The edge as the gateway (next hop: Kubernetes): it routes by path and host itself.

    Services without `route.hosts` live in the catch-all server; each host gets its own
    server block with the services that list it, as Kong would route them.
    """
    hostless = [s for s in spec.services if not s.route.hosts]
    by_host: dict[str, list[Service]] = {}
    for service in spec.services:
        for host in service.route.hosts:
            by_host.setdefault(host, []).append(service)
    several = bool(by_host)
    servers = [
        ServerView(
            "requests for any other host" if several else "",
            tuple(_server_directives(edge, shared, default_server=several)),
            tuple(_service_locations(hostless, edge, pooled)),
        )
    ]
    for host in sorted(by_host):
        servers.append(
            ServerView(
                f"requests for host {host}",
                tuple(_server_directives(edge, shared, default_server=False, server_name=host)),
                tuple(_service_locations(by_host[host], edge, pooled)),
            )
        )
    return servers


def _service_locations(
    services: Sequence[Service], edge: NginxHttpTier, pooled: bool
) -> list[LocationView]:
    locations: list[LocationView] = []
    claimed: set[str] = set()
    for service in services:
        target = PassTarget(service_upstream_name(service), tls=False)
        label = f"service {service.namespace}/{service.name}"
        for path in service.paths:
            claimed.add(path)
            if service.protocol == "grpc":
                # grpc_pass takes no URI, so strip_path cannot apply to gRPC methods.
                locations.append(_grpc_location((path,), f"gRPC {label}", edge, target))
            elif not service.route.strip_path or path == "/":
                locations.append(_http_location((path,), label, edge, target, pooled, uri=""))
            else:
                # strip_path like Kong: /orders/x → /x and /orders → /. A URI in proxy_pass
                # replaces the matched prefix (proxy module #proxy_pass).
                prefix = path if path.endswith("/") else path + "/"
                locations.append(
                    _http_location(
                        (prefix,),
                        f"{label}, prefix {path} stripped",
                        edge,
                        target,
                        pooled,
                        uri="/",
                    )
                )
                if prefix != path:
                    claimed.add(prefix)
                    locations.append(
                        _http_location(
                            ("=", path),
                            f"{label}: {path} itself becomes /",
                            edge,
                            target,
                            pooled,
                            uri="/",
                        )
                    )
    if "/" not in claimed:
        # Without it, unrouted paths would be served from nginx's html directory.
        locations.append(
            LocationView(
                ("/",),
                "no service routes this path",
                (directive("return", 404),),
            )
        )
    return locations


def _server_directives(
    edge: NginxHttpTier,
    shared: Sequence[Directive],
    *,
    default_server: bool,
    server_name: str | None = None,
) -> list[Directive]:
    """listen, server_name, HTTP/2, TLS, then the lines every server block shares."""
    version = edge.version
    http2_directive = version >= HTTP2_DIRECTIVE_SINCE
    lines: list[Directive] = []
    for listener in edge.listen:
        params: list[str | int] = [listener.port]
        if listener.tls:
            params.append("ssl")
        if listener.http2 and not http2_directive:
            params.append("http2")  # before 1.25.1 HTTP/2 is a listen parameter
        if listener.proxy_protocol:
            params.append("proxy_protocol")
        if default_server:
            params.append("default_server")
        lines.append(directive("listen", *params))
    if server_name is not None:
        lines.append(directive("server_name", server_name))
    if http2_directive and any(listener.http2 for listener in edge.listen):
        lines.append(
            directive(
                "http2",
                "on",
                comment="nginx ≥ 1.25.1 enables HTTP/2 per server, not per listen socket "
                "(CHANGES 1.25.1)",
            )
        )
    lines.append(
        directive(
            "server_tokens",
            "off",
            comment="no nginx version in the Server header and error pages",
        )
    )
    if edge.tls is not None and any(listener.tls for listener in edge.listen):
        lines += tls_directives(edge.tls.certificate, edge.tls.certificate_key)
    return [*lines, *shared]


# Mozilla Server Side TLS "intermediate" profile (mozilla/server-side-tls,
# json/server-side-tls-conf-5.0.json): TLS 1.2 and 1.3, these TLS 1.2 suites, HSTS 2 years.
MOZILLA_INTERMEDIATE_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
MOZILLA_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
)
MOZILLA_HSTS_MAX_AGE = 63072000


def tls_directives(certificate: str, certificate_key: str) -> list[Directive]:
    """Certificate plus the Mozilla "intermediate" protocol, cipher and HSTS settings."""
    return [
        directive("ssl_certificate", certificate),
        directive("ssl_certificate_key", certificate_key),
        directive(
            "ssl_protocols",
            *MOZILLA_INTERMEDIATE_PROTOCOLS,
            comment="Mozilla Server Side TLS intermediate profile (server-side-tls-conf-5.0.json)",
        ),
        directive("ssl_ciphers", MOZILLA_INTERMEDIATE_CIPHERS),
        directive(
            "add_header",
            "Strict-Transport-Security",
            f"max-age={MOZILLA_HSTS_MAX_AGE}",
            "always",
            comment="HSTS: browsers keep to https for two years (Mozilla intermediate profile)",
        ),
    ]


def client_keepalive_directives(edge: NginxHttpTier, budget: Budget) -> list[Directive]:
    """Client-side keep-alive of the edge's server blocks, from the resolved budget."""
    timeout = budget.edge_client_keepalive
    assert timeout is not None  # resolve_budget fills it whenever the spec has an edge
    lines = [
        directive(
            "keepalive_timeout",
            timeout.value,
            comment=f"idle client connections: {origin_comment(timeout)}",
        )
    ]
    if edge.client_keepalive.max_requests is not None:
        lines.append(directive("keepalive_requests", edge.client_keepalive.max_requests))
    return lines


def _real_ip(edge: NginxHttpTier) -> list[Directive]:
    real_ip = edge.real_ip
    if real_ip is None:
        return []
    lines = [directive("set_real_ip_from", cidr) for cidr in real_ip.trusted]
    lines.append(directive("real_ip_header", real_ip.header))
    if real_ip.recursive:
        lines.append(
            directive(
                "real_ip_recursive",
                "on",
                comment="client = last address in the header that is not a trusted proxy",
            )
        )
    return lines


# --- locations -------------------------------------------------------------------------------


def _forwarded_headers(edge: NginxHttpTier) -> list[tuple[str, str]]:
    # Host: the next hop routes on it (Kong route hosts); the default would be the upstream
    # block's name ($proxy_host).
    headers = [("Host", "$host")]
    if edge.forwarded_headers:
        headers += [
            ("X-Real-IP", "$remote_addr"),
            ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
            ("X-Forwarded-Proto", "$scheme"),
            ("X-Forwarded-Host", "$host"),
        ]
    return headers


def _http_location(
    match: tuple[str, ...],
    comment: str,
    edge: NginxHttpTier,
    target: PassTarget,
    pooled: bool,
    *,
    uri: str,
) -> LocationView:
    scheme = "https" if target.tls else "http"
    needs_http11 = pooled and edge.version < NGINX_KEEPALIVE_BY_DEFAULT
    pass_comment = ""
    if pooled and not needs_http11:
        pass_comment = (
            "nginx ≥ 1.29.7 talks HTTP/1.1 upstream and sends no Connection header by default, "
            f"so pooled connections are reused as is ({PROXY_DOC}#proxy_http_version)"
        )
    lines = [directive("proxy_pass", f"{scheme}://{target.upstream}{uri}", comment=pass_comment)]
    headers = _forwarded_headers(edge)
    if needs_http11:
        lines.append(
            directive(
                "proxy_http_version",
                "1.1",
                comment="before 1.29.7 nginx talks HTTP/1.0 upstream, which cannot keep the "
                f"connection for the pool ({UPSTREAM_DOC}#keepalive)",
            )
        )
        headers.insert(1, ("Connection", ""))
    # All proxy_set_header lines at this one level: a level that sets any of them inherits
    # none from outer levels (proxy module #proxy_set_header).
    for index, (name, value) in enumerate(headers):
        note = ""
        if name == "Connection":
            note = "cleared, or nginx sends `Connection: close` and the pool is never used"
        elif index == 0:
            note = (
                "all proxy_set_header lines stay at this level: one here drops every inherited one"
            )
        lines.append(directive("proxy_set_header", name, value, comment=note))
    lines += _timeouts(edge, "proxy")
    lines += _retries(edge, "proxy")
    return LocationView(match, comment, tuple(lines))


def _grpc_location(
    match: tuple[str, ...], comment: str, edge: NginxHttpTier, target: PassTarget
) -> LocationView:
    scheme = "grpcs" if target.tls else "grpc"
    lines = [directive("grpc_pass", f"{scheme}://{target.upstream}")]
    for index, (name, value) in enumerate(_forwarded_headers(edge)):
        note = (
            "grpc_set_header Host sets :authority; the default is the upstream name"
            if index == 0
            else ""
        )
        lines.append(directive("grpc_set_header", name, value, comment=note))
    lines += _timeouts(edge, "grpc")
    lines += _retries(edge, "grpc")
    return LocationView(match, comment, tuple(lines))


def _timeouts(edge: NginxHttpTier, module: str) -> list[Directive]:
    timeouts = edge.timeouts
    lines = []
    for name, value in (
        ("connect", timeouts.connect),
        ("read", timeouts.read),
        ("send", timeouts.send),
    ):
        if value is not None:
            lines.append(directive(f"{module}_{name}_timeout", value))
    return lines


def _retries(edge: NginxHttpTier, module: str) -> list[Directive]:
    retry = edge.retry
    lines: list[Directive] = []
    if retry.conditions is not None:
        # Unset keeps nginx's `error timeout`, which never resends a non-idempotent request
        # (POST, LOCK, PATCH) once it reached a server; `non_idempotent` only when listed.
        conditions: list[str] = list(dict.fromkeys(retry.conditions)) or ["off"]
        lines.append(directive(f"{module}_next_upstream", *conditions))
    if retry.tries is not None:
        lines.append(directive(f"{module}_next_upstream_tries", retry.tries))
    if retry.timeout is not None:
        lines.append(directive(f"{module}_next_upstream_timeout", retry.timeout))
    return lines
