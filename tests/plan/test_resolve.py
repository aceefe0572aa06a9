"""lbgen.plan: one resolved plan per run, read by the rules and the renderers."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import lbgen
import lbgen.plan.budget
from lbgen.cli import cli
from lbgen.model.spec import Spec
from lbgen.model.types import Duration
from lbgen.plan import Resolved, resolve
from lbgen.plan.budget import Budget
from lbgen.plan.hops import KongHop, KubernetesHop, NginxHttpHop, NginxStreamHop
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def test_render_resolves_the_plan_once_for_rules_and_renderers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[object] = []
    real = lbgen.plan.budget.resolve_budget

    def counting(spec: Spec) -> Budget:
        calls.append(spec)
        return real(spec)

    monkeypatch.setattr("lbgen.plan.hops.resolve_budget", counting)
    result = CliRunner().invoke(cli, ["render", str(REPO / "examples/seed-fixed.yaml"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_hops_follow_the_tiers_in_request_order(example: Path) -> None:
    spec = lbgen.load(example).spec
    plan = resolve(spec)
    tiers = [h for h in plan.hops if h.tier_index is not None]
    assert [(h.name, h.kind) for h in tiers] == [(t.name, t.kind) for t in spec.tiers]
    assert [h.tier_index for h in tiers] == list(range(len(spec.tiers)))
    assert (plan.hops[0].kind == "external_lb") == (spec.external_lb is not None)
    for hop in plan.hops:
        keys = [s.key for s in hop.settings()]
        assert len(keys) == len(set(keys)), f"{hop.name}: duplicate setting keys"


def test_seed_plan_values_and_capabilities() -> None:
    spec = lbgen.load(REPO / "examples/seed.yaml").spec
    plan = resolve(spec)
    edge, l4, kong, k8s = (plan.hop(t.name) for t in spec.tiers)
    assert isinstance(edge, NginxHttpHop) and isinstance(l4, NginxStreamHop)
    assert isinstance(kong, KongHop) and isinstance(k8s, KubernetesHop)
    # The same objects the budget holds: one resolution, not a second copy.
    assert edge.upstream is plan.budget.edge_upstream
    assert kong.client_keepalive is plan.budget.kong_client_keepalive
    assert edge.pools_upstream and kong.pools_upstream and not l4.pools_upstream
    assert spec.l4 is not None
    assert [t.host for t in edge.targets] == [i.address for i in spec.l4.instances]
    assert kong.dials_pods and not edge.dials_pods
    assert edge.read_timeout.value == Duration(370_000) and edge.read_timeout.origin == "set"
    assert l4.protocol_out == "tcp" and edge.protocol_out == "h1"
    setting = kong.setting("upstream_keepalive.idle_timeout")
    assert setting is not None and setting.directive == "upstream_keepalive_idle_timeout"


def test_one_formatter_for_origins() -> None:
    default = Resolved(Duration(60_000), "product default", "nginx docs", product="nginx")
    derived = Resolved(Duration(4_000), "derived", reasoning="app 5s minus margin 1s")
    assert default.shown() == "1m (nginx default)"
    assert default.explained() == "product default: nginx docs"
    assert derived.explained() == "derived: app 5s minus margin 1s"
    assert Resolved(Duration(3_000), "set").explained() == "set in the spec"
    assert Resolved(None, "set").shown() == "no limit"
    both = Resolved(Duration(60_000), "product default", "kong.conf", "already below app 65s")
    assert both.note == "kong.conf; already below app 65s"
