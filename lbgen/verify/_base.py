"""Result of running one real consumer (nginx -t, a schema, kubernetes-validate) on output.

A check *proves* a file only when the consumer accepted it exactly as written, in the version
the file was written for. Anything short of that is said in the result: the check changed its
copy to run it (`adapted`), the consumer's version differs from the declared one
(`tested_on`), or the local consumer is too old to judge a file written for a newer version
(`not provable`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from lbgen.render._base import FileTarget, RenderedFiles

Status = Literal["passed", "failed", "skipped", "not provable"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    """What ran, e.g. "nginx -t edge/nginx.conf" or "kong schema (decK) gateway/kong.yaml"."""
    status: Status
    detail: str = ""
    """For failures: the consumer's own message. For skips and `not provable`: why. For
    passes: notes that do not change the verdict."""
    adapted: tuple[str, ...] = ()
    """Changes the check made to its copy of the file to run the consumer (e.g. an added
    `load_module`): the file as written was not what passed."""
    tested_on: str | None = None
    """The consumer the check ran, when it is not the one the file declares (`nginx 1.22.1`)."""
    declared: str | None = None
    """The consumer the file is written for (`nginx 1.30.0`), when `tested_on` differs."""

    @property
    def proven(self) -> bool:
        """Accepted as written, by the declared version."""
        return self.status == "passed" and not self.adapted and self.tested_on is None

    @property
    def label(self) -> str:
        """One word for the first column: passed (proven), adapted, unproven (passed on
        another version), unprovable, failed, skipped."""
        if self.status == "passed":
            if self.adapted:
                return "adapted"
            return "unproven" if self.tested_on is not None else "passed"
        return "unprovable" if self.status == "not provable" else self.status

    def explanation(self) -> str:
        """The verdict in words, then the detail: what the user reads after the label."""
        parts: list[str] = []
        if self.status == "passed" and self.adapted:
            parts.append("passed after adapting: " + "; ".join(self.adapted))
        if self.tested_on is not None and self.status == "passed":
            parts.append(f"proven on {self.tested_on}, not on declared {self.declared}")
        if self.status == "not provable":
            where = f" ({self.tested_on}, declared {self.declared})" if self.tested_on else ""
            parts.append(f"not provable here{where}")
        if self.detail:
            parts.append(self.detail)
        return "; ".join(parts)


def file_targets(
    files: Mapping[str, str], targets: Mapping[str, FileTarget] | None = None
) -> Mapping[str, FileTarget]:
    """What each file was written for: `targets` when given, else what the render that made
    `files` recorded (`RenderedFiles.targets`; none for a plain mapping)."""
    if targets is not None:
        return targets
    return files.targets if isinstance(files, RenderedFiles) else {}


class Verifier(Protocol):
    def __call__(
        self, files: Mapping[str, str], schemas_dir: Path | None, targets: Mapping[str, FileTarget] | None = None
    ) -> list[CheckResult]: ...
