"""`lbgen audit`: check an existing path where it stands.

The per-hop files are imported (lbgen.importer), every rule runs on the imported spec, and
each finding is moved from the spec it was computed on to the file the offending value was
read from: `edge/nginx.conf:22:27: LB102 …`, with the other hop's value located in its own
file. A value no file holds (a product default, an `--assume`) is located at the nearest
imported value of the same object, and the finding says what was assumed, so every
location is a line a user can open.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

import msgspec.structs

from lbgen.errors import SourceLocation, shown_source_name
from lbgen.importer.run import ImportInputs, ImportResult, run_import
from lbgen.importer.sources import Origin, Sourced, path_step
from lbgen.rules import CheckReport, Finding, check_spec

ModelPath = Sequence[str | int]


class Located(msgspec.Struct, frozen=True):
    """Where an audit finding's value is, in the audited files."""

    location: SourceLocation
    assumed: str = ""
    """What was assumed instead of read (`--assume app.preset=uvicorn`, a default), if so."""


class AuditResult(msgspec.Struct, frozen=True):
    imported: ImportResult
    report: CheckReport
    """Findings located in the audited files (`Finding.location`, `related_location`)."""


class OriginIndex:
    """The imported values' origins, indexed for `locate`: per model path (and per enclosing
    object of each), the first position read from a file, and the assumed direct keys of
    each object. Built once per audit, so locating every finding is linear in the findings."""

    def __init__(self, origins: dict[str, Sourced[object]]) -> None:
        self.values = origins
        self.assumed_keys: dict[str, list[str]] = {}
        first: dict[str, Origin] = {}
        for name in sorted(origins):
            value = origins[name]
            prefixes = _enclosing(name)
            prefixes.append(name)
            here = value.origin
            if here is not None:
                for prefix in prefixes:
                    known = first.get(prefix)
                    if known is None or here < known:  # Origin orders by (file, line, column)
                        first[prefix] = here
            if value.assumed and len(prefixes) > 1 and name[len(prefixes[-2])] == ".":
                self.assumed_keys.setdefault(prefixes[-2], []).append(f"{name} {value.note or 'assumed'}")
        self.first = {key: SourceLocation(o.file, o.line, o.column) for key, o in first.items()}


_SEPARATOR = re.compile(r"[.\[]")


def _enclosing(name: str) -> list[str]:
    """The paths of the objects that hold `name` (`a.b[0].c` → `a`, `a.b`, `a.b[0]`), outermost
    first; a quoted key (`labels["a.b"]`) is one step."""
    if '"' not in name:
        return [name[:m.start()] for m in _SEPARATOR.finditer(name, 1)]
    out, quoted = [], False
    for i, ch in enumerate(name):
        if ch == '"' and (i == 0 or name[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in ".[" and i > 0:
            out.append(name[:i])
    return out


def locate(path: ModelPath, index: OriginIndex) -> Located | None:
    """The audited file position of the value at `path`: its own origin; else the first
    imported value inside it (an object: its first value as read); else the first imported
    value of the nearest enclosing object (a default lbgen filled in: the tier or service it
    belongs to). None when nothing of it, nor of what holds it, was imported."""
    prefixes = [""]
    for part in path:
        prefixes.append(path_step(prefixes[-1], part))
    key = prefixes[-1]
    own = index.values.get(key)
    assumed = _assumed(own)
    if own is None and key not in index.first and len(path) >= 4:
        # A value lbgen derived (in no file): what was assumed next to it in the same object
        # (`app.idle_timeout` from an assumed `app.preset`). Not for a tier's or service's own
        # fields: tier-wide assumptions (version, location) are listed once, above the findings.
        assumed = "; ".join(index.assumed_keys.get(prefixes[-2], []))
    for end in range(len(path), 0, -1):
        first = index.first.get(prefixes[end])
        if first is not None:
            return Located(first, assumed)
    return None


def _assumed(value: Sourced[object] | None) -> str:
    if value is None or not value.assumed:
        return ""
    return value.note or "assumed"


def relocate(finding: Finding, index: OriginIndex, spec_name: str) -> Finding:
    """`finding` located in the audited files (the imported spec's position when nothing of
    its value was imported, which only happens for values lbgen derives)."""
    own = locate(finding.path, index)
    related = locate(finding.related_path, index) if finding.related_path is not None else None
    notes = [own.assumed] if own is not None and own.assumed else []
    if related is not None and related.assumed and related.assumed not in notes:
        notes.append(related.assumed)
    hint = finding.hint + "".join(f" (assumed, not read from the files: {note})" for note in notes)
    return msgspec.structs.replace(
        finding,
        location=own.location if own is not None else _in_spec(finding.location, spec_name),
        related_location=(
            related.location if related is not None
            else _in_spec(finding.related_location, spec_name) if finding.related_location is not None
            else None
        ),
        hint=hint,
    )


def _in_spec(location: SourceLocation, spec_name: str) -> SourceLocation:
    return SourceLocation(spec_name, location.line, location.column)


def audit(
    inputs: ImportInputs,
    *,
    select: Collection[str] | None = None,
    ignore: Collection[str] = (),
) -> AuditResult:
    """Import `inputs`, run the selected rules, and locate the findings in the input files.
    Raises InputError (located in the input files) when they cannot be imported."""
    spec_name = "<imported spec>"
    imported = run_import(inputs, spec_name, text=False)
    report = check_spec(imported.loaded, select=select, ignore=ignore)
    index = OriginIndex(imported.origins)
    findings = [relocate(f, index, spec_name) for f in report.findings]
    findings.sort(key=lambda f: (f.location.file, f.location.line, f.location.column, f.code))
    return AuditResult(imported, msgspec.structs.replace(report, findings=findings))


def audited_summary(result: AuditResult) -> str:
    """What the findings rest on: the files read, and what was assumed instead of read."""
    imported = result.imported
    files = sorted({v.origin.file for v in imported.origins.values() if v.origin is not None})
    read = sum(1 for v in imported.origins.values() if v.origin is not None)
    guessed = imported.guessed
    lines = [f"audited {len(files)} file(s): {', '.join(shown_source_name(f) for f in files)}"]
    lines.append(
        f"  {read} values read; {len(imported.assumed) - len(guessed)} given with --assume; "
        f"{len(guessed)} assumed by default; {len(imported.skipped)} directives/fields not translated"
        + (" (`lbgen import` lists them)" if guessed or imported.skipped else "")
    )
    for path, value in guessed:
        lines.append(f"  assumed {path} = {value.value} ({value.note.removeprefix('default: ')})")
    return "\n".join(lines) + "\n\n"
