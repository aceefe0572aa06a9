"""Cross-hop rules: one explicit registry, one module per family.

Codes are stable and never reused: LB1xx keep-alive/idle ordering, LB2xx timeouts and
retries, LB3xx health checks and draining, LB4xx balancing that has no effect or skews,
LB5xx client IP and PROXY protocol, LB6xx HTTP/2 and gRPC, LB7xx platform limits,
LB9xx lbgen's own (suppressions).
"""

from __future__ import annotations

import difflib

from lbgen.errors import UnknownRuleError
from lbgen.rules import (
    balancing,
    client_ip,
    health,
    http2,
    keepalive,
    platform,
    suppressions,
    timeouts,
)
from lbgen.rules._base import Finding, Rule, RuleDoc, Severity, Skip, SkipReason, Violation
from lbgen.rules._engine import CheckReport, check_spec, select_rules
from lbgen.rules.suppressions import SUPPRESSION_EXPIRED, SUPPRESSION_UNUSED

ALL_RULES: tuple[Rule, ...] = tuple(
    sorted(
        (
            *keepalive.RULES,
            *timeouts.RULES,
            *health.RULES,
            *balancing.RULES,
            *client_ip.RULES,
            *http2.RULES,
            *platform.RULES,
            *suppressions.RULES,
        ),
        key=lambda r: r.code,
    )
)

_BY_CODE = {r.code: r for r in ALL_RULES}
_BY_NAME = {r.name: r for r in ALL_RULES}
if len(_BY_CODE) != len(ALL_RULES) or len(_BY_NAME) != len(ALL_RULES):
    raise AssertionError("duplicate rule code or name in the registry")


def get_rule(ref: str) -> Rule:
    """Look a rule up by code (`LB101`, any case) or name."""
    rule = _BY_CODE.get(ref.upper()) or _BY_NAME.get(ref)
    if rule is None:
        close = difflib.get_close_matches(ref, list(_BY_NAME), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else "`lbgen rules` lists them"
        raise UnknownRuleError(f"unknown rule {ref!r}; {hint}")
    return rule


__all__ = [
    "ALL_RULES",
    "SUPPRESSION_EXPIRED",
    "SUPPRESSION_UNUSED",
    "CheckReport",
    "Finding",
    "Rule",
    "RuleDoc",
    "Severity",
    "Skip",
    "SkipReason",
    "Violation",
    "check_spec",
    "get_rule",
    "select_rules",
]
