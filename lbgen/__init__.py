"""lbgen: one typed spec of a multi-hop load-balancing path.

Library use (IaC pipelines)::

    import lbgen

    loaded = lbgen.load("topology.yaml")          # or lbgen.load({...}) for a mapping
    report = lbgen.validate(loaded)               # cross-hop rules
    if not report.fails(lbgen.Severity.ERROR):
        files = lbgen.render(loaded)              # {"edge/nginx.conf": "...", ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lbgen.errors import InputError, LbgenError, Problem, SourceLocation
from lbgen.io.loader import LoadedSpec, load_spec_data, load_spec_file
from lbgen.model.spec import Spec
from lbgen.render import render_spec
from lbgen.rules import CheckReport, Finding, Severity, check_spec

__version__ = "0.1.0"


def load(source: str | Path | Mapping[str, Any]) -> LoadedSpec:
    """Load and validate a spec from a YAML file path or from a mapping.

    Raises `InputError` (with file:line:column problems) when the spec is invalid.
    """
    if isinstance(source, Mapping):
        return load_spec_data(source)
    return load_spec_file(source)


def render(spec: LoadedSpec | Spec) -> dict[str, str]:
    """Render every hop's configuration: {relative POSIX path: content}. Writes nothing."""
    if isinstance(spec, LoadedSpec):
        return render_spec(spec.spec, Path(spec.source_name).name)
    return render_spec(spec)


def validate(loaded: LoadedSpec, **options: Any) -> CheckReport:
    """Run the cross-hop rules; options are those of `lbgen.rules.check_spec`."""
    return check_spec(loaded, **options)


__all__ = [
    "CheckReport",
    "Finding",
    "InputError",
    "LbgenError",
    "LoadedSpec",
    "Problem",
    "Severity",
    "SourceLocation",
    "Spec",
    "__version__",
    "load",
    "render",
    "validate",
]
