"""Formatting of check reports, input errors and rule documentation (text, JSON, SARIF).

Pure functions from lbgen's data to strings: the CLI prints them, the docs generator
writes them. Output is deterministic (sorted, no timestamps) so it can be snapshotted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import msgspec.structs

from lbgen.errors import Problem, SourceLocation, shown_source_name
from lbgen.rules._base import Finding, Rule, Severity, Skip
from lbgen.rules._engine import CheckReport, SuppressedFinding

# No helpUri/informationUri: lbgen has no published home yet, and the full rule docs travel
# inside the log as `help.markdown` (what GitHub code scanning shows).
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"

_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def format_path(path: Sequence[str | int]) -> str:
    """`tiers[0].instances[1].address` (lbgen.io.loader.format_path, imported on first use:
    the loader brings ruamel.yaml and pydantic, which `lbgen rules` / `explain` do not need)."""
    from lbgen.io.loader import format_path as loader_format_path

    return loader_format_path(path)


def _dumps(data: Any) -> str:
    """JSON with non-ASCII text as it is, except unprintable characters (U+0085, U+2028,
    U+202E…: a file name may hold them), which are escaped like json escapes ASCII controls:
    they would break or reorder the line on a terminal. Outside strings json writes only
    printable ASCII and newlines, so every such character is inside a string."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() or ch == "\n" else _json_escape(ch) for ch in text)
    return text + "\n"


def _json_escape(ch: str) -> str:
    if ord(ch) <= 0xFFFF:
        return f"\\u{ord(ch):04x}"
    high, low = divmod(ord(ch) - 0x10000, 0x400)  # a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


# --- findings: text ------------------------------------------------------------------------


# ANSI SGR codes for `--color`: bold for locations, the severity's colour for code and severity.
_BOLD = "1"
_DIM = "2"
_SEVERITY_COLOR = {Severity.ERROR: "1;31", Severity.WARNING: "1;33", Severity.INFO: "1;36"}


def paint(text: str, sgr: str, color: bool) -> str:
    """`text` in ANSI colour `sgr` when `color`, else unchanged."""
    return f"\x1b[{sgr}m{text}\x1b[0m" if color else text


def format_finding(finding: Finding, *, color: bool = False) -> str:
    """`file:line:col: CODE [severity] message`, then `hint:` and `related:` lines."""
    tag = paint(f"{finding.code} [{finding.severity}]", _SEVERITY_COLOR[finding.severity], color)
    lines = [f"{paint(str(finding.location), _BOLD, color)}: {tag} {finding.message}"]
    if finding.hint:
        lines.append(f"  {paint('hint:', _DIM, color)} {finding.hint}")
    if finding.related_location is not None and finding.related_path is not None:
        related = f"{finding.related_location} ({format_path(finding.related_path)})"
        lines.append(f"  {paint('related:', _DIM, color)} {related}")
    return "\n".join(lines)


def report_to_text(
    report: CheckReport,
    *,
    show_skipped: bool = False,
    specs: int = 1,
    quiet: bool = False,
    color: bool = False,
) -> str:
    """Human report: one block per finding, optional skips, and a summary line.

    `quiet`: the findings only (no skips, no summary line), as `ruff -q`.
    """
    blocks = [format_finding(f, color=color) for f in report.findings]
    out = "\n".join(blocks) + ("\n" if blocks else "")
    if quiet:
        return out
    if show_skipped and report.skipped:
        out += "".join(f"skipped {s.code} {s.name}: {s.reason}\n" for s in report.skipped)
    return out + summary_line(report, show_skipped=show_skipped, specs=specs) + "\n"


def summary_line(report: CheckReport, *, show_skipped: bool = False, specs: int = 1) -> str:
    """E.g. `Found 2 findings (1 error, 1 warning); 3 rules selected; 1 suppressed.`"""
    counts = dict.fromkeys(Severity, 0)
    for finding in report.findings:
        counts[finding.severity] += 1
    if report.findings:
        parts = ", ".join(
            f"{counts[s]} {s}" if s is Severity.INFO else _plural(counts[s], str(s))
            for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)
            if counts[s]
        )
        text = f"Found {_plural(len(report.findings), 'finding')} ({parts})"
    else:
        text = "All checks passed"
    if specs != 1:
        text += f" in {specs} specs"
    extras = [f"{_plural(len(report.rules), 'rule')} selected"]
    if report.suppressed:
        extras.append(f"{len(report.suppressed)} suppressed")
    if report.skipped:
        skipped = f"{len(report.skipped)} skipped"
        extras.append(skipped if show_skipped else f"{skipped} (--show-skipped lists them)")
    return f"{text}; " + "; ".join(extras) + "."


# --- findings: JSON ------------------------------------------------------------------------


