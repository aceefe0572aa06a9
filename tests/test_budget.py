"""Keep-alive budget derivation: every caller closes idle connections before its callee.

Each test states the hop pair and why the resolved value is right.
"""

from __future__ import annotations

from typing import Any

import pytest

import lbgen
from lbgen.model.types import Duration
from lbgen.plan.budget import Budget, margin_for, resolve_budget


def _spec(tiers: list[dict[str, Any]], apps: list[dict[str, Any]] | None = None, **extra: Any) -> Any:
    services = [
        {"name": f"svc{i}", "replicas": 2, "app": app, "route": {"paths": [f"/s{i}"]}}
        for i, app in enumerate(apps or [{"preset": "uvicorn"}])
    ]
    tiers = [*tiers, {"kind": "kubernetes", "name": "cluster", "platform": "self-managed"}]
    return lbgen.load({"name": "t", "tiers": tiers, "services": services, **extra}).spec


EDGE = {"kind": "nginx_http", "name": "edge", "instances": [{"name": "e1", "address": "10.0.0.1"}]}
L4 = {"kind": "nginx_stream", "name": "l4", "instances": [{"name": "l1", "address": "10.0.1.1"}]}
KONG = {"kind": "kong", "name": "kong", "instances": [{"name": "k1", "address": "10.0.2.1"}]}


def _s(seconds: int) -> Duration:
    return Duration(seconds * 1000)


def budget(*args: Any, **kwargs: Any) -> Budget:
    return resolve_budget(_spec(*args, **kwargs))


def test_kong_pool_idle_is_derived_below_the_shortest_app_idle_timeout() -> None:
    # uvicorn closes idle connections after 5s and gunicorn after 2s; Kong's default 60s would
    # reuse connections the apps are closing. The shortest (2s) minus the 1s margin wins.
    b = budget([KONG], apps=[{"preset": "uvicorn"}, {"preset": "gunicorn"}])
    assert b.kong_upstream is not None
    assert b.kong_upstream.idle_timeout.value == _s(1)
    assert b.kong_upstream.idle_timeout.origin == "derived"
    assert b.app_idle["default/svc0"].value == _s(5)
    assert b.app_idle["default/svc1"].value == _s(2)


def test_kong_default_is_kept_when_the_app_never_closes_idle_connections() -> None:
    # Go's zero IdleTimeout keeps connections forever: nothing to stay below.
    b = budget([KONG], apps=[{"preset": "go"}])
    assert b.kong_upstream is not None
    assert b.kong_upstream.idle_timeout.value == _s(60)
    assert b.kong_upstream.idle_timeout.origin == "product default"


def test_a_value_the_user_sets_is_kept_even_when_it_races() -> None:
    # The rules report the conflict (LB103); the budget never overrides the user.
    kong = {**KONG, "upstream_keepalive": {"idle_timeout": "10s"}}
    b = budget([kong], apps=[{"preset": "uvicorn"}])
    assert b.kong_upstream is not None
    assert (b.kong_upstream.idle_timeout.value, b.kong_upstream.idle_timeout.origin) == (_s(10), "set")


def test_kong_idle_zero_set_by_the_user_means_forever_not_pool_off() -> None:
    # kong.conf: upstream_keepalive_idle_timeout 0 keeps idle connections forever.
    kong = {**KONG, "upstream_keepalive": {"idle_timeout": 0}}
    b = budget([kong], apps=[{"preset": "go"}])
    assert b.kong_upstream is not None
    assert b.kong_upstream.idle_timeout.value == Duration(0)
    assert b.kong_upstream.connections.value == 512


def test_app_idle_too_short_to_pool_disables_the_kong_pool() -> None:
    # A 1s app idle timeout leaves no whole second below it, and Kong's 0 means "forever".
    b = budget([KONG], apps=[{"preset": "custom", "idle_timeout": "1s"}])
    assert b.kong_upstream is not None
    assert b.kong_upstream.connections.value == 0
    assert b.kong_upstream.connections.origin == "derived"


