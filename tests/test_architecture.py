"""The layering contracts in pyproject.toml ([tool.importlinter]) hold: the rules never
import the renderers, the plan reads only the model, the model reads none of its readers."""

from __future__ import annotations

import os

import pytest

from tests.conftest import REPO

importlinter_cli = pytest.importorskip("importlinter.cli")


def test_import_contracts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    code = importlinter_cli.lint_imports(
        config_filename=os.fspath(REPO / "pyproject.toml"), no_cache=True, no_logo=True
    )
    assert code == 0, "lint-imports reports a broken contract (run `lint-imports` to see it)"
