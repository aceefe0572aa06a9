"""The one Jinja environment of lbgen."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from lbgen.render import filters

if TYPE_CHECKING:
    from jinja2 import Environment


def templates_dir() -> Path:
    """Templates ship inside the wheel as `lbgen/templates`; in a checkout they are the
    top-level `templates/` directory."""
    packaged = Path(__file__).resolve().parent.parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "templates"


@cache
def jinja_env() -> Environment:
    # Imported here: the rules import renderer helpers, and `lbgen rules` needs no Jinja.
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        undefined=StrictUndefined,
        autoescape=False,  # configs, not HTML: values are validated/quoted by filters instead
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(filters.FILTERS)
    return env
