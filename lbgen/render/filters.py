"""Typed Jinja filters: formatting of values for each destination grammar."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lbgen.model.types import Duration

_NGINX_BARE = re.compile(r"^[A-Za-z0-9_./:\-\[\]$=@%+]+$")


def nginx_duration(value: Duration) -> str:
    return value.nginx()


def nginx_quote(value: str) -> str:
    """An nginx string argument: bare when safe, otherwise double-quoted and escaped."""
    if value and _NGINX_BARE.match(value):
        return value
    if any(ch in value for ch in "\n\r\x00"):
        raise ValueError(f"{value!r} cannot be placed in an nginx config")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def nginx_comment(value: str) -> str:
    """Text for a `# …` nginx comment: one line, so nothing after it can become a directive."""
    return " ".join(value.replace("\x00", " ").split())


FILTERS: dict[str, Callable[..., Any]] = {
    "nginx_duration": nginx_duration,
    "nginx_quote": nginx_quote,
    "nginx_comment": nginx_comment,
}
