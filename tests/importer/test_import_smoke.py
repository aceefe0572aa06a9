"""lbgen import on lbgen's own rendered seed output: a spec that loads, with located values."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lbgen.cli import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seed") / "out"
    result = CliRunner().invoke(cli, ["render", str(ROOT / "examples/seed.yaml"), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out


def test_seed_render_imports_to_a_spec_that_validates(rendered: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(rendered)
    spec = tmp_path / "topology.yaml"
    result = CliRunner().invoke(cli, [
        "import", "--nginx-http", "edge/nginx.conf", "--nginx-stream", "l4/nginx.conf",
        "--kong", "gateway/kong.yaml", "--kong-conf", "gateway/kong.conf", "--k8s", "gke",
        "--assume", "app.preset=uvicorn", "--assume", "platform=gke", "-o", str(spec)])
    assert result.exit_code == 0, result.output
    text = spec.read_text()
    assert "read: 370s  # edge/conf.d/seed.conf:50:28" in text
    assert "platform: gke  # assumed (--assume platform=gke)" in text
    checked = CliRunner().invoke(cli, ["validate", str(spec)])
    assert checked.exit_code == 0, checked.output
