"""Load a spec from YAML (with source positions) or from a mapping, and validate it.

Every failure becomes an `InputError` whose problems name file, line and column, so the
CLI never shows a traceback for a user mistake.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from lbgen.errors import InputError, Problem, SourceLocation
from lbgen.model.spec import Spec

ModelPath = tuple[str | int, ...]

MAX_SPEC_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 2_000_000
"""Scalars + containers after alias expansion: refuses "billion laughs" documents."""


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class SourceMap:
    """Model path → position of the key (for mappings) and of the value."""

    file: str
    keys: dict[ModelPath, tuple[int, int]] = field(default_factory=dict)
    values: dict[ModelPath, tuple[int, int]] = field(default_factory=dict)

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


@dataclass(frozen=True)
class LoadedSpec:
    spec: Spec
    source: SourceMap

    @property
    def source_name(self) -> str:
        return self.source.file


def load_spec_file(path: str | Path) -> LoadedSpec:
    path = Path(path)
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError([Problem(SourceLocation(name, 1, 1), f"cannot read the spec: {exc.strerror}")]) from None
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


def load_spec_text(text: str, source_name: str = "<spec>") -> LoadedSpec:
    if "\x00" in text:
        offset = text.index("\x00")
        line = text.count("\n", 0, offset) + 1
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise InputError([Problem(SourceLocation(source_name, line, col), "the spec contains a NUL character")])
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        hint = "each key may appear once in a mapping" if "duplicate key" in message else ""
        raise InputError([Problem(SourceLocation(source_name, line, col), f"invalid YAML: {message}", hint)]) from None
    except (YAMLError, RecursionError) as exc:
        raise InputError([Problem(SourceLocation(source_name, 1, 1), f"invalid YAML: {exc}")]) from None
    if document is None:
        raise InputError([Problem(SourceLocation(source_name, 1, 1), "the spec is empty",
                                  "start from one of the files in examples/")])
    if not isinstance(document, CommentedMap):
        raise InputError([Problem(SourceLocation(source_name, 1, 1),
                                  "the spec must be a YAML mapping (name:, tiers:, services:)")])
    source = SourceMap(source_name)
    counter = [0]
    data = _to_plain(document, (), source, counter, 0)
    return _validate(data, source)


def load_spec_data(data: Mapping[str, Any], source_name: str = "<dict>") -> LoadedSpec:
    """Validate an in-memory mapping (library use); positions are unknown (line 1)."""
    return _validate(dict(data), SourceMap(source_name))


def _to_plain(node: Any, path: ModelPath, source: SourceMap, counter: list[int], depth: int) -> Any:
    counter[0] += 1
    if counter[0] > MAX_NODES or depth > MAX_DEPTH:
        raise InputError([Problem(source.locate(path), "the spec is nested too deeply or expands too many aliases",
                                  f"keep nesting under {MAX_DEPTH} levels and avoid alias bombs")])
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not isinstance(key, str):
                line, col = node.lc.key(key)
                raise InputError([Problem(SourceLocation(source.file, line + 1, col + 1),
                                          f"mapping keys must be strings, got {key!r}")])
            child = (*path, key)
            source.keys[child] = node.lc.key(key)
            source.values[child] = node.lc.value(key)
            out[key] = _to_plain(value, child, source, counter, depth + 1)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            child = (*path, index)
            source.values[child] = node.lc.item(index)
            items.append(_to_plain(value, child, source, counter, depth + 1))
        return items
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _validate(data: dict[str, Any], source: SourceMap) -> LoadedSpec:
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(error, data, source) for error in exc.errors(include_url=False)]
        problems.sort(key=lambda p: (p.location.line, p.location.column, p.message))
        raise InputError(problems) from None
    return LoadedSpec(spec, source)


def _data_path(loc: Sequence[str | int], data: Any) -> ModelPath:
    """Drop pydantic's union tags (e.g. the `kong` in `tiers.2.kong.version`) from `loc`."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and node.get("kind") == part:
            continue  # discriminator tag
        elif isinstance(part, str) and ("[" in part or part in {"function-after", "function-before"}):
            continue  # pydantic-internal union member labels
        else:
            path.append(part)
            node = None
    return tuple(path)


def _problem(error: Any, data: dict[str, Any], source: SourceMap) -> Problem:
    path = _data_path(error["loc"], data)
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    hint = ""
    location = source.locate(path)
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
    elif kind == "missing":
        message = f"missing required key {path[-1]!r}" if path else "missing required key"
        location = source.locate(path[:-1], key=True)
    elif kind in ("literal_error", "enum"):
        expected = error.get("ctx", {}).get("expected", "")
        message = f"{_value_repr(error)} is not allowed here"
        hint = f"use one of {expected}" if expected else ""
    elif kind == "union_tag_invalid":
        expected = error.get("ctx", {}).get("expected_tags", "")
        message = f"unknown tier kind {error.get('ctx', {}).get('tag')!r}"
        hint = f"use one of {expected}"
        location = source.locate((*path, "kind"))
    elif kind == "union_tag_not_found":
        message = "this tier has no 'kind'"
        hint = "add kind: nginx_http, nginx_stream, kong or kubernetes"
    elif kind == "string_pattern_mismatch":
        message = f"{_value_repr(error)} has characters that are not allowed here"
        hint = f"it must match {error.get('ctx', {}).get('pattern', '')}"
    elif "input" in error and kind not in ("model_type", "dict_type", "list_type") and path:
        message = f"{message} (got {_value_repr(error)})"
    return Problem(location, message, hint, format_path(path))


def _value_repr(error: Any) -> str:
    text = repr(error.get("input"))
    return text if len(text) <= 80 else text[:77] + "…"


def _allowed_keys(path: ModelPath, data: Any) -> list[str]:
    """Field names of the model found at `path` of the spec, following the data."""
    model: Any = Spec
    node: Any = data
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            model = _element_model(model, node)
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        node = node.get(part) if isinstance(node, dict) else None
        model = _element_model(model.model_fields[part].annotation, node)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


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
