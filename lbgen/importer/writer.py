"""The imported spec as YAML: keys in the model's order, each value commented with where it
came from (`# edge/nginx.conf:42:9`) or that it was assumed (`# assumed (--assume …)`)."""

from __future__ import annotations

import io
import re
import types
import typing
from typing import Any

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from lbgen.importer.sources import Fragment, Sourced
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


class _Writer:
    def __init__(self, *, comments: bool = True) -> None:
        self.origins: dict[str, Sourced[object]] = {}
        self.comments = comments
        """False: the spec is only validated, never written (no end-of-line comments)."""

    def scalar(self, key: str, value: object) -> object:
        if key == "version" and isinstance(value, str | int | float):
            return DoubleQuotedScalarString(str(value))
        if isinstance(value, list):
            seq = CommentedSeq(value)
            seq.fa.set_flow_style()
            return seq
        return value

    def mapping(self, fragment: Fragment, model: type[BaseModel] | None, path: Path) -> CommentedMap:
        out = CommentedMap()
        for key in _order(model, list(fragment)):
            value = fragment[key]
            here = (*path, key)
            if isinstance(value, Sourced):
                out[key] = self.scalar(key, value.value)
                self.origins[format_path(here)] = value
                text = comment_for(value) if self.comments else ""
                if text:
                    out.yaml_add_eol_comment(text, key)
            elif isinstance(value, dict):
                out[key] = self.mapping(value, _field_model(model, key), here)
            else:
                out[key] = self.sequence(value, _field_model(model, key), here, key)
        return out

    def sequence(self, items: list[Any], model: type[BaseModel] | None, path: Path, key: str) -> CommentedSeq:
        seq = CommentedSeq()
        for index, item in enumerate(items):
            here = (*path, index)
            if isinstance(item, Sourced):
                seq.append(self.scalar(key, item.value))
                self.origins[format_path(here)] = item
                text = comment_for(item) if self.comments else ""
                if text:
                    seq.yaml_add_eol_comment(text, index)
            elif isinstance(item, dict):
                item_model = model
                if key == "tiers":
                    kind = item.get("kind")
                    item_model = _TIERS.get(str(kind.value)) if isinstance(kind, Sourced) else None
                seq.append(self.mapping(item, item_model, here))
        return seq


def spec_data(spec: Fragment, *, comments: bool = False) -> tuple[CommentedMap, dict[str, Sourced[object]]]:
    """The spec as data (keys in the model's order; with `comments`, each value's origin as an
    end-of-line comment) and, for each model path (`tiers[0].timeouts.read`), its value."""
    writer = _Writer(comments=comments)
    return writer.mapping(spec, Spec, ()), writer.origins


def write_spec(spec: Fragment, header: str) -> tuple[str, dict[str, Sourced[object]]]:
    """The spec's YAML text and, for each model path (`tiers[0].timeouts.read`), its value."""
    root, origins = spec_data(spec, comments=True)
    yaml = YAML(typ="rt")
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    stream = io.StringIO()
    yaml.dump(root, stream)
    return header + _align(stream.getvalue()), origins


_OUR_COMMENT = re.compile(r"^(?P<left>.*?\S) +# (?P<comment>\S+:[0-9]+:[0-9]+|assumed(?: \(.*\))?)$")


def _align(text: str) -> str:
    """Two spaces before every origin comment (ruamel puts one after the first key of a map)."""
    out = []
    for line in text.splitlines():
        match = _OUR_COMMENT.match(line)
        out.append(f"{match.group('left')}  # {match.group('comment')}" if match else line)
    return "\n".join(out) + "\n"
