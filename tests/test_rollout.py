"""Deploy steps and the rollout order of an idle-timeout change (issue #8 item 9).

The invariant during the change: lower a callee's idle timeout only after its callers are
below the new value; raise a caller's only after its callees are above it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import lbgen
from lbgen.cli import cli
from lbgen.model.spec import Spec
from lbgen.plan.budget import resolve_budget
from lbgen.rollout import _below, _timer_pairs, plan_text, rollout_plan

BASE: dict[str, Any] = {
    "name": "shop",
    "tiers": [
        {"kind": "nginx_http", "name": "edge", "instances": [{"name": "e1", "address": "10.0.0.1"}],
         "upstream_keepalive": {"idle_timeout": "50s"}},
        {"kind": "kong", "name": "gw", "instances": [{"name": "k1", "address": "10.0.1.1"}],
         "client_keepalive": {"timeout": "60s"}},
        {"kind": "kubernetes", "name": "k8s", "platform": "gke"},
    ],
    "services": [{"name": "orders", "namespace": "shop", "replicas": 2, "app": {"preset": "uvicorn"},
                  "readiness": {}, "pre_stop_delay": "35s", "termination_grace_period": "100s"}],
}


def spec(edge_idle: str = "50s", kong_client: str = "60s", app: dict[str, Any] | None = None) -> Spec:
    data = copy.deepcopy(BASE)
    data["tiers"][0]["upstream_keepalive"]["idle_timeout"] = edge_idle
    data["tiers"][1]["client_keepalive"]["timeout"] = kong_client
    if app is not None:
        data["services"][0]["app"] = app
    return lbgen.load(data).spec


def units(old: Spec, new: Spec) -> list[str]:
    return [item.step.unit for item in rollout_plan(old, new)]


def test_lowering_a_callee_waits_for_its_caller() -> None:
    # Kong's client keep-alive 60s → 30s while the edge pool goes 50s → 20s: with Kong first,
    # the edge would keep 50s-idle connections Kong closes after 30s.
    plan = rollout_plan(spec(), spec(edge_idle="20s", kong_client="30s"))
    assert [item.step.unit for item in plan] == ["edge", "gw"]
    assert plan[1].reasons and "50s → 20s must be below the new client keep-alive timeout 30s" in plan[1].reasons[0]


def test_raising_a_caller_waits_for_its_callee() -> None:
    assert units(spec(edge_idle="20s", kong_client="30s"), spec()) == ["gw", "edge"]


def test_an_app_idle_change_orders_the_app_and_the_pool_in_front() -> None:
    # uvicorn 5s → custom 30s: Kong's derived pool idle rises 4s → 27s, so the app goes first.
    raised = units(spec(), spec(app={"preset": "custom", "idle_timeout": "30s"}))
    assert raised.index("app shop/orders") < raised.index("gw")
    lowered = units(spec(app={"preset": "custom", "idle_timeout": "30s"}), spec())
    assert lowered.index("gw") < lowered.index("app shop/orders")


def test_unconstrained_changes_go_innermost_first() -> None:
    old = spec()
    data = copy.deepcopy(BASE)
    data["services"][0]["termination_grace_period"] = "120s"
    data["tiers"][0]["timeouts"] = {"read": "90s"}
    assert units(old, lbgen.load(data).spec) == ["k8s", "edge"]


def test_no_change_says_so() -> None:
    assert "nothing to deploy" in plan_text("a", "b", rollout_plan(spec(), spec()))


def test_render_rollout_from_prints_the_steps(tmp_path: Path) -> None:
    old_file, new_file = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old_file.write_text(yaml.safe_dump(BASE))
    new = copy.deepcopy(BASE)
    new["tiers"][0]["upstream_keepalive"]["idle_timeout"] = "20s"
    new["tiers"][1]["client_keepalive"]["timeout"] = "30s"
    new_file.write_text(yaml.safe_dump(new))
    result = CliRunner().invoke(
        cli, ["render", str(new_file), "-o", str(tmp_path / "out"), "--rollout-from", str(old_file)]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("1. edge") < out.index("2. gw")
    assert "sudo nginx -t && sudo nginx -s reload" in out
    assert "curl -fsS -X POST http://127.0.0.1:8001/config -F config=@/etc/kong/kong.yaml" in out


def test_readme_says_how_to_apply_each_hop_innermost_first() -> None:
    readme = lbgen.render(lbgen.load(copy.deepcopy(BASE)))["README.md"]
    section = readme[readme.index("### Deploying this output"):]
    assert section.index("`k8s`") < section.index("`gw`") < section.index("`edge`")
    assert "kubectl apply -f k8s/shop/orders.yaml" in section
    assert "POST http://127.0.0.1:8001/config" in section and "decK cannot sync DB-less" in section
    assert "nginx -t && sudo nginx -s reload" in section
    assert "--rollout-from OLD" in section


# --- the invariant holds after every step -------------------------------------------------------

@st.composite
def valid_timers(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """(edge pool idle, Kong client keep-alive, Kong pool idle, app idle) with every caller
    below its callee, as both the old and the new spec of a real change would be."""
    kong_client = draw(st.integers(3, 120))
    app_idle = draw(st.integers(3, 120))
    return (draw(st.integers(2, kong_client - 1)), kong_client,
            draw(st.integers(2, app_idle - 1)), app_idle)


def _three_hop(edge_idle: int, kong_client: int, kong_idle: int, app_idle: int) -> Spec:
    data = copy.deepcopy(BASE)
    data["tiers"][0]["upstream_keepalive"]["idle_timeout"] = f"{edge_idle}s"
    data["tiers"][1]["client_keepalive"]["timeout"] = f"{kong_client}s"
    data["tiers"][1]["upstream_keepalive"] = {"idle_timeout": f"{kong_idle}s"}
    data["services"][0]["app"] = {"preset": "custom", "idle_timeout": f"{app_idle}s"}
    return lbgen.load(data).spec


@settings(max_examples=40, deadline=None)
@given(old=valid_timers(), new=valid_timers())
def test_every_intermediate_state_of_the_plan_keeps_callers_below_callees(
    old: tuple[int, int, int, int], new: tuple[int, int, int, int]
) -> None:
    old_spec, new_spec = _three_hop(*old), _three_hop(*new)
    old_pairs = _timer_pairs(old_spec, resolve_budget(old_spec))
    new_pairs = _timer_pairs(new_spec, resolve_budget(new_spec))
    assert set(old_pairs) == set(new_pairs) == {
        "edge>gw:client keep-alive timeout", "gw>app shop/orders:app idle timeout"
    }
    applied: set[str] = set()
    for item in [None, *rollout_plan(old_spec, new_spec)]:
        if item is not None:
            applied.add(item.step.unit)
        for key, (caller_new, callee_new) in new_pairs.items():
            caller_old, callee_old = old_pairs[key]
            caller = caller_new if caller_new.unit in applied else caller_old
            callee = callee_new if callee_new.unit in applied else callee_old
            assert _below(caller.value, callee.value), (key, caller, callee, applied)
    # Every unit whose timer changes is in the plan.
    changed = {t.unit for k in new_pairs for t, u in zip(new_pairs[k], old_pairs[k], strict=True)
               if t.value != u.value}
    assert changed <= applied


FULL_PATH: dict[str, Any] = {
    "name": "shop", "external_lb": {"kind": "other"},
    "tiers": [
        {"kind": "nginx_http", "name": "edge", "instances": [{"name": "e1", "address": "10.0.0.1"}]},
        {"kind": "nginx_stream", "name": "l4", "instances": [{"name": "l1", "address": "10.0.3.1"}]},
        {"kind": "kong", "name": "gw", "instances": [{"name": "k1", "address": "10.0.1.1"}]},
        {"kind": "kubernetes", "name": "k8s", "platform": "gke"},
    ],
    "services": [{"name": "orders", "namespace": "shop", "replicas": 2,
                  "app": {"preset": "custom", "idle_timeout": "30s"},
                  "readiness": {}, "pre_stop_delay": "35s", "termination_grace_period": "100s"}],
}


@st.composite
def full_path_timers(draw: st.DrawFn) -> Spec:
    """LB → edge → L4 → Kong → app, every timer set and every caller below its callees."""
    edge_client, l4, kong_client, app = (draw(st.integers(3, 200)) for _ in range(4))
    data = copy.deepcopy(FULL_PATH)
    data["external_lb"]["backend_idle_timeout"] = f"{draw(st.integers(2, edge_client - 1))}s"
    edge = data["tiers"][0]
    edge["client_keepalive"] = {"timeout": f"{edge_client}s"}
    edge["upstream_keepalive"] = {"idle_timeout": f"{draw(st.integers(2, min(l4, kong_client) - 1))}s"}
    data["tiers"][1]["proxy_timeout"] = f"{l4}s"
    data["tiers"][2]["client_keepalive"] = {"timeout": f"{kong_client}s"}
    data["tiers"][2]["upstream_keepalive"] = {"idle_timeout": f"{draw(st.integers(2, app - 1))}s"}
    data["services"][0]["app"]["idle_timeout"] = f"{app}s"
    return lbgen.load(data).spec


@settings(max_examples=40, deadline=None)
@given(old_spec=full_path_timers(), new_spec=full_path_timers())
def test_the_plan_keeps_the_invariant_through_l4_and_the_external_lb(old_spec: Spec, new_spec: Spec) -> None:
    old_pairs = _timer_pairs(old_spec, resolve_budget(old_spec))
    new_pairs = _timer_pairs(new_spec, resolve_budget(new_spec))
    assert set(new_pairs) == {
        "external LB>edge:client keepalive_timeout", "edge>l4:proxy_timeout",
        "edge>gw:client keep-alive timeout", "gw>app shop/orders:app idle timeout",
    }
    applied: set[str] = set()
    for item in [None, *rollout_plan(old_spec, new_spec)]:
        if item is not None:
            applied.add(item.step.unit)
        for key, (caller_new, callee_new) in new_pairs.items():
            caller_old, callee_old = old_pairs[key]
            caller = caller_new if caller_new.unit in applied else caller_old
            callee = callee_new if callee_new.unit in applied else callee_old
            assert _below(caller.value, callee.value), (key, caller, callee, applied)
