"""The imported spec as YAML: keys in the model's order, each value commented with where it
came from (`# edge/nginx.conf:42:9`) or that it was assumed (`# assumed (--assume …)`)."""

from __future__ import annotations

import json
import re
import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel

from lbgen.importer.sources import Fragment, Sourced, path_step
from lbgen.io.loader import format_path
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxHttpTier, NginxStreamTier

_TIERS: dict[str, type[BaseModel]] = {"nginx_http": NginxHttpTier, "nginx_stream": NginxStreamTier,
                                      "kong": KongTier, "kubernetes": KubernetesTier}
_FIRST = ("kind", "name", "version", "namespace", "instances")

Path = tuple[str | int, ...]


def comment_for(value: Sourced[object]) -> str:
    if value.assumed:
        return f"assumed ({value.note})" if value.note else "assumed"
    return str(value.origin) if value.origin is not None else ""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `annotation` (Optional, list, Annotated unwrapped)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _order(model: type[BaseModel] | None, keys: list[str]) -> list[str]:
    fields = list(model.model_fields) if model is not None else []

    def rank(key: str) -> tuple[int, int, str]:
        if key in _FIRST:
            return (0, _FIRST.index(key), key)
        return (1, fields.index(key) if key in fields else len(fields), key)

    return sorted(keys, key=rank)


def _field_model(model: type[BaseModel] | None, key: str) -> type[BaseModel] | None:
    if model is None or key not in model.model_fields:
        return None
    return _model_of(model.model_fields[key].annotation)


_PLAIN = re.compile(r"[A-Za-z0-9_/$](?:[A-Za-z0-9_./:$@+-]*[A-Za-z0-9_./$@+-])?")  # no trailing ":"
_RESOLVER = yaml.resolver.Resolver()


def _scalar(value: object, *, quote: bool = False) -> str:
    """One YAML scalar, plain when YAML (1.1 and 1.2) reads it back as the same string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if (not quote and _PLAIN.fullmatch(text)
            and _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == "tag:yaml.org,2002:str"):  # type: ignore[no-untyped-call]
        return text
    return json.dumps(text, ensure_ascii=False)


class _Writer:
    """A small block-style emitter: the spec's shapes only (mappings, lists, scalars), one
    origin comment per value; deterministic, and fast on specs of thousands of services."""

    def __init__(self) -> None:
        self.origins: dict[str, Sourced[object]] = {}
        self.lines: list[str] = []

    def leaf(self, key: str, value: Sourced[object], path: Path) -> str:
        self.origins[format_path(path)] = value
        raw = value.value
        if isinstance(raw, list):
            text = "[" + ", ".join(_scalar(v) for v in raw) + "]"
        elif isinstance(raw, dict):
            text = "{}"
        else:
            text = _scalar(raw, quote=key == "version")
        comment = comment_for(value)
        return f"{text}  # {comment}" if comment else text

    def mapping(self, fragment: Fragment, model: type[BaseModel] | None, path: Path, indent: str,
                first: str | None = None) -> None:
        """`first`: the prefix of the first line (`  - ` for a list item)."""
        for index, key in enumerate(_order(model, list(fragment))):
            lead = first if index == 0 and first is not None else indent
            value = fragment[key]
            here = (*path, key)
            if isinstance(value, Sourced):
                self.lines.append(f"{lead}{key}: {self.leaf(key, value, here)}")
            elif isinstance(value, dict):
                if not value:
                    self.lines.append(f"{lead}{key}: {{}}")
                    continue
                self.lines.append(f"{lead}{key}:")
                self.mapping(value, _field_model(model, key), here, indent + "  ")
            else:
                if not value:
                    self.lines.append(f"{lead}{key}: []")
                    continue
                self.lines.append(f"{lead}{key}:")
                self.sequence(value, _field_model(model, key), here, key, indent + "  ")

    def sequence(self, items: list[Any], model: type[BaseModel] | None, path: Path, key: str, indent: str) -> None:
        for index, item in enumerate(items):
            here = (*path, index)
            if isinstance(item, Sourced):
                self.lines.append(f"{indent}- {self.leaf(key, item, here)}")
            elif isinstance(item, dict):
                item_model = model
                if key == "tiers":
                    kind = item.get("kind")
                    item_model = _TIERS.get(str(kind.value)) if isinstance(kind, Sourced) else None
                if not item:
                    self.lines.append(f"{indent}- {{}}")
                    continue
                self.mapping(item, item_model, here, indent + "  ", first=f"{indent}- ")


def write_spec(spec: Fragment, header: str) -> tuple[str, dict[str, Sourced[object]]]:
    """The spec's YAML text and, for each model path (`tiers[0].timeouts.read`), its value."""
    writer = _Writer()
    writer.mapping(spec, Spec, (), "")
    return header + "\n".join(writer.lines) + "\n", writer.origins


def plain_spec(spec: Fragment) -> tuple[dict[str, Any], dict[str, Sourced[object]]]:
    """The spec as plain data (for validation without YAML text: `lbgen audit`) and the same
    path → value index as `write_spec`."""
    origins: dict[str, Sourced[object]] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, Sourced):
            origins[path] = node
            return node.value
        if isinstance(node, dict):
            return {key: walk(value, path_step(path, key)) for key, value in node.items()}
        return [walk(item, f"{path}[{index}]") for index, item in enumerate(node)]

    data = walk(spec, "")
    assert isinstance(data, dict)
    return data, origins
