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


_SIMPLE = re.compile(r"[{};]|[^\s{};]+")
_SPECIALS = frozenset("{};")


def _complex(names: list[str]) -> re.Pattern[str]:
    """What a line must not hold to be tokenized by `_SIMPLE` alone: an escape, a quote, a
    comment, `${`, or one of `names`, directives an external lexer reads (as a substring: a
    line that only might hold one takes the exact path)."""
    return re.compile(r"[\\\"'#]|\$\{" + "".join(f"|{re.escape(name)}" for name in names))


def tokens(text: str, out: list[Token]) -> None:
    """crossplane's `_lex_file_object` tokens of `text` (already decoded, newlines universal).

    Line by line: a line of plain words and `{` `}` `;` (most of a config) is split by one
    regex; from a line with anything else, `_exact` reads on until a line ends with no token
    pending. The last line, which no newline ends, is read by `_exact` too (crossplane drops a
    token the end of the file cuts). The tokens go to `out` as they are made, so that those
    before an error raised on the way (a Lua block's) are kept."""
    # only the external lexers' directives that the text holds at all (most configs: none)
    hard = _complex(sorted(name for name in crossplane.lexer.EXTERNAL_LEXERS if name in text)).search
    split = _SIMPLE.findall
    lines = text.split("\n")
    last = len(lines) - 1
    number = 0  # index of the current line
    offset = 0  # where it starts in text
    directive = True  # crossplane's next_token_is_directive: where an external lexer may take over
    while number < last:
        line = lines[number]
        if hard(line) is None:
            words = split(line)
            if words:
                at = number + 1
                out.extend([(word, at, False) for word in words])
                directive = words[-1] in _SPECIALS
            offset += len(line) + 1
            number += 1
            continue
        state = _exact(text, offset, number + 1, directive, out, offset + len(line))
        if state is None:
            return
        offset, line_number, directive = state
        number = line_number - 1
    _exact(text, offset, number + 1, directive, out, len(text))


def _exact(text: str, i: int, line: int, directive: bool, out: list[Token],
           stop_after: int) -> tuple[int, int, bool] | None:
    """crossplane's tokens from `i` (a place where no token is pending; `line` its line) into
    `out`, until a line start past `stop_after` where no token is pending: returns that
    offset, its line and next_token_is_directive; None where the stream ends."""
    n = len(text)
    counted = i  # newlines before `counted` are in `line`
    external = crossplane.lexer.EXTERNAL_LEXERS
    match = _FAST.match
    count = text.count
    while i < n:
        if i > stop_after and text[i - 1] == "\n":
            return i, line + count("\n", counted, i), directive
        if i >= stop_after and text[i] == "\n":
            # no token pending and the line ends: the newline is whitespace crossplane skips
            return i + 1, line + count("\n", counted, i + 1), directive
        found = match(text, i)
        if found is None:
            line += count("\n", counted, i)
            state = _machine(text, i, line, directive, out)
            if state is None:
                return None
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
            out.append((word, line, False))
            if directive and word in external and text[i].isspace():
                # crossplane hands the characters after the whitespace that ended the
                # directive's name to that directive's lexer (crossplane.ext.lua)
                at = [i + 1, line + 1 if text[i] == "\n" else line]
                out.extend(_external(external[word], word, text, at))
                i, line = at
                counted = i
            else:
                directive = False
        elif kind == "special":
            out.append((text[start], line, False))
            directive = True
        elif kind == "quoted":
            body = _unquote(text[start + 1:i - 1], text[start])
            out.append((body, line, True))
            if directive and body in external:
                line += count("\n", counted, i)
                at = [i, line]
                out.extend(_external(external[body], body, text, at))
                i, line = at
                counted = i
            else:
                directive = False
        else:
            out.append((_comment(found.group(kind)), line, False))
    return None


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
    undecodable bytes replaced, universal newlines); what crossplane raises while the parser
    pulls tokens (an unreadable file, see `stream`) is raised at the same token."""
    try:
        with Path(filename).open(encoding="utf-8", errors="replace") as file:
            text = file.read()
    except Exception as exc:  # noqa: BLE001 - raised again where crossplane's lexer raises it
        return _checked(_then_raise([], exc), filename)
    return stream(text, filename)


def stream(text: str, filename: str | None = None) -> Iterator[Token]:
    """crossplane's token stream of `text`, braces checked by crossplane's `_balance_braces`.
    The tokens are made at once and handed over as a list iterator (the parser pulls 67,000
    of them from a large file: a generator per token cost more than tokenizing); an error
    raised on the way (a Lua block's) or by the brace check is raised after the tokens before
    it, as crossplane's lazy stream raises it."""
    made: list[Token] = []
    try:
        tokens(text, made)
    except Exception as exc:  # noqa: BLE001 - raised again where crossplane's lexer raises it
        return _checked(_then_raise(made, exc), filename)
    if _balanced(made):
        return iter(made)
    return _checked(iter(made), filename)


def _checked(made: Iterator[Token], filename: str | None) -> Iterator[Token]:
    """crossplane's brace check over `made` (its errors, at its tokens)."""
    checked: Iterator[Token] = crossplane.lexer._balance_braces(made, filename)
    return checked


def _then_raise(made: list[Token], exc: Exception) -> Iterator[Token]:
    yield from made
    raise exc


def _balanced(made: list[Token]) -> bool:
    """Whether `_balance_braces` would pass every token: no `}` before its `{`, none left open."""
    depth = 0
    for token, _, quoted in made:
        if token == "{" and not quoted:
            depth += 1
        elif token == "}" and not quoted:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


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
