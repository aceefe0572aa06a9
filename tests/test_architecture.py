"""The layering contracts hold: the rules never import the renderers, the plan reads only
the model, the model reads none of its readers (pyproject.toml [tool.importlinter]); and
the rules, the renderers and the plan never read a tier through the spec's fixed slots
(`spec.edge`, `spec.l4`, `spec.kong`), so a new tier kind that fills a hop plan reaches
them without edits."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

FIXED_SLOTS = frozenset({"edge", "l4", "kong"})
"""`Spec` properties that pick one tier of one kind (lbgen/model/spec.py)."""
SLOT_FREE_PACKAGES = ("lbgen/rules", "lbgen/render", "lbgen/plan")


def _spec_slot_reads(tree: ast.AST) -> Iterator[ast.Attribute]:
    """`X.edge`, `X.l4`, `X.kong` where X is a name `spec` or any `….spec` attribute.

    Other objects have a `kong` field of their own (`service.kong`, the Kong settings of a
    service) and are not the spec. A spec reached under another name (`s = ctx.spec`) is not
    seen; the codebase names it `spec` throughout.
    """
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or node.attr not in FIXED_SLOTS:
            continue
        owner = node.value
        if (isinstance(owner, ast.Name) and owner.id == "spec") or (
            isinstance(owner, ast.Attribute) and owner.attr == "spec"
        ):
            yield node


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", SLOT_FREE_PACKAGES)
def test_no_fixed_tier_slots(package: str) -> None:
    found = [
        f"{path.relative_to(REPO)}:{node.lineno}: spec.{node.attr}"
        for path in _modules(package)
        for node in _spec_slot_reads(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    ]
    assert found == [], "read the plan's hops (ctx.plan.hops_of, pairs, …) instead:\n" + "\n".join(found)


BUDGET_SLOTS = frozenset(
    {"edge_upstream", "edge_client_keepalive", "l4_proxy_timeout", "kong_upstream", "kong_client_keepalive"}
)
"""`Budget` fields named after a tier kind (the renderers and the README table read them)."""


def test_rules_read_no_budget_slot() -> None:
    """The rules read keep-alive values from the hop plans (`pool`, `idle_close`), not from
    the budget's per-kind fields."""
    found = [
        f"{path.relative_to(REPO)}:{node.lineno}: .{node.attr}"
        for path in _modules("lbgen/rules")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr in BUDGET_SLOTS
    ]
    assert found == [], "read the hop plan's pool / idle_close instead:\n" + "\n".join(found)


def test_the_slot_scan_sees_the_forms_it_forbids() -> None:
    source = "spec.edge\nctx.spec.l4\nself.spec.kong\nservice.kong\nhop.tier.edge\nspec.cluster\n"
    assert [(n.lineno, n.attr) for n in _spec_slot_reads(ast.parse(source))] == [
        (1, "edge"), (2, "l4"), (3, "kong"),
    ]


def _defaults_referenced(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, NAME) of every `defaults.NAME` and `from lbgen.defaults import NAME`."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "defaults"
        ):
            yield node.lineno, node.attr
        elif isinstance(node, ast.ImportFrom) and node.module == "lbgen.defaults":
            yield from ((node.lineno, alias.name) for alias in node.names)


def _is_product_default(name: str) -> bool:
    """A `Fact` of lbgen.defaults, or a function that returns one (a default per version)."""
    from lbgen import defaults

    value = getattr(defaults, name, None)
    if isinstance(value, defaults.Fact):
        return True
    returns = getattr(value, "__annotations__", {}).get("return", "") if callable(value) else ""
    return isinstance(returns, str) and returns.startswith("Fact[")


@pytest.mark.parametrize("package", ["lbgen/rules", "lbgen/render"])
def test_rules_and_renderers_read_no_product_default(package: str) -> None:
    """Every default a rule or a renderer uses comes from the plan (a hop plan's `Resolved`
    value or capability): neither references a `Fact` of lbgen.defaults (doc URLs and version
    predicates are not defaults)."""
    found = [
        f"{path.relative_to(REPO)}:{line}: defaults.{name}"
        for path in _modules(package)
        for line, name in _defaults_referenced(ast.parse(path.read_text(encoding="utf-8")))
        if _is_product_default(name)
    ]
    assert found == [], "resolve it in lbgen/plan and read it from the hop plan:\n" + "\n".join(found)


NOT_YET_FROM_THE_PLAN = {("lbgen/simulate/path.py", "CLUSTER_DNS_TTL")}
"""Known reads of a plan-owned default elsewhere, to move: the simulator's delay before an
nginx edge that resolves per request sees a new pod (the plan resolves the same TTL as the
Kong tier's endpoint propagation)."""


def test_defaults_the_plan_resolves_are_read_only_by_the_plan() -> None:
    """A product default that lbgen/plan turns into a `Resolved` value is referenced by no
    other module (lbgen.defaults itself aside): renderers, rules, simulate and lab read the
    plan's value, so a default is never re-derived beside it."""
    owned = {
        name
        for path in _modules("lbgen/plan")
        for _, name in _defaults_referenced(ast.parse(path.read_text(encoding="utf-8")))
        if _is_product_default(name)
    }
    assert {"NGINX_PROXY_READ_TIMEOUT", "nginx_keepalive_requests"} <= owned  # the scan works
    elsewhere = [
        f"{path.relative_to(REPO)}:{line}: defaults.{name}"
        for path in _modules("lbgen")
        if "plan" not in path.relative_to(REPO).parts[1:2] and path.name != "defaults.py"
        for line, name in _defaults_referenced(ast.parse(path.read_text(encoding="utf-8")))
        if name in owned and (str(path.relative_to(REPO)), name) not in NOT_YET_FROM_THE_PLAN
    ]
    assert elsewhere == [], "read the value from the plan's hop instead:\n" + "\n".join(elsewhere)


def test_import_contracts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    importlinter_cli = pytest.importorskip("importlinter.cli")
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    code = importlinter_cli.lint_imports(
        config_filename=os.fspath(REPO / "pyproject.toml"), no_cache=True, no_logo=True
    )
    assert code == 0, "lint-imports reports a broken contract (run `lint-imports` to see it)"
