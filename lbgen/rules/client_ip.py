"""LB5xx — client IP across hops: PROXY protocol on both ends, real-IP trust chains.

Each hop replaces the connection's source address with its own. The user's address only
survives if the hop in front passes it (X-Forwarded-For or a PROXY header) *and* the hop
behind is configured to read it from there and to trust the sender.
"""

from __future__ import annotations

from collections.abc import Iterator

from lbgen import defaults
from lbgen.model.tiers import KongTier, NginxHttpTier, NginxStreamTier, Tier
from lbgen.plan.hops import KongHop, NginxHttpHop, NginxStreamHop
from lbgen.plan.topology import describe_instances, gateway_entry_listener, uncovered_instances
from lbgen.rules._base import (
    FIRST_RELEASE,
    NEXT_RELEASE,
    Rule,
    RuleContext,
    RuleDoc,
    Severity,
    Violation,
)

NGINX_STREAM_PROXY_PROTOCOL = (
    "https://nginx.org/en/docs/stream/ngx_stream_proxy_module.html#proxy_protocol"
)
NGINX_LISTEN = f"https://{defaults.NGINX_CORE_DOC}#listen"
NGINX_REALIP = f"https://{defaults.NGINX_REALIP_DOC}#real_ip_header"
NGINX_STREAM_REALIP = f"https://{defaults.NGINX_STREAM_REALIP_DOC}"
KONG_CONF = "https://github.com/Kong/kong/blob/master/kong.conf.default"
KONG_REAL_IP = "https://developer.konghq.com/gateway/configuration/#real-ip-config"


def _ports(kong: KongTier) -> str:
    return ", ".join(
        f"{listener.port}{' proxy_protocol' if listener.proxy_protocol else ''}"
        for listener in kong.proxy_listen
    )


# --- LB501 ---------------------------------------------------------------------------------


def _proxy_protocol_one_sided(ctx: RuleContext) -> Iterator[Violation]:
    for a, b in ctx.plan.pairs():
        if isinstance(a, NginxStreamHop) and isinstance(b, KongHop):
            yield from _proxy_protocol_mismatch(ctx, a.tier, b.tier)


def _proxy_protocol_mismatch(ctx: RuleContext, l4: NginxStreamTier, kong: KongTier) -> Iterator[Violation]:
    spec = ctx.spec
    index, listener = gateway_entry_listener(spec, kong)
    if l4.send_proxy_protocol == listener.proxy_protocol:
        return
    ports = _ports(kong)
    if l4.send_proxy_protocol:
        message = (
            f"{l4.name} sends a PROXY protocol header to {kong.name} (send_proxy_protocol: "
            f"true) but none of {kong.name}'s proxy_listen entries ({ports}) expects one, so "
            f"Kong (port {listener.port}) reads 'PROXY TCP4 …' as an HTTP request line and "
            "answers 400 on every connection"
        )
        hint = (
            f"add proxy_protocol: true to {kong.name}'s proxy_listen port {listener.port}, or "
            f"set {l4.name} send_proxy_protocol: false"
        )
    else:
        message = (
            f"every {kong.name} proxy_listen entry ({ports}) requires a PROXY protocol header "
            f"but {l4.name} does not send one (send_proxy_protocol: false), so Kong (port "
            f"{listener.port}) closes every connection from {l4.name} ('broken header' in its "
            "error log)"
        )
        hint = (
            f"set {l4.name} send_proxy_protocol: true, or add a {kong.name} proxy_listen entry "
            "without proxy_protocol"
        )
    yield Violation(
        message=message,
        hint=hint,
        path=ctx.tier_path(l4, "send_proxy_protocol"),
        related_path=ctx.tier_path(kong, "proxy_listen", index, "proxy_protocol"),
    )


