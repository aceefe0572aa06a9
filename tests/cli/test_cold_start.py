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
    assert _top(modules, "pydantic", "pydantic_core", "jinja2", "ruamel", "yaml", "msgspec") == set()
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


ENTRY_PROBE = r"""
import json, os, sys
from lbgen.__main__ import run
try:
    run()
except SystemExit:
    pass
json.dump({"metadata": "importlib.metadata" in sys.modules}, sys.stderr)
"""


def _entry_point_imports_metadata(tmp_path: Path, **env: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", ENTRY_PROBE, "render", "examples/seed.yaml", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, check=False, cwd=REPO,
        env={**{k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"},
             "PYTHONPATH": str(REPO), **env},
    )
    assert (tmp_path / "out" / "README.md").is_file(), result.stderr
    report: dict[str, bool] = json.loads(result.stderr[result.stderr.index('{"metadata"'):])
    return report["metadata"]


def test_render_skips_pydantic_plugin_discovery(tmp_path: Path) -> None:
    # lbgen disables every Pydantic plugin; discovering them would import importlib.metadata.
    assert _entry_point_imports_metadata(tmp_path) is False


def test_a_users_own_plugin_setting_goes_to_pydantics_real_loader(tmp_path: Path) -> None:
    assert _entry_point_imports_metadata(tmp_path, PYDANTIC_DISABLE_PLUGINS="logfire") is True


PLUGIN_PROBE = r"""
import json, os, sys
os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
from lbgen.__main__ import skip_plugin_discovery
skip_plugin_discovery()
from pydantic.plugin import _loader
stand_in = (list(_loader.get_plugins()), "importlib.metadata" in sys.modules)
group = _loader.PYDANTIC_ENTRY_POINT_GROUP  # any other name: the real loader's
json.dump({"plugins": stand_in[0], "metadata_before": stand_in[1], "group": group}, sys.stderr)
"""


def test_the_plugin_loader_stand_in_answers_as_the_real_one_and_forwards_the_rest() -> None:
    result = subprocess.run([sys.executable, "-c", PLUGIN_PROBE], capture_output=True, text=True,
                            check=False, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    report = json.loads(result.stderr[result.stderr.index('{"plugins"'):])
    assert report == {"plugins": [], "metadata_before": False, "group": "pydantic"}


def test_pydantics_real_loader_returns_no_plugins_under_all(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the stand-in mirrors: the real loader's answer when every plugin is disabled.
    from pydantic.plugin import _loader

    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "__all__")
    assert list(_loader.get_plugins()) == []
