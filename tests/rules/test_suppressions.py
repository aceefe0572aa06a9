"""The engine's handling of `suppress:` entries, beyond the LB901/LB902 case files.

The case files assert which LB9xx findings appear; these tests assert what happens to the
suppressed rule's own findings, what reports carry, and how selection interacts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import lbgen
from lbgen.errors import SourceLocation
from lbgen.io.loader import format_path, load_spec_text
from lbgen.rules import (
    SUPPRESSION_EXPIRED,
    SUPPRESSION_UNUSED,
    Rule,
    RuleDoc,
    Severity,
    Violation,
    check_spec,
)
from lbgen.rules._base import RuleContext

TODAY = dt.date(2026, 11, 25)

SPEC = """\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{{name: e1, address: 10.0.0.1}}]
    upstream_keepalive: {{idle_timeout: 90s}}
    suppress:
{suppress}
  - kind: kong
    name: gateway
    instances: [{{name: k1, address: 10.0.1.1}}]
    client_keepalive: {{timeout: 75s}}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {{preset: go}}
"""


def _spec(*entries: str) -> Any:
    suppress = "\n".join(f"      - {entry}" for entry in entries) if entries else "      []"
    return load_spec_text(SPEC.format(suppress=suppress), "spec.yaml")


def _codes(report: Any) -> list[tuple[str, str]]:
    return [(f.code, format_path(f.path)) for f in report.findings]


def test_a_suppressed_finding_is_kept_with_its_reason_and_location() -> None:
    loaded = _spec("{rule: LB101, reason: tuned by the network team, expires: 2027-01-31}")
    report = check_spec(loaded, select=["LB101", "LB9"], today=TODAY)
    assert report.findings == []
    [item] = report.suppressed
    assert (item.finding.code, format_path(item.finding.path)) == (
        "LB101", "tiers[0].upstream_keepalive.idle_timeout")
    assert item.reason == "tuned by the network team"
    assert item.expires == dt.date(2027, 1, 31)
    assert format_path(item.suppression_path) == "tiers[0].suppress[0]"
    assert item.suppression_location == SourceLocation("spec.yaml", 8, 9)


def test_after_expiry_the_finding_is_back_and_the_entry_is_flagged() -> None:
    loaded = _spec("{rule: LB101, reason: tuned by the network team, expires: 2026-11-24}")
    report = check_spec(loaded, select=["LB101", "LB9"], today=TODAY)
    assert _codes(report) == [
        ("LB101", "tiers[0].upstream_keepalive.idle_timeout"),
        ("LB901", "tiers[0].suppress[0].expires"),
    ]
    assert report.suppressed == []
    [lb901] = [f for f in report.findings if f.code == "LB901"]
    assert lb901.message == (
        "the suppression of LB101 expired on 2026-11-24 (reason given: 'tuned by the network "
        "team'), so LB101 is reported again"
    )
    assert lb901.severity is Severity.WARNING


def test_rules_run_only_to_judge_suppressions_are_not_reported() -> None:
    # LB902 alone: LB101 runs to see whether the entry is used, but its finding is not shown.
    loaded = _spec("{rule: LB101, reason: tuned by the network team}")
    report = check_spec(loaded, select=["LB902"], today=TODAY)
    assert report.findings == []
    assert report.suppressed == []
    assert [r.code for r in report.rules] == ["LB902"]


def test_without_lb902_selected_an_unused_entry_is_not_reported() -> None:
    loaded = load_spec_text(
        SPEC.replace("90s", "30s").format(suppress="      - {rule: LB101, reason: stale entry}"),
        "spec.yaml",
    )
    assert _codes(check_spec(loaded, select=["LB101"], today=TODAY)) == []
    assert _codes(check_spec(loaded, today=TODAY, select=["LB101", "LB902"])) == [
        ("LB902", "tiers[0].suppress[0]")
    ]


def test_a_suppression_elsewhere_does_not_silence_a_finding() -> None:
    # LB101 concerns the edge and Kong; a suppression on the service is unrelated to it.
    text = SPEC.format(suppress="      []").replace(
        "    app: {preset: go}\n",
        "    app: {preset: go}\n    suppress: [{rule: LB101, reason: wrong place}]\n",
    )
    report = check_spec(load_spec_text(text, "spec.yaml"), select=["LB101", "LB9"], today=TODAY)
    assert _codes(report) == [
        ("LB101", "tiers[0].upstream_keepalive.idle_timeout"),
        ("LB902", "services[0].suppress[0]"),
    ]


def _rule_that_never_applies() -> Rule:
    def check(ctx: RuleContext) -> Iterator[Violation]:
        yield Violation("never", "never", ("tiers", 0))

    return Rule(
        code="LB199",
        name="test-only-never-applies",
        severity=Severity.ERROR,
        status="stable",
        since="0.1.0",
        summary="Test rule",
        tiers=frozenset(),
        check=check,
        doc=RuleDoc("w", "w", "e", "f", ("r",)),
        applies=lambda ctx: "only for a test",
        reads=(),
    )


def test_a_suppression_of_a_skipped_rule_is_not_called_unused() -> None:
    # Whether the entry would match is unknowable when its rule does not apply to the spec.
    rules = [_rule_that_never_applies(), SUPPRESSION_EXPIRED, SUPPRESSION_UNUSED]
    loaded = _spec("{rule: LB199, reason: accepted for now}")
    report = check_spec(loaded, rules=rules, today=TODAY)
    assert report.findings == []
    assert [(s.code, s.reason) for s in report.skipped] == [("LB199", "only for a test")]


def test_library_validate_passes_options_through() -> None:
    loaded = _spec("{rule: LB101, reason: tuned by the network team, expires: 2020-01-01}")
    report = lbgen.validate(loaded, select=["LB901"], today=TODAY)
    assert _codes(report) == [("LB901", "tiers[0].suppress[0].expires")]
