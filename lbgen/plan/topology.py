"""Who talks to whom on the path, and how: the one place these facts are computed.

Renderers and rules both read them (rules never import the renderers). Everything here is
computed from the spec in time linear in the number of tiers and instances, or of services.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from msgspec import Struct

from lbgen.model.common import Instance, Listener
from lbgen.model.naming import headless_name, uses_headless_service
from lbgen.model.service import Service
from lbgen.model.spec import Spec
from lbgen.model.tiers import (
    BackendTargets,
    KongTier,
    KubernetesTier,
    NginxHttpTier,
    NginxStreamTier,
    Tier,
)
from lbgen.model.types import is_ip_address

FrontTier = NginxHttpTier | NginxStreamTier | KongTier


# --- Kubernetes names ------------------------------------------------------------------------


def service_fqdn(spec: Spec, service: Service) -> str:
    """ClusterIP Service DNS name: one virtual IP, kube-proxy picks a pod per connection."""
    return f"{service.name}.{service.namespace}.svc.{spec.cluster.cluster_domain}"


def headless_fqdn(spec: Spec, service: Service) -> str:
    """Headless Service DNS name: resolves to one A record per ready pod."""
    return f"{headless_name(service)}.{service.namespace}.svc.{spec.cluster.cluster_domain}"


def backend_address(spec: Spec, service: Service, targets: str) -> tuple[str, int]:
    """Host and port the hop in front of Kubernetes connects to for `service`."""
    if targets == "pod_endpoints":
        return headless_fqdn(spec, service), service.kubernetes.target_port
    return service_fqdn(spec, service), service.kubernetes.port


def upstream_name(service: Service) -> str:
    """The Upstream's name, which is also the Kong Service's `host`.

    A Service uses an Upstream only when its host equals the Upstream name; otherwise Kong
    resolves the host by DNS (developer.konghq.com/gateway/traffic-control/
    load-balancing-reference; upstreams.lua `name`: "must be equal to the host of a
    Service"). The `.internal` name cannot resolve, so a missing Upstream fails loudly
    (name resolution error) instead of silently reaching some other address.
    """
    return f"{service.name}.{service.namespace}.lbgen.internal"


def is_dns_name(host: str) -> bool:
    """A host name (resolved through DNS), not an IP literal."""
    return not is_ip_address(host)


# --- the hop in front of Kubernetes ----------------------------------------------------------


def front_of_cluster(spec: Spec) -> FrontTier | None:
    """The tier that connects to the Kubernetes Services (None: clients connect directly)."""
    if len(spec.tiers) < 2:
        return None
    front = spec.tiers[-2]
    assert not isinstance(front, KubernetesTier)  # the model allows one kubernetes tier, last
    return front


def backend_targets(tier: FrontTier) -> BackendTargets:
    """How `tier` reaches pods. nginx stream always forwards to the Service's ClusterIP
    (lbgen renders no headless Service for it)."""
    if isinstance(tier, NginxStreamTier):
        return "cluster_ip"
    return tier.backend_targets


def dials_pods(spec: Spec) -> bool:
    """Whether the hop in front of Kubernetes connects to pod IPs (through lbgen's headless
    Service, or, for Kong under KIC, the EndpointSlices KIC reads) rather than ClusterIPs."""
    front = front_of_cluster(spec)
    return front is not None and backend_targets(front) == "pod_endpoints"


def through_cluster_ip(spec: Spec) -> FrontTier | None:
    """The front tier when it reaches pods through each Service's single ClusterIP."""
    front = front_of_cluster(spec)
    return front if front is not None and backend_targets(front) == "cluster_ip" else None


# --- protocols and listeners -----------------------------------------------------------------


def has_grpc(spec: Spec) -> bool:
    return any(service.protocol == "grpc" for service in spec.services)


def has_http1(spec: Spec) -> bool:
    return any(service.protocol != "grpc" for service in spec.services)


def sends_proxy_protocol(tier: Tier | None) -> bool:
    """Whether `tier` starts its upstream connections with a PROXY header (only nginx stream
    can: ngx_http_proxy_module has no such directive)."""
    return isinstance(tier, NginxStreamTier) and tier.send_proxy_protocol


def kong_entry_listener(
    kong: KongTier, *, proxy_protocol: bool, grpc: bool, http1: bool = False
) -> Listener:
    """The Kong `proxy_listen` entry an nginx tier in front of Kong connects to.

    A listener with the `proxy_protocol` flag requires a PROXY header on every connection and
    one without it rejects one, so the flag must match what the caller sends (an http proxy
    never sends one; a stream proxy sends one with `proxy_protocol on`). Among matching
    entries, cleartext comes first (TLS already ended at the edge; Kong's stock 8000). For
    gRPC an `http2` entry comes first, because gRPC needs HTTP/2 end to end; for HTTP/1.1 an
    entry without `http2` comes before one with it, because a cleartext `listen … http2` on
    an nginx before 1.25.1 serves HTTP/2 only (tried on nginx 1.22.1: an HTTP/1.1 request
    gets no response), and Kong before 3.6 embeds such an nginx: there an entry that must
    carry both (`grpc` and `http1`, an L4 tier relaying everything) has to be TLS + http2
    (`KongTier.listener_serves`; `Spec.refusals` refuses specs where none is).
    When nothing matches, the lowest port is used and the cross-hop rules report the mismatch.
    """
    matching = [entry for entry in kong.proxy_listen if entry.proxy_protocol == proxy_protocol]
    if not matching:
        return min(kong.proxy_listen, key=lambda entry: entry.port)

    def preference(entry: Listener) -> tuple[bool, bool, bool, int]:
        unusable = not kong.listener_serves(entry, grpc=grpc, http1=http1)
        # The lowest port breaks ties, not the order listed: kong.conf lists the entries by
        # port, so the choice is the same read back from the rendered files.
        if grpc:
            return (unusable, not entry.http2, entry.tls, entry.port)
        return (unusable, entry.tls, entry.http2, entry.port)

    return min(matching, key=preference)


def gateway_entry_listener(spec: Spec, kong: KongTier) -> tuple[int, Listener]:
    """The `proxy_listen` entry the hop in front of Kong connects to, with its index.

    The same choice the renderers make (`kong_entry_listener`): an entry whose
    proxy_protocol flag matches what the caller sends, cleartext first, HTTP/2 first when
    gRPC is on the path, the lowest port among equals; the lowest port when none matches (the
    rules report that).
    """
    caller = spec.previous_tier(kong)
    # An L4 tier relays the edge's HTTP/1.1 and gRPC to one entry (unless it has a gRPC port
    # of its own); an edge has one per kind.
    shared_l4 = isinstance(caller, NginxStreamTier) and caller.grpc_listen_port is None
    entry = kong_entry_listener(
        kong,
        proxy_protocol=sends_proxy_protocol(caller),
        grpc=has_grpc(spec),
        http1=shared_l4 and has_http1(spec),
    )
    index = next(i for i, listener in enumerate(kong.proxy_listen) if listener is entry)
    return index, entry


# --- addresses -------------------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _covered(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # A DNS name: its addresses are unknown here, so only an empty list provably misses it.
        return bool(networks)
    return any(ip.version == net.version and ip in net for net in networks)


def uncovered_instances(instances: Sequence[Instance], cidrs: Sequence[str]) -> list[Instance]:
    """Instances whose address is not inside any of `cidrs` (names count as covered unless
    `cidrs` is empty)."""
    networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    return [i for i in instances if not _covered(i.address, networks)]


def describe_instances(instances: Sequence[Instance], limit: int = 3) -> str:
    addresses = [i.address for i in instances[:limit]]
    more = f", … {len(instances) - limit} more" if len(instances) > limit else ""
    noun = "instance" if len(instances) == 1 else "instances"
    return f"{len(instances)} {noun} ({', '.join(addresses)}{more})"


class ClientAddress(Struct, frozen=True):
    """Whose address a hop uses as the client's."""

    is_end_user: bool
    reason: str
    """Why it is a proxy's address instead (empty when it is the end user's)."""
    blame: Tier | None = None
    """The tier whose setting makes it a proxy's address …"""
    setting: tuple[str, ...] = ()
    """… and that setting's field path inside the tier."""


def gateway_client(spec: Spec) -> ClientAddress | None:
    """Whether Kong resolves the end user's address (for `hash_on: ip`, logs and IP plugins);
    None when there is no Kong tier or no hop in front of it."""
    kong = next((t for t in spec.tiers if isinstance(t, KongTier)), None)
    if kong is None:
        return None
    peer = spec.previous_tier(kong)
    if peer is None:
        return None
    assert isinstance(peer, NginxHttpTier | NginxStreamTier)
    real_ip = kong.real_ip
    untrusted = uncovered_instances(peer.instances, real_ip.trusted_ips)
    if untrusted:
        trusted = ", ".join(real_ip.trusted_ips) or "none"
        return ClientAddress(
            False,
            f"{kong.name} does not trust {peer.name} ({describe_instances(untrusted)} outside "
            f"trusted_ips: {trusted}), so it takes the connection's address, which is "
            f"{peer.name}'s",
            kong, ("real_ip", "trusted_ips"),
        )
    if real_ip.header == "proxy_protocol":
        _, listener = gateway_entry_listener(spec, kong)
        if not listener.proxy_protocol or not sends_proxy_protocol(peer):
            return ClientAddress(
                False,
                f"{kong.name} reads the client address from a PROXY header that "
                f"{peer.name} does not send",
                kong, ("real_ip", "header"),
            )
        outer = spec.previous_tier(peer)
        if isinstance(outer, NginxHttpTier):
            return ClientAddress(
                False,
                f"the PROXY header from {peer.name} carries the address of its own client, "
                f"{outer.name} ({describe_instances(outer.instances)})",
                kong, ("real_ip", "header"),
            )
        return ClientAddress(True, "")
    # The L7 hop in front of Kong (through an L4 tier) writes the forwarded headers.
    edge = next(
        (t for t in reversed(spec.tiers[: spec.tier_index(kong)]) if isinstance(t, NginxHttpTier)), None
    )
    if edge is not None and not edge.forwarded_headers:
        return ClientAddress(
            False,
            f"{edge.name} sends no X-Forwarded-For/X-Real-IP, so {kong.name}'s "
            f"real_ip_header {real_ip.header} is absent and the connection's address is used",
            edge, ("forwarded_headers",),
        )
    return ClientAddress(True, "")


__all__ = [
    "BackendTargets",
    "ClientAddress",
    "FrontTier",
    "backend_address",
    "backend_targets",
    "describe_instances",
    "dials_pods",
    "front_of_cluster",
    "gateway_client",
    "gateway_entry_listener",
    "has_grpc",
    "has_http1",
    "headless_fqdn",
    "headless_name",
    "is_dns_name",
    "kong_entry_listener",
    "sends_proxy_protocol",
    "service_fqdn",
    "through_cluster_ip",
    "uncovered_instances",
    "upstream_name",
    "uses_headless_service",
]
