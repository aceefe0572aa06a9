"""The shape of a rule, a violation and a finding.

A rule is data (code, name, severity, tiers, versions, documentation) plus a `check`
function. `check` yields `Violation`s that point at model paths; the engine turns them
into `Finding`s with the rule's code, its severity (unless the violation carries its own)
and the spec's file:line:column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Literal, Self

from msgspec import Struct, field

from lbgen.errors import SourceLocation
from lbgen.model.spec import Spec
from lbgen.plan.budget import Budget
from lbgen.plan.hops import HopPlan, Plan

ModelPath = tuple[str | int, ...]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]


RuleStatus = Literal["stable", "preview"]
"""As in ruff: `stable` rules keep their meaning across releases; `preview` rules are new,
and their findings, messages and severities may still change in a minor release."""

FIRST_RELEASE = "0.1.0"
"""The lbgen release that shipped the first rules (`since` of every rule it had)."""
NEXT_RELEASE = "0.2.0"
"""The release under development (CHANGELOG `[Unreleased]`): rules added now are
`status="preview", since=NEXT_RELEASE`. Bump it when that release is cut."""

TierKind = Literal["nginx_http", "nginx_stream", "kong", "kubernetes", "app", "external_lb"]
"""What a rule is about: a tier kind, the app servers, or the external load balancer."""


class RuleContext:
    """What a rule's check sees: the validated spec and its resolved plan."""

    __slots__ = ("_service_index", "_tier_index", "plan", "spec")

    def __init__(self, spec: Spec, plan: Plan) -> None:
        self.spec = spec
        self.plan = plan
        # Object identity → index, so path lookups stay O(1) inside per-service loops.
        self._tier_index = {id(t): i for i, t in enumerate(spec.tiers)}
        self._service_index = {id(s): i for i, s in enumerate(spec.services)}

    @property
    def budget(self) -> Budget:
        """The resolved keep-alive budget (`plan.budget`)."""
        return self.plan.budget

    def hop_path(self, hop: HopPlan, *rest: str | int) -> ModelPath:
        """Model path of a field of the tier a hop plans, e.g. ("tiers", 2, "proxy_timeout")."""
        assert hop.tier_index is not None, "the external load balancer is not a tier"
        return ("tiers", hop.tier_index, *rest)

    def tier_path(self, tier: object, *rest: str | int) -> ModelPath:
        """Model path of a field of a tier object, e.g. ("tiers", 2, "upstream_keepalive")."""
        return ("tiers", self._tier_index[id(tier)], *rest)

    def service_path(self, service: object, *rest: str | int) -> ModelPath:
        """Model path of a field of a service object, e.g. ("services", 0, "kong")."""
        return ("services", self._service_index[id(service)], *rest)


class Violation(Struct, frozen=True):
    """What a check reports: one sentence with the concrete values, and what to change."""

    message: str
    hint: str
    path: ModelPath
    """Model path of the offending value (or of the nearest object that holds it)."""
    related_path: ModelPath | None = None
    """The other hop's value when two hops conflict."""
    severity: Severity | None = None
    """This finding's severity when it differs from the rule's (None: the rule's). A rule
    documents in `RuleDoc.what` which of its findings use which severity, e.g. LB101 reports
    a caller that closes inside the keep-alive margin as a warning, at or past its callee
    as an error."""


class RuleDoc(Struct, frozen=True):
    """Documentation with fixed sections; `lbgen explain` and docs/rules/ render it."""

    what: str
    """What it checks."""
    why: str
    """Why it matters."""
    example: str
    """A complete spec (YAML) that triggers the rule."""
    fix: str
    """The corrected spec (YAML) that does not."""
    references: tuple[str, ...]
    """Primary sources: product docs, source code, changelogs (at least one)."""


class Rule(Struct, frozen=True, kw_only=True):
    code: str
    """Stable code `LBnnn`; never reused."""
    name: str
    """kebab-case name of the problem (not of the fix)."""
    severity: Severity
    """The default severity; a `Violation` may carry another (see `Violation.severity`)."""
    summary: str
    """One line for `lbgen rules`."""
    status: RuleStatus
    """`stable` or `preview` (required: a new rule is `preview`, an old one `stable`)."""
    since: str
    """The lbgen release that added the rule: FIRST_RELEASE or NEXT_RELEASE (required)."""
    tiers: frozenset[TierKind]
    check: Callable[[RuleContext], Iterable[Violation]]
    doc: RuleDoc
    versions: str = "all"
    """Human-readable product versions the rule applies to, e.g. "nginx < 1.29.7"."""
    applies: Callable[[RuleContext], str | None] = field(default=lambda ctx: None)
    """Returns why the rule does not apply to this spec's plan (shown as a skip), or None."""
    reads: tuple[str, ...]
    """The resolved hop settings the rule reads (in `applies` or `check`), as `KIND:SETTING`
    (`nginx_http:timeouts.read`, `kong:services.*.retries`; `*` matches one key part), so
    `lbgen plan`, `lbgen explain HOP.SETTING`, `lbgen rules` and `lbgen explain CODE` can say
    which rules depend on a value (`lbgen.plan.hops.Setting.key`). Required; () when it reads
    none. tests/rules/test_reads.py checks it against what the rule actually reads."""

    def reads_setting(self, kind: str, key: str) -> bool:
        return any(fnmatchcase(f"{kind}:{key}", pattern) for pattern in self.reads)


class Finding(Struct, frozen=True):
    code: str
    name: str
    severity: Severity
    message: str
    hint: str
    path: ModelPath
    location: SourceLocation
    related_path: ModelPath | None = None
    related_location: SourceLocation | None = None


class Skip(Struct, frozen=True):
    """A rule that did not run on this spec, and why (version or topology)."""

    code: str
    name: str
    reason: str
    file: str | None = None
    """The spec the skip is about."""
    path: ModelPath | None = None
    """The tier or service field the skip is about (e.g. the cluster's `platform`), if any."""
    location: SourceLocation | None = None


class SkipReason(str):
    """What `Rule.applies` returns when the reason is about one value of the spec: the
    reason text, plus the model path of that value, so reports can locate the skip."""

    path: ModelPath

    def __new__(cls, reason: str, path: ModelPath) -> Self:
        made = super().__new__(cls, reason)
        made.path = path
        return made
