"""A faster tokenizer for crossplane's parser: the same tokens, the same line numbers.

crossplane's lexer (crossplane/lexer.py, `_lex_file_object`) walks a file one character at a
time through three chained generators; on a 1,000-upstream nginx.conf it is most of
`lbgen audit`'s parse time. `crossplane.parse` takes no lexer argument: it calls the module
global `crossplane.parser.lex(filename)`, so `crossplane_lexer()` puts `lex` below there for
the duration of one parse, and crossplane's parser, analyser and error handling run
unchanged on its tokens. The token stream is crossplane's, quirks included (they decide what
crossplane parses, so they decide what lbgen reports):

- a backslash and the character after it are one unit (`_iterescape`): never whitespace,
  never a brace or a quote, and a backslash-newline counts a line (`_iterlinecount` counts
  units that end with a newline);
- a line is the count of newlines up to and including the unit (a newline is on the next line);
- `#` starts a comment only where no token has begun; a comment ends at the first unit ending
  in a newline, which it does not include, and is reported on the line of its `#`;
- `${` inside a token reads on until a `}` or whitespace, and the unit after that is appended
  even when it is whitespace;
- inside quotes, an escaped quote becomes the quote, other escapes stay as written;
- the file ending inside a token, a comment, quotes or an escape ends the stream there,
  silently (crossplane's `fix_pep_479` turns the StopIteration into the end of the stream);
- unbalanced braces are crossplane's own `_balance_braces` errors (it wraps this stream).

Only for the crossplane versions whose lexer this was checked against (CHECKED_VERSIONS), and
only while no external lexer (crossplane.ext's Lua support) is registered; otherwise
crossplane's own lexer runs. tests/importer/test_nginx_lexer.py compares the two token by token
on every config under tests/importer/data, examples/ and hypothesis-generated text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import crossplane
import crossplane.lexer
import crossplane.parser

CHECKED_VERSIONS = frozenset({"0.5.8"})
"""crossplane releases whose crossplane/lexer.py this module reproduces."""

Token = tuple[str, int, bool]

# The common case, matched in one step from a place where no token has begun: whitespace, then
# `{` `}` `;`, a plain word that whitespace or a brace or `;` ends (no `${` nor `\${`, no
# escaped newline),
# a quoted string, or a comment and its newline. Anything else (`${`, an escaped newline, the
# end of the file inside a token) is left to `_machine`, crossplane's loop unit by unit.
_FAST = re.compile(r"""
    \s*+
    (?:
      (?P<special>[{};])
    | (?P<word>(?:[^\s{};"'\\#$]|\\?\$(?!\{)|\\[^\n$])(?:[^\s{};\\$]|\\?\$(?!\{)|\\[^\n$])*+)(?=[\s{};])
    | (?P<quoted>"(?:[^"\\]|\\.)*+"|'(?:[^'\\]|\\.)*+')
    | (?P<comment>\#[^\n]*+)\n
    )""", re.VERBOSE | re.DOTALL)
_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"""(?:[^\s{};"'\\#]|\\.)(?:[^\s{};\\]|\\.)*""", re.DOTALL)
_REST = re.compile(r"(?:[^\s{};\\]|\\.)*", re.DOTALL)
_QUOTED = {q: re.compile(rf"(?:[^{q}\\]|\\.)*{q}", re.DOTALL) for q in ('"', "'")}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unquote(body: str, quote: str) -> str:
    """Inside quotes an escaped quote is the quote; other escapes stay as written."""
    if "\\" not in body:
        return body
    return _ESCAPE.sub(lambda m: quote if m.group(1) == quote else m.group(0), body)


def _comment(text: str) -> str:
    """A comment up to its newline: a backslash escaping that newline is not part of it."""
    run = len(text)
    while run > 0 and text[run - 1] == "\\":
        run -= 1
    return text[:-1] if (len(text) - run) % 2 else text


def tokens(text: str) -> Iterator[Token]:
    """crossplane's `_lex_file_object` tokens of `text` (already decoded, newlines universal)."""
    n = len(text)
    i = 0
    line = 1
    counted = 0  # newlines before `counted` are in `line`
    directive = True  # crossplane's next_token_is_directive: where an external lexer may take over
    external = crossplane.lexer.EXTERNAL_LEXERS
    match = _FAST.match
    count = text.count
    while i < n:
        found = match(text, i)
        if found is None:
            line += count("\n", counted, i)
            slow: list[Token] = []
            state = _machine(text, i, line, directive, slow)
            yield from slow
            if state is None:
                return
            i, line, directive = state
            counted = i
            continue
        kind = found.lastgroup or ""
        start = found.start(kind)
        line += count("\n", counted, start)
        counted = start
        i = found.end()
        if kind == "word":
            word = found.group(kind)
            yield (word, line, False)
            if directive and word in external and text[i].isspace():
                # crossplane hands the characters after the whitespace that ended the
                # directive's name to that directive's lexer (crossplane.ext.lua)
                at = [i + 1, line + 1 if text[i] == "\n" else line]
                yield from _external(external[word], word, text, at)
                i, line = at
                counted = i
            else:
                directive = False
        elif kind == "special":
            yield (text[start], line, False)
            directive = True
        elif kind == "quoted":
            body = _unquote(text[start + 1:i - 1], text[start])
            yield (body, line, True)
            if directive and body in external:
                line += count("\n", counted, i)
                at = [i, line]
                yield from _external(external[body], body, text, at)
                i, line = at
                counted = i
            else:
                directive = False
        else:
            yield (_comment(found.group(kind)), line, False)


def _units(text: str, at: list[int]) -> Iterator[tuple[str, int]]:
    """crossplane's character stream from `at` = [offset, line]: a backslash and the next
    character are one unit, and a unit's line counts it when it ends in a newline. `at`
    follows what was consumed."""
    i, line = at
    n = len(text)
    while i < n:
        if text[i] == "\\":
            if i + 1 >= n:
                at[0] = n
                return  # an escape cut by the end of the file ends the stream
            unit = text[i:i + 2]
        else:
            unit = text[i]
        i += len(unit)
        if unit[-1] == "\n":
            line += 1
        at[0], at[1] = i, line
        yield unit, line


def _external(lexer: Callable[[Iterator[tuple[str, int]], str], Iterator[Token]], name: str, text: str,
              at: list[int]) -> Iterator[Token]:
    """The tokens of a registered external lexer, which reads crossplane's character stream."""
    yield from lexer(_units(text, at), name)


def _machine(text: str, i: int, line: int, directive: bool, out: list[Token]) -> tuple[int, int, bool] | None:
    """crossplane's loop, one unit at a time, from `i` (no token begun, `line` its line) until
    no token is pending again: the tokens go to `out`; returns where it stopped and that
    place's line and next_token_is_directive, or None where crossplane's stream ends (the end
    of the file, or a token, comment, quotes or escape cut by it)."""
    n = len(text)
    token = ""
    token_line = 0
    begun = i
    external = crossplane.lexer.EXTERNAL_LEXERS
    while i < n:
        if token == "" and i > begun:
            return i, line, directive
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                return None  # an escape cut by the end of the file
            unit = text[i:i + 2]
        else:
            unit = c
        unit_line = line + 1 if unit[-1] == "\n" else line
        if unit.isspace():
            if token:
                out.append((token, token_line, False))
                if directive and token in external:
                    at = [i + 1, unit_line]
                    out.extend(_external(external[token], token, text, at))
                    i, line = at
                    if i >= n:
                        return None
                    # crossplane fetches the next unit and skips on while it is whitespace
                    unit = text[i:i + 2] if text[i] == "\\" else text[i]
                    if not unit.isspace():
                        return i, line, True
                else:
                    directive = False
                token = ""
            found = _SPACE.match(text, i)
            assert found is not None
            end = found.end()
            line += text.count("\n", i, end)
            i = end
            if i >= n:
                return None
            continue
        if not token and unit == "#":
            end = text.find("\n", i)
            if end < 0:
                return None  # a comment without a newline is not yielded
            out.append((_comment(text[i:end]), line, False))
            line += 1
            i = end + 1
            continue
        if not token:
            token_line = unit_line
        if token and token[-1] == "$" and unit == "{":
            directive = False
            result = _expansion(text, i, line, token)
            if result is None:
                return None
            token, i, line, unit, unit_line = result
            # the unit that ended the expansion, processed as crossplane does next
            if unit in ("{", "}", ";"):
                out.append((token, token_line, False))
                token = ""
                out.append((unit, unit_line, False))
                directive = True
            else:
                token += unit  # a quote, and whitespace too
            line = unit_line
            i += len(unit)
            continue
        if unit in ('"', "'"):
            if token:
                token += unit
                i += 1
                continue
            found = _QUOTED[unit].match(text, i + 1)
            if found is None:
                return None  # the file ends inside the quotes
            line += text.count("\n", i, found.end())
            body = _unquote(text[i + 1:found.end() - 1], unit)
            out.append((body, token_line, True))
            i = found.end()
            if directive and body in external:
                at = [i, line]
                out.extend(_external(external[body], body, text, at))
                i, line = at
            else:
                directive = False
            continue
        if unit in ("{", "}", ";"):
            if token:
                out.append((token, token_line, False))
                token = ""
            out.append((unit, unit_line, False))
            directive = True
            i += 1
            continue
        found = (_REST if token else _TOKEN).match(text, i)
        assert found is not None and found.end() > i
        end = found.end()
        token += text[i:end]
        line += text.count("\n", i, end)
        i = end
    return None  # the end of the file inside a token: crossplane drops it


def _expansion(text: str, i: int, line: int, token: str) -> tuple[str, int, int, str, int] | None:
    """crossplane's `${…}` loop from the `{` at `i`: the token, the position, line and unit
    that ended it (not yet consumed); None when the file ends first."""
    n = len(text)
    unit = "{"
    unit_line = line
    while token[-1] != "}" and not unit.isspace():
        token += unit
        line = unit_line
        i += len(unit)
        if i >= n:
            return None
        if text[i] == "\\":
            if i + 1 >= n:
                return None
            unit = text[i:i + 2]
        else:
            unit = text[i]
        unit_line = line + 1 if unit[-1] == "\n" else line
    return token, i, line, unit, unit_line


def lex(filename: str) -> Iterator[Token]:
    """`crossplane.lexer.lex` with `tokens`: the file read as crossplane reads it (UTF-8,
    undecodable bytes replaced, universal newlines), braces checked by crossplane."""
    with Path(filename).open(encoding="utf-8", errors="replace") as file:
        text = file.read()
    yield from crossplane.lexer._balance_braces(tokens(text), filename)


def usable() -> bool:
    return crossplane.__version__ in CHECKED_VERSIONS


@contextmanager
def crossplane_lexer() -> Iterator[None]:
    """While active, `crossplane.parse` tokenizes with `lex` (when `usable()`)."""
    if not usable():
        yield
        return
    original = crossplane.parser.lex
    crossplane.parser.lex = lex
    try:
        yield
    finally:
        crossplane.parser.lex = original
