"""Run rules over a loaded spec: selection, version skips, suppressions, locations."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from msgspec import Struct

from lbgen.errors import SourceLocation, UnknownRuleError
from lbgen.model._base import Suppression
from lbgen.plan.hops import Plan, resolve
from lbgen.rules._base import (
    Finding,
    ModelPath,
    Rule,
    RuleContext,
    Severity,
    Skip,
    SkipReason,
    Violation,
)

if TYPE_CHECKING:
    from lbgen.io.loader import LoadedSpec

_CODE_PREFIX = re.compile(r"^LB[0-9]{1,3}$", re.IGNORECASE)  # ASCII digits only


class SuppressedFinding(Struct, frozen=True):
    """A finding silenced by a `suppress:` entry, kept so that reports can still show it."""

    finding: Finding
    reason: str
    """The suppression's mandatory reason."""
    suppression_path: ModelPath = ()
    """Model path of the `suppress:` entry that silenced the finding."""
    suppression_location: SourceLocation | None = None
    expires: dt.date | None = None


class CheckReport(Struct, frozen=True):
    findings: list[Finding]
    """Sorted by position in the spec, then code."""
    skipped: list[Skip]
    suppressed: list[SuppressedFinding]
    rules: tuple[Rule, ...] = ()
    """The rules selected for this run (whether they ran or were skipped), in code order."""

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    def fails(self, threshold: Severity) -> bool:
        """True when a finding is at or above `threshold` (error > warning > info)."""
        return any(f.severity.rank >= threshold.rank for f in self.findings)


def _matches(rule: Rule, ref: str) -> bool:
    if rule.name == ref:
        return True
    # Prefixes select families, as in ruff: `LB1` → LB1xx, `LB10` → LB10x.
    return bool(_CODE_PREFIX.match(ref)) and rule.code.startswith(ref.upper())


