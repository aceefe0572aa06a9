"""Errors lbgen reports to users: always located, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLocation:
    file: str
    line: int
    """1-based."""
    column: int
    """1-based."""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input."""

    location: SourceLocation
    message: str
    hint: str = ""
    path: str = ""
    """Model path, e.g. `tiers[2].upstream_keepalive.idle_timeout`."""

    def format(self) -> str:
        text = f"{self.location}: error: {self.message}"
        if self.path:
            text += f" [{self.path}]"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class LbgenError(Exception):
    """Base class of every error lbgen raises on purpose."""


class InputError(LbgenError):
    """The spec cannot be loaded: YAML syntax, encoding, schema errors. Exit code 2."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.format() for p in problems))


class UnknownRuleError(LbgenError):
    """A rule code or name that the registry does not know."""
