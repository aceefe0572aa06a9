"""Renderer for the nginx L7 tier (`http {}`): a complete nginx.conf and an includable snippet.

Files: `<tier>/nginx.conf` (worker_processes, events, `http { include conf.d/<spec>.conf; }`)
and `<tier>/conf.d/<spec>.conf` (upstream and server blocks), so the snippet can also be
included into an existing `http {}`.

Every decision is made in `build_view`; the templates in templates/nginx_http/ only lay the
view out. Version gates and their sources:

- nginx ≥ 1.29.7 pools upstream connections by default (`keepalive 32 local`), speaks
  HTTP/1.1 to upstreams and no longer sends `Connection: close` (CHANGES 1.29.7). Before,
  keep-alive needs `keepalive N`, `proxy_http_version 1.1` and a cleared `Connection` header
  (upstream module #keepalive; proxy module #proxy_http_version). Pooled locations always
  say `proxy_http_version 1.1` and set `Connection`, valid on every version: the file then
  pools on whatever nginx runs it, not only on the declared one.
- WebSocket: `Upgrade`/`Connection` are hop-by-hop, so the edge passes them on explicitly,
  `Connection` through a map that is empty when the client sent no `Upgrade` (keep-alive
  stays on for ordinary requests) (nginx.org/en/docs/http/websocket.html).
- Upstream `keepalive_timeout`/`keepalive_requests` appeared in 1.15.3, `keepalive_time` in
  1.19.10 (upstream module docs).
- `http2 on` replaced `listen … http2` in 1.25.1 (CHANGES 1.25.1).
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import Struct

from lbgen import defaults
from lbgen.model.naming import host_groups
from lbgen.model.service import Service
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxHttpTier, NginxStreamTier
from lbgen.model.types import Duration
from lbgen.plan.budget import Budget, UpstreamBudget
from lbgen.plan.hops import NginxHttpHop
from lbgen.plan.topology import backend_address, has_grpc, kong_entry_listener
from lbgen.plan.values import edge_read_timeout
from lbgen.render._base import FileTarget, RenderContext, RenderedFile
from lbgen.render._nginx import (
    UPSTREAM_DOC,
    Directive,
    UpstreamView,
    balancing_directive,
    directive,
    listener_label,
    resolver_directives,
    server_directive,
    service_upstream_name,
    stream_grpc_target,
    stream_target,
    target_comment,
)
from lbgen.versions import (
    NGINX_HTTP2_DIRECTIVE_SINCE,
    NGINX_KEEPALIVE_BY_DEFAULT,
    NGINX_UPSTREAM_KEEPALIVE_TIME_SINCE,
)

PROXY_DOC = defaults.NGINX_PROXY_DOC
# Each upstream block has its own keep-alive cache, so gRPC (HTTP/2) and proxied HTTP/1.1
# never pick up each other's idle connections, whatever the nginx version.
GRPC_OWN_POOL = "a separate upstream block, so HTTP/2 and HTTP/1.1 never share pooled connections"


class LocationView(Struct, frozen=True):
    match: tuple[str, ...]
    """`location` arguments, e.g. ("/orders",) or ("=", "/orders")."""
    comment: str
    directives: tuple[Directive, ...]


class ServerView(Struct, frozen=True):
    comment: str
    directives: tuple[Directive, ...]
    locations: tuple[LocationView, ...]


class NginxHttpView(Struct, frozen=True):
    header: str
    target: str
    worker_processes: str
    include: str
    """Path of the snippet, relative to nginx.conf's directory (nginx resolves it there)."""
    maps: tuple[MapView, ...]
    upstreams: tuple[UpstreamView, ...]
    servers: tuple[ServerView, ...]


class MapView(Struct, frozen=True):
    """`map SOURCE $VARIABLE { key value; … }` in http {}."""

    comment: str
    source: str
    variable: str
    entries: tuple[tuple[str, str], ...]


