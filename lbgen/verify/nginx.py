"""Real-consumer checks for nginx output (placeholder until implemented)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lbgen.verify._base import CheckResult


def verify(files: Mapping[str, str], schemas_dir: Path | None) -> list[CheckResult]:
    return []
