"""`lbgen audit`: import the files in memory, run every rule, and locate each finding in the
original files (`edge/nginx.conf:42:9: LB102 …`, the other hop's value in its own file).

A finding is about a model path (`tiers[2].upstream_keepalive.idle_timeout`). Its location is
the file position of that value when a file set it; for a value no file set (a default the
rule reasons about), the first value the files set inside the nearest enclosing block (the
upstream block; a tier or service as a whole: where its name was read); for an assumed value,
or a block the files say nothing about but that was assumed, `--assume`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from lbgen.errors import SourceLocation
from lbgen.importer.run import ImportInputs, ImportResult, run_import
from lbgen.importer.sources import Sourced
from lbgen.io.loader import format_path
from lbgen.rules import check_spec
from lbgen.rules._base import Finding
from lbgen.rules._engine import CheckReport

ASSUMED_FILE = "--assume"
"""The location of a finding about a value no file holds (it was assumed)."""


@dataclasses.dataclass
class Audit:
    imported: ImportResult
    report: CheckReport


def locate(path: tuple[str | int, ...], origins: dict[str, Sourced[object]]) -> SourceLocation:
    """The original file position of the value at `path`, or of its nearest enclosing block."""
    probe = path
    while True:
        key = format_path(probe)
        exact = origins.get(key)
        if exact is not None:
            if exact.origin is not None:
                return SourceLocation(exact.origin.file, exact.origin.line, exact.origin.column)
            return SourceLocation(ASSUMED_FILE, 1, 1)
        name = origins.get(key + ".name")
        if probe and isinstance(probe[-1], int) and name is not None and name.origin is not None:
            # a tier or service as a whole: where its name was read (the Service manifest)
            return SourceLocation(name.origin.file, name.origin.line, name.origin.column)
        below = [v for p, v in origins.items() if p.startswith((key + ".", key + "["))]
        inside = sorted(v.origin for v in below if v.origin is not None)
        if inside and probe:
            first = inside[0]
            return SourceLocation(first.file, first.line, first.column)
        if below and probe:
            return SourceLocation(ASSUMED_FILE, 1, 1)
        if not probe:
            return SourceLocation(ASSUMED_FILE, 1, 1)
        probe = probe[:-1]


def _relocated(finding: Finding, origins: dict[str, Sourced[object]]) -> Finding:
    related = (locate(finding.related_path, origins) if finding.related_path is not None
               else finding.related_location)
    return dataclasses.replace(finding, location=locate(finding.path, origins), related_location=related)


def run_audit(inputs: ImportInputs, *, select: Collection[str] | None = None, ignore: Collection[str] = ()) -> Audit:
    imported = run_import(inputs, "<imported spec>")
    report = check_spec(imported.loaded, select=select, ignore=ignore)
    findings = [_relocated(f, imported.origins) for f in report.findings]
    findings.sort(key=lambda f: (f.location.file, f.location.line, f.location.column, f.code))
    return Audit(imported, dataclasses.replace(report, findings=findings))
