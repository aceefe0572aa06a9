"""Report formatting (lbgen/report.py) on hand-built findings, independent of the rules."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from msgspec.structs import replace

from lbgen.errors import Problem, SourceLocation
from lbgen.report import (
    artifact_uri,
    explain,
    finding_to_dict,
    format_finding,
    merge_reports,
    problems_to_text,
    report_to_json,
    report_to_sarif,
    report_to_text,
    rules_to_text,
    summary_line,
)
from lbgen.rules import Finding, Rule, RuleDoc, Severity, Skip
from lbgen.rules._engine import CheckReport, SuppressedFinding


def _rule(
    code: str, name: str, severity: Severity = Severity.WARNING, *, preview: bool = False
) -> Rule:
    return Rule(
        code=code,
        name=name,
        severity=severity,
        status="preview" if preview else "stable",
        since="0.2.0" if preview else "0.1.0",
        reads=("nginx_http:upstream_keepalive.idle_timeout",),
        summary="Something between two hops disagrees.",
        tiers=frozenset({"nginx_http", "kong"}),
        check=lambda ctx: iter(()),
        doc=RuleDoc(
            what="What.", why="Why.", example="name: a\n", fix="name: b\n",
            references=("https://example.org/doc",),
        ),
        versions="nginx >= 1.29.7",
    )


RULE_INFO = _rule("LB801", "info-thing", Severity.INFO)
RULE_ERROR = _rule("LB802", "error-thing", Severity.ERROR, preview=True)


def _finding(
    rule: Rule = RULE_ERROR, *, related: bool = True, message: str = "a [1] b", hint: str = "do x"
) -> Finding:
    return Finding(
        code=rule.code,
        name=rule.name,
        severity=rule.severity,
        message=message,
        hint=hint,
        path=("tiers", 0, "upstream_keepalive", "idle_timeout"),
        location=SourceLocation("specs/a.yaml", 7, 5),
        related_path=("tiers", 2, "client_keepalive", "timeout") if related else None,
        related_location=SourceLocation("specs/a.yaml", 19, 9) if related else None,
    )


def _report(*findings: Finding, skipped: tuple[Skip, ...] = (), suppressed: int = 0) -> CheckReport:
    return CheckReport(
        findings=list(findings),
        skipped=list(skipped),
        suppressed=[
            SuppressedFinding(_finding(), "accepted", ("tiers", 0, "suppress", 0),
                              SourceLocation("specs/a.yaml", 9, 9), dt.date(2027, 1, 31))
        ] * suppressed,
        rules=(RULE_INFO, RULE_ERROR),
    )


# --- text ---------------------------------------------------------------------------------


def test_finding_text_has_location_code_severity_hint_and_related() -> None:
    assert format_finding(_finding()) == (
        "specs/a.yaml:7:5: LB802 [error] a [1] b\n"
        "  hint: do x\n"
        "  related: specs/a.yaml:19:9 (tiers[2].client_keepalive.timeout)"
    )


def test_finding_text_without_hint_or_related_is_one_line() -> None:
    text = format_finding(_finding(RULE_INFO, related=False, hint=""))
    assert text == "specs/a.yaml:7:5: LB801 [info] a [1] b"


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (_report(), "All checks passed; 2 rules selected."),
        (_report(_finding()), "Found 1 finding (1 error); 2 rules selected."),
        (
            _report(_finding(), _finding(RULE_INFO), _finding(RULE_INFO), suppressed=2),
            "Found 3 findings (1 error, 2 info); 2 rules selected; 2 suppressed.",
        ),
        (
            _report(skipped=(Skip("LB801", "info-thing", "no Kong tier"),)),
            "All checks passed; 2 rules selected; 1 skipped (--show-skipped lists them).",
        ),
    ],
)
def test_summary_line(report: CheckReport, expected: str) -> None:
    assert summary_line(report) == expected


def test_show_skipped_lists_each_skip_with_its_reason() -> None:
    report = _report(skipped=(Skip("LB801", "info-thing", "needs a Kong tier"),))
    assert report_to_text(report, show_skipped=True) == (
        "skipped LB801 info-thing: needs a Kong tier\n"
        "All checks passed; 2 rules selected; 1 skipped.\n"
    )


def test_merged_reports_name_the_spec_of_each_skip() -> None:
    one = _report(skipped=(Skip("LB801", "info-thing", "needs a Kong tier"),))
    two = _report(_finding())
    merged = merge_reports([("a.yaml", one), ("b.yaml", two)], (RULE_INFO, RULE_ERROR))
    assert merged.skipped == [Skip("LB801", "info-thing", "a.yaml: needs a Kong tier")]
    assert merged.findings == two.findings
    assert summary_line(merged, specs=2).startswith("Found 1 finding (1 error) in 2 specs;")


def test_problems_text() -> None:
    problems = [
        Problem(SourceLocation("a.yaml", 3, 7), "unknown key 'x'", "did you mean 'y'?", "tiers[0].x"),
        Problem(SourceLocation("a.yaml", 9, 1), "the last tier must be kind: kubernetes"),
    ]
    assert problems_to_text(problems) == (
        "a.yaml:3:7: error: unknown key 'x' [tiers[0].x]\n"
        "  hint: did you mean 'y'?\n"
        "a.yaml:9:1: error: the last tier must be kind: kubernetes\n"
        "Found 2 errors in a.yaml; nothing was checked.\n"
    )


def test_rules_text_aligns_columns() -> None:
    assert rules_to_text([RULE_INFO, RULE_ERROR]).splitlines() == [
        (
            "LB801  info     stable   0.1.0  info-thing   Something between two hops disagrees."
            "  (reads nginx_http:upstream_keepalive.idle_timeout)"
        ),
        (
            "LB802  error    preview  0.2.0  error-thing  Something between two hops disagrees."
            "  (reads nginx_http:upstream_keepalive.idle_timeout)"
        ),
    ]


def test_explain_sections_and_metadata() -> None:
    text = explain(RULE_ERROR)
    assert text.startswith(
        "# error-thing (LB802)\n\n- Severity: error\n- Status: preview (since lbgen 0.2.0)\n"
        "- Tiers: `kong`, `nginx_http`\n"
        "- Versions: nginx >= 1.29.7\n- Reads: `nginx_http:upstream_keepalive.idle_timeout`\n\n"
        "Something between two hops disagrees.\n\n"
    )
    assert "disagrees..\n" not in text
    assert "## Example\n\nThis spec triggers LB802:\n\n```yaml\nname: a\n```\n" in text
    assert "## Use instead\n\n```yaml\nname: b\n```\n" in text
    assert text.endswith("## References\n\n- https://example.org/doc\n")


# --- JSON ---------------------------------------------------------------------------------


def test_finding_json_has_both_locations() -> None:
    assert finding_to_dict(_finding()) == {
        "code": "LB802",
        "name": "error-thing",
        "severity": "error",
        "message": "a [1] b",
        "hint": "do x",
        "path": "tiers[0].upstream_keepalive.idle_timeout",
        "file": "specs/a.yaml",
        "line": 7,
        "column": 5,
        "related": {
            "path": "tiers[2].client_keepalive.timeout",
            "file": "specs/a.yaml",
            "line": 19,
            "column": 9,
        },
    }


def test_report_json_shape() -> None:
    data = json.loads(report_to_json(_report(_finding(related=False), suppressed=1)))
    assert list(data) == ["findings", "skipped", "suppressed"]
    assert data["findings"][0]["related"] is None
    assert data["suppressed"][0]["suppression"] == {
        "reason": "accepted",
        "expires": "2027-01-31",
        "path": "tiers[0].suppress[0]",
        "file": "specs/a.yaml",
        "line": 9,
        "column": 9,
    }


# --- SARIF --------------------------------------------------------------------------------


def _sarif(report: CheckReport, problems: list[Problem] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(report_to_sarif(report, problems or [], base=Path("/repo")))
    return data


def test_sarif_is_valid_for_every_severity_and_problem(schemas_dir: Path) -> None:
    schema = json.loads((schemas_dir / "sarif" / "sarif-schema-2.1.0.json").read_text("utf-8"))
    log = _sarif(
        _report(_finding(), _finding(RULE_INFO, related=False), suppressed=1),
        [Problem(SourceLocation("b.yaml", 1, 1), "the spec is empty")],
    )
    assert [e.message for e in Draft7Validator(schema).iter_errors(log)] == []


def test_sarif_levels_follow_severity() -> None:
    results = _sarif(_report(_finding(), _finding(RULE_INFO)))["runs"][0]["results"]
    assert [r["level"] for r in results] == ["error", "note"]
    rules = _sarif(_report())["runs"][0]["tool"]["driver"]["rules"]
    assert [r["defaultConfiguration"]["level"] for r in rules] == ["note", "error"]


def test_sarif_level_is_the_findings_own_severity_not_the_rules_default() -> None:
    inside_margin = replace(_finding(), severity=Severity.WARNING)
    [result] = _sarif(_report(inside_margin))["runs"][0]["results"]
    assert result["level"] == "warning"
    assert finding_to_dict(inside_margin)["severity"] == "warning"
    assert "LB802 [warning]" in format_finding(inside_margin)


def test_sarif_rules_carry_status_and_since() -> None:
    rules = _sarif(_report())["runs"][0]["tool"]["driver"]["rules"]
    assert [(r["properties"]["status"], r["properties"]["since"]) for r in rules] == [
        ("stable", "0.1.0"),
        ("preview", "0.2.0"),
    ]


def test_sarif_message_escapes_brackets_outside_the_related_link() -> None:
    [result] = _sarif(_report(_finding()))["runs"][0]["results"]
    assert result["message"]["text"] == (
        "a \\[1\\] b. Hint: do x. See [the other hop's value](1) "
        "(tiers\\[2\\].client_keepalive.timeout)."
    )


def test_sarif_fingerprint_ignores_line_moves() -> None:
    moved = replace(_finding(), location=SourceLocation("specs/a.yaml", 70, 5))
    first = _sarif(_report(_finding()))["runs"][0]["results"][0]["partialFingerprints"]
    second = _sarif(_report(moved))["runs"][0]["results"][0]["partialFingerprints"]
    assert first == second


@pytest.mark.parametrize(
    ("file", "uri"),
    [
        ("specs/a.yaml", "specs/a.yaml"),
        ("./specs/a.yaml", "specs/a.yaml"),
        ("/repo/lb/my spec.yaml", "lb/my%20spec.yaml"),
        ("/elsewhere/a.yaml", "file:///elsewhere/a.yaml"),
    ],
)
def test_artifact_uri_is_relative_to_the_repository(file: str, uri: str) -> None:
    assert artifact_uri(file, Path("/repo")) == uri


def test_sarif_absolute_uri_has_no_base_id() -> None:
    finding = replace(_finding(related=False), location=SourceLocation("/elsewhere/a.yaml", 1, 1))
    [result] = _sarif(_report(finding))["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "file:///elsewhere/a.yaml"}
