"""Reading the YAML inputs (Kong declarative / decK state, Kubernetes manifests) with the line
and column of every key and value: libyaml composes the nodes (ruamel.yaml's round-trip loader
keeps positions too but takes about ten times as long on a kong.yaml of 1,000 services)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import yaml

from lbgen.errors import InputError, Problem, SourceLocation
from lbgen.importer.sources import Origin

MAX_INPUT_BYTES = 64 * 1024 * 1024


def read_text(path: str, shown: str, what: str) -> str:
    """A regular file's UTF-8 text; anything else is a located InputError (exit 2)."""
    try:
        info = Path(path).stat()
        if not stat.S_ISREG(info.st_mode):
            raise InputError([Problem(SourceLocation(shown, 1, 1), f"the {what} is not a regular file",
                                      "pass the path of a file")])
        if info.st_size > MAX_INPUT_BYTES:
            raise InputError([Problem(SourceLocation(shown, 1, 1), f"the {what} is larger than {MAX_INPUT_BYTES} bytes")])
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError([Problem(SourceLocation(shown, 1, 1), f"cannot read the {what}: {exc.strerror}")]) from None
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError([Problem(SourceLocation(shown, line, 1), f"the {what} is not valid UTF-8",
                                  "save the file as UTF-8")]) from None


class YMap(dict[Any, Any]):
    """A YAML mapping that remembers where it, its keys and its values start (0-based)."""

    def __init__(self, at: tuple[int, int]) -> None:
        super().__init__()
        self.at = at
        self.keys_at: dict[Any, tuple[int, int]] = {}
        self.values_at: dict[Any, tuple[int, int]] = {}


class YSeq(list[Any]):
    """A YAML sequence that remembers where it and each item start (0-based)."""

    def __init__(self, at: tuple[int, int]) -> None:
        super().__init__()
        self.at = at
        self.items_at: list[tuple[int, int]] = []


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line, node.start_mark.column


class _Builder:
    """Nodes composed by libyaml (PyYAML's C loader) → YMap/YSeq with positions; scalars
    resolved as the safe loader resolves them; duplicate keys refused, as the spec loader does."""

    def __init__(self, loader: Any, file: str, what: str) -> None:
        self.loader = loader
        self.file = file
        self.what = what
        self.count = 0

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        self.count += 1
        if depth > MAX_DEPTH or self.count > MAX_NODES:
            self._too_big(node)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:  # most scalars: no constructor call needed
                return node.value
            return self.loader.construct_object(node)
        if isinstance(node, yaml.MappingNode):
            mark = node.start_mark
            out = YMap((mark.line, mark.column))
            if any(key.tag == "tag:yaml.org,2002:merge" for key, _ in node.value):
                self.loader.flatten_mapping(node)  # merge keys (<<)
            keys_at, values_at = out.keys_at, out.values_at
            inner = depth + 1
            for key_node, value_node in node.value:
                # a plain string key or value is taken here, without a call per node (the
                # same count and depth limits apply)
                if key_node.tag == _STR and inner <= MAX_DEPTH and type(key_node) is yaml.ScalarNode:
                    self.count += 1
                    key = key_node.value
                else:
                    key = self.build(key_node, inner)
                    if isinstance(key, YMap | YSeq):
                        key = str(key)
                key_mark = key_node.start_mark
                if key in out:
                    raise InputError([Problem(SourceLocation(self.file, key_mark.line + 1, key_mark.column + 1),
                                              f"the {self.what} has the key {key!r} twice",
                                              "remove one of them")])
                if value_node.tag == _STR and inner <= MAX_DEPTH and type(value_node) is yaml.ScalarNode:
                    self.count += 1
                    out[key] = value_node.value
                else:
                    out[key] = self.build(value_node, inner)
                if self.count > MAX_NODES:
                    self._too_big(value_node)
                value_mark = value_node.start_mark
                keys_at[key] = (key_mark.line, key_mark.column)
                values_at[key] = (value_mark.line, value_mark.column)
            return out
        if isinstance(node, yaml.SequenceNode):
            seq = YSeq(_mark(node))
            for item in node.value:
                seq.append(self.build(item, depth + 1))
                seq.items_at.append(_mark(item))
            return seq
        return self.loader.construct_object(node)

    def _too_big(self, node: yaml.Node) -> NoReturn:
        line, column = _mark(node)
        raise InputError([Problem(SourceLocation(self.file, line + 1, column + 1),
                                  f"the {self.what} nests deeper than {MAX_DEPTH} or has more than "
                                  f"{MAX_NODES} values")])


_STR = "tag:yaml.org,2002:str"
MAX_DEPTH = 64
MAX_NODES = 5_000_000


def load_documents(text: str, shown: str, what: str) -> list[Any]:
    """Every YAML document of `text`, as YMap/YSeq trees that carry positions."""
    loader = _LOADER(text)
    builder = _Builder(loader, shown, what)
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                doc = builder.build(node)
                if doc is not None:
                    docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise InputError([Problem(SourceLocation(shown, line, column),
                                  f"the {what} is not valid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(SourceLocation(shown, 1, 1), f"the {what} is not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return docs


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def key_origin(node: Any, key: Any, file: str) -> Origin:
    """Where `node[key]`'s value starts (a mapping), or the item `key` (a sequence)."""
    if isinstance(node, YMap) and key in node.values_at:
        line, column = node.values_at[key]
    elif isinstance(node, YSeq) and isinstance(key, int) and key < len(node.items_at):
        line, column = node.items_at[key]
    else:
        return node_origin(node, file)
    return Origin(file, line + 1, column + 1)


def key_position(node: Any, key: Any, file: str) -> Origin:
    """Where the key `key` of the mapping `node` is (for reports about the key itself)."""
    if isinstance(node, YMap) and key in node.keys_at:
        line, column = node.keys_at[key]
        return Origin(file, line + 1, column + 1)
    return node_origin(node, file)


def node_origin(node: Any, file: str) -> Origin:
    at = getattr(node, "at", None)
    if isinstance(at, tuple):
        return Origin(file, at[0] + 1, at[1] + 1)
    return Origin(file, 1, 1)


def mappings(node: Any) -> Iterator[tuple[int, YMap]]:
    if isinstance(node, YSeq):
        for index, item in enumerate(node):
            if isinstance(item, YMap):
                yield index, item


def files_under(path: str, exts: tuple[str, ...] = (".yaml", ".yml", ".json")) -> list[str]:
    """`path` itself, or the YAML files under the directory `path` (sorted: deterministic)."""
    if not Path(path).is_dir():
        return [path]
    out: list[str] = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        out.extend(str(Path(root) / name) for name in sorted(names) if name.endswith(exts))
    return out