def test_edge_pool_stays_below_the_l4_idle_timer() -> None:
    # The L4 relay closes both legs after proxy_timeout of silence; the edge's pooled
    # connection must be closed by the edge first: 10s - 1s = 9s.
    l4 = {**L4, "proxy_timeout": "10s"}
    b = budget([EDGE, l4, KONG], apps=[{"preset": "go"}])
    assert b.edge_upstream is not None
    assert b.edge_upstream.idle_timeout.value == _s(9)
    assert b.edge_upstream.idle_timeout.origin == "derived"


def test_edge_pool_default_already_below_kong_client_keepalive_is_kept() -> None:
    # nginx's 60s upstream keepalive_timeout < Kong's 75s (minus 7s margin): no change needed.
    b = budget([EDGE, L4, KONG], apps=[{"preset": "go"}])
    assert b.edge_upstream is not None
    assert b.edge_upstream.idle_timeout.value == _s(60)
    assert b.edge_upstream.idle_timeout.origin == "product default"
    assert b.l4_proxy_timeout is not None and b.l4_proxy_timeout.value == _s(600)


def test_edge_directly_in_front_of_pods_stays_below_the_app() -> None:
    b = budget([EDGE], apps=[{"preset": "tomcat"}])  # Tomcat's stock server.xml: 20s
    assert b.edge_upstream is not None
    assert b.edge_upstream.idle_timeout.value == _s(18)  # 20s - 10% (2s)


def test_callee_defaults_are_raised_above_a_caller_the_user_set() -> None:
    # The user set the edge pool to 120s; Kong's client keep-alive (unset) and the L4 idle
    # timer (unset) must outlive it: Kong 120s + 12s; L4's default 10m already does.
    edge = {**EDGE, "upstream_keepalive": {"idle_timeout": "120s"}}
    b = budget([edge, L4, KONG], apps=[{"preset": "go"}])
    assert b.kong_client_keepalive is not None
    assert (b.kong_client_keepalive.value, b.kong_client_keepalive.origin) == (_s(132), "derived")
    assert b.l4_proxy_timeout is not None and b.l4_proxy_timeout.origin == "product default"


def test_gcp_load_balancer_raises_the_first_tier_above_600s() -> None:
    # GCP's application LB keeps backend connections for a fixed 600s; the backend must keep
    # them longer (Google's example: nginx keepalive_timeout 620s).
    b = budget([EDGE, KONG], apps=[{"preset": "go"}], external_lb={"kind": "gcp-application"})
    assert b.edge_client_keepalive is not None
    assert b.edge_client_keepalive.value == _s(660)
    assert b.edge_client_keepalive.origin == "derived"


def test_gcp_load_balancer_in_front_of_l4_raises_l4_and_kong() -> None:
    # The L4 tier relays the LB's pooled connections to Kong, so both must outlive 600s.
    b = budget([L4, KONG], apps=[{"preset": "go"}], external_lb={"kind": "gcp-application"})
    assert b.l4_proxy_timeout is not None and b.l4_proxy_timeout.value == _s(660)
    assert b.kong_client_keepalive is not None and b.kong_client_keepalive.value == _s(660)


def test_margin_is_ten_percent_with_a_one_second_floor_or_the_spec_value() -> None:
    spec = _spec([KONG])
    assert margin_for(spec, _s(5)) == _s(1)
    assert margin_for(spec, _s(75)) == _s(7)
    custom = _spec([KONG], keepalive_margin="3s")
    assert margin_for(custom, _s(75)) == _s(3)


def test_nodejs_26_raised_the_default_to_65s() -> None:
    # nodejs/node#62782 (v26): server.keepAliveTimeout 5000 → 65000 ms.
    b = budget([KONG], apps=[{"preset": "nodejs", "version": "26.0"}, {"preset": "nodejs", "version": "22.11"}])
    assert b.app_idle["default/svc0"].value == _s(65)
    assert b.app_idle["default/svc1"].value == _s(5)