PROXY_PROTOCOL_ONE_SIDED = Rule(
    code="LB501",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="proxy-protocol-one-sided",
    severity=Severity.ERROR,
    summary="The L4 tier and Kong disagree on whether connections start with a PROXY header",
    tiers=frozenset({"nginx_stream", "kong"}),
    check=_proxy_protocol_one_sided,
    doc=RuleDoc(
        what=(
            "The nginx stream tier's `proxy_protocol` (send_proxy_protocol) against the "
            "`proxy_protocol` flags of Kong's `proxy_listen` entries: lbgen points the L4 tier "
            "at an entry whose flag matches, so the problem is when no entry matches."
        ),
        why=(
            "PROXY protocol is all-or-nothing per port. If the L4 tier sends the header and "
            "Kong does not expect it, Kong parses `PROXY TCP4 …` as a request line and "
            "answers 400; if Kong expects it and the L4 tier does not send it, nginx in Kong "
            "rejects every connection with a 'broken header' error. Either way the path is down."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
    send_proxy_protocol: true
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
    send_proxy_protocol: true
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    proxy_listen:
      - {port: 8000, proxy_protocol: true}
    real_ip: {header: proxy_protocol, trusted_ips: [10.0.2.0/24]}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(NGINX_STREAM_PROXY_PROTOCOL, NGINX_LISTEN, KONG_CONF + " (proxy_listen)"),
    ),
)


# --- LB502 ---------------------------------------------------------------------------------


def _proxy_protocol_from_http_proxy(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.hops_of(NginxHttpHop):
        following = ctx.plan.next_hop(hop)
        if following is not None and following.source_tier is not None:
            yield from _proxy_protocol_expected_from(ctx, hop.tier, following.source_tier)


def _proxy_protocol_expected_from(ctx: RuleContext, edge: NginxHttpTier, callee: Tier) -> Iterator[Violation]:
    spec = ctx.spec
    if isinstance(callee, NginxStreamTier) and callee.accept_proxy_protocol:
        path = ctx.tier_path(callee, "accept_proxy_protocol")
        where = f"{callee.name} (accept_proxy_protocol: true)"
        fix = f"set {callee.name} accept_proxy_protocol: false"
    elif isinstance(callee, KongTier):
        index, listener = gateway_entry_listener(spec, callee)
        if not listener.proxy_protocol:
            return
        path = ctx.tier_path(callee, "proxy_listen", index, "proxy_protocol")
        where = f"every {callee.name} proxy_listen entry ({_ports(callee)})"
        fix = (
            f"remove proxy_protocol from {callee.name}'s proxy_listen port {listener.port} "
            "(or add an entry without it for the edge)"
        )
    else:
        return
    yield Violation(
        message=(
            f"{where} expects a PROXY protocol header on every connection, but {edge.name} is "
            "an nginx http proxy, which cannot send one (only nginx stream's proxy_protocol "
            f"can): every connection from {edge.name} is rejected"
        ),
        hint=(
            f"{fix}; {edge.name} already passes the user's address in X-Forwarded-For "
            "(forwarded_headers), so trust it there instead"
        ),
        path=path,
        related_path=ctx.tier_path(edge, "kind"),
    )


PROXY_PROTOCOL_FROM_HTTP_PROXY = Rule(
    code="LB502",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="proxy-protocol-expected-from-http-proxy",
    severity=Severity.ERROR,
    summary="A hop expects PROXY headers from the nginx http edge, which cannot send them",
    tiers=frozenset({"nginx_http", "nginx_stream", "kong"}),
    check=_proxy_protocol_from_http_proxy,
    doc=RuleDoc(
        what=(
            "The hop directly behind the nginx http edge expects PROXY protocol: the L4 tier "
            "with `accept_proxy_protocol`, or Kong when every `proxy_listen` entry has "
            "`proxy_protocol` (lbgen points the edge at an entry without it when one exists)."
        ),
        why=(
            "nginx can send a PROXY header only from the stream module (`proxy_protocol on`); "
            "ngx_http_proxy_module has no such directive. A listener that requires the header "
            "therefore rejects every connection from the edge. The edge passes the user's "
            "address in X-Forwarded-For instead."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
    accept_proxy_protocol: true
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(
            NGINX_STREAM_PROXY_PROTOCOL,
            "https://nginx.org/en/docs/http/ngx_http_proxy_module.html",
            NGINX_LISTEN,
        ),
    ),
)


# --- LB503 ---------------------------------------------------------------------------------


def _real_ip_without_listener(ctx: RuleContext) -> Iterator[Violation]:
    for hop in ctx.plan.tier_hops:
        if isinstance(hop, NginxHttpHop):
            yield from _edge_real_ip_without_listener(ctx, hop.tier)
        elif isinstance(hop, NginxStreamHop):
            yield from _l4_trusts_without_listener(ctx, hop.tier)
        elif isinstance(hop, KongHop):
            yield from _kong_real_ip_without_listener(ctx, hop.tier)


def _edge_real_ip_without_listener(ctx: RuleContext, edge: NginxHttpTier) -> Iterator[Violation]:
    if (
        edge.real_ip is not None
        and edge.real_ip.header == "proxy_protocol"
        and not any(listener.proxy_protocol for listener in edge.listen)
    ):
        ports = ", ".join(str(listener.port) for listener in edge.listen)
        yield Violation(
            message=(
                f"{edge.name} takes the client address from the PROXY header (real_ip.header: "
                f"proxy_protocol) but none of its listeners ({ports}) has proxy_protocol, so "
                "there is never a header and the address stays the connection's"
            ),
            hint=(
                f"add proxy_protocol: true to the {edge.name} listener that receives PROXY "
                "headers, or read X-Forwarded-For instead"
            ),
            path=ctx.tier_path(edge, "real_ip", "header"),
            related_path=ctx.tier_path(edge, "listen"),
        )


def _l4_trusts_without_listener(ctx: RuleContext, l4: NginxStreamTier) -> Iterator[Violation]:
    if l4.trusted_proxies and not l4.accept_proxy_protocol:
        yield Violation(
            message=(
                f"{l4.name} trusts {', '.join(l4.trusted_proxies)} to supply the client address "
                "(set_real_ip_from), but the stream realip module only reads it from a PROXY "
                f"header and {l4.name} does not accept one (accept_proxy_protocol: false)"
            ),
            hint=(
                f"set {l4.name} accept_proxy_protocol: true if the hop in front sends PROXY "
                "headers, or remove trusted_proxies"
            ),
            path=ctx.tier_path(l4, "trusted_proxies"),
            related_path=ctx.tier_path(l4, "accept_proxy_protocol"),
        )


def _kong_real_ip_without_listener(ctx: RuleContext, kong: KongTier) -> Iterator[Violation]:
    if (
        kong.real_ip.header == "proxy_protocol"
        and not any(listener.proxy_protocol for listener in kong.proxy_listen)
    ):
        ports = ", ".join(str(listener.port) for listener in kong.proxy_listen)
        yield Violation(
            message=(
                f"{kong.name} has real_ip_header proxy_protocol but none of its proxy_listen "
                f"entries ({ports}) has the proxy_protocol flag, which kong.conf requires: "
                "no PROXY header is ever read and every client is the connecting proxy"
            ),
            hint=(
                f"add proxy_protocol: true to the {kong.name} proxy_listen entry behind the "
                "PROXY-sending hop, or set real_ip.header: X-Forwarded-For"
            ),
            path=ctx.tier_path(kong, "real_ip", "header"),
            related_path=ctx.tier_path(kong, "proxy_listen"),
        )


REAL_IP_WITHOUT_LISTENER = Rule(
    code="LB503",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="real-ip-proxy-protocol-without-listener",
    severity=Severity.ERROR,
    summary="The client address is read from a PROXY header that no listener accepts",
    tiers=frozenset({"nginx_http", "nginx_stream", "kong"}),
    check=_real_ip_without_listener,
    doc=RuleDoc(
        what=(
            "A hop takes the client address from the PROXY protocol header without a listener "
            "that accepts PROXY headers: nginx `real_ip_header proxy_protocol` without "
            "`listen … proxy_protocol`; stream `set_real_ip_from` without a proxy_protocol "
            "listener; Kong `real_ip_header = proxy_protocol` with no `proxy_listen` entry "
            "flagged `proxy_protocol`."
        ),
        why=(
            "The realip modules read the PROXY header only on listeners that accept it "
            "(nginx: 'The PROXY protocol must be previously enabled by setting the "
            "proxy_protocol parameter in the listen directive'; kong.conf: 'at least one of "
            "the proxy_listen entries must have the proxy_protocol flag enabled'). Otherwise "
            "the setting silently does nothing and every request looks like it comes from "
            "the connecting proxy: logs, rate limits, IP restrictions and `hash_on: ip` all "
            "see the wrong address."
        ),
        example="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    real_ip: {header: proxy_protocol, trusted_ips: [10.0.0.0/8]}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    proxy_listen:
      - {port: 8000, proxy_protocol: true}
    real_ip: {header: proxy_protocol, trusted_ips: [10.0.0.0/8]}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(NGINX_REALIP, NGINX_STREAM_REALIP, KONG_CONF + " (real_ip_header)"),
    ),
)


# --- LB504 ---------------------------------------------------------------------------------


def _proxy_header_carries_edge(ctx: RuleContext) -> Iterator[Violation]:
    plan = ctx.plan
    for l4_hop, kong_hop in plan.pairs():
        edge_hop = plan.previous_tier_hop(l4_hop)
        if (
            isinstance(edge_hop, NginxHttpHop)
            and isinstance(l4_hop, NginxStreamHop)
            and isinstance(kong_hop, KongHop)
        ):
            yield from _header_names_the_edge(ctx, edge_hop.tier, l4_hop.tier, kong_hop.tier)


def _header_names_the_edge(
    ctx: RuleContext, edge: NginxHttpTier, l4: NginxStreamTier, kong: KongTier
) -> Iterator[Violation]:
    spec = ctx.spec
    _, listener = gateway_entry_listener(spec, kong)
    if not (l4.send_proxy_protocol and listener.proxy_protocol):
        return  # one-sided PROXY protocol is LB501
    if kong.real_ip.header != "proxy_protocol":
        return
    yield Violation(
        message=(
            f"{kong.name} takes the client address from the PROXY header {l4.name} sends, but "
            f"that header describes {l4.name}'s own client connection, which comes from "
            f"{edge.name} ({describe_instances(edge.instances)}): every request appears to "
            "come from an edge instance, not from the user"
        ),
        hint=(
            f"set {kong.name} real_ip: header X-Forwarded-For, recursive: true, trusted_ips "
            f"covering {edge.name} and {l4.name} ({edge.name} already sends X-Forwarded-For); "
            f"the PROXY header between {l4.name} and {kong.name} is then unnecessary"
        ),
        path=ctx.tier_path(kong, "real_ip", "header"),
        related_path=ctx.tier_path(l4, "send_proxy_protocol"),
    )


PROXY_HEADER_CARRIES_EDGE = Rule(
    code="LB504",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="proxy-protocol-carries-edge-address",
    severity=Severity.WARNING,
    summary="Kong reads the client address from a PROXY header that describes the edge",
    tiers=frozenset({"nginx_http", "nginx_stream", "kong"}),
    check=_proxy_header_carries_edge,
    doc=RuleDoc(
        what=(
            "On the path edge (nginx http) → L4 (nginx stream, `proxy_protocol on`) → Kong, "
            "Kong's `real_ip_header` is `proxy_protocol`."
        ),
        why=(
            "The stream module's `proxy_protocol on` sends a header describing the L4 tier's "
            "incoming connection. That connection was opened by the edge, because nginx "
            "http cannot forward a PROXY header, so Kong ends up with the edge's address as "
            "the client for every request. The user's address travels in the edge's "
            "X-Forwarded-For, which is where Kong should read it."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
    send_proxy_protocol: true
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    proxy_listen:
      - {port: 8000, proxy_protocol: true}
    real_ip: {header: proxy_protocol, trusted_ips: [10.0.2.0/24]}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: nginx_stream
    name: l4
    instances: [{name: l4-1, address: 10.0.2.1}]
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    real_ip:
      header: X-Forwarded-For
      recursive: true
      trusted_ips: [10.0.0.0/24, 10.0.2.0/24]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(NGINX_STREAM_PROXY_PROTOCOL, NGINX_REALIP, KONG_REAL_IP),
    ),
)


# --- LB505 ---------------------------------------------------------------------------------


def _gateway_distrusts_proxy(ctx: RuleContext) -> Iterator[Violation]:
    for edge_hop, kong_hop in _edge_and_gateway(ctx):
        yield from _forwarded_for_discarded(ctx, edge_hop.tier, kong_hop)


def _forwarded_for_discarded(ctx: RuleContext, edge: NginxHttpTier, kong_hop: KongHop) -> Iterator[Violation]:
    kong = kong_hop.tier
    if not edge.forwarded_headers:
        return
    if kong.real_ip.header == "proxy_protocol":
        return  # the address comes from the PROXY header: LB503/LB504
    peer_hop = ctx.plan.previous_tier_hop(kong_hop)
    peer = peer_hop.source_tier if peer_hop is not None else None
    if not isinstance(peer, NginxHttpTier | NginxStreamTier):
        return
    untrusted = uncovered_instances(peer.instances, kong.real_ip.trusted_ips)
    if not untrusted:
        return
    trusted = ", ".join(kong.real_ip.trusted_ips) or "empty, the default"
    suggestion = ", ".join(
        f"{i.address}/32" if ":" not in i.address else f"{i.address}/128" for i in untrusted[:3]
    )
    via = f" (through {peer.name})" if peer is not edge else ""
    yield Violation(
        message=(
            f"{edge.name} sends X-Forwarded-For and X-Real-IP{via}, but {kong.name}'s "
            f"trusted_ips ({trusted}) do not include {peer.name}'s "
            f"{describe_instances(untrusted)}, so Kong ignores those headers, writes its own "
            f"X-Forwarded-For and takes {peer.name}'s address as the client's"
        ),
        hint=(
            f"add {peer.name}'s addresses (e.g. {suggestion}) to {kong.name} "
            "real_ip.trusted_ips, with real_ip.header: X-Forwarded-For and recursive: true"
        ),
        path=ctx.tier_path(kong, "real_ip", "trusted_ips"),
        related_path=ctx.tier_path(edge, "forwarded_headers"),
    )


GATEWAY_DISTRUSTS_PROXY = Rule(
    code="LB505",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="gateway-distrusts-forwarding-proxy",
    severity=Severity.WARNING,
    summary="Kong does not trust the hop in front, so it discards the edge's X-Forwarded-For",
    tiers=frozenset({"nginx_http", "nginx_stream", "kong"}),
    check=_gateway_distrusts_proxy,
    doc=RuleDoc(
        what=(
            "The edge sends X-Forwarded-For/X-Real-IP (`forwarded_headers`, the default) while "
            "Kong's `trusted_ips` (empty by default) do not cover every instance of the hop "
            "that connects to Kong (the L4 tier if there is one, else the edge)."
        ),
        why=(
            "kong.conf: requests from trusted IPs have their X-Forwarded-* headers forwarded "
            "upstream; non-trusted requests make Kong insert its own. `trusted_ips` also "
            "renders `set_real_ip_from`, so Kong's client address becomes the connecting "
            "proxy's. Logs, rate limiting, IP restriction and `hash_on: ip` then see a few "
            "proxy addresses instead of users, and the app loses the user's address."
        ),
        example="""\
name: shop
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
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    real_ip: {header: X-Forwarded-For, recursive: true, trusted_ips: [10.0.0.1/32]}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(KONG_CONF + " (trusted_ips)", KONG_REAL_IP, NGINX_REALIP),
    ),
)


# --- LB506 ---------------------------------------------------------------------------------


def _forwarded_headers_not_sent(ctx: RuleContext) -> Iterator[Violation]:
    for edge_hop, kong_hop in _edge_and_gateway(ctx):
        yield from _no_forwarded_for(ctx, edge_hop.tier, kong_hop.tier)


def _no_forwarded_for(ctx: RuleContext, edge: NginxHttpTier, kong: KongTier) -> Iterator[Violation]:
    if edge.forwarded_headers:
        return
    real_ip = kong.real_ip
    if real_ip.header == "proxy_protocol" or not real_ip.trusted_ips:
        return
    yield Violation(
        message=(
            f"{kong.name} takes the client address from {real_ip.header} sent by trusted "
            f"proxies ({', '.join(real_ip.trusted_ips)}), but {edge.name} sends no forwarded "
            f"headers (forwarded_headers: false): the header is absent and Kong uses the "
            "connecting proxy's address"
        ),
        hint=(
            f"set {edge.name} forwarded_headers: true (X-Forwarded-For "
            "$proxy_add_x_forwarded_for, X-Real-IP, X-Forwarded-Proto/-Host)"
        ),
        path=ctx.tier_path(edge, "forwarded_headers"),
        related_path=ctx.tier_path(kong, "real_ip", "header"),
    )


FORWARDED_HEADERS_NOT_SENT = Rule(
    code="LB506",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="forwarded-headers-not-sent",
    severity=Severity.WARNING,
    summary="Kong reads the client address from a header the edge does not send",
    tiers=frozenset({"nginx_http", "kong"}),
    check=_forwarded_headers_not_sent,
    doc=RuleDoc(
        what=(
            "The edge has `forwarded_headers: false` while Kong is configured to take the "
            "client address from a header (`real_ip_header` other than `proxy_protocol`) "
            "sent by trusted proxies."
        ),
        why=(
            "Only the edge sees the user's connection. If it does not pass the address on "
            "in X-Forwarded-For/X-Real-IP, no hop behind it can recover the address or the "
            "original scheme, and Kong's real-IP settings have nothing to read."
        ),
        example="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    forwarded_headers: false
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    real_ip: {header: X-Forwarded-For, recursive: true, trusted_ips: [10.0.0.0/24]}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        fix="""\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: edge-1, address: 10.0.0.1}]
    forwarded_headers: true
  - kind: kong
    name: gateway
    instances: [{name: kong-1, address: 10.0.1.1}]
    real_ip: {header: X-Forwarded-For, recursive: true, trusted_ips: [10.0.0.0/24]}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {preset: go}
""",
        references=(
            "https://nginx.org/en/docs/http/ngx_http_proxy_module.html#var_proxy_add_x_forwarded_for",
            NGINX_REALIP,
            KONG_CONF + " (real_ip_header, trusted_ips)",
        ),
    ),
)


# --- LB507 ---------------------------------------------------------------------------------

K8S_SOURCE_IP = (
    "https://kubernetes.io/docs/tasks/access-application-cluster/create-external-load-balancer/"
    "#preserving-the-client-source-ip"
)
K8S_TRAFFIC_POLICIES = "https://kubernetes.io/docs/reference/networking/virtual-ips/#traffic-policies"
GKE_CONTAINER_NATIVE = (
    "https://cloud.google.com/kubernetes-engine/docs/concepts/container-native-load-balancing"
)


def _edge_and_gateway(ctx: RuleContext) -> list[tuple[NginxHttpHop, KongHop]]:
    """Each nginx edge with the Kong tier behind it (directly or through an L4 tier)."""
    return [
        (caller, callee)
        for caller, callee in ctx.plan.l7_pairs()
        if isinstance(caller, NginxHttpHop) and isinstance(callee, KongHop)
    ]


def _kong_behind_cloud_lb(ctx: RuleContext) -> KongTier | None:
    first = ctx.plan.tier_hops[0]
    if ctx.spec.external_lb is None or not isinstance(first, KongHop):
        return None
    return first.tier if first.tier.location == "cluster" else None


def _proxy_traffic_policy(ctx: RuleContext) -> Iterator[Violation]:
    kong = _kong_behind_cloud_lb(ctx)
    if kong is None:
        return
    service = kong.proxy_service
    if service is not None and service.lb_targets == "pods":
        return
    policy = service.external_traffic_policy if service is not None else "Cluster"
    shown = policy if service is not None else "Cluster (Kubernetes default)"
    if policy == "Cluster":
        message = (
            f"the cloud load balancer reaches {kong.name} through its proxy Service with "
            f"externalTrafficPolicy {shown}: a node that receives a connection may forward it "
            "to a Kong pod on another node and then replaces the source address with its own "
            "(SNAT), so Kong sees a node's address as the client's — in logs, IP plugins, "
            "`hash_on: ip` and its real_ip trust decisions"
        )
        hint = (
            "set proxy_service.lb_targets: pods with container-native load balancing (GKE "
            "NEGs, AWS target type ip), or externalTrafficPolicy: Local and spread Kong pods "
            "evenly over the nodes (one per node, e.g. a DaemonSet)"
        )
    else:
        message = (
            f"the cloud load balancer reaches {kong.name} through its proxy Service with "
            "externalTrafficPolicy Local: the client address survives, but the load balancer "
            "spreads connections over nodes that have a Kong pod, not over Kong pods, so a "
            "node with two Kong pods gives each half the share of a node with one"
        )
        hint = (
            "run one Kong pod per node (DaemonSet, or topologySpreadConstraints with "
            "maxSkew 1 and as many pods as nodes), or let the load balancer target pods "
            "directly (proxy_service.lb_targets: pods)"
        )
    yield Violation(
        message=message,
        hint=hint,
        path=ctx.tier_path(kong, "proxy_service", "external_traffic_policy"),
        related_path=("external_lb",),
    )


def _needs_kong_behind_cloud_lb(ctx: RuleContext) -> str | None:
    if ctx.spec.external_lb is None:
        return "no external load balancer in front of the path"
    first = ctx.plan.tier_hops[0]
    if not isinstance(first, KongHop):
        return "the load balancer does not reach Kong directly"
    if first.tier.location != "cluster":
        return "Kong runs outside the cluster: no Kubernetes Service in front of it"
    return None


PROXY_SERVICE_TRAFFIC_POLICY = Rule(
    code="LB507",
    status="preview",
    since=NEXT_RELEASE,
    reads=(),
    name="kong-proxy-service-traffic-policy-tradeoff",
    severity=Severity.WARNING,
    summary="Kong's proxy Service behind a cloud LB: Cluster loses the client IP, Local skews load",
    tiers=frozenset({"kong", "kubernetes"}),
    check=_proxy_traffic_policy,
    versions="all Kubernetes versions",
    applies=_needs_kong_behind_cloud_lb,
    doc=RuleDoc(
        what=(
            "Kong running in the cluster (`location: cluster`) as the first tier behind an "
            "`external_lb`, reached through its proxy Service on node ports "
            "(`proxy_service.lb_targets: nodes`, the default): its `externalTrafficPolicy`."
        ),
        why=(
            "With `Cluster` (the default) a node forwards the connection to any Kong pod and "
            "source-NATs it, so the client address is lost and Kong sees node addresses. With "
            "`Local` the node only delivers to Kong pods on itself and the address survives, "
            "but the load balancer balances across nodes, not pods: Kubernetes documents the "
            "\"risk of potentially imbalanced traffic spreading\". Container-native load "
            "balancing sends to pod IPs and avoids both."
        ),
        example="""\
name: shop
external_lb: {kind: aws-alb}
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-proxy, address: 10.0.1.1}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        fix="""\
name: shop
external_lb: {kind: aws-alb}
tiers:
  - kind: kong
    name: gateway
    instances: [{name: kong-proxy, address: 10.0.1.1}]
    proxy_service: {lb_targets: pods}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 4
    app: {preset: go}
""",
        references=(
            (f"{K8S_SOURCE_IP} (Cluster: the client source IP is replaced by the node's; "
             "Local: preserves it, with the risk of imbalanced traffic spreading)"),
            K8S_TRAFFIC_POLICIES,
            f"{GKE_CONTAINER_NATIVE} (NEGs: the load balancer targets pod IPs)",
        ),
    ),
)


RULES: tuple[Rule, ...] = (
    PROXY_PROTOCOL_ONE_SIDED,
    PROXY_PROTOCOL_FROM_HTTP_PROXY,
    REAL_IP_WITHOUT_LISTENER,
    PROXY_HEADER_CARRIES_EDGE,
    GATEWAY_DISTRUSTS_PROXY,
    FORWARDED_HEADERS_NOT_SENT,
    PROXY_SERVICE_TRAFFIC_POLICY,
)

__all__ = ["RULES"]