def _location_dict(path: Sequence[str | int], location: SourceLocation) -> dict[str, Any]:
    return {
        "path": format_path(path),
        "file": location.file,
        "line": location.line,
        "column": location.column,
    }


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    related = None
    if finding.related_path is not None and finding.related_location is not None:
        related = _location_dict(finding.related_path, finding.related_location)
    return {
        "code": finding.code,
        "name": finding.name,
        "severity": str(finding.severity),
        "message": finding.message,
        "hint": finding.hint,
        **_location_dict(finding.path, finding.location),
        "related": related,
    }


def _suppressed_to_dict(item: SuppressedFinding) -> dict[str, Any]:
    location = item.suppression_location or item.finding.location
    return {
        **finding_to_dict(item.finding),
        "suppression": {
            "reason": item.reason,
            "expires": item.expires.isoformat() if item.expires else None,
            **_location_dict(item.suppression_path, location),
        },
    }


def _skip_to_dict(skip: Skip) -> dict[str, Any]:
    """A skipped rule; located at the tier or service value it is about, when there is one
    (`path`, `line` and `column` are null otherwise)."""
    location = skip.location
    return {
        "code": skip.code,
        "name": skip.name,
        "reason": skip.reason,
        "file": skip.file,
        "path": format_path(skip.path) if skip.path is not None else None,
        "line": location.line if location else None,
        "column": location.column if location else None,
    }


def report_to_json(report: CheckReport, problems: Sequence[Problem] = ()) -> str:
    """`{"findings": [...], "skipped": [...], "suppressed": [...]}`, plus `"errors": [...]`
    when a spec could not be loaded (those specs have no findings)."""
    data: dict[str, Any] = {
        "findings": [finding_to_dict(f) for f in report.findings],
        "skipped": [_skip_to_dict(s) for s in report.skipped],
        "suppressed": [_suppressed_to_dict(s) for s in report.suppressed],
    }
    if problems:
        data["errors"] = [_problem_to_dict(p) for p in problems]
    return _dumps(data)


def merge_reports(
    reports: Sequence[tuple[str, CheckReport]], rules: Sequence[Rule]
) -> CheckReport:
    """One report for several specs (findings carry their file; skips name it)."""
    if len(reports) == 1:
        return reports[0][1]
    return CheckReport(
        findings=[f for _, r in reports for f in r.findings],
        skipped=[
            msgspec.structs.replace(s, reason=f"{shown_source_name(file)}: {s.reason}")
            for file, r in reports
            for s in r.skipped
        ],
        suppressed=[s for _, r in reports for s in r.suppressed],
        rules=tuple(rules),
    )


# --- findings: GitHub workflow commands --------------------------------------------------
# Escaping as the Actions toolkit does (escapeData / escapeProperty in
# https://github.com/actions/toolkit/blob/main/packages/core/src/command.ts); the syntax is
# https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands

_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _github_data(text: str) -> str:
    """Escape a workflow command's message as @actions/core does (escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(text: str) -> str:
    """Escape a workflow command's property value (escapeProperty): also `:` and `,`."""
    return _github_data(text).replace(":", "%3A").replace(",", "%2C")


def _github_command(level: str, location: SourceLocation, title: str, message: str) -> str:
    properties = ",".join(
        f"{key}={_github_property(value)}"
        for key, value in (
            ("file", shown_source_name(location.file)),
            ("line", str(location.line)),
            ("col", str(location.column)),
            ("title", title),
        )
    )
    return f"::{level} {properties}::{_github_data(message)}\n"


def report_to_github(report: CheckReport, problems: Sequence[Problem] = ()) -> str:
    """One GitHub Actions annotation per finding (`::error file=…,line=…,col=…,title=LBnnn::…`)
    and per input error; suppressed findings are not annotated."""
    out = []
    for finding in report.findings:
        message = finding.message
        if finding.hint:
            message += f"\nhint: {finding.hint}"
        if finding.related_location is not None and finding.related_path is not None:
            message += (
                f"\nrelated: {finding.related_location} ({format_path(finding.related_path)})"
            )
        level = _GITHUB_LEVEL[finding.severity]
        out.append(_github_command(level, finding.location, finding.code, message))
    for problem in problems:
        message = problem.message + (f"\nhint: {problem.hint}" if problem.hint else "")
        out.append(_github_command("error", problem.location, "lbgen input error", message))
    return "".join(out)


# --- findings: SARIF 2.1.0 -----------------------------------------------------------------


