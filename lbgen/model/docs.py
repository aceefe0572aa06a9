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


def _type_name(annotation: Any) -> str:
    origin: Any = getattr(annotation, "__origin__", None)
    args: tuple[Any, ...] = tuple(getattr(annotation, "__args__", ()) or ())
    metadata = getattr(annotation, "__metadata__", None)
    if metadata is not None and origin is not None:
        return _type_name(origin)
    if annotation is type(None):
        return "null"
    if str(origin) == "typing.Literal" or type(annotation).__name__ == "_LiteralGenericAlias":
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map {_type_name(args[0])} → {_type_name(args[1])}"
    if args and (str(origin) in ("typing.Union", "types.UnionType") or type(annotation).__name__ == "UnionType"):
        return " \\| ".join(_type_name(a) for a in args)
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _limits_markdown() -> list[str]:
    """The limits on a spec and its output (constants of the loader, naming, renderers)."""
    from lbgen.io.loader import MAX_ALIAS_NODES, MAX_DEPTH, MAX_NODES, MAX_SPEC_BYTES
    from lbgen.model.limits import MAX_OUTPUT_CHARS
    from lbgen.model.naming import MAX_ROUTE_ENTRIES

    return [
        "## Limits",
        "",
        "Every number and duration is limited to the range its product accepts (nginx, Kong,",
        "Kubernetes, kube-proxy); `lbgen/model/limits.py` lists the ranges with their sources.",
        "A spec beyond one of the limits below is refused with a located error (the last one,",
        "a backstop, with an error that names the limit); nothing is written:",
        "",
        f"- at most {MAX_SPEC_BYTES:,} bytes, nested at most {MAX_DEPTH} levels deep;",
        f"- at most {MAX_NODES:,} values (keys, scalars, lists and mappings after expanding",
        f"  aliases), of which at most {MAX_ALIAS_NODES:,} come from aliases;",
        f"- at most {MAX_ROUTE_ENTRIES:,} route entries in the gateway's config (an nginx `location`",
        "  per host group and path, a KIC Ingress path per host and path, a Kong route's hosts",
        "  and paths);",
        f"- at most {MAX_OUTPUT_CHARS:,} characters of rendered output in all.",
        "",
    ]


def spec_reference_markdown() -> str:
    """docs/spec.md: every model of the spec with its fields, types, defaults and docs."""
    lines = [
        "# Spec reference",
        "",
        "<!-- generated by scripts/gen_spec_docs.py from lbgen/model — do not edit -->",
        "",
        "Durations are whole seconds or nginx-style strings (`500ms`, `75s`, `10m`, `1h30m`);",
        "versions are quoted strings. Unknown keys are errors.",
        "",
        *_limits_markdown(),
    ]
    models = _models(Spec)
    order = ["Spec", *sorted(name for name in models if name != "Spec")]
    for name in order:
        model = models[name]
        docs = attribute_docstrings(model)
        lines += [f"## {name}", ""]
        if model.__doc__:
            lines += [inspect.cleandoc(model.__doc__).replace("\n", " "), ""]
        lines += ["| field | type | default | description |", "|---|---|---|---|"]
        for field_name, info in model.model_fields.items():
            if info.is_required():
                default = "**required**"
            elif info.default_factory is not None:
                default = "see description" if field_name not in ("suppress",) else "`[]`"
                try:
                    value = info.default_factory()  # type: ignore[call-arg]
                    plain = not isinstance(value, BaseModel) and not (
                        isinstance(value, list) and value and isinstance(value[0], BaseModel)
                    )
                    default = f"`{value}`" if plain else "(defaults)"
                except TypeError:
                    pass
            else:
                default = f"`{info.default}`" if info.default is not None else "unset"
            description = docs.get(field_name, "").replace("\n", " ").replace("|", "\\|")
            lines.append(f"| `{field_name}` | {_type_name(info.annotation)} | {default} | {description} |")
        lines.append("")
    return "\n".join(lines)
