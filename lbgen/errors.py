"""Errors lbgen reports to users: always located, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass

# Characters of a file name that are shown escaped even though they are printable: in
# Markdown `>` can close the header's HTML comment (`-->`, `--!>`), `<` can open markup and
# a backtick can close the code span the README shows the name in.
_MARKDOWN_SPECIAL = frozenset("<>`")


def shown_source_name(name: str, *, markdown: bool = False) -> str:
    """The spec's file name as generated text and lbgen's own messages may show it.

    A file name comes from outside the validated spec, so it may hold a line break (LF, CR,
    U+0085, U+2028, U+2029: each ends a comment in nginx, kong.conf or YAML, and the rest
    of the name would become directives, keys or objects; on a terminal, a line of output)
    or other control characters (ESC starts a terminal escape, U+202E reverses text). A
    name made of printable characters (spaces and letters of any script included) is shown
    as it is; any other name is shown as a double-quoted string with every unprintable
    character escaped (`\\n`, `\\u2028`), so it stays on one line of inert comment text.
    """
    if all(ch.isprintable() and not (markdown and ch in _MARKDOWN_SPECIAL) for ch in name):
        return name
    out = []
    for ch in name:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and not (markdown and ch in _MARKDOWN_SPECIAL):
            out.append(ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class SourceLocation:
    file: str
    line: int
    """1-based."""
    column: int
    """1-based."""

    def __str__(self) -> str:
        return f"{shown_source_name(self.file)}:{self.line}:{self.column}"


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