# websocket.html: `Connection` follows the client's `Upgrade`. Empty instead of the page's
# `close` for requests without one: an empty header is not sent, which keeps the pooled
# upstream connection reusable (upstream module #keepalive).
CONNECTION_UPGRADE_MAP = MapView(
    comment="Connection to the next hop: `upgrade` when the client asks for a protocol switch "
    "(WebSocket), otherwise none, so ordinary requests keep the pooled connection "
    "(nginx.org/en/docs/http/websocket.html)",
    source="$http_upgrade",
    variable="$connection_upgrade",
    entries=(("default", "upgrade"), ("", "")),
)


class PassTarget(Struct, frozen=True):
    """Where one location sends its requests."""

    upstream: str
    tls: bool
    """The next hop's listener speaks TLS: https:// (grpcs:// for gRPC)."""


def render(ctx: RenderContext) -> list[RenderedFile]:
    hop = ctx.plan.first_of(NginxHttpHop)
    if hop is None:
        return []
    edge = hop.tier
    view = build_view(ctx, edge)
    env = ctx.env
    return [
        RenderedFile(
            f"{edge.name}/nginx.conf",
            env.get_template("nginx_http/nginx.conf.j2").render(view=view),
            FileTarget("nginx_http", edge.name, edge.version),
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
            when = "re-resolved while nginx runs" if edge.resolver else "resolved when nginx loads"
            how = (
                f"headless Service: one server per ready pod, {when}"
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

    websocket = any("websocket" in service.streaming for service in spec.services)
    return NginxHttpView(
        header=ctx.header(),
        target=target_comment("nginx_http", edge.name, edge.version),
        worker_processes=str(edge.worker_processes),
        include=f"conf.d/{spec.name}.conf",
        maps=(CONNECTION_UPGRADE_MAP,) if websocket else (),
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
    lines += resolver_directives(name, edge.resolver, [host for host, _ in addresses])
    lines += [
        server_directive(host, port, edge.passive_health, resolve=edge.resolver is not None)
        for host, port in addresses
    ]
    lines += pool
    return UpstreamView(name, comment, tuple(lines))


def pool_directives(edge: NginxHttpTier, budget: UpstreamBudget) -> list[Directive]:
    """`keepalive*` lines of the upstream blocks, from the resolved keep-alive budget."""
    version = edge.version
    connections = budget.connections.value
    if not connections:
        if version >= NGINX_KEEPALIVE_BY_DEFAULT.since:
            # Silence would mean `keepalive 32 local` on these versions.
            return [
                directive(
                    "keepalive",
                    0,
                    comment=f"pool disabled ({budget.connections.explained()}); nginx ≥ 1.29.7 "
                    f"would pool 32 per worker by default ({UPSTREAM_DOC}#keepalive)",
                )
            ]
        return []  # no `keepalive`: no pool before 1.29.7 (and `keepalive 0` is invalid there)
    lines = [
        directive(
            "keepalive",
            connections,
            comment=f"pool of idle connections per worker ({budget.connections.explained()}). "
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
                f"close it ({budget.idle_timeout.explained()})",
            )
        )
        lines.append(
            directive(
                "keepalive_requests",
                requests,
                comment=f"requests per pooled connection ({budget.max_requests.explained()})",
            )
        )
    lifetime = budget.max_lifetime.value
    if lifetime is not None and version >= NGINX_UPSTREAM_KEEPALIVE_TIME_SINCE.since:
        lines.append(
            directive(
                "keepalive_time",
                lifetime,
                comment=f"lifetime of a pooled connection ({budget.max_lifetime.explained()})",
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
    # Streams get a location of their own: the next hop still routes, but this hop must not
    # buffer SSE nor cut a quiet stream as an ordinary request. Services that share a path
    # (under different hosts) share the location, with what each of them needs.
    streaming_paths = _streaming_by_path(spec.services)
    catch_all = streaming_paths.pop("/", None)
    for path, needs in streaming_paths.items():
        locations.append(
            _http_location(
                (path,),
                f"{needs.streaming_label()}; routing happens at {http_target.upstream}",
                edge,
                http_target,
                pooled,
                uri="",
                stream=needs,
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
            stream=catch_all,
        )
    )
    return ServerView(
        "", tuple(_server_directives(edge, shared, default_server=False)), tuple(locations)
    )


def _streaming_by_path(services: Sequence[Service]) -> dict[str, StreamingNeeds]:
    """For each path of a WebSocket/SSE service, what its location must do (paths sorted)."""
    needs: dict[str, StreamingNeeds] = {}
    for service in services:
        if not service.streaming or service.protocol == "grpc":
            continue
        for path in service.paths:
            needs[path] = needs.get(path, StreamingNeeds()).add(service)
    return dict(sorted(needs.items()))


class StreamingNeeds(Struct, frozen=True):
    """The streaming kinds and longest silence of the services behind one location."""

    names: tuple[str, ...] = ()
    streaming: tuple[str, ...] = ()
    stream_idle: Duration | None = None

    def add(self, service: Service) -> StreamingNeeds:
        idle = service.stream_idle
        if self.stream_idle is not None and (idle is None or self.stream_idle > idle):
            idle = self.stream_idle
        return StreamingNeeds(
            (*self.names, f"{service.namespace}/{service.name}"),
            tuple(sorted(set(self.streaming) | set(service.streaming))),
            idle,
        )

    @property
    def name(self) -> str:
        return ", ".join(self.names)

    def streaming_label(self) -> str:
        return f"service {self.name} ({', '.join(self.streaming)})"


def _gateway_servers(
    spec: Spec, edge: NginxHttpTier, shared: Sequence[Directive], pooled: bool
) -> list[ServerView]:
    """The edge as the gateway (next hop: Kubernetes): it routes by path and host itself.

    Services without `route.hosts` live in the catch-all server; the hosts that the same
    services list share one server block (one `server_name` with all of them), as Kong
    would route them: the output grows with hosts + paths, not hosts × paths.
    """
    hostless = [s for s in spec.services if not s.route.hosts]
    groups = host_groups(spec.services)
    several = bool(groups)
    servers = [
        ServerView(
            "requests for any other host" if several else "",
            tuple(_server_directives(edge, shared, default_server=several)),
            tuple(_service_locations(hostless, edge, pooled)),
        )
    ]
    for hosts, services in groups:
        about = f"host {hosts[0]}" if len(hosts) == 1 else f"{len(hosts)} hosts routed alike"
        servers.append(
            ServerView(
                f"requests for {about}",
                tuple(_server_directives(edge, shared, default_server=False, server_names=hosts)),
                tuple(_service_locations(services, edge, pooled)),
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
        stream = StreamingNeeds().add(service) if service.streaming else None
        for path in service.paths:
            claimed.add(path)
            if service.protocol == "grpc":
                # grpc_pass takes no URI, so strip_path cannot apply to gRPC methods.
                locations.append(_grpc_location((path,), f"gRPC {label}", edge, target))
            elif not service.route.strip_path or path == "/":
                locations.append(
                    _http_location((path,), label, edge, target, pooled, uri="", stream=stream)
                )
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
                        stream=stream,
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
                            stream=stream,
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
    server_names: Sequence[str] = (),
) -> list[Directive]:
    """listen, server_name, HTTP/2, TLS, then the lines every server block shares."""
    version = edge.version
    http2_directive = version >= NGINX_HTTP2_DIRECTIVE_SINCE.since
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
    if server_names:
        lines.append(directive("server_name", *server_names))
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




def tls_directives(certificate: str, certificate_key: str) -> list[Directive]:
    """Certificate plus the Mozilla "intermediate" protocol, cipher and HSTS settings."""
    return [
        directive("ssl_certificate", certificate),
        directive("ssl_certificate_key", certificate_key),
        directive(
            "ssl_protocols",
            *defaults.MOZILLA_INTERMEDIATE_PROTOCOLS,
            comment="Mozilla Server Side TLS intermediate profile (server-side-tls-conf-5.0.json)",
        ),
        directive("ssl_ciphers", defaults.MOZILLA_INTERMEDIATE_CIPHERS),
        directive(
            "add_header",
            "Strict-Transport-Security",
            f"max-age={defaults.MOZILLA_HSTS_MAX_AGE}",
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
            comment=f"idle client connections: {timeout.explained()}",
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
    stream: StreamingNeeds | None = None,
) -> LocationView:
    """A proxy_pass location; `stream`: what its WebSocket/SSE services need, if any."""
    streaming = stream.streaming if stream is not None else ()
    websocket = "websocket" in streaming
    scheme = "https" if target.tls else "http"
    lines = [directive("proxy_pass", f"{scheme}://{target.upstream}{uri}")]
    headers = _forwarded_headers(edge)
    if pooled or websocket:
        # Explicit on every version: 1.29.7 made HTTP/1.1 the default, but the same file may
        # run on an older nginx (Debian 12 ships 1.22.1), where the default is HTTP/1.0 and
        # `Connection: close`: every request would open a new upstream connection.
        why = (
            "HTTP/1.1 upstream, on every nginx version: keeps pooled connections open "
            f"({UPSTREAM_DOC}#keepalive)"
            if pooled
            else "the WebSocket handshake needs HTTP/1.1 (nginx.org/en/docs/http/websocket.html)"
        )
        if pooled and websocket:
            why += " and carries the WebSocket handshake"
        lines.append(directive("proxy_http_version", "1.1", comment=why))
    if websocket:
        headers[1:1] = [("Upgrade", "$http_upgrade"), ("Connection", "$connection_upgrade")]
    elif pooled:
        headers.insert(1, ("Connection", ""))
    # All proxy_set_header lines at this one level: a level that sets any of them inherits
    # none from outer levels (proxy module #proxy_set_header).
    for index, (name, value) in enumerate(headers):
        note = ""
        if name == "Upgrade":
            note = "hop-by-hop: passed on explicitly so the WebSocket handshake reaches the app"
        elif name == "Connection" and value:
            note = "`upgrade` with an Upgrade request, empty (not sent) otherwise: see the map"
        elif name == "Connection":
            note = "cleared, or nginx before 1.29.7 sends `Connection: close` and the pool is unused"
        elif index == 0:
            note = (
                "all proxy_set_header lines stay at this level: one here drops every inherited one"
            )
        lines.append(directive("proxy_set_header", name, value, comment=note))
    if "sse" in streaming:
        lines.append(
            directive(
                "proxy_buffering",
                "off",
                comment="server-sent events go to the client as they arrive, not when a buffer "
                f"fills ({PROXY_DOC}#proxy_buffering)",
            )
        )
    lines += _timeouts(edge, "proxy", stream)
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


def _timeouts(
    edge: NginxHttpTier, module: str, stream: StreamingNeeds | None = None
) -> list[Directive]:
    timeouts = edge.timeouts
    lines = []
    read_comment = ""
    read = timeouts.read
    stream_read = streaming_read_timeout(edge, stream)
    if stream_read is not None:
        assert stream is not None  # streaming_read_timeout returns None without one
        read = stream_read
        read_comment = (
            f"streams of {stream.name} may stay silent for {stream.stream_idle} "
            "(stream_idle); nginx closes a connection after this long without data "
            f"({PROXY_DOC}#proxy_read_timeout)"
        )
    for name, value, note in (
        ("connect", timeouts.connect, ""),
        ("read", read, read_comment),
        ("send", timeouts.send, ""),
    ):
        if value is not None:
            lines.append(directive(f"{module}_{name}_timeout", value, comment=note))
    return lines


def streaming_read_timeout(edge: NginxHttpTier, stream: StreamingNeeds | None) -> Duration | None:
    """proxy_read_timeout of a WebSocket/SSE location, when the tier's own is too short.

    The stream's longest silence (`stream_idle`) plus the spec's keep-alive margin rule (10%,
    at least 1s), so a quiet stream is not taken for a dead upstream. None: the tier's value.
    """
    if stream is None or not stream.streaming or stream.stream_idle is None:
        return None
    idle = stream.stream_idle
    current = edge_read_timeout(edge).value
    if current > idle:
        return None
    return Duration(idle.ms + max(1000, idle.ms // 10))


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
