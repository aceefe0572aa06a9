"""Result of running one real consumer (nginx -t, a schema, kubernetes-validate) on output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol


@dataclass(frozen=True)
class CheckResult:
    name: str
    """What ran, e.g. "nginx -t edge/nginx.conf" or "kong schema (decK) gateway/kong.yaml"."""
    status: Literal["passed", "failed", "skipped"]
    detail: str = ""
    """For failures: the consumer's own message. For skips: why (e.g. "nginx not installed")."""


class Verifier(Protocol):
    def __call__(self, files: Mapping[str, str], schemas_dir: Path | None) -> list[CheckResult]: ...
