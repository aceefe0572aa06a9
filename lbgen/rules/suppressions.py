"""LB9xx — lbgen's own rules about suppressions in the spec."""

from __future__ import annotations

from collections.abc import Iterator

from lbgen.rules._base import FIRST_RELEASE, Rule, RuleContext, RuleDoc, Severity, Violation


def _reported_by_engine(ctx: RuleContext) -> Iterator[Violation]:
    # The engine emits these findings itself, because they depend on the other rules' results.
    return iter(())


_EXAMPLE_BASE = """\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{{name: edge-1, address: 10.0.0.1}}]
    upstream_keepalive: {{idle_timeout: {edge_idle}}}
{suppress}  - kind: kong
    name: gateway
    instances: [{{name: kong-1, address: 10.0.1.1}}]
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - name: orders
    replicas: 2
    app: {{preset: go}}
"""

SUPPRESSION_EXPIRED = Rule(
    code="LB901",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="suppression-expired",
    severity=Severity.WARNING,
    summary="A suppression in the spec is past its expiry date",
    tiers=frozenset(),
    check=_reported_by_engine,
    doc=RuleDoc(
        what=(
            "Every `suppress:` entry on a tier or service whose `expires:` date is earlier "
            "than today. The entry no longer silences anything: its rule's findings are "
            "reported again."
        ),
        why=(
            "A suppression records a decision to live with a finding for a while. Once it "
            "expires the finding is reported again, and the stale entry itself is flagged so "
            "that somebody renews or removes it on purpose."
        ),
        example=_EXAMPLE_BASE.format(
            edge_idle="120s",
            suppress="    suppress:\n      - {rule: LB101, reason: migration to Kong 3.10, expires: 2020-01-31}\n",
        ),
        fix=_EXAMPLE_BASE.format(edge_idle="60s", suppress=""),
        references=(
            "docs/rules/index.md, section Suppressions (lbgen's suppression syntax)",
            (
                "https://docs.oasis-open.org/sarif/sarif/v2.1.0/os/sarif-v2.1.0-os.html "
                "(suppression objects: how suppressed findings appear in SARIF)"
            ),
        ),
    ),
)

SUPPRESSION_UNUSED = Rule(
    code="LB902",
    status="stable",
    since=FIRST_RELEASE,
    reads=(),
    name="suppression-unused",
    severity=Severity.WARNING,
    summary="A suppression in the spec matches no finding",
    tiers=frozenset(),
    check=_reported_by_engine,
    doc=RuleDoc(
        what=(
            "Every unexpired `suppress:` entry that silenced nothing: its rule ran and found "
            "nothing on that tier or service. Also entries that name a code lbgen does not "
            "have, or one of the LB9xx rules, which cannot be suppressed. A suppression whose "
            "rule does not apply to the spec (skipped for its versions or topology) is not "
            "reported, because nothing can be said about it."
        ),
        why=(
            "An unused suppression hides the next, unrelated occurrence of the same problem; "
            "removing it keeps the spec honest (like ruff's unused-noqa)."
        ),
        example=_EXAMPLE_BASE.format(
            edge_idle="60s", suppress="    suppress:\n      - {rule: LB101, reason: accepted during migration}\n"
        ),
        fix=_EXAMPLE_BASE.format(edge_idle="60s", suppress=""),
        references=(
            "https://docs.astral.sh/ruff/rules/unused-noqa/ (the same check for ruff's noqa)",
            "docs/rules/index.md, section Suppressions (lbgen's suppression syntax)",
        ),
    ),
)

RULES: tuple[Rule, ...] = (SUPPRESSION_EXPIRED, SUPPRESSION_UNUSED)
