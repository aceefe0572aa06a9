"""Rule-side helpers about who talks to whom: model paths and message wording.

The facts themselves (which tier fronts the cluster, which listener Kong is reached on, …)
are computed in `lbgen.plan.topology`; this module only adds what a finding needs.
Everything here is linear in the number of tiers and instances (never services).
"""

from __future__ import annotations

from msgspec import Struct

from lbgen.model.tiers import NginxStreamTier, Tier
from lbgen.plan.hops import KongHop, NginxHttpHop
from lbgen.plan.topology import (
    FrontTier,
    gateway_client,
)
from lbgen.rules._base import ModelPath, RuleContext


def targets_path(ctx: RuleContext, tier: FrontTier) -> ModelPath:
    """Model path of the setting that decides how `tier` reaches pods."""
    if isinstance(tier, NginxStreamTier):
        return ctx.tier_path(tier)
    return ctx.tier_path(tier, "backend_targets")


def pooled_connections(ctx: RuleContext, tier: Tier) -> int:
    """Idle connections `tier` keeps towards its next hop (0: no pool), from its hop plan."""
    hop = ctx.plan.hop_of(tier)
    if isinstance(hop, KongHop | NginxHttpHop):
        return hop.upstream.connections.value or 0
    return 0


class GatewayClientAddress(Struct, frozen=True):
    """Whose address Kong uses as the client's (for `hash_on: ip`, logs and IP plugins)."""

    is_end_user: bool
    reason: str
    """Why it is a proxy's address instead (empty when it is the end user's)."""
    path: ModelPath
    """The setting that makes it a proxy's address."""


def gateway_client_address(ctx: RuleContext) -> GatewayClientAddress | None:
    """Whether Kong resolves the end user's address (`lbgen.plan.topology.gateway_client`),
    with the model path of the setting to change; None when no hop sits in front of Kong."""
    seen = gateway_client(ctx.spec)
    if seen is None:
        return None
    path = ctx.tier_path(seen.blame, *seen.setting) if seen.blame is not None else ()
    return GatewayClientAddress(seen.is_end_user, seen.reason, path)


__all__ = [
    "GatewayClientAddress",
        "gateway_client_address",
    "pooled_connections",
    "targets_path",
]
