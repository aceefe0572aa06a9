"""Shared vocabulary of the cross-hop rule families LB1xx–LB3xx.

Everything is read from the plan's hops (`ctx.plan`): capabilities (layer, pool, idle
timer, group) and resolved values, never a fixed tier slot of the spec.
Every helper here is O(1) or O(services): rules call them once per check, never per pair.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import Struct

from lbgen.model.spec import Spec
from lbgen.model.types import Duration
from lbgen.plan.budget import UpstreamBudget, margin_for
from lbgen.plan.hops import HopPlan, NginxHttpHop
from lbgen.rules._base import ModelPath, RuleContext, Severity


def listing(names: Sequence[str], limit: int = 3) -> str:
    """`a, b and c` or `a, b, c and 4 more`."""
    if len(names) <= 1:
        return "".join(names)
    if len(names) <= limit:
        return f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


# How each app server's keep-alive (idle) timeout is configured, for hints.
APP_KEEPALIVE_KNOB = {
    "uvicorn": "uvicorn --timeout-keep-alive",
    "uvicorn-gunicorn": "gunicorn --keep-alive (passed to the UvicornWorker)",
    "gunicorn": "gunicorn --keep-alive",
    "gunicorn-sync": "gunicorn --keep-alive (ignored by sync workers)",
    "nodejs": "Node.js server.keepAliveTimeout",
    "go": "Go http.Server.IdleTimeout (ReadTimeout when IdleTimeout is 0)",
    "tomcat": "Tomcat keepAliveTimeout",
    "spring-boot": "Spring Boot server.tomcat.keep-alive-timeout",
    "custom": "the server's keep-alive timeout",
}


def app_facing_pool(ctx: RuleContext) -> tuple[HopPlan, UpstreamBudget] | None:
    """The L7 hop whose pooled connections end at the app servers, with its pool.

    The L7 hop closest to the cluster (Kong when there is one; otherwise the edge, possibly
    through an L4 tier, which keeps the pooled connection open end to end).
    """
    hop = ctx.plan.app_facing_pool()
    if hop is None or hop.pool is None:
        return None
    return hop, hop.pool


def group_members(ctx: RuleContext, hop: HopPlan) -> str:
    """Human description of the hop's upstream group for messages, from its targets."""
    instances = [t for t in hop.targets if t.kind == "instance"]
    if instances:
        return listing([f"{t.name} ({t.host})" for t in instances])
    if hop.dials_pods:
        return "the pods behind each headless Service"
    return "the Service's ClusterIP"


def group_path(ctx: RuleContext, hop: HopPlan) -> ModelPath:
    """Model path of what makes up the group: the next tier's instances or the targets knob."""
    following = ctx.plan.next_hop(hop)
    if following is not None and following.layer != "cluster":
        return ctx.hop_path(following, "instances")
    if hop.targets_key is not None:
        return ctx.hop_path(hop, *hop.targets_key)
    return ctx.hop_path(ctx.plan.cluster)


# --- keep-alive ordering -----------------------------------------------------------------


class ClosingOrder(Struct, frozen=True):
    """How a pooled caller's idle timeout relates to its callee's, when that is a finding."""

    severity: Severity
    """ERROR: the caller keeps connections at least as long as the callee (the race is
    certain to be hit); WARNING: it closes first, but by less than the keep-alive margin."""
    margin: Duration
    gap: Duration
    """callee - caller (0 when the caller is not shorter)."""

    @property
    def inside_margin(self) -> bool:
        return self.severity is Severity.WARNING

    def margin_clause(self, callee_name: str) -> str:
        """Why a caller that closes first is still a finding (for WARNING messages)."""
        return (
            f"only {self.gap} before {callee_name} does, inside lbgen's keep-alive margin of "
            f"{self.margin}: timers fire late and a request takes time to arrive, so a request "
            f"can still reach a connection {callee_name} is closing (an occasional 502)"
        )


def closing_order(spec: Spec, caller: Duration, callee: Duration) -> ClosingOrder | None:
    """None when the caller closes idle connections before the callee by at least the margin.

    The margin is the one lbgen derives with (`lbgen.plan.budget.margin_for`, 10% of the timeout,
    at least 1s, or `keepalive_margin`), taken of the caller's value: a derived callee is
    raised by exactly that much above its caller, and a derived caller is lowered by 10% of
    its (larger) callee, so lbgen's own derivations never land inside the margin.
    """
    margin = margin_for(spec, caller)
    if caller >= callee:
        return ClosingOrder(Severity.ERROR, margin, Duration(0))
    gap = Duration(callee.ms - caller.ms)
    if gap < margin:
        return ClosingOrder(Severity.WARNING, margin, gap)
    return None


# --- timeouts and retries (not part of the keep-alive budget) ----------------------------


def edge_tries(edge: NginxHttpHop) -> int:
    """Attempts one request can make at the edge: `proxy_next_upstream_tries`, or (0 =
    unlimited, the default) every server of the group once (nginx docs, #proxy_next_upstream)."""
    if not edge.retry_conditions.value:
        return 1
    tries = edge.tier.retry.tries
    if tries is None or tries == 0:
        return edge.group_size
    return min(tries, edge.group_size)


def needs_edge_and_l4(ctx: RuleContext) -> str | None:
    """`Rule.applies` of the rules about an L7 pool relayed through an L4 tier."""
    if ctx.plan.relayed_pairs():
        return None
    if not any(hop.layer == "l4" for hop in ctx.plan.hops):
        return "no nginx_stream tier"
    return "no nginx_http tier in front of the nginx_stream tier"
