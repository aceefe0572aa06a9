"""Real-consumer checks for Kong output.

- every `kong.yaml`: decK's structural JSON Schema (draft-04) and the Kong value-constraints
  schema for its edition/version (draft-07), from `--schemas DIR` (`DIR/kong/…`);
- every KongUpstreamPolicy (KIC files): the CRD's openAPIV3Schema, validated as draft-07
  (the KIC Ingress is a built-in kind: `lbgen.verify.kubernetes` validates it);
- `deck file validate` (or decK 1.x `deck validate -s`) and `kong config parse` on each
  kong.yaml when those programs are installed.

A check that cannot run is reported as skipped with the reason, never silently omitted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from jsonschema import Draft4Validator, Draft7Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from lbgen.model.types import Version
from lbgen.render._base import FileTarget
from lbgen.render.kong import BASE_CONSTRAINTS, constraints_schema_name
from lbgen.verify._base import CheckResult, file_targets

DECK_SCHEMA = "deck-kong_json_schema.json"
CRD_SCHEMA = "kongupstreampolicy-v1beta1.json"
MAX_ERRORS_SHOWN = 5
TOOL_TIMEOUT_SECONDS = 120

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --- schema helpers ------------------------------------------------------------------------

@cache
def _validator(schema_path: Path) -> Validator:
    """One compiled validator per schema file (validating thousands of services reuses it)."""
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    if schema_path.name == DECK_SCHEMA:
        return Draft4Validator(schema)
    # The constraints files are draft-07; the CRD's OpenAPI v3 structural schema is checked
    # with Draft7Validator as its README prescribes (x-kubernetes-* keys are ignored).
    return Draft7Validator(schema)


def _json_path(error: ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def format_errors(errors: Iterable[ValidationError]) -> str:
    """`path: message` lines for the first few errors, sorted by path, then a count."""
    found = sorted(errors, key=lambda e: (_json_path(e), e.message))
    lines = []
    for error in found[:MAX_ERRORS_SHOWN]:
        message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
        lines.append(f"{_json_path(error)}: {message}")
    if len(found) > MAX_ERRORS_SHOWN:
        lines.append(f"... and {len(found) - MAX_ERRORS_SHOWN} more errors")
    return "\n".join(lines)


def _schema_check(
    name: str, schema_path: Path, document: Any, versions: Mapping[str, str] | None = None
) -> CheckResult:
    """`versions`: tested_on/declared when the schema is of another Kong than the file's."""
    tested_on = (versions or {}).get("tested_on")
    declared = (versions or {}).get("declared")
    if not schema_path.is_file():
        return CheckResult(name, "failed", f"schema file {schema_path} not found")
    errors = list(_validator(schema_path).iter_errors(document))
    if errors:
        return CheckResult(
            name, "failed", format_errors(errors), tested_on=tested_on, declared=declared
        )
    return CheckResult(name, "passed", tested_on=tested_on, declared=declared)


_CONSTRAINTS_NAME_RE = re.compile(r"kong-entity-constraints\.ee-(?P<version>[0-9.]+)\.json$")


def constraints_versions(target: FileTarget | None, constraints: str) -> dict[str, str]:
    """tested_on/declared when the constraints file is not of the Kong the file is for: the
    values of Kong Enterprise 3.10 are not proof for OSS 3.4 (or Enterprise 3.12)."""
    schema = _CONSTRAINTS_NAME_RE.search(constraints)
    if target is None or schema is None:
        return {}
    tested = f"Kong enterprise {schema.group('version')} constraints"
    if target.edition == "enterprise" and target.version == Version(schema.group("version")):
        return {}
    return {"tested_on": tested, "declared": f"Kong {target.edition} {target.version}"}


def constraints_for(target: FileTarget | None) -> str:
    """The constraints file for the Kong kong.yaml was written for (EE 3.10 when unknown)."""
    if target is None or target.edition is None:
        return BASE_CONSTRAINTS
    return constraints_schema_name(target.edition, target.version)


# --- external programs ---------------------------------------------------------------------

def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # fixed argv, no shell
        argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS, check=False
    )


@cache
def _deck_argv(deck: str) -> tuple[str, ...]:
    """decK ≥ 1.28 validates offline with `deck file validate`; decK 1.x (e.g. Debian's
    1.4.0) with `deck validate -s`, which its help says never contacts Kong."""
    if _run([deck, "file", "validate", "--help"]).returncode == 0:
        return (deck, "file", "validate")
    return (deck, "validate", "-s")