def artifact_uri(file: str, base: Path | None = None) -> str:
    """URI of a spec file relative to `base` (the working directory, i.e. the repository
    root in CI), as GitHub code scanning expects; absolute `file:` URIs outside of it."""
    path = Path(file)
    base = base or Path.cwd()
    if path.is_absolute():
        try:
            path = path.relative_to(base)
        except ValueError:
            return path.as_uri()
    posix = PurePosixPath(path.as_posix())
    parts = [p for p in posix.parts if p != "."]
    return quote("/".join(parts), safe="/")


def _physical(location: SourceLocation, base: Path | None) -> dict[str, Any]:
    uri = artifact_uri(location.file, base)
    artifact: dict[str, Any] = {"uri": uri}
    if not uri.startswith("file:"):
        artifact["uriBaseId"] = "%SRCROOT%"
    return {
        "artifactLocation": artifact,
        "region": {"startLine": location.line, "startColumn": location.column},
    }


def _fingerprint(finding: Finding) -> str:
    """Stable across edits that move lines: code + model paths + message."""
    related = format_path(finding.related_path) if finding.related_path else ""
    key = "\x1f".join((finding.code, format_path(finding.path), related, finding.message))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _sarif_text(text: str) -> str:
    """Escape literal brackets: in SARIF messages `[text](id)` is an embedded link."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _sarif_result(
    finding: Finding, rule_index: dict[str, int], base: Path | None
) -> dict[str, Any]:
    text = _sarif_text(finding.message.rstrip(".")) + "."
    if finding.hint:
        text += f" Hint: {_sarif_text(finding.hint.rstrip('.'))}."
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "level": _SARIF_LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": _physical(finding.location, base),
                "logicalLocations": [
                    {"fullyQualifiedName": format_path(finding.path), "kind": "member"}
                ],
            }
        ],
        "partialFingerprints": {"lbgenFinding/v1": _fingerprint(finding)},
        "properties": {"path": format_path(finding.path), "hint": finding.hint},
    }
    if finding.code in rule_index:
        result["ruleIndex"] = rule_index[finding.code]
    if finding.related_path is not None and finding.related_location is not None:
        related = _sarif_text(format_path(finding.related_path))
        # GitHub code scanning links related locations that the message embeds as [text](id).
        result["message"]["text"] = text + f" See [the other hop's value](1) ({related})."
        result["relatedLocations"] = [
            {
                "id": 1,
                "physicalLocation": _physical(finding.related_location, base),
                "message": {"text": related},
            }
        ]
    return result


def sarif_rule(rule: Rule) -> dict[str, Any]:
    """A SARIF reportingDescriptor with the rule's documentation."""
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.doc.what},
        "help": {"text": f"{rule.doc.what}\n\n{rule.doc.why}", "markdown": explain(rule)},
        "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
        "properties": {
            "tags": ["lbgen", *sorted(rule.tiers)],
            "versions": rule.versions,
            "status": rule.status,
            "since": rule.since,
        },
    }


