"""Data-driven rule cases: tests/rules/cases/<CODE>.yaml, one file per rule.

Each case is a spec plus the exact findings expected from that rule alone, as
(code, model path) pairs — never counts. Format::

    rule: LB101
    cases:
      - name: edge_idle_above_kong_keepalive
        spec: {name: ..., tiers: [...], services: [...]}
        expect:
          - {code: LB101, path: "tiers[0].upstream_keepalive.idle_timeout",
             related_path: "tiers[1].client_keepalive.timeout",   # related_path optional
             severity: warning}                     # optional: the finding's own severity
      - name: derived_idle_is_safe
        spec: {...}
        expect: []
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

import lbgen
from lbgen.io.loader import format_path
from lbgen.rules import ALL_RULES, check_spec, get_rule

CASES_DIR = Path(__file__).parent / "cases"
TODAY = dt.date(2026, 11, 25)  # fixed so expiry cases do not change with the calendar


def _load_cases() -> list[Any]:
    params = []
    for case_file in sorted(CASES_DIR.glob("LB*.yaml")):
        document = yaml.safe_load(case_file.read_text(encoding="utf-8"))
        assert document["rule"] == case_file.stem, f"{case_file.name}: rule must be {case_file.stem}"
        for case in document["cases"]:
            params.append(pytest.param(document["rule"], case, id=f"{document['rule']}::{case['name']}"))
    return params


@pytest.mark.parametrize(("code", "case"), _load_cases())
def test_rule_case(code: str, case: dict[str, Any]) -> None:
    rule = get_rule(code)
    loaded = lbgen.load(case["spec"])
    report = check_spec(loaded, select=[rule.code], today=TODAY)
    got = sorted(
        (f.code, format_path(f.path), format_path(f.related_path) if f.related_path else None)
        for f in report.findings
    )
    expected = sorted(
        (e["code"], e["path"], e.get("related_path")) for e in case["expect"]
    )
    if any(e[2] is None for e in expected):
        # related_path not stated in the case: compare code and path only
        got = sorted((c, p, None) for c, p, _ in got)
    assert got == expected
    # Severity, where a case states it: a finding may differ from its rule's default.
    stated = sorted(
        (e["code"], e["path"], e["severity"]) for e in case["expect"] if "severity" in e
    )
    if stated:
        severities = sorted(
            (f.code, format_path(f.path), str(f.severity)) for f in report.findings
        )
        assert [s for s in severities if (s[0], s[1]) in {(c, p) for c, p, _ in stated}] == stated
    assert not [s for s in report.skipped if s.code == code and case.get("expect")], report.skipped


def test_every_rule_has_a_case_file_with_a_trigger_and_a_pass() -> None:
    for rule in ALL_RULES:
        case_file = CASES_DIR / f"{rule.code}.yaml"
        assert case_file.is_file(), f"{rule.code} has no {case_file.name}"
        cases = yaml.safe_load(case_file.read_text(encoding="utf-8"))["cases"]
        assert any(c["expect"] for c in cases), f"{rule.code}: no triggering case"
        assert any(not c["expect"] for c in cases), f"{rule.code}: no passing case"
