"""Shared vocabulary of the cross-hop rule families LB1xx–LB3xx.

Effective values come from the plan: timeouts, retries and failure accounting from
`lbgen.plan.values`, keep-alive values from the resolved budget (`ctx.budget`).
Every helper here is O(1) or O(services): rules call them once per check, never per pair.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import Struct

from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxHttpTier, NginxStreamTier
from lbgen.model.types import Duration
from lbgen.plan.budget import UpstreamBudget, margin_for
from lbgen.plan.values import edge_retry_conditions
from lbgen.rules._base import ModelPath, RuleContext, Severity

Tier = NginxHttpTier | NginxStreamTier | KongTier | KubernetesTier


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


def app_facing_pool(ctx: RuleContext) -> tuple[KongTier | NginxHttpTier, UpstreamBudget] | None:
    """The L7 tier whose pooled connections end at the app servers, with its budget.

    Kong when there is one; otherwise the edge (possibly through an L4 tier, which keeps the
    pooled connection open end to end).
    """
    spec, budget = ctx.spec, ctx.budget
    if spec.kong is not None and budget.kong_upstream is not None:
        return spec.kong, budget.kong_upstream
    if spec.edge is not None and budget.edge_upstream is not None:
        return spec.edge, budget.edge_upstream
    return None


def pool_keeps_forever(tier: KongTier | NginxHttpTier, pool: UpstreamBudget) -> bool:
    """Kong's `upstream_keepalive_idle_timeout = 0` keeps idle connections forever
    (kong.conf.default); nginx has no such meaning for 0, but nginx < 1.15.3 has no upstream
    idle timer at all (idle_timeout None): its pooled connections wait for the callee."""
    idle = pool.idle_timeout.value
    return idle is None or (isinstance(tier, KongTier) and idle.ms == 0)


def group_size(spec: Spec, tier: NginxHttpTier | NginxStreamTier) -> int:
    """Servers in the tier's upstream group towards the next hop.

    The next tier's instances; towards Kubernetes, one ClusterIP, or (pod_endpoints, edge
    only) the pods behind the headless Service name, which nginx resolves to one address per
    pod. With several services the smallest group is returned.
    """
    following = spec.next_tier(tier)
    if isinstance(following, NginxStreamTier | KongTier):
        return len(following.instances)
    if isinstance(tier, NginxHttpTier) and tier.backend_targets == "pod_endpoints":
        return min(service.replicas for service in spec.services)
    return 1


def group_members(spec: Spec, tier: NginxHttpTier | NginxStreamTier) -> str:
    """Human description of the group's servers for messages."""
    following = spec.next_tier(tier)
    if isinstance(following, NginxStreamTier | KongTier):
        return listing([f"{i.name} ({i.address})" for i in following.instances])
    if isinstance(tier, NginxHttpTier) and tier.backend_targets == "pod_endpoints":
        return "the pods behind each headless Service"
    return "the Service's ClusterIP"


def group_path(ctx: RuleContext, tier: NginxHttpTier | NginxStreamTier) -> ModelPath:
    """Model path of what makes up the group: the next tier's instances or the targets knob."""
    following = ctx.spec.next_tier(tier)
    if isinstance(following, NginxStreamTier | KongTier):
        return ctx.tier_path(following, "instances")
    if isinstance(tier, NginxHttpTier):
        return ctx.tier_path(tier, "backend_targets")
    return ctx.tier_path(ctx.spec.cluster)


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


def edge_tries(spec: Spec, edge: NginxHttpTier) -> int:
    """Attempts one request can make at the edge: `proxy_next_upstream_tries`, or (0 =
    unlimited, the default) every server of the group once (nginx docs, #proxy_next_upstream)."""
    if not edge_retry_conditions(edge).value:
        return 1
    size = group_size(spec, edge)
    tries = edge.retry.tries
    if tries is None or tries == 0:
        return size
    return min(tries, size)