def _sarif_log(
    rules: Sequence[Rule],
    results: list[dict[str, Any]],
    invocation: dict[str, Any],
    properties: dict[str, Any] | None = None,
) -> str:
    from lbgen import __version__

    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "lbgen",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": [sarif_rule(r) for r in rules],
            }
        },
        "invocations": [invocation],
        "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "The working directory"}}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    if properties:
        run["properties"] = properties
    return _dumps({"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]})


def report_to_sarif(
    report: CheckReport, problems: Sequence[Problem] = (), *, base: Path | None = None
) -> str:
    """SARIF 2.1.0 log for GitHub code scanning; suppressed findings carry `suppressions`.

    Specs that could not be loaded make the invocation unsuccessful, with one located
    `toolExecutionNotification` per problem.
    """
    rules = sorted(report.rules, key=lambda r: r.code)
    known = {r.code for r in rules}
    # Findings of rules outside the selection (none today) still need a descriptor.
    from lbgen.rules import get_rule

    for code in sorted({f.code for f in report.findings} - known):
        rules.append(get_rule(code))
    rule_index = {r.code: i for i, r in enumerate(rules)}
    results = [_sarif_result(f, rule_index, base) for f in report.findings]
    for item in report.suppressed:
        result = _sarif_result(item.finding, rule_index, base)
        result["suppressions"] = [{"kind": "inSource", "justification": item.reason}]
        results.append(result)
    properties = None
    if report.skipped:
        properties = {
            "skipped": [{"code": s.code, "name": s.name, "reason": s.reason} for s in report.skipped]
        }
    return _sarif_log(rules, results, _invocation(problems, base), properties)


def _invocation(problems: Sequence[Problem], base: Path | None) -> dict[str, Any]:
    notifications = []
    for problem in problems:
        message = problem.message + (f" Hint: {problem.hint}" if problem.hint else "")
        message = _sarif_text(message)
        notifications.append(
            {
                "level": "error",
                "message": {"text": message},
                "locations": [{"physicalLocation": _physical(problem.location, base)}],
                "descriptor": {"id": "input-error"},
            }
        )
    invocation: dict[str, Any] = {"executionSuccessful": not problems}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return invocation


# --- input errors --------------------------------------------------------------------------


def problems_to_text(
    problems: Sequence[Problem],
    consequence: str = "nothing was checked",
    *,
    color: bool = False,
) -> str:
    """`file:line:col: error: message [path]` + `  hint:` per problem, and a count."""
    body = "".join(_format_problem(p, color) + "\n" for p in problems)
    files = sorted({p.location.file for p in problems})
    where = shown_source_name(files[0]) if len(files) == 1 else f"{len(files)} files"
    return body + f"Found {_plural(len(problems), 'error')} in {where}; {consequence}.\n"


def _format_problem(problem: Problem, color: bool) -> str:
    """Problem.format(), with the location, `error:` and `hint:` coloured when `color`."""
    if not color:
        return problem.format()
    error = paint("error:", _SEVERITY_COLOR[Severity.ERROR], True)
    text = f"{paint(str(problem.location), _BOLD, True)}: {error} {problem.message}"
    if problem.path:
        text += f" [{problem.path}]"
    if problem.hint:
        text += f"\n  {paint('hint:', _DIM, True)} {problem.hint}"
    return text


def _problem_to_dict(problem: Problem) -> dict[str, Any]:
    return {
        "message": problem.message,
        "hint": problem.hint,
        "path": problem.path,
        "file": problem.location.file,
        "line": problem.location.line,
        "column": problem.location.column,
    }


# --- rules and their documentation --------------------------------------------------------


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    return {
        "code": rule.code,
        "name": rule.name,
        "severity": str(rule.severity),
        "status": rule.status,
        "since": rule.since,
        "summary": rule.summary,
        "tiers": sorted(rule.tiers),
        "versions": rule.versions,
        "reads": list(rule.reads),
        "docs": {
            "what": rule.doc.what,
            "why": rule.doc.why,
            "example": rule.doc.example,
            "fix": rule.doc.fix,
        },
        "references": list(rule.doc.references),
    }


def rules_to_json(rules: Iterable[Rule]) -> str:
    return _dumps([rule_to_dict(r) for r in rules])


def rules_to_text(rules: Sequence[Rule]) -> str:
    """One aligned line per rule: code, severity, status, since, name, summary, and the
    resolved hop settings it reads (`Rule.reads`), if any."""
    if not rules:
        return ""
    name_width = max(len(r.name) for r in rules)
    lines = [
        f"{r.code}  {r.severity!s:<7}  {r.status:<7}  {r.since:<5}  {r.name:<{name_width}}  "
        f"{r.summary}{_reads_suffix(r)}".rstrip()
        for r in rules
    ]
    return "\n".join(lines) + "\n"


def _reads_suffix(rule: Rule) -> str:
    return f"  (reads {', '.join(rule.reads)})" if rule.reads else ""


def _reads_text(rule: Rule) -> str:
    return ", ".join(f"`{key}`" for key in rule.reads) or "none of the plan's hop settings"


def _tiers_text(rule: Rule) -> str:
    return ", ".join(f"`{t}`" for t in sorted(rule.tiers)) or "none (lbgen itself)"


def _yaml_block(text: str) -> str:
    return "```yaml\n" + text.rstrip("\n") + "\n```"


def explain(rule: Rule) -> str:
    """The rule's documentation as Markdown: `lbgen explain` and docs/rules/<CODE>.md."""
    references = "\n".join(f"- {ref}" for ref in rule.doc.references)
    return (
        f"# {rule.name} ({rule.code})\n\n"
        f"- Severity: {rule.severity}\n"
        f"- Status: {rule.status} (since lbgen {rule.since})\n"
        f"- Tiers: {_tiers_text(rule)}\n"
        f"- Versions: {rule.versions}\n"
        f"- Reads: {_reads_text(rule)}\n\n"
        f"{rule.summary.rstrip('.')}.\n\n"
        f"## What it checks\n\n{rule.doc.what.strip()}\n\n"
        f"## Why it matters\n\n{rule.doc.why.strip()}\n\n"
        f"## Example\n\nThis spec triggers {rule.code}:\n\n{_yaml_block(rule.doc.example)}\n\n"
        f"## Use instead\n\n{_yaml_block(rule.doc.fix)}\n\n"
        f"## References\n\n{references}\n"
    )


# --- the spec's JSON Schema ---------------------------------------------------------------


def spec_json_schema_text() -> str:
    """`lbgen schema` and docs/lbgen.schema.json: the spec's JSON Schema, with descriptions."""
    from lbgen.model.docs import spec_json_schema

    return _dumps(spec_json_schema())
