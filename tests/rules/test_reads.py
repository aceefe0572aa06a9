"""`Rule.reads` says which resolved hop settings a rule reads, and it is true.

Each rule runs (its `applies` and its `check`) on every rule case spec and every example
with the plan's values instrumented: a read of a `Resolved` value that a hop lists as a
setting (`HopPlan.settings()`) is recorded as `KIND:KEY`, service names folded to `*`
(`kong:services.*.timeouts.read`). A rule must declare every setting it was seen reading,
and every declared pattern must be seen at least once — no undeclared and no stale reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

import lbgen
from lbgen.plan import Resolved, resolve
from lbgen.plan.hops import Plan
from lbgen.rules import ALL_RULES, Rule
from lbgen.rules._base import RuleContext
from tests.conftest import EXAMPLES

CASES_DIR = Path(__file__).parent / "cases"


def _specs() -> list[Any]:
    documents = [
        case["spec"]
        for path in sorted(CASES_DIR.glob("LB*.yaml"))
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]
    ]
    documents += [yaml.safe_load(path.read_text(encoding="utf-8")) for path in EXAMPLES]
    return documents


def _setting_ids(plan: Plan) -> dict[int, set[str]]:
    """id(Resolved) → the `KIND:KEY`s of the settings it is (one object may be several)."""
    found: dict[int, set[str]] = defaultdict(set)
    for hop in plan.hops:
        for setting in hop.settings():
            parts = setting.key.split(".")
            if parts[0] == "services" and len(parts) > 2:
                parts[1] = "*"
            found[id(setting.value)].add(f"{hop.kind}:{'.'.join(parts)}")
    return found


@contextmanager
def _recording(ids: dict[int, set[str]], into: set[str]) -> Iterator[None]:
    original = Resolved.__getattribute__

    def record(self: Resolved[object], name: str) -> object:
        keys = ids.get(id(self))
        if keys is not None:
            into.update(keys)
        return original(self, name)

    Resolved.__getattribute__ = record  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Resolved.__getattribute__ = original  # type: ignore[method-assign]


@cache
def _observed() -> dict[str, set[str]]:
    """Rule code → the settings it read over every spec."""
    seen: dict[str, set[str]] = defaultdict(set)
    for document in _specs():
        loaded = lbgen.load(document)
        plan = resolve(loaded.spec)
        ctx = RuleContext(spec=loaded.spec, plan=plan)
        ids = _setting_ids(plan)
        for rule in ALL_RULES:
            with _recording(ids, seen[rule.code]):
                if rule.applies(ctx) is None:
                    list(rule.check(ctx))
    return seen


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_declared_reads_are_the_reads(rule: Rule) -> None:
    observed = _observed()[rule.code]
    undeclared = sorted(key for key in observed if not any(fnmatchcase(key, p) for p in rule.reads))
    stale = sorted(p for p in rule.reads if not any(fnmatchcase(key, p) for key in observed))
    assert (undeclared, stale) == ([], []), (
        f"{rule.code} reads {sorted(observed)}; declare exactly those in Rule.reads"
    )


def test_the_recorder_sees_a_read() -> None:
    """The instrument itself: LB101 on its own example reads the pool and both sides of the
    race."""
    rule = next(r for r in ALL_RULES if r.code == "LB101")
    loaded = lbgen.load(yaml.safe_load(rule.doc.example))
    plan = resolve(loaded.spec)
    ctx = RuleContext(spec=loaded.spec, plan=plan)
    seen: set[str] = set()
    with _recording(_setting_ids(plan), seen):
        assert list(rule.check(ctx))
    assert seen == {
        "nginx_http:upstream_keepalive.connections",
        "nginx_http:upstream_keepalive.idle_timeout",
        "kong:client_keepalive.timeout",
    }