def select_rules(
    rules: Sequence[Rule], select: Collection[str] | None = None, ignore: Collection[str] = ()
) -> list[Rule]:
    """Filter by code, code prefix (`LB1`) or name; a reference matching no rule is an error."""
    for ref in [*(select or ()), *ignore]:
        if not any(_matches(rule, ref) for rule in rules):
            close = difflib.get_close_matches(ref, [r.name for r in rules], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else "; `lbgen rules` lists them"
            raise UnknownRuleError(f"unknown rule {ref!r}{hint}")
    chosen = [r for r in rules if select is None or any(_matches(r, ref) for ref in select)]
    return [r for r in chosen if not any(_matches(r, ref) for ref in ignore)]


class _Entry(Struct, frozen=True):
    """One `suppress:` item, with where it lives."""

    owner: ModelPath
    """("tiers", i) or ("services", i)."""
    number: int
    suppression: Suppression

    @property
    def path(self) -> ModelPath:
        return (*self.owner, "suppress", self.number)


def _owner(path: ModelPath | None) -> ModelPath | None:
    """The tier or service a model path belongs to (where suppressions live)."""
    if path is not None and len(path) >= 2 and path[0] in ("tiers", "services"):
        return path[:2]
    return None


def check_spec(
    loaded: LoadedSpec,
    *,
    rules: Sequence[Rule] | None = None,
    select: Collection[str] | None = None,
    ignore: Collection[str] = (),
    today: dt.date | None = None,
    plan: Plan | None = None,
) -> CheckReport:
    """Run the selected rules over `loaded` and apply the spec's suppressions.

    A suppression on a tier or service silences findings of its rule whose model path (or,
    for a conflict between two hops, whose related path) lies in that tier or service.
    Three steps: run the rules (`_run`), apply the suppressions (`_suppress`), then report
    on the suppressions themselves (`_suppression_findings`, LB901/LB902).
    """
    from lbgen.io.loader import format_path
    from lbgen.rules import ALL_RULES, SUPPRESSION_EXPIRED, SUPPRESSION_UNUSED

    spec = loaded.spec
    today = today or dt.date.today()
    universe = tuple(rules) if rules is not None else ALL_RULES
    active = select_rules(universe, select, ignore)
    active_codes = {r.code for r in active}
    engine_codes = {SUPPRESSION_EXPIRED.code, SUPPRESSION_UNUSED.code}
    by_code = {r.code: r for r in universe}
    ctx = RuleContext(spec=spec, plan=plan if plan is not None else resolve(spec))
    entries = [
        _Entry(("tiers", i), n, s) for i, t in enumerate(spec.tiers) for n, s in enumerate(t.suppress)
    ] + [
        _Entry(("services", i), n, s)
        for i, svc in enumerate(spec.services)
        for n, s in enumerate(svc.suppress)
    ]

    # Whether a suppression is unused is a fact about the spec, not about the selection:
    # with LB902 selected, rules named by suppressions run too, and their findings only
    # mark suppressions as used (they are not reported).
    shadow: list[Rule] = []
    if SUPPRESSION_UNUSED.code in active_codes:
        wanted = {e.suppression.rule for e in entries} - active_codes - engine_codes
        shadow = [by_code[code] for code in sorted(wanted) if code in by_code]

    run = _run(loaded, ctx, active, shadow)
    findings, suppressed, used = _suppress(loaded, entries, run, today)
    findings += _suppression_findings(
        loaded, entries, used, today, active_codes, by_code, engine_codes, run.not_run
    )
    findings.sort(
        key=lambda f: (f.location.line, f.location.column, f.code, format_path(f.path), f.message)
    )
    suppressed.sort(
        key=lambda x: (x.finding.location.line, x.finding.location.column, x.finding.code)
    )
    return CheckReport(
        findings=findings, skipped=run.skipped, suppressed=suppressed, rules=tuple(active)
    )


class _Run(Struct, frozen=True):
    """What running the rules produced, before suppressions."""

    raw: list[Finding]
    """Findings of the selected rules."""
    shadow_raw: list[Finding]
    """Findings of rules that ran only to tell used suppressions from unused ones."""
    skipped: list[Skip]
    not_run: set[str]
    """Codes of the rules (selected or shadow) that do not apply to this spec."""


def _run(loaded: LoadedSpec, ctx: RuleContext, active: Sequence[Rule], shadow: Sequence[Rule]) -> _Run:
    active_codes = {r.code for r in active}
    run = _Run([], [], [], set())
    for rule in (*active, *shadow):
        is_active = rule.code in active_codes
        reason = rule.applies(ctx)
        if reason is not None:
            run.not_run.add(rule.code)
            if is_active:
                where = reason.path if isinstance(reason, SkipReason) else None
                run.skipped.append(
                    Skip(
                        rule.code,
                        rule.name,
                        str(reason),
                        loaded.source.file,
                        where,
                        loaded.source.locate(where) if where is not None else None,
                    )
                )
            continue
        found = [_finding(loaded, rule, v) for v in rule.check(ctx)]
        (run.raw if is_active else run.shadow_raw).extend(found)
    return run


def _suppress(
    loaded: LoadedSpec, entries: Sequence[_Entry], run: _Run, today: dt.date
) -> tuple[list[Finding], list[SuppressedFinding], set[ModelPath]]:
    """(findings still reported, findings suppressed, paths of the entries that were used)."""
    by_owner: dict[ModelPath, list[_Entry]] = {}
    for listed in entries:
        by_owner.setdefault(listed.owner, []).append(listed)

    def matching_entry(finding: Finding) -> _Entry | None:
        for owner in dict.fromkeys((_owner(finding.path), _owner(finding.related_path))):
            for candidate in by_owner.get(owner, []) if owner else []:
                s = candidate.suppression
                if s.rule == finding.code and not _expired(s, today):
                    return candidate
        return None

    used: set[ModelPath] = set()
    findings: list[Finding] = []
    suppressed: list[SuppressedFinding] = []
    for finding in run.raw:
        entry = matching_entry(finding)
        if entry is None:
            findings.append(finding)
            continue
        used.add(entry.path)
        s = entry.suppression
        suppressed.append(
            SuppressedFinding(
                finding, s.reason, entry.path, loaded.source.locate(entry.path), s.expires
            )
        )
    for finding in run.shadow_raw:
        shadow_entry = matching_entry(finding)
        if shadow_entry is not None:
            used.add(shadow_entry.path)
    return findings, suppressed, used


def _suppression_findings(
    loaded: LoadedSpec,
    entries: Sequence[_Entry],
    used: set[ModelPath],
    today: dt.date,
    active_codes: set[str],
    by_code: dict[str, Rule],
    engine_codes: set[str],
    not_run: set[str],
) -> list[Finding]:
    """LB901 (an expired suppression) and LB902 (one that silences nothing)."""
    from lbgen.rules import SUPPRESSION_EXPIRED, SUPPRESSION_UNUSED

    findings: list[Finding] = []
    for item in entries:
        s = item.suppression
        if _expired(s, today):
            if SUPPRESSION_EXPIRED.code in active_codes:
                violation = Violation(
                    f"the suppression of {s.rule} expired on {s.expires} (reason given: "
                    f"{s.reason!r}), so {s.rule} is reported again",
                    "fix the underlying problem, or renew the suppression with a later expiry date",
                    (*item.path, "expires"),
                )
                findings.append(_finding(loaded, SUPPRESSION_EXPIRED, violation))
            continue
        if item.path in used or SUPPRESSION_UNUSED.code not in active_codes:
            continue
        unused = _unused(s.rule, item.path, by_code, engine_codes, not_run)
        if unused is not None:
            findings.append(_finding(loaded, SUPPRESSION_UNUSED, unused))
    return findings


def _unused(
    code: str,
    path: ModelPath,
    by_code: dict[str, Rule],
    engine_codes: set[str],
    not_run: set[str],
) -> Violation | None:
    """Why a suppression that silenced nothing is a finding (None when that is unknowable)."""
    rule_path = (*path, "rule")
    if code in engine_codes:
        return Violation(
            f"{code} cannot be suppressed: it reports on suppressions themselves",
            "remove this entry, and fix or renew the suppression it is about",
            rule_path,
        )
    if code not in by_code:
        return Violation(
            f"the suppression names {code}, which is not an lbgen rule",
            "check the code against `lbgen rules`, or remove the entry",
            rule_path,
        )
    if code in not_run:
        return None  # the rule does not apply to this spec, so nothing can be said
    return Violation(
        f"the suppression of {code} ({by_code[code].name}) here matches no finding",
        "remove it: the problem it silenced is gone",
        path,
    )


def _expired(suppression: Suppression, today: dt.date) -> bool:
    """Expired once `today` is after the `expires` date (the date itself still counts)."""
    return suppression.expires is not None and suppression.expires < today


def _finding(loaded: LoadedSpec, rule: Rule, violation: Violation) -> Finding:
    source = loaded.source
    return Finding(
        code=rule.code,
        name=rule.name,
        severity=violation.severity or rule.severity,
        message=violation.message,
        hint=violation.hint,
        path=violation.path,
        location=source.locate(violation.path),
        related_path=violation.related_path,
        related_location=source.locate(violation.related_path) if violation.related_path else None,
    )
