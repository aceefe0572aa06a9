"""`lbgen plan SPEC` and `lbgen explain HOP.SETTING SPEC` on every example."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import lbgen
from lbgen.cli import cli
from lbgen.io.loader import load_spec_text
from lbgen.plan import resolve
from lbgen.rules import ALL_RULES
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_plan_json_lists_every_hop_and_where_each_value_is_rendered(example: Path) -> None:
    code, out = _run("plan", str(example), "--format", "json")
    assert code == 0, out
    hops = json.loads(out)["hops"]
    spec = lbgen.load(example).spec
    assert [h["name"] for h in hops if h["kind"] != "external_lb"] == [t.name for t in spec.tiers]
    files = lbgen.render(spec)
    for hop in hops:
        for setting in hop["settings"]:
            rendered = setting["rendered"]
            if setting["origin"] == "set" and setting["directive"] and hop["kind"] != "external_lb":
                # A value the spec sets is written somewhere, and the plan finds where.
                assert rendered is not None, (hop["name"], setting["key"])
            if rendered is not None:
                # The line named is in the rendered output and sets that directive.
                line = files[rendered["file"]].splitlines()[rendered["line"] - 1]
                assert line.strip() == rendered["text"]
                assert setting["directive"] in line


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_explain_answers_for_every_setting_of_every_example(example: Path) -> None:
    plan = resolve(lbgen.load(example).spec)
    hop = next(h for h in plan.hops if h.tier_index is not None)
    for setting in hop.settings():
        code, out = _run("explain", f"{hop.name}.{setting.key}", str(example))
        assert code == 0, out
        assert out.startswith(f"{hop.name}.{setting.key}: {setting.title}")
        assert f"origin: {setting.value.origin}" in out


def test_plan_text_names_the_rendered_line_and_the_rules_that_read_it() -> None:
    code, out = _run("plan", str(REPO / "examples/seed.yaml"))
    assert code == 0, out
    block = out[out.index("3. gateway (kong)"):]
    idle = block[block.index("upstream_keepalive.idle_timeout = 4s  [derived]"):]
    assert idle.splitlines()[1].strip() == "why: shortest app idle timeout 5s minus margin 1s"
    assert "rendered: gateway/kong.conf:22  upstream_keepalive_idle_timeout = 4" in idle
    assert idle.splitlines()[3].strip() == "read by: LB103, LB105, LB108"


def test_explain_setting_says_what_depends_on_it() -> None:
    code, out = _run("explain", "gateway.upstream_keepalive.idle_timeout", str(REPO / "examples/seed.yaml"))
    assert code == 0, out
    assert "  value: 4s\n  origin: derived\n" in out
    assert "  rendered: gateway/kong.conf:22: upstream_keepalive_idle_timeout = 4\n" in out
    assert "    LB103 gateway-pool-outlives-app-keepalive:" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("explain", "gateway.nope", "examples/seed.yaml"), "hop gateway has no setting 'nope'"),
        (("explain", "nohop.timeouts.read", "examples/seed.yaml"), "the hops are: edge, l4, gateway, gke"),
        (("explain", "gateway.upstream_keepalive.idle_timeout"), "give the SPEC it is resolved from"),
        (("explain", "LB101", "examples/seed.yaml"), "SPEC only applies to HOP.SETTING"),
    ],
)
def test_explain_setting_usage_errors(args: tuple[str, ...], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_plan_of_an_invalid_spec_is_a_located_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntiers: []\n", encoding="utf-8")
    code, out = _run("plan", str(bad))
    assert code == 2
    assert "bad.yaml:" in out


def test_every_pattern_a_rule_reads_names_a_resolved_setting() -> None:
    # A `reads` pattern that matches no setting of any plan is a typo: it would never name
    # the rule in `lbgen plan` or `lbgen explain`.
    specs = [lbgen.load(example).spec for example in EXAMPLES] + [
        load_spec_text(rule.doc.example, f"{rule.code}.yaml").spec for rule in ALL_RULES
    ]
    keys = {f"{hop.kind}:{s.key}" for spec in specs for hop in resolve(spec).hops for s in hop.settings()}
    for rule in ALL_RULES:
        for pattern in rule.reads:
            assert fnmatch.filter(keys, pattern), f"{rule.code} reads {pattern}: no plan has it"
