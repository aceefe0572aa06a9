"""LB6xx — HTTP/2 and gRPC across hops, and long-lived streams against idle timers.

gRPC needs HTTP/2 on every L7 listener it crosses. HTTP/2 multiplexes calls on one
long-lived connection, so an L4 hop pins all of a client's calls to one backend. Streams
(gRPC streaming, WebSocket, SSE) that stay silent longer than any hop's idle timer are cut.
"""

from __future__ import annotations

from collections.abc import Iterator

from lbgen import defaults
from lbgen.model.service import Service
from lbgen.model.types import Duration
from lbgen.plan.hops import HopPlan, KongHop, NginxHttpHop
from lbgen.plan.topology import gateway_entry_listener
from lbgen.rules._base import (
    FIRST_RELEASE,
    NEXT_RELEASE,
    ModelPath,
    Rule,
    RuleContext,
    RuleDoc,
    Severity,
    Violation,
)

NGINX_GRPC = f"https://{defaults.NGINX_GRPC_DOC}"
NGINX_HTTP2 = f"https://{defaults.NGINX_HTTP2_DOC}"
NGINX_LISTEN = f"https://{defaults.NGINX_CORE_DOC}#listen"
KONG_CONF = "https://github.com/Kong/kong/blob/master/kong.conf.default"
GRPC_K8S_BLOG = (
    "https://kubernetes.io/blog/2018/11/07/grpc-load-balancing-on-kubernetes-without-tears/"
)


def _grpc_services(services: list[Service]) -> list[tuple[int, Service]]:
    return [(i, s) for i, s in enumerate(services) if s.protocol == "grpc"]


def _grpc_subject(found: list[tuple[int, Service]]) -> str:
    return f"gRPC service{'s' if len(found) > 1 else ''} {_names(found)}"


def _names(found: list[tuple[int, Service]], limit: int = 3) -> str:
    names = [s.name for _, s in found[:limit]]
    more = f", … {len(found) - limit} more" if len(found) > limit else ""
    return ", ".join(names) + more


# --- LB601 ---------------------------------------------------------------------------------


