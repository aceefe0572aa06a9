"""What an importer reads out of an existing config, and where it read it.

The shared vocabulary of `lbgen import` / `lbgen audit`: each product parser (nginx http and
stream through crossplane, Kong declarative / decK state and kong.conf, Kubernetes manifests
and the kube-proxy ConfigMap) turns the files it is given into one `HopImport` per tier it
found. A `HopImport` holds spec-shaped fragments — the same keys a topology.yaml uses — whose
leaves are `Sourced` values that remember the file, line and column they came from, plus the
addresses the hop listens on and forwards to, from which the linker orders the tiers. What a
parser could not translate is a `Skipped` entry with its location and why: users trust a
translation only when it says exactly what it did not translate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Generic, Literal, TypeAlias, TypeVar, Union

from msgspec import Struct, field

from lbgen.io.loader import format_path

T_co = TypeVar("T_co", covariant=True)


class Origin(Struct, frozen=True, order=True):
    """A place in a source file: the path as the user gave it, 1-based line and column."""

    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Sourced(Struct, Generic[T_co], frozen=True):
    """One imported value, where it came from, and whether it was assumed (`--assume`) rather than read."""

    value: T_co
    origin: Origin | None
    assumed: bool = False
    note: str = ""
    """For an assumed value: the `--assume` it came from, or how to give one (a default)."""


SkipReason = Literal["unsupported", "ambiguous", "out-of-scope"]


class Skipped(Struct, frozen=True):
    """A directive, field or object that was not translated, with its location and why."""

    origin: Origin
    item: str
    reason: SkipReason
    detail: str


# A spec-shaped mapping (the keys of topology.yaml) whose leaves are Sourced values.
Fragment: TypeAlias = dict[str, Union["Sourced[object]", "Fragment", list["Sourced[object] | Fragment"]]]


class HopLinks(Struct):
    """The addresses a hop accepts traffic on and the ones it forwards each service's traffic to.

    Addresses are `host:port` strings (`10.20.0.11:8000`, `orders.shop.svc.cluster.local:80`,
    `10.8.0.5:8000`); the linker matches one hop's `forwards` with the next hop's `listens`.
    """

    listens: list[Sourced[str]] = field(default_factory=list)
    # hop-local service key (nginx upstream name, Kong service name, "namespace/name") → addresses
    forwards: dict[str, list[Sourced[str]]] = field(default_factory=dict)
    # listen address → the hop-local service key it reaches (Kubernetes: a Service's names)
    owners: dict[str, str] = field(default_factory=dict)
    # listen address → how it reaches pods: "cluster_ip" (kube-proxy picks) or "headless"
    kinds: dict[str, str] = field(default_factory=dict)


class Named(Struct, frozen=True):
    """An object as an imported file names it, and where it is defined: an nginx `upstream` or
    `server`, a Kong service or upstream, a Kubernetes Service or its port. The spec keeps
    lbgen's names only; `lbgen audit`'s runbook names these."""

    kind: Literal["upstream", "server", "kong-service", "kong-upstream", "target", "service", "headless-service",
                  "service-port"]
    name: str
    origin: Origin


class HopImport(Struct):
    """One tier found in the given files: its spec fragment, its services' fragments, links and skips."""

    kind: Literal["nginx_http", "nginx_stream", "kong", "kubernetes"]
    tier: Fragment
    # hop-local service key → a fragment of `services[]` (only the keys this hop can tell)
    services: dict[str, Fragment] = field(default_factory=dict)
    links: HopLinks = field(default_factory=HopLinks)
    skipped: list[Skipped] = field(default_factory=list)
    # hop-local service key → the objects this hop's files define for it (by the files' names)
    named: dict[str, list[Named]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    """The files read for this hop (includes too), as shown."""


def put(fragment: Fragment, path: str, value: Sourced[object] | Fragment | list[Sourced[object] | Fragment]) -> None:
    """Set `path` (dotted, `timeouts.read`) in `fragment`, creating the mappings on the way."""
    *parents, last = path.split(".")
    node = fragment
    for part in parents:
        child = node.setdefault(part, {})
        assert isinstance(child, dict), f"{path}: {part} is not a mapping"
        node = child
    node[last] = value


def get(fragment: Fragment, path: str) -> object:
    """The entry at `path` (a Sourced, a mapping or a list), or None."""
    node: object = fragment
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


_STEPS: dict[str, str] = {}


def path_step(prefix: str, part: str | int) -> str:
    """`format_path((*path, part))` from `prefix` = `format_path(path)`, without formatting the
    whole path again (an imported spec has thousands of values, each a few keys deep)."""
    if isinstance(part, int):
        return f"{prefix}[{part}]"
    step = _STEPS.get(part)
    if step is None:
        step = format_path((part,))
        if len(_STEPS) < 10_000:
            _STEPS[part] = step
    if step.startswith("["):
        return prefix + step
    return f"{prefix}.{step}" if prefix else step


class SourceText:
    """Columns for the lines a parser reports (crossplane gives lines only)."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}

    def lines(self, file: str) -> list[str]:
        """The file's lines as crossplane counts them: read as it reads the file (UTF-8,
        undecodable bytes replaced, universal newlines), split at newlines only (str.splitlines
        would also split at U+2028, form feeds and others, which crossplane does not count)."""
        lines = self._lines.get(file)
        if lines is None:
            try:
                lines = Path(file).read_text(encoding="utf-8", errors="replace").split("\n")
            except OSError:
                lines = []
            self._lines[file] = lines
        return lines

    def line(self, file: str, line: int) -> str:
        lines = self.lines(file)
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def origin(self, file: str, shown: str, line: int, token: str = "", after: str = "") -> Origin:
        """Where `token` starts on `line` (after the first `after`), 1-based; column 1 if absent."""
        text = self.line(file, line)
        start = 0
        if after:
            found = text.find(after)
            start = found + len(after) if found >= 0 else 0
        column = text.find(token, start) if token else -1
        if column < 0 and token:
            column = text.find(token)
        if column < 0:
            column = len(text) - len(text.lstrip())
        return Origin(shown, line, column + 1)
