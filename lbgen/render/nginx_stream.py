"""Renderer for the nginx L4 tier (`stream {}`): a complete nginx.conf and an includable snippet.

Files: `<tier>/nginx.conf` (optional `load_module`, worker_processes, events,
`stream { include stream.d/<spec>.conf; }`) and `<tier>/stream.d/<spec>.conf` (the upstream
and the server block). A stream proxy pairs each client connection with one upstream
connection, so it has no pool of its own: its idle timer, `proxy_timeout`, applies to both
legs and must outlive the pooled connections of the L7 hop in front (the keep-alive budget).
"""

from __future__ import annotations

from msgspec import Struct

from lbgen import defaults
from lbgen.defaults import DEBIAN_STREAM_MODULE
from lbgen.model.tiers import NginxStreamTier
from lbgen.plan.hops import NginxStreamHop
from lbgen.render._base import FileTarget, RenderContext, RenderedFile
from lbgen.render._nginx import (
    Directive,
    UpstreamView,
    balancing_directive,
    directive,
    resolver_directives,
    server_directive,
    stream_grpc_target,
    stream_target,
    target_comment,
)

STREAM_PROXY_DOC = defaults.NGINX_STREAM_PROXY_DOC


class NginxStreamView(Struct, frozen=True):
    header: str
    target: str
    load_module: str | None
    worker_processes: str
    include: str
    """Path of the snippet, relative to nginx.conf's directory (nginx resolves it there)."""
    upstreams: tuple[UpstreamView, ...]
    servers: tuple[tuple[Directive, ...], ...]
    """One server block per listener: `listen_port`, and `grpc_listen_port` when set."""


def render(ctx: RenderContext) -> list[RenderedFile]:
    hop = ctx.plan.first_of(NginxStreamHop)
    if hop is None:
        return []
    l4 = hop.tier
    view = build_view(ctx, l4)
    env = ctx.env
    return [
        RenderedFile(
            f"{l4.name}/nginx.conf",
            env.get_template("nginx_stream/nginx.conf.j2").render(view=view),
            FileTarget("nginx_stream", l4.name, l4.version, build=l4.stream_build),
        ),
        RenderedFile(
            f"{l4.name}/{view.include}",
            env.get_template("nginx_stream/snippet.conf.j2").render(view=view),
        ),
    ]


def build_view(ctx: RenderContext, l4: NginxStreamTier) -> NginxStreamView:
    spec = ctx.spec
    targets = [(l4.listen_port, stream_target(spec, l4))]
    grpc = stream_grpc_target(spec, l4)
    if grpc is not None and l4.grpc_listen_port is not None:
        targets.append((l4.grpc_listen_port, grpc))
    method = balancing_directive(l4.balancing, stream=True)
    upstreams = []
    for _port, target in targets:
        upstream_lines = [method] if method is not None else []
        upstream_lines += resolver_directives(
            target.upstream, l4.resolver, [host for host, _ in target.servers]
        )
        upstream_lines += [
            server_directive(host, port, l4.passive_health, resolve=l4.resolver is not None)
            for host, port in target.servers
        ]
        upstreams.append(UpstreamView(target.upstream, target.comment, tuple(upstream_lines)))
    return NginxStreamView(
        header=ctx.header(),
        target=target_comment("nginx_stream", l4.name, l4.version, build=l4.stream_build),
        load_module=(l4.stream_module_path or DEBIAN_STREAM_MODULE)
        if l4.stream_build == "debian"
        else None,
        worker_processes=str(l4.worker_processes),
        include=f"stream.d/{spec.name}.conf",
        upstreams=tuple(upstreams),
        servers=tuple(
            tuple(server_directives(ctx, l4, target.upstream, port)) for port, target in targets
        ),
    )


def server_directives(
    ctx: RenderContext, l4: NginxStreamTier, upstream: str, port: int
) -> list[Directive]:
    listen: list[str | int] = [port]
    if l4.accept_proxy_protocol:
        listen.append("proxy_protocol")
    lines = [directive("listen", *listen)]
    # Stream realip: trust the client address of PROXY headers from these peers only.
    lines += [directive("set_real_ip_from", cidr) for cidr in l4.trusted_proxies]
    lines.append(directive("proxy_pass", upstream))
    timeout = ctx.budget.l4_proxy_timeout
    assert timeout is not None  # resolve_budget fills it whenever the spec has an L4 tier
    lines.append(
        directive(
            "proxy_timeout",
            timeout.value,
            comment="idle time after which both legs are closed; must outlive the caller's pooled "
            f"connections: {timeout.explained()}",
        )
    )
    if l4.connect_timeout is not None:
        lines.append(directive("proxy_connect_timeout", l4.connect_timeout))
    if l4.send_proxy_protocol:
        lines.append(
            directive(
                "proxy_protocol",
                "on",
                comment="the PROXY header carries this tier's client: the hop in front, not the "
                f"end user ({STREAM_PROXY_DOC}#proxy_protocol)",
            )
        )
    if l4.next_upstream is not None:
        lines.append(
            directive(
                "proxy_next_upstream",
                "on" if l4.next_upstream else "off",
                comment="only covers failing to connect; a stream proxy never resends data",
            )
        )
    if l4.next_upstream_tries is not None:
        lines.append(directive("proxy_next_upstream_tries", l4.next_upstream_tries))
    return lines
