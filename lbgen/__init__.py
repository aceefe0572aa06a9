"""lbgen: one typed spec of a multi-hop load-balancing path.

Library use (IaC pipelines)::

    import lbgen

    loaded = lbgen.load("topology.yaml")          # or lbgen.load({...}) for a mapping
    report = lbgen.validate(loaded)               # cross-hop rules
    if not report.fails(lbgen.Severity.ERROR):
        files = lbgen.render(loaded)              # {"edge/nginx.conf": "...", ...}
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lbgen.errors import InputError, LbgenError, Problem, SourceLocation
    from lbgen.io.loader import LoadedSpec
    from lbgen.model.spec import Spec
    from lbgen.plan import Plan
    from lbgen.render import RenderedFiles
    from lbgen.rules import CheckReport, Finding, Severity

__version__ = "0.1.0"

# The public names are imported on first use (PEP 562), so that `lbgen --version`, `rules`
# and `explain` do not pay for pydantic, the model, the renderers or Jinja.
_LAZY = {
    "CheckReport": "lbgen.rules",
    "Finding": "lbgen.rules",
    "InputError": "lbgen.errors",
    "LbgenError": "lbgen.errors",
    "LoadedSpec": "lbgen.io.loader",
    "Problem": "lbgen.errors",
    "Severity": "lbgen.rules",
    "SourceLocation": "lbgen.errors",
    "Spec": "lbgen.model.spec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lbgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the subpackage lbgen.render binds it as the attribute `render`, which
        # would hide the function below; lbgen.render stays the function, as before the
        # imports were made lazy (the subpackage is in sys.modules["lbgen.render"]).
        if name == "render" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def load(source: str | Path | Mapping[str, Any]) -> LoadedSpec:
    """Load and validate a spec from a YAML file path or from a mapping.

    Raises `InputError` (with file:line:column problems) when the spec is invalid.
    """
    from lbgen.io.loader import load_spec_data, load_spec_file

    if isinstance(source, Mapping):
        return load_spec_data(source)
    return load_spec_file(source)


def render(spec: LoadedSpec | Spec, plan: Plan | None = None) -> RenderedFiles:
    """Render every hop's configuration: {relative POSIX path: content}. Writes nothing.

    The mapping also records what each configuration file was written for (`.targets`:
    tier, version, build, edition), which `lbgen.verify.verify_files` reads.

    `plan`: the spec's resolved plan (`lbgen.plan.resolve`) if the caller has it already."""
    from lbgen.io.loader import LoadedSpec
    from lbgen.render import render_spec

    if isinstance(spec, LoadedSpec):
        return render_spec(spec.spec, Path(spec.source_name).name, plan)
    return render_spec(spec, plan=plan)


def validate(loaded: LoadedSpec, **options: Any) -> CheckReport:
    """Run the cross-hop rules; options are those of `lbgen.rules.check_spec`."""
    from lbgen.rules import check_spec

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