def _gateway_listener_without_h2(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.hops_of(KongHop):
        yield from _kong_listener_without_h2(ctx, hop)


def _kong_listener_without_h2(ctx: RuleContext, hop: KongHop) -> Iterator[Violation]:
    spec, kong = ctx.spec, hop.tier
    grpc = _grpc_services(spec.services)
    if not grpc:
        return
    first = ("services", grpc[0][0], "protocol")
    peer = ctx.plan.previous_tier_hop(hop)
    if peer is not None:
        index, listener = gateway_entry_listener(spec, kong)
        if listener.http2:
            return
        yield Violation(
            message=(
                f"{_grpc_subject(grpc)} reach{'' if len(grpc) > 1 else 'es'} {kong.name} "
                f"through {peer.name} as HTTP/2, but no {kong.name} proxy_listen entry that "
                f"{peer.name} can use has the http2 flag, so it connects to port "
                f"{listener.port}, where Kong reads the HTTP/2 preface as a broken HTTP/1 "
                "request: every call fails"
            ),
            hint=f"add http2: true to {kong.name}'s proxy_listen port {listener.port}",
            path=ctx.tier_path(kong, "proxy_listen", index, "http2"),
            related_path=first,
        )
    elif not any(listener.http2 for listener in kong.proxy_listen):
        ports = ", ".join(str(listener.port) for listener in kong.proxy_listen)
        yield Violation(
            message=(
                f"{_grpc_subject(grpc)} need{'' if len(grpc) > 1 else 's'} HTTP/2 from "
                f"clients, but none of {kong.name}'s proxy_listen entries ({ports}) has http2"
            ),
            hint=(
                f"add http2: true to a {kong.name} proxy_listen entry (with tls: true for "
                "h2 over TLS, or without for h2c)"
            ),
            path=ctx.tier_path(kong, "proxy_listen"),
            related_path=first,
        )


GATEWAY_LISTENER_WITHOUT_H2 = Rule(
    code="LB601",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="grpc-gateway-listener-without-http2",
    severity=Severity.ERROR,
    summary="gRPC reaches Kong on a proxy_listen entry without http2",
    tiers=frozenset({"kong"}),
    check=_gateway_listener_without_h2,
    doc=RuleDoc(
        what=(
            "A service has `protocol: grpc` and the Kong `proxy_listen` entry its traffic "
            "arrives on lacks the `http2` flag: with a hop in front of Kong, the entry lbgen "
            "points that hop at (an `http2` entry whose PROXY-protocol flag matches, when one "
            "exists); with clients connecting directly, every entry."
        ),
        why=(
            "gRPC runs over HTTP/2 end to end. The edge's `grpc_pass` (and any gRPC client) "
            "speaks HTTP/2 to Kong, which only works on a listener with the `http2` flag; "
            "on a plain HTTP/1 listener nginx inside Kong rejects the HTTP/2 connection "
            "preface and every call fails. Kong's default has `http2` only on the TLS port "
            "8443 (lbgen then sends gRPC there over TLS); a `proxy_listen` without any "
            "`http2` entry, or whose only `http2` entries have the wrong PROXY-protocol flag "
            "for the hop in front, cannot carry gRPC."
        ),
        example="""\
name: rpc
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    listen: [{port: 80, http2: true}]
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    proxy_listen:
      - {port: 8000}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: greeter
    protocol: grpc
    replicas: 2
    app: {preset: go}
""",
        fix="""\
name: rpc
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    listen: [{port: 80, http2: true}]
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    proxy_listen:
      - {port: 8000, http2: true}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: greeter
    protocol: grpc
    replicas: 2
    app: {preset: go}
""",
        references=(
            KONG_CONF + " (proxy_listen: http2)",
            "https://developer.konghq.com/gateway/entities/service/ (protocol grpc)",
            NGINX_LISTEN,
        ),
    ),
)


# --- LB602 ---------------------------------------------------------------------------------


def _edge_listener_without_h2(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.hops_of(NginxHttpHop):
        yield from _nginx_listener_without_h2(ctx, hop)


def _nginx_listener_without_h2(ctx: RuleContext, hop: NginxHttpHop) -> Iterator[Violation]:
    spec, edge = ctx.spec, hop.tier
    if any(listener.http2 for listener in edge.listen):
        return
    grpc = _grpc_services(spec.services)
    if not grpc:
        return
    ports = ", ".join(str(listener.port) for listener in edge.listen)
    yield Violation(
        message=(
            f"{_grpc_subject(grpc)} need{'' if len(grpc) > 1 else 's'} HTTP/2 from "
            f"clients, but none of {edge.name}'s listeners ({ports}) has http2, so gRPC "
            "clients cannot talk to the edge at all"
        ),
        hint=(
            f"add http2: true to one of {edge.name}'s listeners (tls: true for h2 over TLS, which "
            "gRPC clients negotiate with ALPN)"
        ),
        path=ctx.tier_path(edge, "listen"),
        related_path=("services", grpc[0][0], "protocol"),
    )


EDGE_LISTENER_WITHOUT_H2 = Rule(
    code="LB602",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="grpc-edge-listener-without-http2",
    severity=Severity.ERROR,
    summary="gRPC services behind an edge with no HTTP/2 listener",
    tiers=frozenset({"nginx_http"}),
    check=_edge_listener_without_h2,
    doc=RuleDoc(
        what="A service has `protocol: grpc` and none of the edge nginx's listeners has `http2`.",
        why=(
            "nginx's gRPC proxying (`grpc_pass`) requires the client side to speak HTTP/2: "
            "the module's example uses `listen …; http2 on;`. Without an HTTP/2 listener "
            "gRPC clients fail the handshake (h2 via ALPN over TLS, or h2c prior knowledge)."
        ),
        example="""\
name: rpc
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: greeter
    protocol: grpc
    replicas: 2
    app: {preset: go}
""",
        fix="""\
name: rpc
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    listen: [{port: 80, http2: true}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: greeter
    protocol: grpc
    replicas: 2
    app: {preset: go}
""",
        references=(NGINX_GRPC, NGINX_HTTP2, NGINX_LISTEN),
    ),
)


# --- LB603 ---------------------------------------------------------------------------------


def _grpc_pinned_by_l4(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.tier_hops:
        if hop.layer == "l4":
            yield from _grpc_pinned_by_relay(ctx, hop)


def _grpc_pinned_by_relay(ctx: RuleContext, hop: HopPlan) -> Iterator[Violation]:
    spec, l4 = ctx.spec, hop
    caller = ctx.plan.previous_tier_hop(hop)
    if caller is not None and caller.layer == "l7":
        return  # behind the edge, each gRPC call is its own upstream request (LB410 covers pools)
    grpc = _grpc_services(spec.services)
    if not grpc:
        return
    callee = ctx.plan.next_hop(hop)
    if callee is None:
        return
    if callee.layer == "cluster":
        spread = grpc[0][1].replicas
        target = f"one of the {spread} {grpc[0][1].name} pods (through the ClusterIP)"
    else:
        spread = hop.group_size
        target = f"one of the {spread} {callee.name} instances"
    if spread < 2:
        return
    yield Violation(
        message=(
            f"gRPC clients of {_names(grpc)} multiplex all their calls on one long-lived "
            f"HTTP/2 connection, and {l4.name} balances connections, not calls: every call of "
            f"a client goes to {target} its connection landed on, however busy"
        ),
        hint=(
            f"put an L7 hop in front of {l4.name} (the nginx_http edge balances each call), "
            "or have clients balance themselves (several connections, client-side "
            "balancing, a server-side max connection age)"
        ),
        path=ctx.hop_path(l4, "balancing"),
        related_path=("services", grpc[0][0], "protocol"),
    )


GRPC_PINNED_BY_L4 = Rule(
    code="LB603",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="grpc-connections-pinned-by-l4",
    severity=Severity.WARNING,
    summary="gRPC clients connect through an L4 hop that pins each connection's calls",
    tiers=frozenset({"nginx_stream", "kong", "kubernetes"}),
    check=_grpc_pinned_by_l4,
    doc=RuleDoc(
        what=(
            "gRPC services are reached through the nginx stream tier with no L7 hop in front "
            "of it (clients, or an external load balancer, connect straight to the L4 tier)."
        ),
        why=(
            "gRPC multiplexes many calls over one long-lived HTTP/2 connection. An L4 proxy "
            "chooses a backend once per connection, so all calls of a client stay on one "
            "backend for the connection's life, and load follows the number of clients, not "
            "calls. An L7 hop (nginx `grpc_pass`, Kong) balances each call."
        ),
        example="""\
name: rpc
tiers:
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
    proxy_listen: [{port: 8000, http2: true}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: greeter
    protocol: grpc
    replicas: 4
    app: {preset: go}
""",
        fix="""\
name: rpc
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    listen: [{port: 80, http2: true}]
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
  - kind: kong
    name: gateway
    instances:
      - {name: kong-1, address: 10.0.1.1}
      - {name: kong-2, address: 10.0.1.2}
    proxy_listen: [{port: 8000, http2: true}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: greeter
    protocol: grpc
    replicas: 4
    app: {preset: go}
""",
        references=(
            GRPC_K8S_BLOG,
            "https://nginx.org/en/docs/stream/ngx_stream_upstream_module.html#upstream",
            NGINX_GRPC,
        ),
    ),
)


# --- LB604 ---------------------------------------------------------------------------------


def _stream_outlives_timers(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    streams = [(i, s) for i, s in enumerate(spec.services) if s.stream_idle is not None]
    if not streams:
        return

    # Tier-wide idle timers: one finding each, against the longest stream silence.
    timers: list[tuple[ModelPath, str, Duration]] = []
    edge_path: ModelPath | None = None
    for hop in ctx.plan.tier_hops:
        if isinstance(hop, NginxHttpHop):
            edge_path = ctx.hop_path(hop, "timeouts", "read")
            timers.append((edge_path, f"{hop.name} proxy_read_timeout/grpc_read_timeout",
                           hop.read_timeout.value))
        elif hop.layer == "l4" and (closer := hop.idle_close) is not None:
            timers.append((ctx.hop_path(hop, *closer.key), f"{hop.name} {closer.name}", closer.value.value))
    cluster, front = ctx.plan.cluster, ctx.plan.front_of_cluster
    nat = cluster.nat_idle_limit
    if (
        front is not None and not front.dials_pods
        and nat is not None and nat.key == ("kube_proxy", "ipvs", "tcp_timeout")
    ):
        timers.append((ctx.hop_path(cluster, *nat.key), "kube-proxy IPVS tcp timeout", nat.value))

    for path, label, value in timers:
        cut_indexed = [
            (i, s)
            for i, s in streams
            if s.stream_idle is not None
            and s.stream_idle >= value
            # The edge gives WebSocket/SSE locations a read timeout above stream_idle.
            and not (path == edge_path and s.streaming)
        ]
        if not cut_indexed:
            continue
        cut = [s for _, s in cut_indexed]
        longest_index, longest = max(cut_indexed, key=lambda item: item[1].stream_idle or Duration(0))
        longest_idle = longest.stream_idle
        more = f", … {len(cut) - 3} more" if len(cut) > 3 else ""
        names = ", ".join(s.name for s in cut[:3]) + more
        which = f" ({longest.name})" if len(cut) > 1 else ""
        yield Violation(
            message=(
                f"{label} is {value}, but streams of {names} stay silent for up to "
                f"{longest_idle}{which}: the hop closes them as idle mid-stream"
            ),
            hint=(
                f"raise {label} above {longest_idle}, or have the app send keep-alive pings "
                f"more often than every {value}"
            ),
            path=path,
            related_path=("services", longest_index, "stream_idle"),
        )

    for kong in ctx.plan.hops_of(KongHop):
        yield from _stream_outlives_kong_read(kong, streams)


def _stream_outlives_kong_read(kong: KongHop, streams: list[tuple[int, Service]]) -> Iterator[Violation]:
    for index, service in streams:
        idle = service.stream_idle
        assert idle is not None
        read = kong.services[index].read_timeout.value
        if idle < read:
            continue
        yield Violation(
            message=(
                f"service {service.name}: {kong.name}'s read_timeout is {read}, but its streams "
                f"stay silent for up to {idle}: Kong closes them as timed out mid-stream"
            ),
            hint=(
                f"raise kong.timeouts.read for {service.name} above {idle}, or have the app "
                f"send keep-alive pings more often than every {read}"
            ),
            path=("services", index, "kong", "timeouts", "read"),
            related_path=("services", index, "stream_idle"),
        )


STREAM_OUTLIVES_TIMERS = Rule(
    code="LB604",
    status="stable",
    since=FIRST_RELEASE,
    reads=(
        "kong:services.*.timeouts.read",
        "nginx_http:timeouts.read",
        "nginx_stream:proxy_timeout",
    ),
    name="stream-idle-exceeds-hop-timeout",
    severity=Severity.WARNING,
    summary="Long-lived streams stay silent longer than a hop's idle timer",
    tiers=frozenset({"nginx_http", "nginx_stream", "kong", "kubernetes"}),
    check=_stream_outlives_timers,
    doc=RuleDoc(
        what=(
            "For services with long-lived streams (`stream_idle`: the longest silence on a "
            "WebSocket, SSE or gRPC stream), every idle timer on the path: the edge's "
            "`proxy_read_timeout`/`grpc_read_timeout` (60s), the L4 tier's `proxy_timeout` "
            "(10m), Kong's Service `read_timeout` (60000 ms), and the IPVS TCP timeout "
            "(kernel default 900s) when kube-proxy runs IPVS on the path."
        ),
        why=(
            "Each of these timers closes a connection that has carried no data for that "
            "long (nginx: 'between two successive read operations'). A stream that is quiet "
            "for longer is cut by whichever hop has the shortest timer, and the client sees "
            "an unexplained disconnect. Raise the timers or make the application ping more "
            "often than the shortest one."
        ),
        example="""\
name: live
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: feed
    replicas: 2
    app: {preset: nodejs}
    stream_idle: 5m
""",
        fix="""\
name: live
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    timeouts: {read: 10m}
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: feed
    replicas: 2
    app: {preset: nodejs}
    stream_idle: 5m
    kong: {timeouts: {read: 10m}}
""",
        references=(
            "https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_read_timeout",
            "https://nginx.org/en/docs/http/ngx_http_grpc_module.html#grpc_read_timeout",
            "https://nginx.org/en/docs/stream/ngx_stream_proxy_module.html#proxy_timeout",
            "https://developer.konghq.com/gateway/entities/service/ (read_timeout)",
            "https://kubernetes.io/docs/reference/config-api/kube-proxy-config.v1alpha1/ (ipvs.tcpTimeout)",
        ),
    ),
)


# --- LB605 ---------------------------------------------------------------------------------


def _stream_idle_unknown(ctx: RuleContext) -> Iterator[Violation]:
    spec = ctx.spec
    timers: list[str] = []
    for hop in ctx.plan.tier_hops:
        if isinstance(hop, NginxHttpHop):
            timers.append(f"{hop.name} proxy_read_timeout {hop.read_timeout.value}")
        elif hop.layer == "l4" and (closer := hop.idle_close) is not None:
            timers.append(f"{hop.name} {closer.name} {closer.value.value}")
    kongs = ctx.plan.hops_of(KongHop)
    for index, service in enumerate(spec.services):
        if not service.streaming or service.stream_idle is not None:
            continue
        hops = list(timers)
        for kong in kongs:
            hops.append(f"{kong.name} read_timeout {kong.services[index].read_timeout.value}")
        if not hops:
            continue
        yield Violation(
            message=(
                f"service {service.name} carries {' and '.join(service.streaming)} streams but "
                "says nothing of how long they stay silent (stream_idle), so no hop's idle timer "
                f"is sized for them ({', '.join(hops)}): a stream quiet for longer than a "
                "hop's timer is closed mid-stream"
            ),
            hint=(
                f"set stream_idle on {service.name} (the longest silence, e.g. the app's ping "
                "interval): lbgen then gives the edge location a longer read timeout and LB604 "
                "checks every other hop"
            ),
            path=("services", index, "streaming"),
        )


STREAM_IDLE_UNKNOWN = Rule(
    code="LB605",
    status="preview",
    since=NEXT_RELEASE,
    reads=(
        "kong:services.*.timeouts.read",
        "nginx_http:timeouts.read",
        "nginx_stream:proxy_timeout",
    ),
    name="stream-cut-by-request-timeouts",
    severity=Severity.WARNING,
    summary="A WebSocket/SSE service does not say how long its streams stay silent",
    tiers=frozenset({"nginx_http", "nginx_stream", "kong"}),
    check=_stream_idle_unknown,
    doc=RuleDoc(
        what=(
            "Services with `streaming` (WebSocket, SSE) and no `stream_idle`, on a path with "
            "an nginx or Kong hop. lbgen forwards the WebSocket handshake (`Upgrade`, "
            "`Connection` through a map) and turns response buffering off for SSE at every "
            "hop it renders; what it cannot size without `stream_idle` are the idle timers "
            "a stream must outlive."
        ),
        why=(
            "Once upgraded, a WebSocket is a tunnel that nginx closes after "
            "`proxy_read_timeout` (60s by default) without data: the nginx WebSocket page "
            "says so and recommends pings or a longer timeout. SSE streams are the same kind "
            "of long response. Kong's Service `read_timeout` (60000 ms) and the L4 tier's "
            "`proxy_timeout` apply too, so a stream quieter than the shortest of them is cut."
        ),
        example="""\
name: live
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: chat
    replicas: 2
    app: {preset: nodejs}
    streaming: [websocket]
""",
        fix="""\
name: live
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: chat
    replicas: 2
    app: {preset: nodejs}
    streaming: [websocket]
    stream_idle: 30s
""",
        references=(
            "https://nginx.org/en/docs/http/websocket.html",
            "https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_read_timeout",
            "https://nginx.org/en/docs/stream/ngx_stream_proxy_module.html#proxy_timeout",
            "https://developer.konghq.com/gateway/entities/service/ (read_timeout)",
        ),
    ),
)


# --- LB606 ---------------------------------------------------------------------------------


def _sse_buffered(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.hops_of(KongHop):
        yield from _kong_buffers_sse(ctx, hop)


def _kong_buffers_sse(ctx: RuleContext, hop: KongHop) -> Iterator[Violation]:
    kong = hop.tier
    for index, service in enumerate(ctx.spec.services):
        if "sse" in service.streaming and service.kong.response_buffering:
            yield Violation(
                message=(
                    f"service {service.name} sends server-sent events, but its {kong.name} "
                    "route has response_buffering: true: Kong buffers the response, so events "
                    "reach clients late, in bursts, or only when the stream ends"
                ),
                hint=f"remove kong.response_buffering from {service.name} (lbgen then renders "
                "false for SSE) or set it to false",
                path=("services", index, "kong", "response_buffering"),
                related_path=("services", index, "streaming"),
            )


SSE_BUFFERED = Rule(
    code="LB606",
    status="preview",
    since=NEXT_RELEASE,
    reads=(),
    name="sse-response-buffered",
    severity=Severity.WARNING,
    summary="Server-sent events pass a hop that buffers the response",
    tiers=frozenset({"kong"}),
    check=_sse_buffered,
    doc=RuleDoc(
        what=(
            "Services with `streaming: [sse]` whose Kong route is told to buffer responses "
            "(`kong.response_buffering: true`). The edge's SSE locations always render "
            "`proxy_buffering off`, and Kong routes of SSE services get `response_buffering: "
            "false` unless the spec says otherwise."
        ),
        why=(
            "An SSE response is one long HTTP response whose events must reach the client "
            "as the server writes them. Kong buffers upstream responses by default "
            "(route `response_buffering`, default true, added for chunked upstream responses "
            "in Kong/kong#6057); nginx does the same with `proxy_buffering on`, its default. "
            "A buffered event stream arrives late or in bursts, and clients time out or "
            "reconnect."
        ),
        example="""\
name: live
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: feed
    replicas: 2
    app: {preset: nodejs}
    streaming: [sse]
    stream_idle: 30s
    kong: {response_buffering: true}
""",
        fix="""\
name: live
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: feed
    replicas: 2
    app: {preset: nodejs}
    streaming: [sse]
    stream_idle: 30s
""",
        references=(
            "https://github.com/Kong/kong/pull/6057 (route request_buffering/response_buffering)",
            "https://developer.konghq.com/gateway/entities/route/ (response_buffering)",
            (
                "https://developer.konghq.com/kubernetes-ingress-controller/reference/annotations/"
                " (konghq.com/response-buffering)"
            ),
            "https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_buffering",
        ),
    ),
)


RULES: tuple[Rule, ...] = (
    GATEWAY_LISTENER_WITHOUT_H2,
    EDGE_LISTENER_WITHOUT_H2,
    GRPC_PINNED_BY_L4,
    STREAM_OUTLIVES_TIMERS,
    STREAM_IDLE_UNKNOWN,
    SSE_BUFFERED,
)

__all__ = ["RULES"]