def test_uvicorn_under_gunicorn_uses_gunicorns_keep_alive_not_uvicorns() -> None:
    # uvicorn/workers.py: UvicornWorker passes "timeout_keep_alive": self.cfg.keepalive, i.e.
    # gunicorn's --keep-alive (default 2s), so the uvicorn preset's 5s (and Kong 4s) would race.
    b = budget([KONG], apps=[{"preset": "uvicorn-gunicorn"}])
    assert b.app_idle["default/svc0"].value == _s(2)
    assert "UvicornWorker" in b.app_idle["default/svc0"].note
    assert b.kong_upstream is not None and b.kong_upstream.idle_timeout.value == _s(1)


def test_go_idle_timeout_falls_back_to_read_timeout() -> None:
    # net/http Server: "IdleTimeout … If zero, the value of ReadTimeout is used."
    b = budget([KONG], apps=[{"preset": "go", "read_timeout": "30s"},
                             {"preset": "go", "read_timeout": "30s", "idle_timeout": "90s"}])
    assert b.app_idle["default/svc0"].value == _s(30)
    assert "ReadTimeout" in b.app_idle["default/svc0"].note
    assert b.app_idle["default/svc1"].value == _s(90)
    assert b.kong_upstream is not None and b.kong_upstream.idle_timeout.value == _s(27)


def test_read_timeout_is_only_for_go() -> None:
    with pytest.raises(lbgen.InputError):
        _spec([KONG], apps=[{"preset": "uvicorn", "read_timeout": "30s"}])


def test_rows_run_from_the_edge_inward_with_origins() -> None:
    b = budget([EDGE, L4, KONG], apps=[{"preset": "uvicorn"}])
    hops = [row.hop for row in b.rows]
    assert hops.index("edge") < hops.index("l4") < hops.index("kong") < hops.index("app default/svc0 (uvicorn)")
    derived = [row for row in b.rows if row.origin == "derived"]
    assert [row.setting for row in derived] == ["Kong → pods: pooled connection idle timeout"]


def test_nginx_before_1_15_3_gets_no_pool_and_no_claimed_upstream_timers() -> None:
    # Upstream keepalive_timeout/keepalive_requests appeared in 1.15.3: an older edge cannot
    # close idle pooled connections before Kong does, so lbgen does not pool there, and no
    # row claims a 60s idle timeout or a 100-request limit that version lacks.
    b = budget([{**EDGE, "version": "1.14.2"}, KONG])
    assert b.edge_upstream is not None
    assert b.edge_upstream.connections.value == 0
    assert b.edge_upstream.connections.origin == "lbgen default"
    assert b.edge_upstream.idle_timeout.value is None
    assert b.edge_upstream.max_requests.value is None
    edge_rows = {r.setting: r for r in b.rows if r.hop == "edge" and "→" in r.setting}
    idle = edge_rows["edge → kong: pooled connection idle timeout"]
    assert (idle.value, idle.origin) == ("none: kept until the next hop closes it", "not in this version")
    assert "until the next hop closes it" in idle.note and "kong client keep-alive (75s)" in idle.note
    requests = edge_rows["edge → kong: max requests per connection"]
    assert (requests.value, requests.origin) == ("no limit", "not in this version")
    assert not any(r.origin == "product default" and r.hop == "edge" and "pooled" in r.setting
                   for r in b.rows)


def test_a_pool_set_on_nginx_before_1_15_3_is_kept_and_waits_for_the_callee() -> None:
    # The user may pool anyway (LB110 reports the race); the budget keeps the pool as set.
    # Through an L4 tier the shorter of its proxy_timeout and Kong's 75s closes first.
    l4 = {**L4, "proxy_timeout": "30s"}
    b = budget([{**EDGE, "version": "1.14.2", "upstream_keepalive": {"connections": 16}}, l4, KONG])
    assert b.edge_upstream is not None
    assert b.edge_upstream.connections.value == 16
    assert b.edge_upstream.idle_timeout.value is None
    assert "l4 proxy_timeout (30s) always closes it first" in b.edge_upstream.idle_timeout.note
