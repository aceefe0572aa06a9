"""Cold start (issue #7 item 11): commands import only what they use.

Each command runs in a fresh interpreter, which then reports the modules it loaded and
whether any spec model was built (pydantic schema generation and validator building).
Timings are not asserted here (scripts/bench.py prints them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PROBE = r"""
import json, sys
from lbgen.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
modules = sorted(sys.modules)
built = []
if "pydantic" in sys.modules:
    from pydantic import BaseModel
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)
    built = sorted(
        c.__name__ for c in subclasses(BaseModel)
        if c.__module__.startswith("lbgen.") and c.__pydantic_complete__
    )
json.dump({"modules": modules, "built": built}, sys.stderr)
"""


def loaded_by(*args: str) -> tuple[set[str], list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    report = json.loads(result.stderr[result.stderr.index('{"modules"'):])
    return set(report["modules"]), report["built"]


def _top(modules: set[str], *names: str) -> set[str]:
    return {m for m in modules if m.split(".")[0] in names}


def test_version_imports_no_model_renderer_or_yaml_library() -> None:
    modules, _ = loaded_by("--version")
    assert _top(modules, "pydantic", "pydantic_core", "jinja2", "ruamel", "yaml") == set()
    assert {m for m in modules if m.startswith("lbgen.")} <= {"lbgen.cli", "lbgen.errors"}


@pytest.mark.parametrize("args", [("rules",), ("rules", "--format", "json"), ("explain", "LB101")])
def test_rules_and_explain_build_no_model_and_load_no_jinja_or_yaml(args: tuple[str, ...]) -> None:
    modules, built = loaded_by(*args)
    assert _top(modules, "jinja2", "ruamel", "yaml") == set()
    assert "lbgen.io.loader" not in modules
    # The rules import the model classes for their checks; no model's schema is built.
    assert built == []


def test_validate_builds_the_spec_model_once_it_loads_a_spec() -> None:
    # The other side of the coin: deferring the builds must not skip them.
    modules, built = loaded_by("validate", "examples/seed.yaml")
    assert "Spec" in built
    assert _top(modules, "jinja2") == set()  # validate renders nothing


def test_the_cli_s_own_copies_of_the_choices_match_the_library() -> None:
    # cli.py lists severities itself so that importing it does not import the rules.
    from lbgen.cli import SEVERITIES
    from lbgen.rules import Severity

    assert tuple(s.value for s in Severity) == SEVERITIES


def test_examples_needs_neither_the_model_nor_the_rules() -> None:
    modules, _ = loaded_by("examples")
    assert _top(modules, "pydantic", "jinja2", "ruamel", "yaml") == set()
    assert "lbgen.rules" not in modules


def test_render_without_verify_imports_no_verifier(tmp_path: Path) -> None:
    modules, built = loaded_by("render", "examples/seed.yaml", "-o", f"{tmp_path}/out")
    assert "Spec" in built and "jinja2" in modules
    assert _top(modules, "jsonschema", "kubernetes_validate") == set()
    assert not {m for m in modules if m.startswith("lbgen.verify")}


@pytest.mark.parametrize("args", [("--version",), ("rules",), ("validate", "examples/seed.yaml")])
def test_only_simulate_imports_numpy(args: tuple[str, ...]) -> None:
    modules, _ = loaded_by(*args)
    assert _top(modules, "numpy") == set()
    assert not {m for m in modules if m.startswith("lbgen.simulate")}


def test_simulate_imports_numpy_but_no_renderer() -> None:
    modules, built = loaded_by("simulate", "examples/seed.yaml", "--duration", "2s", "--trials", "1")
    assert "Spec" in built and "numpy" in modules
    assert _top(modules, "jinja2", "matplotlib") == set()
