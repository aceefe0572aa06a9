"""Rule-side helpers about who talks to whom: model paths and message wording.

The facts themselves (which tier fronts the cluster, which listener Kong is reached on, …)
are computed in `lbgen.plan.topology`; this module only adds what a finding needs.
Everything here is linear in the number of tiers and instances (never services).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lbgen.model.common import Instance
from lbgen.model.tiers import KongTier, NginxHttpTier, NginxStreamTier, Tier
from lbgen.plan.topology import (
    FrontTier,
    gateway_entry_listener,
    sends_proxy_protocol,
    uncovered_instances,
)
from lbgen.rules._base import ModelPath, RuleContext


def targets_path(ctx: RuleContext, tier: FrontTier) -> ModelPath:
    """Model path of the setting that decides how `tier` reaches pods."""
    if isinstance(tier, NginxStreamTier):
        return ctx.tier_path(tier)
    return ctx.tier_path(tier, "backend_targets")


def describe_instances(instances: Sequence[Instance], limit: int = 3) -> str:
    addresses = [i.address for i in instances[:limit]]
    more = f", … {len(instances) - limit} more" if len(instances) > limit else ""
    noun = "instance" if len(instances) == 1 else "instances"
    return f"{len(instances)} {noun} ({', '.join(addresses)}{more})"


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
    "GatewayClientAddress",
    "describe_instances",
    "gateway_client_address",
    "pooled_connections",
    "targets_path",
]
