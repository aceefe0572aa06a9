"""`render --verify`: run every real consumer available on this machine over the output."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lbgen.render._base import FileTarget
from lbgen.verify import kong, kubernetes, nginx
from lbgen.verify._base import CheckResult, Verifier, file_targets

VERIFIERS: tuple[Verifier, ...] = (nginx.verify, kong.verify, kubernetes.verify)


def verify_files(
    files: Mapping[str, str],
    schemas_dir: Path | None = None,
    targets: Mapping[str, FileTarget] | None = None,
) -> list[CheckResult]:
    """Run all verifiers; a verifier reports skipped checks rather than omitting them.

    `targets`: what each configuration file was written for (tier, version, build,
    edition); by default the ones the render of `files` recorded."""
    known = file_targets(files, targets)
    results: list[CheckResult] = []
    for verifier in VERIFIERS:
        results.extend(verifier(files, schemas_dir, known))
    return results


__all__ = ["CheckResult", "verify_files"]
