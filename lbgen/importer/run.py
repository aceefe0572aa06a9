"""`lbgen import`: read the given files, link the hops, write a spec, say what was left out."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from lbgen.errors import InputError, Problem, SourceLocation
from lbgen.importer.assume import parse_assumption
from lbgen.importer.kong import import_kong
from lbgen.importer.kubernetes import import_kubernetes
from lbgen.importer.link import Linked, link
from lbgen.importer.nginx import import_nginx_http, import_nginx_stream
from lbgen.importer.sources import HopImport, Named, Skipped, Sourced, SourceText
from lbgen.importer.writer import plain_spec, write_spec
from lbgen.io.loader import LoadedSpec, format_path, load_spec_data, load_spec_text


@dataclass
class ImportInputs:
    nginx_http: list[str] = field(default_factory=list)
    nginx_stream: list[str] = field(default_factory=list)
    kong: str | None = None
    kong_conf: str | None = None
    k8s: list[str] = field(default_factory=list)
    kube_proxy: str | None = None
    assume: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    text: str
    """The spec as written (YAML with origin comments)."""
    loaded: LoadedSpec
    skipped: list[Skipped]
    assumed: list[tuple[str, Sourced[object]]]
    """(model path, value) of every assumed value, explicit (`--assume`) or a default."""
    origins: dict[str, Sourced[object]]
    links: list[str]
    service_objects: dict[str, list[Named]] = field(default_factory=dict)
    """`namespace/name` of each service → its objects as the files name them (Linked)."""
    tier_objects: dict[str, list[Named]] = field(default_factory=dict)
    tier_files: dict[str, list[str]] = field(default_factory=dict)

    @property
    def guessed(self) -> list[tuple[str, Sourced[object]]]:
        """Assumed values no `--assume` confirmed (defaults)."""
        return [(path, value) for path, value in self.assumed if not value.note.startswith("--assume")]


def shown_path(path: str) -> str:
    """A path relative to the working directory when it is inside it, else as given."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


HEADER = (
    "# imported by lbgen import: each value's comment says where it was read (file:line:column)\n"
    "# or that it was assumed (--assume, or a default no file could tell). Review the assumed\n"
    "# values, then `lbgen validate` and `lbgen render` this spec.\n"
)


def run_import(inputs: ImportInputs, output_name: str = "topology.yaml", *, text: bool = True) -> ImportResult:
    """Import `inputs`. `text=False` (audit): validate the spec as data and write no YAML."""
    if not (inputs.nginx_http or inputs.nginx_stream or inputs.kong or inputs.kong_conf or inputs.k8s
            or inputs.kube_proxy):
        raise InputError([Problem(SourceLocation("lbgen import", 1, 1), "no input files",
                                  "give at least one of --nginx-http, --nginx-stream, --kong, --kong-conf, "
                                  "--k8s, --kube-proxy")])
    assumptions = [parse_assumption(text) for text in inputs.assume]
    sources = SourceText()
    hops: list[HopImport] = []
    if inputs.nginx_http:
        hops.append(import_nginx_http(inputs.nginx_http, sources, shown_path))
    if inputs.nginx_stream:
        hops.append(import_nginx_stream(inputs.nginx_stream, sources, shown_path))
    if inputs.kong or inputs.kong_conf:
        hops.append(import_kong(inputs.kong, inputs.kong_conf, shown_path))
    if inputs.k8s or inputs.kube_proxy:
        hops.append(import_kubernetes(inputs.k8s, inputs.kube_proxy, shown_path))
    linked = link(hops, assumptions)
    if not linked.spec.get("services"):
        raise _nothing_to_import(inputs, linked.skipped)
    problems: list[Problem] = []
    for _ in range(MAX_DROPS):
        try:
            if text:
                spec_text, origins = write_spec(linked.spec, HEADER)
                loaded = load_spec_text(spec_text, output_name)
            else:
                data, origins = plain_spec(linked.spec)
                spec_text = ""
                loaded = load_spec_data(data, output_name, strict=True)
            break
        except InputError as error:
            problems = error.problems
            if not _drop_refused(error, linked):
                raise InputError([_relocate(p, origins) for p in problems]) from None
    else:
        raise InputError([_relocate(p, origins) for p in problems])
    assumed = [(path, value) for path, value in origins.items() if value.assumed]
    # a file given to both nginx readers (one nginx.conf with http {} and stream {}) reports
    # its main context once
    both = {shown_path(p) for p in inputs.nginx_http} & {shown_path(p) for p in inputs.nginx_stream}
    skipped = sorted({s for s in linked.skipped if not (s.origin.file in both and " block is read with --nginx-" in s.detail)},
                     key=lambda s: (s.origin.file, s.origin.line, s.origin.column, s.item))
    return ImportResult(spec_text, loaded, skipped, assumed, origins, linked.links,
                        linked.service_objects, linked.tier_objects, linked.tier_files)


