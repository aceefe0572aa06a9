"""Load a spec from YAML (with source positions) or from a mapping, and validate it.

Every failure becomes an `InputError` whose problems name file, line and column, so the
CLI never shows a traceback for a user mistake.
"""

from __future__ import annotations

import bisect
import datetime as dt
import difflib
import json
import os
import re
import stat
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from msgspec import Struct, field
from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode

from lbgen.errors import InputError, Problem, SourceLocation
from lbgen.examples import HINT as EXAMPLES_HINT
from lbgen.model.spec import Spec
from lbgen.model.types import (
    FILE_PATH_PATTERN,
    HEADER_NAME_PATTERN,
    HTTP_PATH_PATTERN,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    NAME_PATTERN,
    NGINX_VARIABLE_PATTERN,
    NGINX_VARIABLES_PATTERN,
    RULE_CODE_PATTERN,
)

ModelPath = tuple[str | int, ...]

MAX_SPEC_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 500_000
"""Scalars + containers after alias expansion: bounds the work (time and memory) of
validating any spec. A spec of 10,000 services (scripts/bench.py) has about 260,000."""
MAX_ALIAS_NODES = 100_000
"""Values added by expanding aliases: legitimate reuse (one `app:` block shared by a thousand
services) stays far below; a "billion laughs" document exceeds it after a few events."""


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_./-]+")


def format_path(path: Sequence[str | int]) -> str:
    """`tiers[0].instances[1].address`; a key with other characters (a label key, a
    hostile value) is shown quoted, `labels["a b"]`, so the path stays one readable line."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            out += f"[{json.dumps(part)}]"
        else:
            out += f".{part}" if out else part
    return out


class SourceMap(Struct):
    """Model path → position of the key (for mappings) and of the value."""

    file: str
    keys: dict[ModelPath, tuple[int, int]] = field(default_factory=dict)
    values: dict[ModelPath, tuple[int, int]] = field(default_factory=dict)
    scalars: dict[ModelPath, str] = field(default_factory=dict)
    """Source text of numeric scalars (``3.10`` reads as the float 3.1), for messages."""

    def locate(self, path: Sequence[str | int], *, key: bool = False) -> SourceLocation:
        """Position of `path`, or of its nearest ancestor present in the file."""
        probe: ModelPath = tuple(path)
        while True:
            table = self.keys if key and probe in self.keys else self.values
            if probe in table:
                line, col = table[probe]
                return SourceLocation(self.file, line + 1, col + 1)
            if probe in self.keys:
                line, col = self.keys[probe]
                return SourceLocation(self.file, line + 1, col + 1)
            if not probe:
                return SourceLocation(self.file, 1, 1)
            probe = probe[:-1]


class LoadedSpec(Struct, frozen=True):
    spec: Spec
    source: SourceMap

    @property
    def source_name(self) -> str:
        return self.source.file


def load_spec_file(path: str | Path) -> LoadedSpec:
    path = Path(path)
    name = str(path)
    try:
        raw = _read_regular_file(path)
    except OSError as exc:
        raise InputError([Problem(SourceLocation(name, 1, 1), f"cannot read the spec: {exc.strerror}")]) from None
    except _NotRegularFileError as exc:
        raise InputError([Problem(SourceLocation(name, 1, 1), f"the spec is {exc.what}, not a regular file",
                                  "pass the path of a YAML file")]) from None
    return load_spec_bytes(raw, name)


def read_limited(stream: BinaryIO, name: str = "<stdin>") -> bytes:
    """Read a spec from a stream (standard input), refusing more than MAX_SPEC_BYTES
    without reading the rest."""
    try:
        raw = stream.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise InputError([Problem(SourceLocation(name, 1, 1), f"cannot read the spec: {exc.strerror}")]) from None
    return bytes(raw)


def load_spec_bytes(raw: bytes, name: str) -> LoadedSpec:
    """Decode (UTF-8) and load a spec read from a file or a stream named `name`."""
    if len(raw) > MAX_SPEC_BYTES:
        raise InputError([Problem(SourceLocation(name, 1, 1), f"spec is larger than {MAX_SPEC_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise InputError([Problem(SourceLocation(name, line, col),
                                  f"the spec is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                                  "save the file as UTF-8")]) from None
    return load_spec_text(text, name)


class _NotRegularFileError(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISDIR, "a directory"))


def _read_regular_file(path: Path) -> bytes:
    """The file's bytes (at most MAX_SPEC_BYTES + 1), refusing anything but a regular file.

    Opened non-blocking, so a FIFO with no writer is refused instead of hanging the read;
    checked on the open descriptor, so the file cannot be swapped between check and read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = next((text for test, text in _FILE_KINDS if test(mode)), "not a regular file")
            raise _NotRegularFileError(what)
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_SPEC_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_SPEC_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_spec_text(text: str, source_name: str = "<spec>") -> LoadedSpec:
    if "\x00" in text:
        offset = text.index("\x00")
        raise InputError([Problem(_offset_location(text, offset, source_name),
                                  "the spec contains a NUL character",
                                  "a spec is UTF-8 text; is this a binary or UTF-16 file?")])
    text = text.removeprefix("\ufeff")
    # NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR end a line for YAML 1.1 readers (ruamel's
    # and libyaml's scanners among them) but not for editors or YAML 1.2: a comment holding
    # one would go on as YAML after it, and every later position would be off by a line.
    # Outside values they are blanked (same length, so positions hold); inside a value the
    # composer refuses them.
    unicode_breaks = {match.start(): match.group() for match in _UNICODE_BREAK.finditer(text)}
    if unicode_breaks:
        text = _UNICODE_BREAK.sub(" ", text)
    _check_flow_depth(text, source_name)
    source = SourceMap(source_name)
    try:
        data = _Composer(text, source, pure=False, unicode_breaks=unicode_breaks).document()
    except InputError as error:
        if not any(p.message.startswith("invalid YAML") for p in error.problems):
            raise
        # libyaml's syntax errors are terser than ruamel's Python scanner's: read the file
        # again with the latter for the precise message and hint (errors are the rare path).
        source = SourceMap(source_name)
        data = _Composer(text, source, pure=True, unicode_breaks=unicode_breaks).document()
    if data is None:
        raise InputError([Problem(SourceLocation(source_name, 1, 1), "the spec is empty",
                                  EXAMPLES_HINT)])
    if not isinstance(data, dict):
        raise InputError([Problem(source.locate(()),
                                  "the spec must be a YAML mapping (name:, tiers:, services:)",
                                  EXAMPLES_HINT)])
    # Strict: YAML has real integers, booleans and dates, so "8" or "yes" where a number
    # or boolean belongs is a mistake worth reporting, not something to coerce silently.
    return _validate(data, source, strict=True)


