"""Run rules over a loaded spec: selection, version skips, suppressions, locations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from lbgen.budget import resolve_budget
from lbgen.errors import UnknownRuleError
from lbgen.io.loader import LoadedSpec
from lbgen.model._base import Suppression
from lbgen.rules._base import Finding, ModelPath, Rule, RuleContext, Severity, Skip, Violation


@dataclass(frozen=True)
class SuppressedFinding:
    finding: Finding
    reason: str


@dataclass(frozen=True)
class CheckReport:
    findings: list[Finding]
    """Sorted by position in the spec, then code."""
    skipped: list[Skip]
    suppressed: list[SuppressedFinding]

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    def fails(self, threshold: Severity) -> bool:
        return any(f.severity.rank >= threshold.rank for f in self.findings)


def select_rules(
    rules: Sequence[Rule], select: Collection[str] | None = None, ignore: Collection[str] = ()
) -> list[Rule]:
    """Filter by code, code prefix (`LB1`) or name; unknown references are an error."""
    known = {r.code for r in rules} | {r.name for r in rules}

    def matches(rule: Rule, ref: str) -> bool:
        return rule.name == ref or rule.code.startswith(ref.upper())

    for ref in [*(select or ()), *ignore]:
        if ref not in known and not any(matches(r, ref) for r in rules):
            raise UnknownRuleError(f"unknown rule {ref!r}; see `lbgen rules`")
    chosen = [r for r in rules if select is None or any(matches(r, ref) for ref in select)]
    return [r for r in chosen if not any(matches(r, ref) for ref in ignore)]


def _owner(path: ModelPath) -> ModelPath | None:
    """The tier or service a model path belongs to (where suppressions live)."""
    if len(path) >= 2 and path[0] in ("tiers", "services"):
        return path[:2]
    return None


def check_spec(
    loaded: LoadedSpec,
    *,
    rules: Sequence[Rule] | None = None,
    select: Collection[str] | None = None,
    ignore: Collection[str] = (),
    today: dt.date | None = None,
) -> CheckReport:
    from lbgen.rules import ALL_RULES, SUPPRESSION_EXPIRED, SUPPRESSION_UNUSED

    spec = loaded.spec
    today = today or dt.date.today()
    active = select_rules(rules if rules is not None else ALL_RULES, select, ignore)
    ctx = RuleContext(spec=spec, budget=resolve_budget(spec))

    raw: list[Finding] = []
    skipped: list[Skip] = []
    for rule in active:
        reason = rule.applies(spec)
        if reason is not None:
            skipped.append(Skip(rule.code, rule.name, reason))
            continue
        raw.extend(_finding(loaded, rule, v) for v in rule.check(ctx))

    # Suppressions declared on tiers and services.
    suppressions: dict[ModelPath, list[tuple[int, Suppression]]] = {}
    for index, tier in enumerate(spec.tiers):
        suppressions[("tiers", index)] = list(enumerate(tier.suppress))
    for index, service in enumerate(spec.services):
        suppressions[("services", index)] = list(enumerate(service.suppress))

    used: set[tuple[ModelPath, int]] = set()
    findings: list[Finding] = []
    suppressed: list[SuppressedFinding] = []
    for finding in raw:
        owner = _owner(finding.path)
        match = None
        for number, suppression in suppressions.get(owner, []) if owner else []:
            if suppression.rule == finding.code and not _expired(suppression, today):
                match = (number, suppression)
                break
        if match is None:
            findings.append(finding)
        else:
            used.add((owner, match[0]))  # type: ignore[arg-type]
            suppressed.append(SuppressedFinding(finding, match[1].reason))

    active_codes = {r.code for r in active}
    for owner, entries in suppressions.items():
        for number, suppression in entries:
            path = (*owner, "suppress", number)
            if _expired(suppression, today):
                if SUPPRESSION_EXPIRED.code in active_codes:
                    findings.append(_finding(loaded, SUPPRESSION_EXPIRED, Violation(
                        f"the suppression of {suppression.rule} expired on {suppression.expires} "
                        f"(reason given: {suppression.reason!r}), so {suppression.rule} is reported again",
                        "fix the underlying problem, or renew the suppression with a new expiry date",
                        path)))
            elif (owner, number) not in used and SUPPRESSION_UNUSED.code in active_codes:
                ran = suppression.rule in {r.code for r in active} and suppression.rule not in {
                    s.code for s in skipped
                }
                if ran:
                    findings.append(_finding(loaded, SUPPRESSION_UNUSED, Violation(
                        f"the suppression of {suppression.rule} here matches no finding",
                        "remove it: the problem it silenced is gone", path)))

    findings.sort(key=lambda f: (f.location.line, f.location.column, f.code, f.message))
    return CheckReport(findings=findings, skipped=skipped, suppressed=suppressed)


def _expired(suppression: Suppression, today: dt.date) -> bool:
    return suppression.expires is not None and suppression.expires < today


def _finding(loaded: LoadedSpec, rule: Rule, violation: Violation) -> Finding:
    source = loaded.source
    return Finding(
        code=rule.code,
        name=rule.name,
        severity=rule.severity,
        message=violation.message,
        hint=violation.hint,
        path=violation.path,
        location=source.locate(violation.path),
        related_path=violation.related_path,
        related_location=source.locate(violation.related_path) if violation.related_path else None,
    )
