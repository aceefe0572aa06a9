"""`render --verify`: run every real consumer available on this machine over the output."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lbgen.verify import kong, kubernetes, nginx
from lbgen.verify._base import CheckResult, Verifier

VERIFIERS: tuple[Verifier, ...] = (nginx.verify, kong.verify, kubernetes.verify)


def verify_files(files: Mapping[str, str], schemas_dir: Path | None = None) -> list[CheckResult]:
    """Run all verifiers; a verifier reports skipped checks rather than omitting them."""
    results: list[CheckResult] = []
    for verifier in VERIFIERS:
        results.extend(verifier(files, schemas_dir))
    return results


__all__ = ["CheckResult", "verify_files"]