def load_spec_data(
    data: Mapping[str, Any], source_name: str = "<dict>", *, strict: bool = False
) -> LoadedSpec:
    """Validate an in-memory mapping (library use); positions are unknown (line 1).

    Lax about scalar types by default (an ISO date string, "8" for 8), since mappings often
    come from JSON; `strict=True` applies the YAML loader's rules.
    """
    return _validate(dict(data), SourceMap(source_name), strict=strict)


_UNICODE_BREAK = re.compile("[\x85\u2028\u2029]")
_UNICODE_BREAK_NAMES = {"\x85": "U+0085 (NEXT LINE)", "\u2028": "U+2028 (LINE SEPARATOR)",
                        "\u2029": "U+2029 (PARAGRAPH SEPARATOR)"}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PLAIN_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]{0,17})")


def _offset_location(text: str, offset: int, file: str) -> SourceLocation:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return SourceLocation(file, line, col)


def _check_flow_depth(text: str, source_name: str) -> None:
    """Refuse deeply nested flow collections (``[[[[…``) before the YAML scanner sees them.

    The scanner's simple-key look-ahead costs time per open flow level, so ten thousand
    brackets take seconds to scan even though the composer would stop at MAX_DEPTH. This
    linear pass counts brackets outside quoted scalars and comments; it may over-count
    brackets inside plain scalars, which is harmless at this limit.
    """
    depth = 0
    quote = ""
    previous = "\n"
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if quote:
            if char == "\\" and quote == '"':
                index += 1  # skip the escaped character
            elif char == quote:
                if quote == "'" and text.startswith("''", index):
                    index += 1  # '' is an escaped quote inside a single-quoted scalar
                else:
                    quote = ""
        elif char in "\"'" and previous in "\n \t[{,":
            quote = char
        elif char == "#" and previous in "\n \t":
            newline = text.find("\n", index)
            index = length if newline < 0 else newline
            continue
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError([Problem(_offset_location(text, index, source_name),
                                          f"the spec nests more than {MAX_DEPTH} levels deep",
                                          "a spec needs a handful of levels; is this the right file?")])
        elif char in "]}":
            depth = max(0, depth - 1)
        previous = char
        index += 1


