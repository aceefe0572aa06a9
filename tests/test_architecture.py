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


def test_the_slot_scan_sees_the_forms_it_forbids() -> None:
    source = "spec.edge\nctx.spec.l4\nself.spec.kong\nservice.kong\nhop.tier.edge\nspec.cluster\n"
    assert [(n.lineno, n.attr) for n in _spec_slot_reads(ast.parse(source))] == [
        (1, "edge"), (2, "l4"), (3, "kong"),
    ]


def test_import_contracts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    importlinter_cli = pytest.importorskip("importlinter.cli")
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    code = importlinter_cli.lint_imports(
        config_filename=os.fspath(REPO / "pyproject.toml"), no_cache=True, no_logo=True
    )
    assert code == 0, "lint-imports reports a broken contract (run `lint-imports` to see it)"
