"""The import report: every value that was assumed and everything that was not translated.

JSON (`"format": "lbgen-import/1"`):

- `spec`: the file written (`-` for standard output);
- `imported`: how many spec values were read from the files;
- `skipped[]`: what was not translated: `file`, `line`, `column` (1-based), `item` (the
  directive, key or object), `reason` (`unsupported`: lbgen's spec cannot express it;
  `ambiguous`: the files say two things where the spec has one, or a link cannot be made;
  `out-of-scope`: not part of what lbgen models), `detail`;
- `assumed[]`: values no file told: `path` (model path, `tiers[2].location`), `value`,
  `source` (`assume`: given with --assume; `default`: chosen by the import, to be checked),
  `note`;
- `links[]`: how the tiers were linked, in words.
"""

from __future__ import annotations

import json
from typing import Any

from lbgen.errors import shown_source_name
from lbgen.importer.run import ImportResult

FORMAT = "lbgen-import/1"


def _value(value: object) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list):
        return [_value(v) for v in value]
    return str(value)


def to_json(result: ImportResult, spec_name: str) -> str:
    data = {
        "format": FORMAT,
        "spec": spec_name,
        "imported": sum(1 for v in result.origins.values() if v.origin is not None),
        "skipped": [
            {"file": s.origin.file, "line": s.origin.line, "column": s.origin.column,
             "item": s.item, "reason": s.reason, "detail": s.detail}
            for s in result.skipped
        ],
        "assumed": [
            {"path": path, "value": _value(v.value),
             "source": "assume" if v.note.startswith("--assume") else "default", "note": v.note}
            for path, v in result.assumed
        ],
        "links": result.links,
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def to_text(result: ImportResult, spec_name: str) -> str:
    lines: list[str] = []
    files = sorted({v.origin.file for v in result.origins.values() if v.origin is not None})
    imported = sum(1 for v in result.origins.values() if v.origin is not None)
    lines.append(f"imported {imported} values from {len(files)} file(s) into {shown_source_name(spec_name)}")
    for link in result.links:
        lines.append(f"  linked: {link}")
    guessed = result.guessed
    given = [(p, v) for p, v in result.assumed if (p, v) not in guessed]
    if given:
        lines.append(f"assumed with --assume ({len(given)}):")
        lines.extend(f"  {path} = {_shown(v.value)}" for path, v in given)
    if guessed:
        lines.append(f"assumed by default, no file tells ({len(guessed)}) — check them:")
        lines.extend(f"  {path} = {_shown(v.value)}  ({v.note.removeprefix('default: ')})" for path, v in guessed)
    if result.skipped:
        lines.append(f"not translated ({len(result.skipped)}):")
        for s in result.skipped:
            lines.append(f"  {s.origin}: {s.reason}: {shown_source_name(s.item)}: {s.detail}")
    else:
        lines.append("not translated: nothing")
    return "\n".join(lines) + "\n"


def _shown(value: object) -> str:
    return json.dumps(_value(value), ensure_ascii=False) if not isinstance(value, str) else value