_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Open(Struct):
    """A mapping or sequence being composed."""

    value: dict[str, Any] | list[Any]
    path: ModelPath
    start: int
    """Node count when it started (its expanded size is the count at its end minus this)."""
    anchor: str | None
    key: str | None = None
    """Mapping only: the key whose value comes next (None: a key comes next)."""
    key_mark: tuple[int, int] = (0, 0)
    explicit: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Mapping only: keys written in the mapping itself, with their positions."""
    merges: list[tuple[Any, tuple[int, int]]] = field(default_factory=list)
    """Mapping only: mappings merged in with `<<`, with the position of the `<<`."""
    duplicate: tuple[str, tuple[int, int], int] | None = None
    """Mapping only: the value coming next belongs to a repeated key (reported, dropped)."""


class _Composer:
    """Plain data + source positions from the YAML event stream, in one pass.

    No node graph and no alias expansion: an alias reuses the anchored value and adds its
    size to the node count, so an alias bomb is refused arithmetically (MAX_NODES,
    MAX_ALIAS_NODES) after a few hundred events, and nesting beyond MAX_DEPTH is refused
    at the event that opens it. Duplicate keys are all reported at once.
    """

    def __init__(self, text: str, source: SourceMap, *, pure: bool,
                 unicode_breaks: Mapping[int, str] | None = None) -> None:
        self.text = text
        self.break_chars = dict(unicode_breaks or {})
        """Offset → NEL/LS/PS character blanked there in `text` (see load_spec_text)."""
        self.unicode_breaks = sorted(self.break_chars)
        self.line_starts: list[int] = []
        self.implicit_resolvers: dict[Any, Any] | None = None
        self.source = source
        # pure=False: ruamel.yaml.clib's C parser when installed (same events and marks,
        # about 10x faster); pure=True: ruamel's Python scanner, whose errors say more.
        self.yaml = YAML(typ="safe", pure=pure)
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0
        self.alias_nodes = 0
        self.stack: list[_Open] = []
        self.problems: list[Problem] = []

    def document(self) -> Any:
        result: Any = None
        documents = 0
        try:
            for event in self.yaml.parse(self.text):
                name = type(event).__name__
                if name == "DocumentStartEvent":
                    documents += 1
                    if documents > 1:
                        raise self._error(event, "the file holds several YAML documents",
                                          "a spec is one document: remove the second '---'")
                elif name in ("ScalarEvent", "AliasEvent", "SequenceStartEvent",
                              "MappingStartEvent"):
                    done, value = self._node(event)
                    if done and not self.stack:
                        result = value
                elif name in ("SequenceEndEvent", "MappingEndEvent"):
                    value = self._close(event)
                    if not self.stack:
                        result = value
        except MarkedYAMLError as exc:
            raise InputError([_yaml_problem(exc, self.source.file)]) from None
        except YAMLError as exc:
            raise InputError([Problem(SourceLocation(self.source.file, 1, 1),
                                      f"invalid YAML: {exc}",
                                      "check indentation, quoting and brackets")]) from None
        if self.problems:
            raise InputError(sorted(self.problems, key=_problem_order))
        return result

    # -- events ----------------------------------------------------------------------

    def _node(self, event: Any) -> tuple[bool, Any]:
        """Handle a node-starting event; (True, value) when the node is complete."""
        parent = self.stack[-1] if self.stack else None
        if parent is not None and isinstance(parent.value, dict) and parent.key is None:
            self._mapping_key(parent, event)
            return False, None
        path, mark = self._child_path(parent, event)
        self.nodes += 1
        name = type(event).__name__
        if name == "AliasEvent":
            value = self._alias(event)
            self._attach(parent, path, mark, value)
            return True, value
        if len(self.stack) >= MAX_DEPTH:
            raise self._error(event, f"the spec nests more than {MAX_DEPTH} levels deep",
                              "a spec needs a handful of levels; is this the right file?")
        self._count_check(event)
        if name == "ScalarEvent":
            self._refuse_unicode_breaks(event)
            value = self._scalar(event, path)
            if event.anchor:
                self.anchors[event.anchor] = (value, 1)
            self._attach(parent, path, mark, value)
            return True, value
        if event.tag is not None:
            # A spec's mappings and lists never need a tag; one (even !!map on a list, or
            # !!set / !!omap) only makes the reading depend on the YAML library.
            shown = str(event.tag).replace("tag:yaml.org,2002:", "!!")
            raise self._error(event, f"YAML tag {shown} is not supported on a "
                              f"{'mapping' if name == 'MappingStartEvent' else 'list'} in a spec",
                              "remove the tag")
        container: dict[str, Any] | list[Any] = {} if name == "MappingStartEvent" else []
        if path is not None:
            self.source.values[path] = mark
        if event.anchor:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Open(container, path if path is not None else (), self.nodes - 1,
                                event.anchor))
        return False, container

    def _close(self, event: Any) -> Any:
        done = self.stack.pop()
        if isinstance(done.value, dict) and done.merges:
            self._apply_merges(done)
        if done.anchor:
            self.open_anchors.discard(done.anchor)
            self.anchors[done.anchor] = (done.value, self.nodes - done.start)
        parent = self.stack[-1] if self.stack else None
        if parent is not None:
            self._store(parent, done.value)
        return done.value

    # -- helpers ---------------------------------------------------------------------

    def _child_path(self, parent: _Open | None, event: Any) -> tuple[Any, tuple[int, int]]:
        mark = (event.start_mark.line, event.start_mark.column)
        if parent is None:
            return (), mark
        if isinstance(parent.value, list):
            return (*parent.path, len(parent.value)), mark
        assert parent.key is not None
        if parent.key == "<<":
            return None, mark  # a merge source: its keys land in the parent
        return (*parent.path, parent.key), mark

    def _mapping_key(self, parent: _Open, event: Any) -> None:
        mark = (event.start_mark.line, event.start_mark.column)
        name = type(event).__name__
        key: Any = None
        if name == "ScalarEvent":
            self.nodes += 1
            self._refuse_unicode_breaks(event)
            is_merge = self._scalar_tag(event) == _MERGE_TAG
            key = "<<" if is_merge else self._scalar(event, None)
        if not isinstance(key, str):
            shown = repr(key) if name == "ScalarEvent" else "a " + name[:-10].lower()
            raise self._error(event, f"mapping keys must be strings, got {shown}",
                              "quote the key, e.g. \"8000\":")
        if key in parent.explicit:
            first_line = parent.explicit[key][0] + 1
            parent.duplicate = (key, mark, first_line)
            parent.key = key
            parent.key_mark = mark
            return
        parent.explicit[key] = mark  # `<<` too: a second `<<` is a duplicate key
        if key != "<<":
            self.source.keys[(*parent.path, key)] = mark
        parent.key = key
        parent.key_mark = mark

    def _attach(self, parent: _Open | None, path: Any, mark: tuple[int, int], value: Any) -> None:
        if path is not None:
            self.source.values[path] = mark
        if parent is not None:
            self._store(parent, value)

    def _store(self, parent: _Open, value: Any) -> None:
        if isinstance(parent.value, list):
            parent.value.append(value)
            return
        key = parent.key
        assert key is not None
        parent.key = None
        if parent.duplicate is not None:
            self._report_duplicate(parent, value)
            return
        if key == "<<":
            sources = value if isinstance(value, list) else [value]
            for merged in sources:
                if not isinstance(merged, dict):
                    raise InputError([Problem(
                        SourceLocation(self.source.file, parent.key_mark[0] + 1,
                                       parent.key_mark[1] + 1),
                        "'<<' merges mappings only", "write <<: *anchor or <<: [*a, *b]")])
                parent.merges.append((merged, parent.key_mark))
            return
        parent.value[key] = value

    def _report_duplicate(self, parent: _Open, value: Any) -> None:
        assert parent.duplicate is not None
        key, mark, first_line = parent.duplicate
        parent.duplicate = None
        shown = f" with value {value!r}" if _is_scalar(value) else ""
        self.problems.append(Problem(
            SourceLocation(self.source.file, mark[0] + 1, mark[1] + 1),
            f"duplicate key {key!r}{shown} (first defined on line {first_line})",
            "each key may appear once in a mapping: remove or merge one of them",
            format_path((*parent.path, key)),
        ))

    def _apply_merges(self, done: _Open) -> None:
        """YAML merge keys: keys written in the mapping win, then earlier merges."""
        assert isinstance(done.value, dict)
        for merged, mark in done.merges:
            for key, value in merged.items():
                if key not in done.value:
                    done.value[key] = value
                    self.source.keys.setdefault((*done.path, key), mark)
                    self.source.values.setdefault((*done.path, key), mark)

    def _alias(self, event: Any) -> Any:
        anchor = event.anchor
        if anchor in self.open_anchors:
            raise self._error(event, f"alias *{anchor} refers to the node that contains it",
                              "recursive YAML structures cannot describe a spec")
        if anchor not in self.anchors:
            raise self._error(event, f"alias *{anchor} has no anchor &{anchor} before it",
                              f"define &{anchor} earlier in the file")
        value, size = self.anchors[anchor]
        self.nodes += size - 1
        self.alias_nodes += size
        self._count_check(event)
        return value

    def _refuse_unicode_breaks(self, event: Any) -> None:
        """A blanked NEL/LS/PS inside this scalar's source text: refuse it, located."""
        if not self.unicode_breaks:
            return
        starts = self._line_starts()
        start = starts[event.start_mark.line] + event.start_mark.column
        end = starts[event.end_mark.line] + event.end_mark.column
        index = bisect.bisect_left(self.unicode_breaks, start)
        if index < len(self.unicode_breaks) and self.unicode_breaks[index] < end:
            offset = self.unicode_breaks[index]
            line = bisect.bisect_right(starts, offset) - 1
            raise InputError([Problem(
                SourceLocation(self.source.file, line + 1, offset - starts[line] + 1),
                f"a value contains the character {_UNICODE_BREAK_NAMES[self.break_chars[offset]]}, which YAML 1.1 "
                "readers take for a line break and editors do not",
                "remove it (in a double-quoted string, write it as an escape such as \\u2028)",
            )])

    def _line_starts(self) -> list[int]:
        if not self.line_starts:
            self.line_starts = [0, *(m.end() for m in _LINE_BREAK.finditer(self.text))]
        return self.line_starts

    def _count_check(self, event: Any) -> None:
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise self._error(event, f"aliases expand the spec by more than {MAX_ALIAS_NODES} "
                              "values (an alias bomb?)",
                              "use fewer or smaller anchors; lbgen refuses documents that "
                              "grow exponentially when aliases are expanded")
        if self.nodes > MAX_NODES:
            raise self._error(event, f"the spec has more than {MAX_NODES} values (keys, "
                              "values and lists, after expanding aliases)",
                              "split the path into several specs")

    def _scalar_tag(self, event: Any) -> str:
        if event.tag is not None and str(event.tag) != "!":
            return str(event.tag)
        if event.tag is not None:  # the non-specific "!" tag: a string
            return "tag:yaml.org,2002:str"
        return self._resolve_implicit(event.value, event.implicit)

    def _resolve_implicit(self, value: str, implicit: Any) -> str:
        """The tag ruamel's resolver gives an untagged scalar (Resolver.resolve, without its
        per-call cost: the version's resolver table is looked up once per document, after
        any %YAML directive, and tags stay strings)."""
        if implicit[0]:
            if self.implicit_resolvers is None:
                self.implicit_resolvers = dict(self.yaml.resolver.versioned_resolver)
            table = self.implicit_resolvers
            for tag, regexp in (*table.get(value[0] if value else "", ()), *table.get(None, ())):
                if regexp.match(value):
                    return str(tag)
        return "tag:yaml.org,2002:str"

    def _scalar(self, event: Any, path: ModelPath | None) -> Any:
        tag = self._scalar_tag(event)
        if tag not in _SCALAR_TAGS:
            raise self._error(event, f"YAML tag {tag} is not supported in a spec",
                              "remove the tag; use plain strings, numbers and booleans")
        if tag == "tag:yaml.org,2002:str":
            return event.value
        if tag == "tag:yaml.org,2002:int" and _PLAIN_DECIMAL.fullmatch(event.value):
            # The common case, without building a node (same value as the constructor).
            if path is not None:
                self.source.scalars[path] = event.value
            return int(event.value)
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        try:
            value = self.yaml.constructor.construct_object(node)
        except (YAMLError, ValueError, OverflowError, KeyError, IndexError, TypeError):
            # e.g. `!!bool "abc"`, `!!int ""`: the explicit tag names a type the text is not.
            short = tag.rsplit(":", 1)[-1]
            raise self._error(event, f"{event.value!r} is not a valid !!{short}",
                              "remove the tag, or give a value of that type") from None
        if isinstance(value, float) and path is not None:
            self.source.scalars[path] = event.value
        if isinstance(value, int) and not isinstance(value, bool):
            value = int(value)
            if path is not None:
                self.source.scalars[path] = event.value
        elif isinstance(value, float):
            value = float(value)
        return value

    def _error(self, event: Any, message: str, hint: str) -> InputError:
        mark = event.start_mark
        return InputError([Problem(SourceLocation(self.source.file, mark.line + 1,
                                                  mark.column + 1), message, hint)])