def _tool_check(name: str, argv: list[str]) -> CheckResult:
    try:
        done = _run(argv)
    except subprocess.TimeoutExpired:
        return CheckResult(name, "failed", f"timed out after {TOOL_TIMEOUT_SECONDS}s")
    if done.returncode != 0:
        output = (done.stderr + done.stdout).strip()
        return CheckResult(name, "failed", output[-2000:] or f"exit status {done.returncode}")
    return CheckResult(name, "passed")


def _tool_checks(kong_yamls: Mapping[str, str]) -> list[CheckResult]:
    results: list[CheckResult] = []
    deck = shutil.which("deck")
    kong = shutil.which("kong")
    if deck is None:
        results.append(
            CheckResult("deck file validate", "skipped", "deck is not installed (Debian: deck)")
        )
    if kong is None:
        results.append(
            CheckResult("kong config parse", "skipped", "kong (Kong Gateway) is not installed")
        )
    if deck is None and kong is None:
        return results
    with tempfile.TemporaryDirectory(prefix="lbgen-kong-") as tmp:
        for index, (path, text) in enumerate(sorted(kong_yamls.items())):
            local = Path(tmp) / f"{index}-kong.yaml"
            local.write_text(text, encoding="utf-8")
            if deck is not None:
                argv = [*_deck_argv(deck), str(local)]
                name = f"deck {' '.join(argv[1:-1])} {path}"
                if argv[1] == "validate" and "sticky_sessions_cookie" in text:
                    # decK 1.x (`deck validate -s`, e.g. Debian's 1.4.0) predates Kong 3.11's
                    # sticky-sessions fields and rejects them; its verdict would be wrong.
                    results.append(CheckResult(name, "skipped", "this decK predates Kong 3.11's "
                                               "sticky_sessions_cookie fields; use decK ≥ 1.28"))
                else:
                    results.append(_tool_check(name, argv))
            if kong is not None:
                results.append(
                    _tool_check(f"kong config parse {path}", [kong, "config", "parse", str(local)])
                )
    return results


# --- entry point ---------------------------------------------------------------------------

def _load_all(path: str, text: str) -> tuple[list[Any], CheckResult | None]:
    try:
        return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None], None
    except yaml.YAMLError as error:
        return [], CheckResult(f"YAML parse {path}", "failed", str(error))


def _is_kong_yaml(path: str) -> bool:
    return PurePosixPath(path).name == "kong.yaml"


def _is_kic_file(path: str, text: str) -> bool:
    return path.endswith(".yaml") and "kind: KongUpstreamPolicy" in text


def verify(
    files: Mapping[str, str], schemas_dir: Path | None, targets: Mapping[str, FileTarget] | None = None
) -> list[CheckResult]:
    known = file_targets(files, targets)
    kong_yamls = {p: t for p, t in files.items() if _is_kong_yaml(p)}
    kic_files = {p: t for p, t in files.items() if not _is_kong_yaml(p) and _is_kic_file(p, t)}
    if not kong_yamls and not kic_files:
        return []  # no Kong tier in this render
    results: list[CheckResult] = []
    kong_dir = schemas_dir / "kong" if schemas_dir is not None else None
    if kong_dir is None:
        results.append(
            CheckResult(
                "kong schemas (decK, value constraints, KongUpstreamPolicy CRD)",
                "skipped",
                "pass --schemas DIR (a directory with kong/deck-kong_json_schema.json, "
                "kong/kong-entity-constraints.*.json, kong/kongupstreampolicy-v1beta1.json)",
            )
        )

    for path, text in sorted(kong_yamls.items()):
        documents, parse_error = _load_all(path, text)
        if parse_error is not None:
            results.append(parse_error)
            continue
        if kong_dir is None:
            continue
        document = documents[0] if documents else {}
        results.append(_schema_check(f"kong schema (decK) {path}", kong_dir / DECK_SCHEMA, document))
        constraints = constraints_for(known.get(path))
        results.append(
            _schema_check(
                f"kong constraints ({constraints.removesuffix('.json')}) {path}",
                kong_dir / constraints,
                document,
                constraints_versions(known.get(path), constraints),
            )
        )

    for path, text in sorted(kic_files.items()):
        documents, parse_error = _load_all(path, text)
        if parse_error is not None:
            results.append(parse_error)
            continue
        for document in documents:
            kind = document.get("kind") if isinstance(document, dict) else None
            meta = document.get("metadata", {}) if isinstance(document, dict) else {}
            label = f"{path} ({kind} {meta.get('namespace')}/{meta.get('name')})"
            if kind == "KongUpstreamPolicy" and kong_dir is not None:
                results.append(
                    _schema_check(f"KongUpstreamPolicy CRD schema {label}", kong_dir / CRD_SCHEMA,
                                  document)
                )

    if kong_yamls:
        results.extend(_tool_checks(kong_yamls))
    return results

