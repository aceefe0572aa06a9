"""`lbgen audit`: import the files in memory, run every rule, and locate each finding in the
original files (`edge/nginx.conf:42:9: LB102 …`, the other hop's value in its own file).

A finding is about a model path (`tiers[2].upstream_keepalive.idle_timeout`). Its location is
the file position of that value when a file set it; for a value no file set (a default the
rule reasons about), the first value the files set inside the nearest enclosing block (the
upstream block; a tier or service as a whole: where its name was read); for an assumed value,
or a block the files say nothing about but that was assumed, `--assume`.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Collection

from lbgen.errors import SourceLocation
from lbgen.importer.run import ImportInputs, ImportResult, run_import
from lbgen.importer.sources import Origin, Sourced
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


class Locator:
    """Model path → original file position. The paths are kept sorted, so the values inside a
    block are a contiguous range found by bisection (an audit of thousands of services
    locates thousands of findings)."""

    def __init__(self, origins: dict[str, Sourced[object]]) -> None:
        self.origins = origins
        self.keys = sorted(origins)
        self._inside: dict[str, tuple[Origin | None, bool]] = {}

    def inside(self, key: str) -> tuple[Origin | None, bool]:
        """The earliest file position among the values inside `key`, and whether any was assumed."""
        cached = self._inside.get(key)
        if cached is not None:
            return cached
        first: Origin | None = None
        assumed = False
        for sep in (".", "["):
            prefix = key + sep
            index = bisect.bisect_left(self.keys, prefix)
            while index < len(self.keys) and self.keys[index].startswith(prefix):
                origin = self.origins[self.keys[index]].origin
                if origin is None:
                    assumed = True
                elif first is None or origin < first:
                    first = origin
                index += 1
        self._inside[key] = (first, assumed)
        return first, assumed

    def locate(self, path: tuple[str | int, ...]) -> SourceLocation:
        """The position of the value at `path`, or of its nearest enclosing block."""
        probe = path
        while probe:
            key = format_path(probe)
            exact = self.origins.get(key)
            if exact is not None:
                return _location(exact.origin)
            name = self.origins.get(key + ".name")
            if isinstance(probe[-1], int) and name is not None and name.origin is not None:
                # a tier or service as a whole: where its name was read (the Service manifest)
                return _location(name.origin)
            first, assumed = self.inside(key)
            if first is not None:
                return _location(first)
            if assumed:
                return _location(None)
            probe = probe[:-1]
        return _location(None)


def _location(origin: Origin | None) -> SourceLocation:
    if origin is None:
        return SourceLocation(ASSUMED_FILE, 1, 1)
    return SourceLocation(origin.file, origin.line, origin.column)


def locate(path: tuple[str | int, ...], origins: dict[str, Sourced[object]]) -> SourceLocation:
    return Locator(origins).locate(path)


def _relocated(finding: Finding, where: Locator) -> Finding:
    related = (where.locate(finding.related_path) if finding.related_path is not None
               else finding.related_location)
    return dataclasses.replace(finding, location=where.locate(finding.path), related_location=related)


def run_audit(inputs: ImportInputs, *, select: Collection[str] | None = None, ignore: Collection[str] = ()) -> Audit:
    imported = run_import(inputs, "<imported spec>", text=False)
    report = check_spec(imported.loaded, select=select, ignore=ignore)
    where = Locator(imported.origins)
    findings = [_relocated(f, where) for f in report.findings]
    findings.sort(key=lambda f: (f.location.file, f.location.line, f.location.column, f.code))
    return Audit(imported, dataclasses.replace(report, findings=findings))