def _yaml_problem(exc: MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
    if "'\\t'" in message or "\\t" in message:
        hint = "YAML indentation must use spaces, not tabs"
    elif "mapping values are not allowed" in message:
        hint = "a value containing ': ' must be quoted"
    elif "found character" in message and "cannot start any token" in message:
        hint = "quote values that start with a YAML indicator such as @, ` or %"
    else:
        hint = "check indentation, quoting and brackets on this line and the one before"
    return Problem(SourceLocation(file, line, col), f"invalid YAML: {message}", hint)


def _problem_order(problem: Problem) -> tuple[int, int, str]:
    return (problem.location.line, problem.location.column, problem.message)


def _validate(data: dict[str, Any], source: SourceMap, *, strict: bool) -> LoadedSpec:
    try:
        spec = Spec.model_validate(data, strict=strict)
    except ValidationError as exc:
        problems = [_problem(error, data, source) for error in exc.errors(include_url=False)]
        problems.sort(key=_problem_order)
        raise InputError(problems) from None
    refused = [Problem(source.locate(p.path), p.message, p.hint, format_path(p.path))
               for p in spec.problems()]
    if refused:
        raise InputError(sorted(refused, key=_problem_order))
    return LoadedSpec(spec, source)


def _data_path(loc: Sequence[str | int], data: Any) -> ModelPath:
    """Drop pydantic's union tags (e.g. the `kong` in `tiers.2.kong.version`) from `loc`."""
    path: list[str | int] = []
    node: Any = data
    for part in loc:
        child = _child(node, part)
        if child is not _ABSENT:
            path.append(part)
            node = child
        elif isinstance(node, dict) and isinstance(part, str) and node.get("kind") == part:
            continue  # discriminator tag
        elif isinstance(part, str) and ("[" in part or part in {"function-after", "function-before"}):
            continue  # pydantic-internal union member labels
        elif isinstance(node, dict | list) or node is _ABSENT:
            path.append(part)  # a key the data does not have (e.g. a missing required key)
            node = _ABSENT
        else:
            continue  # below a scalar: the label of a union member, e.g. `int`
    return tuple(path)


_ABSENT = object()


def _child(node: Any, part: str | int) -> Any:
    """`node[part]` when the data has it, else _ABSENT."""
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    if isinstance(node, dict) and isinstance(part, str) and part in node:
        return node[part]
    return _ABSENT


_TYPE_HINTS = {
    "int_type": "use a whole number without quotes, e.g. 8",
    "int_parsing": "use a whole number without quotes, e.g. 8",
    "int_from_float": "use a whole number without quotes, e.g. 8",
    "bool_type": "use true or false, without quotes",
    "bool_parsing": "use true or false, without quotes",
    "float_type": "use a number without quotes",
    "float_parsing": "use a number without quotes",
    "string_type": "use text; quote it (\"…\") when YAML would read it as a number, "
    "boolean or null",
    "list_type": "use a list: one '- item' per line, or [a, b]",
    "dict_type": "use a mapping: 'key: value' lines indented under this key",
    "model_type": "use a mapping: 'key: value' lines indented under this key",
    "date_type": "use a date such as 2026-12-31, without quotes",
    "date_parsing": "use a date such as 2026-12-31, without quotes",
    "date_from_datetime_inexact": "use a date such as 2026-12-31, without a time",
}

# The grammar behind each pattern of lbgen/model/types.py, in words.
_PATTERN_HINTS = {
    NAME_PATTERN: "use lower-case letters, digits and '-', starting with a letter and not "
    "ending with '-', at most 63 characters (an RFC 1035 label, e.g. orders-api)",
    HTTP_PATH_PATTERN: "use a URL path that starts with '/' and has only letters, digits "
    "and . _ ~ / -",
    HEADER_NAME_PATTERN: "use an HTTP header name: letters, digits and '-', starting with "
    "a letter, e.g. X-Request-Id",
    NGINX_VARIABLE_PATTERN: "use an nginx variable such as $remote_addr",
    NGINX_VARIABLES_PATTERN: "use one or more nginx variables, e.g. $request_uri or "
    "$remote_addr$http_x_user",
    FILE_PATH_PATTERN: "use an absolute file path with letters, digits and . _ / - only",
    LABEL_KEY_PATTERN: "use a Kubernetes label key: an optional DNS prefix and '/', then up "
    "to 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric",
    LABEL_VALUE_PATTERN: "use a Kubernetes label value: up to 63 letters, digits, '-', '_' "
    "or '.', starting and ending alphanumeric",
    RULE_CODE_PATTERN: "use a rule code such as LB101",
}


def _problem(error: Any, data: dict[str, Any], source: SourceMap) -> Problem:
    path = _data_path(error["loc"], data)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    message = str(error["msg"]).removeprefix("Value error, ")
    hint = ""
    # A mapping key that fails its own type (a label key) is located at the key.
    location = source.locate(path, key=bool(error["loc"]) and error["loc"][-1] == "[key]")
    shown = _value_repr(error, source.scalars.get(path))
    if kind == "extra_forbidden":
        location = source.locate(path, key=True)
        allowed = _allowed_keys(path[:-1], data)
        key = str(path[-1])
        message = f"unknown key {key!r}"
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif allowed:
            hint = "allowed keys here: " + ", ".join(sorted(allowed))
        else:
            hint = "remove it"
    elif kind == "missing":
        message = f"missing required key {path[-1]!r}" if path else "missing required key"
        location = source.locate(path[:-1], key=True)
        doc = _field_doc(path, data)
        hint = f"add {path[-1]}:" + (f" ({doc})" if doc else "")
    elif kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        message = f"{shown} is not allowed here"
        hint = f"use one of {expected}" if expected else ""
    elif kind == "union_tag_invalid":
        message = f"unknown tier kind {ctx.get('tag')!r}"
        hint = f"use one of {ctx.get('expected_tags', '')}"
        location = source.locate((*path, "kind"))
    elif kind == "union_tag_not_found":
        message = "this tier has no 'kind'"
        hint = "add kind: nginx_http, nginx_stream, kong or kubernetes"
    elif kind == "string_pattern_mismatch":
        message = f"{shown} has characters that are not allowed here"
        pattern = str(ctx.get("pattern", ""))
        hint = _PATTERN_HINTS.get(pattern, f"it must match {pattern}")
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": ("≥", "ge"), "greater_than": (">", "gt"),
                 "less_than_equal": ("≤", "le"), "less_than": ("<", "lt")}[kind]
        message = f"{shown} is out of range"
        hint = f"use a value {bound[0]} {ctx.get(bound[1])}"
    elif kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        what = "item(s)" if kind in ("too_short", "too_long") else "character(s)"
        if kind.endswith("short"):
            hint = f"give at least {ctx.get('min_length')} {what}"
        else:
            hint = f"give at most {ctx.get('max_length')} {what}"
        if _is_scalar(error.get("input")):
            message = f"{message} (got {shown})"
    else:
        hint = _TYPE_HINTS.get(kind, "")
        if kind == "value_error":
            message, hint = _split_advice(message, source.scalars.get(path), error.get("input"))
        if _is_scalar(error.get("input")) and path and shown not in message:
            message = f"{message} (got {shown})"
    if not hint:
        doc = _field_doc(path, data)
        hint = f"{path[-1]}: {doc}" if doc and path else "`lbgen schema` describes every field"
    return Problem(location, message, hint, format_path(path))


