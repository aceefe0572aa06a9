"""The JSON Schema of the spec, with each field's attribute docstring as its description.

Pydantic can read attribute docstrings itself (`use_attribute_docstrings`), but that parses
every model's source at import time, which costs more than the whole render of a small
spec. The schema is only needed by `lbgen schema`, so the docstrings are read here instead.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

from pydantic import BaseModel

from lbgen.model.spec import Spec


def attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """{field: docstring} for `x: T = …` followed by a string literal in the class body."""
    docs: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass is BaseModel:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        for node, following in zip(body.body, body.body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model reachable from `root`, by class name (as used in `$defs`)."""
    found: dict[str, type[BaseModel]] = {}
    pending = [root]
    while pending:
        model = pending.pop()
        if model.__name__ in found:
            continue
        found[model.__name__] = model
        for field in model.model_fields.values():
            pending.extend(_nested_models(field.annotation))
    return found


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        out.extend(_nested_models(arg))
    metadata = getattr(annotation, "__metadata__", None)
    if metadata is not None:
        out.extend(_nested_models(getattr(annotation, "__origin__", None)))
    return out


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the spec, for editors and `lbgen schema`."""
    schema = Spec.model_json_schema()
    definitions = schema.get("$defs", {})
    for name, model in _models(Spec).items():
        target = schema if model is Spec else definitions.get(name)
        if target is None:
            continue
        if model.__doc__ and "description" not in target:
            target["description"] = inspect.cleandoc(model.__doc__)
        for field, doc in attribute_docstrings(model).items():
            prop = target.get("properties", {}).get(field)
            if prop is not None and "description" not in prop:
                prop["description"] = doc
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "lbgen spec"
    return schema