def _nothing_to_import(inputs: ImportInputs, skipped: list[Skipped]) -> InputError:
    """No file holds a service (a config that only serves `return 200`, a decK file of
    plugins or upstreams only): said at the input, with what was read and left out, rather
    than as a schema error of a spec the user never wrote."""
    first = [*inputs.nginx_http, *inputs.nginx_stream, inputs.kong, inputs.kong_conf, *inputs.k8s, inputs.kube_proxy]
    name = shown_path(next(path for path in first if path))
    skipped = sorted(skipped, key=lambda s: (s.origin.file, s.origin.line, s.origin.column))
    left_out = f"; {len(skipped)} item(s) were not translated, the first at {skipped[0].origin}: " \
        f"{skipped[0].item} ({skipped[0].detail})" if skipped else ""
    return InputError([Problem(
        SourceLocation(name, 1, 1),
        f"nothing to import: no service was found in the given files{left_out}",
        "give the files that proxy to the backends: an nginx `location` with proxy_pass/grpc_pass "
        "(stream: a `server` with proxy_pass), a Kong service (--kong), a Kubernetes Service (--k8s)")])


_GRAMMAR = re.compile(r"has characters that are not allowed here|is not allowed here|is out of range$")
MAX_DROPS = 50
"""Rounds of leaving out values the spec refuses before the import gives up (each round
drops every refused value it can)."""


def _leaves(node: object, path: tuple[str | int, ...] = ()) -> list[tuple[str, tuple[str | int, ...], Sourced[object]]]:
    if isinstance(node, Sourced):
        return [(format_path(path), path, node)]
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _leaves(value, (*path, key))]
    if isinstance(node, list):
        return [leaf for index, value in enumerate(node) for leaf in _leaves(value, (*path, index))]
    return []


def _drop_refused(error: InputError, linked: Linked) -> bool:
    """Leave out the imported values the spec's grammar refuses (a path with a space, a name
    made from an IP address), each reported as unsupported; False when a refusal is not
    about one imported value (then the import fails, located)."""
    leaves = {key: (path, value) for key, path, value in _leaves(linked.spec)}
    drops: list[tuple[tuple[str | int, ...], Sourced[object], Problem]] = []
    for problem in error.problems:
        found = leaves.get(problem.path)
        # only a value refused on its own (its characters, its range): one that conflicts
        # with other values is a located error, never silently left out
        if found is None or found[1].origin is None or not _GRAMMAR.search(problem.message):
            return False
        path, value = found
        if len(path) >= 2 and path[0] == "services" and path[2:] in (("name",), ("namespace",)):
            path = path[:2]  # a service that cannot be named is left out whole
        drops.append((path, value, problem))
    for path, value, problem in sorted(drops, key=lambda d: [str(p).zfill(6) for p in d[0]], reverse=True):
        if not _remove(linked.spec, path):
            continue
        assert value.origin is not None
        linked.skipped.append(Skipped(value.origin, f"{format_path(path)}: {value.value}", "unsupported",
                                      f"lbgen's spec refuses it ({problem.message}); left out"))
    return bool(drops)


def _child(node: object, part: str | int) -> object | None:
    found: object | None = None
    if isinstance(node, dict) and isinstance(part, str):
        found = node.get(part)
    elif isinstance(node, list) and isinstance(part, int) and part < len(node):
        found = node[part]
    return found


def _remove(node: object, path: tuple[str | int, ...]) -> bool:
    for part in path[:-1]:
        node = _child(node, part)
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        del node[last]
        return True
    return False


def _relocate(problem: Problem, origins: dict[str, Sourced[object]]) -> Problem:
    """A problem of the generated spec, located at the imported value it is about."""
    path = problem.path
    candidates = [p for p in origins if p == path or p.startswith((path + ".", path + "["))
                  or path.startswith((p + ".", p + "["))]
    for candidate in sorted(candidates, key=len, reverse=True):
        value = origins[candidate]
        if value.origin is not None:
            origin = value.origin
            return Problem(SourceLocation(origin.file, origin.line, origin.column),
                           f"the imported value does not make a valid spec: {problem.message}",
                           problem.hint, path)
        if value.assumed:
            return Problem(SourceLocation("--assume", 1, 1),
                           f"the assumed value of {path} does not make a valid spec: {problem.message}",
                           f"{problem.hint}; {value.note}" if problem.hint else value.note, path)
    return Problem(SourceLocation("<imported spec>", problem.location.line, problem.location.column),
                   f"the imported spec is not valid: {problem.message}", problem.hint, path)
