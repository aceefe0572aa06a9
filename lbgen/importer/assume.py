"""`--assume KEY=VALUE`: what the files cannot tell.

KEY is a scope and a dotted spec path inside it:

- `name`, `keepalive_margin`, `external_lb.…`, `workload.…`: the spec's own keys (no
  config file holds them);
- `edge.…` (or `nginx_http.…`), `l4.…` (`nginx_stream.…`), `kong.…` (`gateway.…`),
  `kubernetes.…` (`k8s.…`, `cluster.…`): a tier's keys, e.g. `kong.location=outside`,
  `edge.version=1.24.0`, `edge.instances=10.10.0.11,10.10.0.12`;
- `platform=gke`: short for `kubernetes.platform`;
- `app.…`, `services.…`: every service's keys, e.g. `app.preset=uvicorn`,
  `app.idle_timeout=5s`, `services.replicas=8`;
- `service.NAME.…` (NAME or NAMESPACE/NAME): one service's keys.

VALUE is a YAML scalar or flow collection (`5s`, `8`, `true`, `[a, b]`). A trailing note in
parentheses is kept for the comment and the report: `app.idle_timeout=5s (probed)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from lbgen.errors import InputError, Problem, SourceLocation

TIER_SCOPES = {
    "edge": "nginx_http", "nginx_http": "nginx_http",
    "l4": "nginx_stream", "nginx_stream": "nginx_stream",
    "kong": "kong", "gateway": "kong",
    "kubernetes": "kubernetes", "k8s": "kubernetes", "cluster": "kubernetes",
}
_NOTE = re.compile(r"^(?P<value>.*?)\s*\((?P<note>[^()]*)\)\s*$")
_KEY = re.compile(r"^[A-Za-z0-9_./-]+$")


@dataclass(frozen=True)
class Assumption:
    """One `--assume`: where it applies, the spec path, the value and an optional note."""

    text: str
    scope: str
    """`spec`, a tier kind, `services` (all) or `service:NAME`."""
    path: str
    value: object
    note: str = ""


def _error(text: str, message: str, hint: str) -> InputError:
    return InputError([Problem(SourceLocation("--assume", 1, 1), f"{text!r}: {message}", hint)])


def parse_assumption(text: str) -> Assumption:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not _KEY.fullmatch(key):
        raise _error(text, "expected KEY=VALUE", "e.g. --assume app.preset=uvicorn --assume platform=gke")
    note = ""
    match = _NOTE.match(raw)
    if match and match.group("value"):
        raw, note = match.group("value"), match.group("note").strip()
    # versions stay text: YAML would read 1.30 as the number 1.3
    value = raw.strip() if key.rsplit(".", 1)[-1] == "version" and raw.strip() else _value(text, raw.strip())
    head, _, rest = key.partition(".")
    if key in ("name", "keepalive_margin") or (head in ("external_lb", "workload") and rest):
        return Assumption(text, "spec", key, value, note)
    if key == "platform":
        return Assumption(text, "kubernetes", "platform", value, note)
    if head in TIER_SCOPES and rest:
        return Assumption(text, TIER_SCOPES[head], rest, value, note)
    if head == "app" and rest:
        return Assumption(text, "services", key, value, note)
    if head == "services" and rest:
        return Assumption(text, "services", rest, value, note)
    if head == "service" and rest:
        # service.NAME.PATH or service.NAMESPACE/NAME.PATH (names have no dots)
        name, _, path = rest.partition(".")
        if name and path:
            return Assumption(text, f"service:{name}", path, value, note)
    raise _error(text, "unknown key",
                 "KEY starts with name, platform, edge., l4., kong., kubernetes., app., services. or "
                 "service.NAME. (see `lbgen import --help`)")


def _value(text: str, raw: str) -> object:
    if raw == "":
        raise _error(text, "the value is empty", "give a value after =")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return raw if value is None else value
