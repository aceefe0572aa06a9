"""Facts about the path that several rule families need: who talks to whom, and how.

Everything here is computed from the spec in time linear in the number of tiers and
instances (never services), so rules can call it once per check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from lbgen.model.common import Instance, Listener
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxHttpTier, NginxStreamTier, Tier
from lbgen.render._nginx import has_grpc, has_http1, kong_entry_listener
from lbgen.rules._base import ModelPath, RuleContext

FrontTier = NginxHttpTier | NginxStreamTier | KongTier


def front_of_cluster(spec: Spec) -> FrontTier | None:
    """The tier that connects to the Kubernetes Services (None: clients connect directly)."""
    if len(spec.tiers) < 2:
        return None
    front = spec.tiers[-2]
    assert not isinstance(front, KubernetesTier)  # the model allows one kubernetes tier, last
    return front


def backend_targets(tier: FrontTier) -> str:
    """How `tier` reaches pods. nginx stream always forwards to the Service's ClusterIP
    (lbgen renders no headless Service for it: see lbgen.render._names)."""
    if isinstance(tier, NginxStreamTier):
        return "cluster_ip"
    return tier.backend_targets


def through_cluster_ip(spec: Spec) -> FrontTier | None:
    """The front tier when it reaches pods through each Service's single ClusterIP."""
    front = front_of_cluster(spec)
    return front if front is not None and backend_targets(front) == "cluster_ip" else None


def targets_path(ctx: RuleContext, tier: FrontTier) -> ModelPath:
    """Model path of the setting that decides how `tier` reaches pods."""
    if isinstance(tier, NginxStreamTier):
        return ctx.tier_path(tier)
    return ctx.tier_path(tier, "backend_targets")


def sends_proxy_protocol(tier: Tier | None) -> bool:
    """Whether `tier` starts its upstream connections with a PROXY header (only nginx stream
    can: ngx_http_proxy_module has no such directive)."""
    return isinstance(tier, NginxStreamTier) and tier.send_proxy_protocol


def gateway_entry_listener(spec: Spec, kong: KongTier) -> tuple[int, Listener]:
    """The `proxy_listen` entry the hop in front of Kong connects to, with its index.

    The same choice the renderers make (lbgen.render._nginx.kong_entry_listener): an entry
    whose proxy_protocol flag matches what the caller sends, cleartext first, HTTP/2 first
    when gRPC is on the path; the first entry when none matches (the rules report that).
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


def describe_instances(instances: Sequence[Instance], limit: int = 3) -> str:
    addresses = [i.address for i in instances[:limit]]
    more = f", … {len(instances) - limit} more" if len(instances) > limit else ""
    noun = "instance" if len(instances) == 1 else "instances"
    return f"{len(instances)} {noun} ({', '.join(addresses)}{more})"


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


def pooled_connections(ctx: RuleContext, tier: Tier) -> int:
    """Idle connections `tier` keeps towards its next hop (0: no pool), from the budget."""
    budget = ctx.budget
    if isinstance(tier, KongTier) and budget.kong_upstream is not None:
        return budget.kong_upstream.connections.value or 0
    if isinstance(tier, NginxHttpTier) and budget.edge_upstream is not None:
        return budget.edge_upstream.connections.value or 0
    return 0


@dataclass(frozen=True)
class GatewayClientAddress:
    """Whose address Kong uses as the client's (for `hash_on: ip`, logs and IP plugins)."""

    is_end_user: bool
    reason: str
    """Why it is a proxy's address instead (empty when it is the end user's)."""
    path: ModelPath
    """The setting that makes it a proxy's address."""


def gateway_client_address(ctx: RuleContext) -> GatewayClientAddress | None:
    """Whether Kong resolves the end user's address; None when no hop sits in front of Kong."""
    spec = ctx.spec
    kong = spec.kong
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
        return GatewayClientAddress(
            False,
            f"{kong.name} does not trust {peer.name} ({describe_instances(untrusted)} outside "
            f"trusted_ips: {trusted}), so it takes the connection's address, which is "
            f"{peer.name}'s",
            ctx.tier_path(kong, "real_ip", "trusted_ips"),
        )
    if real_ip.header == "proxy_protocol":
        _, listener = gateway_entry_listener(spec, kong)
        if not listener.proxy_protocol or not sends_proxy_protocol(peer):
            return GatewayClientAddress(
                False,
                f"{kong.name} reads the client address from a PROXY header that "
                f"{peer.name} does not send",
                ctx.tier_path(kong, "real_ip", "header"),
            )
        outer = spec.previous_tier(peer)
        if isinstance(outer, NginxHttpTier):
            return GatewayClientAddress(
                False,
                f"the PROXY header from {peer.name} carries the address of its own client, "
                f"{outer.name} ({describe_instances(outer.instances)})",
                ctx.tier_path(kong, "real_ip", "header"),
            )
        return GatewayClientAddress(True, "", ())
    edge = spec.edge
    if edge is not None and not edge.forwarded_headers:
        return GatewayClientAddress(
            False,
            f"{edge.name} sends no X-Forwarded-For/X-Real-IP, so {kong.name}'s "
            f"real_ip_header {real_ip.header} is absent and the connection's address is used",
            ctx.tier_path(edge, "forwarded_headers"),
        )
    return GatewayClientAddress(True, "", ())


__all__ = [
    "FrontTier",
    "GatewayClientAddress",
    "backend_targets",
    "describe_instances",
    "front_of_cluster",
    "gateway_client_address",
    "gateway_entry_listener",
    "pooled_connections",
    "sends_proxy_protocol",
    "targets_path",
    "through_cluster_ip",
    "uncovered_instances",
]
