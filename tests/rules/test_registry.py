"""Meta-tests over every registered rule: identity, documentation, and docs that cannot rot.

They run over ALL_RULES, so a rule added to the registry is covered without touching
this file: it needs a unique code and name, every documentation section, at least one
reference, an example that triggers it, a corrected example that does not, and a case
file.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from lbgen.errors import UnknownRuleError
from lbgen.io.loader import load_spec_text
from lbgen.rules import ALL_RULES, Rule, Severity, check_spec, get_rule, select_rules
from lbgen.rules._base import FIRST_RELEASE, NEXT_RELEASE

TODAY = dt.date(2026, 11, 25)  # as in test_rule_cases.py: expiry examples stay stable

CASES_DIR = Path(__file__).parent / "cases"
RULE_IDS = [r.code for r in ALL_RULES]


def test_codes_are_unique_and_well_formed() -> None:
    codes = [r.code for r in ALL_RULES]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    assert [c for c in codes if not re.fullmatch(r"LB\d{3}", c)] == []


def test_names_are_unique_kebab_case_problem_names() -> None:
    names = [r.name for r in ALL_RULES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert [n for n in names if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", n)] == []
    # A name names the problem, not the fix (ruff's "allow ${rule}" test).
    assert [n for n in names if n.startswith(("no-", "avoid-", "disallow-"))] == []


@pytest.mark.parametrize("rule", ALL_RULES, ids=RULE_IDS)
def test_status_and_since_are_an_lbgen_release(rule: Rule) -> None:
    assert rule.status in ("stable", "preview")
    assert rule.since in (FIRST_RELEASE, NEXT_RELEASE)
    # A rule released before the one under development is stable: only new rules preview.
    assert rule.status == "preview" or rule.since == FIRST_RELEASE


def test_the_next_release_is_ahead_of_the_installed_version() -> None:
    from lbgen import __version__

    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split("."))

    assert key(FIRST_RELEASE) <= key(__version__) < key(NEXT_RELEASE)


def test_registry_is_sorted_by_code() -> None:
    assert [r.code for r in ALL_RULES] == sorted(r.code for r in ALL_RULES)


@pytest.mark.parametrize("rule", ALL_RULES, ids=RULE_IDS)
def test_every_documentation_section_is_written(rule: Rule) -> None:
    assert rule.summary.strip(), "summary"
    assert "\n" not in rule.summary, "the summary is one line"
    for section in ("what", "why", "example", "fix"):
        assert getattr(rule.doc, section).strip(), f"doc.{section} is empty"
    assert rule.doc.references, "at least one reference"
    assert all(ref.strip() for ref in rule.doc.references)
    assert rule.doc.example != rule.doc.fix
    assert isinstance(rule.severity, Severity)


@pytest.mark.parametrize("rule", ALL_RULES, ids=RULE_IDS)
def test_documented_example_triggers_the_rule(rule: Rule) -> None:
    loaded = load_spec_text(rule.doc.example, f"{rule.code}-example.yaml")
    report = check_spec(loaded, select=[rule.code], today=TODAY)
    assert [s for s in report.skipped if s.code == rule.code] == []
    assert rule.code in {f.code for f in report.findings}, "the example does not trigger it"


@pytest.mark.parametrize("rule", ALL_RULES, ids=RULE_IDS)
def test_documented_fix_does_not_trigger_the_rule(rule: Rule) -> None:
    loaded = load_spec_text(rule.doc.fix, f"{rule.code}-fix.yaml")
    report = check_spec(loaded, select=[rule.code], today=TODAY)
    assert [f for f in report.findings if f.code == rule.code] == []


@pytest.mark.parametrize("rule", ALL_RULES, ids=RULE_IDS)
def test_every_rule_has_a_case_file(rule: Rule) -> None:
    assert (CASES_DIR / f"{rule.code}.yaml").is_file()


def test_case_files_belong_to_registered_rules() -> None:
    """A case file for a code that is not registered means a rule was forgotten in the table."""
    orphans = [p.stem for p in CASES_DIR.glob("*.yaml") if p.stem not in set(RULE_IDS)]
    assert orphans == []


def test_lookup_by_code_is_case_insensitive_and_by_name() -> None:
    first = ALL_RULES[0]
    assert get_rule(first.code.lower()) is first
    assert get_rule(first.name) is first
    with pytest.raises(UnknownRuleError, match="LB000"):
        get_rule("LB000")


def test_selection_by_prefix_takes_the_family() -> None:
    chosen = select_rules(ALL_RULES, ["LB9"])
    assert {r.code for r in chosen} == {r.code for r in ALL_RULES if r.code.startswith("LB9")}
    assert "LB901" in {r.code for r in chosen}


def test_ignore_removes_from_the_selection() -> None:
    chosen = select_rules(ALL_RULES, ["LB9"], ["LB902"])
    assert "LB902" not in {r.code for r in chosen}
    assert "LB901" in {r.code for r in chosen}


@pytest.mark.parametrize("ref", ["LB999", "L", "", "keepalive", "lb"])
def test_unknown_or_malformed_references_are_errors(ref: str) -> None:
    # "L" or "" must not act as a prefix that selects every rule.
    with pytest.raises(UnknownRuleError):
        select_rules(ALL_RULES, [ref])


def test_unknown_name_suggests_the_closest_rule() -> None:
    with pytest.raises(UnknownRuleError, match="did you mean 'suppression-unused'"):
        select_rules(ALL_RULES, ["suppression-unusd"])
