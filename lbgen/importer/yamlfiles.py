"""Reading the YAML inputs (Kong declarative / decK state, Kubernetes manifests) with
positions: the line and column of every key and value (`load_documents`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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


def load_documents(text: str, shown: str, what: str) -> list[Any]:
    """Every YAML document of `text` as round-trip containers (CommentedMap, CommentedSeq) that
    carry the line and column of each key, value and item.

    libyaml composes the node tree (about nine times faster than ruamel's Python round-trip
    loader on a 1,000-service kong.yaml); the containers are built from its nodes, which
    carry their positions, and scalars are constructed as YAML 1.2 reads them, as the
    round-trip loader does. A duplicate key is refused, at its position.
    """
    yaml = YAML(typ="safe", pure=False)
    try:
        nodes = list(yaml.compose_all(text))
        builder = _Builder(yaml.constructor, shown, what)
        return [doc for doc in (builder.build(node) for node in nodes if node is not None) if doc is not None]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise InputError([Problem(SourceLocation(shown, line, column),
                                  f"the {what} is not valid YAML: {exc.problem or exc}")]) from None
    except YAMLError as exc:
        raise InputError([Problem(SourceLocation(shown, 1, 1), f"the {what} is not valid YAML: {exc}")]) from None


class _Builder:
    def __init__(self, constructor: Any, shown: str, what: str) -> None:
        self.constructor = constructor
        self.shown, self.what = shown, what

    def build(self, node: Node) -> Any:
        if isinstance(node, MappingNode):
            self.constructor.flatten_mapping(node)  # `<<` merge keys, as every YAML loader
            out = CommentedMap()
            out._yaml_set_line_col(node.start_mark.line, node.start_mark.column)
            for key_node, value_node in node.value:
                key = self.build(key_node)
                if isinstance(key, list | dict):
                    key = str(key)  # a complex key: never a field any reader here looks up
                if key in out:
                    raise InputError([Problem(
                        SourceLocation(self.shown, key_node.start_mark.line + 1, key_node.start_mark.column + 1),
                        f"the {self.what} is not valid YAML: duplicate key {key!r}",
                        "remove one of them")])
                out[key] = self.build(value_node)
                out._yaml_set_kv_line_col(key, [key_node.start_mark.line, key_node.start_mark.column,
                                                value_node.start_mark.line, value_node.start_mark.column])
            return out
        if isinstance(node, SequenceNode):
            seq = CommentedSeq()
            seq._yaml_set_line_col(node.start_mark.line, node.start_mark.column)
            for index, item in enumerate(node.value):
                seq.append(self.build(item))
                seq._yaml_set_idx_line_col(index, [item.start_mark.line, item.start_mark.column])
            return seq
        assert isinstance(node, ScalarNode)
        if node.tag == _STR:  # most scalars: the text itself (the constructor's slow path)
            return node.value
        return self.constructor.construct_object(node, deep=True)


_STR = "tag:yaml.org,2002:str"


def key_origin(node: Any, key: str | int, file: str) -> Origin:
    """Where `node[key]`'s value starts (for a mapping), or the item (for a sequence)."""
    try:
        if isinstance(node, CommentedMap):
            line, column = node.lc.value(key)
        elif isinstance(node, CommentedSeq):
            line, column = node.lc.item(key)
        else:
            line, column = node.lc.line, node.lc.col
        return Origin(file, int(line) + 1, int(column) + 1)
    except (AttributeError, KeyError, TypeError, IndexError):
        return node_origin(node, file)


def key_position(node: Any, key: str, file: str) -> Origin:
    """Where the key `key` of the mapping `node` is (for reports about the key itself)."""
    try:
        line, column = node.lc.key(key)
        return Origin(file, int(line) + 1, int(column) + 1)
    except (AttributeError, KeyError, TypeError):
        return node_origin(node, file)


def node_origin(node: Any, file: str) -> Origin:
    try:
        return Origin(file, int(node.lc.line) + 1, int(node.lc.col) + 1)
    except (AttributeError, TypeError):
        return Origin(file, 1, 1)


def mappings(node: Any) -> Iterator[tuple[int, CommentedMap]]:
    if isinstance(node, CommentedSeq):
        for index, item in enumerate(node):
            if isinstance(item, CommentedMap):
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