def _split_advice(message: str, raw: str | None, value: Any) -> tuple[str, str]:
    """Validator messages carry their advice after "; use"/": use"; make it the hint."""
    if raw is not None and isinstance(value, float | int) and raw != str(value):
        # YAML read `3.10` as 3.1: show what the user wrote, and why it is not what they meant.
        message = re.sub(rf"(?<![\d.]){re.escape(str(value))}(?![\d.])", raw, message)
        message = message.replace(
            f"{raw} is a number in YAML",
            f"{raw} is a number in YAML, so {raw} and {value} are the same number",
        )
    for separator in ("; use ", ": use ", ", use "):
        head, found, advice = message.partition(separator)
        if found:
            return head, "use " + advice
    return message, ""


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | dt.date)


def _value_repr(error: Any, raw: str | None = None) -> str:
    value = error.get("input")
    text = raw if raw is not None and isinstance(value, int | float) else repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


def _field_doc(path: ModelPath, data: Any) -> str:
    """First sentence of the documentation of the field at `path` (error path only: reading
    docstrings parses model source)."""
    if not path or isinstance(path[-1], int):
        return ""
    model = _model_at(path[:-1], data)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ""
    from lbgen.model.docs import attribute_docstrings

    doc = attribute_docstrings(model).get(str(path[-1]), "")
    return doc.replace("\n", " ").split(". ")[0].strip().rstrip(".")


