from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.importer.seed import IMPORTED


@pytest.fixture
def in_imported(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run from examples/imported/, where SEED_ARGS' relative paths point."""
    monkeypatch.chdir(IMPORTED)
    yield IMPORTED
