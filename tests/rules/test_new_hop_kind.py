"""A hop kind the rules have never seen gets the cross-hop rules by its capabilities.

The plan of a real spec has its edge hop replaced by a hop plan of a kind no rule names
(an HAProxy-like L7 proxy): it states only what the hop does — terminates HTTP, keeps a
pool, closes idle client connections, waits for the next hop's response. The keep-alive and
idle-timer rules (LB101, LB102, LB103, LB104, LB202) report it without any edit, in the
same words they use for nginx, naming the new hop and its product.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal, cast

import lbgen
from lbgen.model.types import Duration
from lbgen.plan import Resolved, resolve
from lbgen.plan.budget import UpstreamBudget
from lbgen.plan.hops import HopKind, HopPlan, IdleClose, Plan, Setting
from lbgen.rules import get_rule
from lbgen.rules._base import RuleContext, Violation


class OtherL7Hop(HopPlan, frozen=True, kw_only=True):
    """What a new tier kind's plan adapter fills in; nothing else is needed by the rules."""

    client_keepalive: Resolved[Duration]
    upstream: UpstreamBudget
    read_timeout: Resolved[Duration]

    product: ClassVar[str] = "HAProxy"
    layer: ClassVar[Literal["lb", "l7", "l4", "cluster"]] = "l7"

    @property
    def pool(self) -> UpstreamBudget:
        return self.upstream

    @property
    def idle_close(self) -> IdleClose:
        return IdleClose(self.client_keepalive, ("client_keepalive", "timeout"), "client keep-alive",
                         "client_keepalive.timeout (timeout http-keep-alive)")

    @property
    def read_timeout_out(self) -> Resolved[Duration]:
        return self.read_timeout

    def settings(self) -> Iterator[Setting]:
        yield Setting("client_keepalive.timeout", "client keep-alive timeout", self.client_keepalive,
                      "timeout http-keep-alive")
        yield Setting("upstream_keepalive.idle_timeout", "pooled connection idle timeout",
                      self.upstream.idle_timeout, "pool-purge-delay")
        yield Setting("timeouts.read", "server timeout", self.read_timeout, "timeout server")


def _s(seconds: int) -> Duration:
    return Duration(seconds * 1000)


def _with_other_edge(document: dict[str, Any], *, pool_idle: int, read: int) -> RuleContext:
    """The spec's plan with its first tier's hop (an nginx edge) replaced by an `OtherL7Hop`."""
    spec = lbgen.load(document).spec
    plan = resolve(spec)
    edge = plan.tier_hops[0]
    at = plan.hops.index(edge)
    other = OtherL7Hop(
        "haproxy-edge", cast(HopKind, "haproxy"), edge.tier_index, edge.protocol_out,
        edge.client_address, True, False, False, edge.targets,
        source_tier=edge.source_tier, group_size=edge.group_size,
        client_keepalive=Resolved(_s(30), "set"),
        upstream=UpstreamBudget(
            connections=Resolved(16, "set"), idle_timeout=Resolved(_s(pool_idle), "set"),
            max_requests=Resolved(None, "product default"), max_lifetime=Resolved(None, "product default"),
        ),
        read_timeout=Resolved(_s(read), "set"),
    )
    hops = (*plan.hops[:at], other, *plan.hops[at + 1:])
    return RuleContext(spec=spec, plan=Plan(hops=hops, budget=plan.budget))


def _found(code: str, ctx: RuleContext) -> list[Violation]:
    rule = get_rule(code)
    assert rule.applies(ctx) is None
    return list(rule.check(ctx))


EDGE = {"kind": "nginx_http", "name": "edge", "instances": [{"name": "e1", "address": "10.0.0.1"}]}
L4 = {"kind": "nginx_stream", "name": "l4", "instances": [{"name": "l1", "address": "10.0.2.1"}],
      "proxy_timeout": "20s"}
KONG = {"kind": "kong", "name": "gateway", "instances": [{"name": "k1", "address": "10.0.1.1"}]}
CLUSTER = {"kind": "kubernetes", "name": "cluster", "platform": "self-managed"}
SERVICES = [{"name": "orders", "replicas": 2, "app": {"preset": "uvicorn"}}]


def test_pool_outliving_kong_is_lb101() -> None:
    ctx = _with_other_edge({"name": "shop", "tiers": [EDGE, KONG, CLUSTER], "services": SERVICES},
                           pool_idle=120, read=30)
    (found,) = _found("LB101", ctx)
    assert found.message == (
        "haproxy-edge keeps idle upstream connections for 2m but gateway closes idle client "
        "connections after 75s, so haproxy-edge can send a request on a connection Kong is "
        "closing (intermittent 502)"
    )
    assert found.path == ("tiers", 0, "upstream_keepalive", "idle_timeout")
    assert found.related_path == ("tiers", 1, "client_keepalive", "timeout")


def test_pool_through_a_relay_is_lb102_and_lb202() -> None:
    ctx = _with_other_edge(
        {"name": "shop", "tiers": [EDGE, L4, KONG, CLUSTER], "services": SERVICES},
        pool_idle=60, read=45,
    )
    (pool,) = _found("LB102", ctx)
    assert pool.message.startswith("haproxy-edge keeps idle pooled connections to l4 for 1m and l4 ")
    (read,) = _found("LB202", ctx)
    assert "haproxy-edge waits 45s (timeout server) and gateway waits" in read.message
    assert read.related_path is not None and read.related_path[:2] == ("services", 0)


def test_pool_straight_to_the_pods_is_lb103() -> None:
    ctx = _with_other_edge({"name": "shop", "tiers": [EDGE, CLUSTER], "services": SERVICES},
                           pool_idle=10, read=30)
    (found,) = _found("LB103", ctx)
    assert found.message.startswith(
        "haproxy-edge keeps idle connections to the pods for 10s but the uvicorn server of orders"
    )
    assert found.related_path == ("services", 0, "app", "idle_timeout")


def test_a_short_client_keepalive_behind_a_cloud_lb_is_lb104() -> None:
    ctx = _with_other_edge(
        {"name": "shop", "external_lb": {"kind": "gcp-application"}, "tiers": [EDGE, KONG, CLUSTER],
         "services": SERVICES},
        pool_idle=30, read=30,
    )
    (found,) = _found("LB104", ctx)
    assert found.path == ("tiers", 0, "client_keepalive", "timeout")
    assert "raise haproxy-edge client_keepalive.timeout (timeout http-keep-alive) to" in found.hint