def _allowed_keys(path: ModelPath, data: Any) -> list[str]:
    """Field names of the model found at `path` of the spec, following the data."""
    model = _model_at(path, data)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _model_at(path: ModelPath, data: Any) -> Any:
    """The model class (or other annotation) describing the value at `path`."""
    model: Any = Spec
    node: Any = data
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            model = _element_model(model, node)
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        if part not in model.model_fields:
            return None
        node = node.get(part) if isinstance(node, dict) else None
        model = _element_model(model.model_fields[part].annotation, node)
    return model


def _element_model(annotation: Any, node: Any) -> Any:
    """The BaseModel class `annotation` stands for, resolving Optional, lists and unions."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _element_model(typing.get_args(annotation)[0], node)
    if origin in (list, tuple):
        return typing.get_args(annotation)[0]
    if origin in (typing.Union, types.UnionType):
        candidates = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        kind = node.get("kind") if isinstance(node, dict) else None
        for candidate in models:
            field_info = candidate.model_fields.get("kind")
            if field_info is not None and kind in typing.get_args(field_info.annotation):
                return candidate
        if models:
            return models[0]
        for candidate in candidates:
            resolved = _element_model(candidate, node)
            if resolved is not candidate:
                return resolved
        return candidates[0] if candidates else annotation
    return annotation
