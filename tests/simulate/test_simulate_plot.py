"""`lbgen simulate --plot`: a real SVG/PNG written by matplotlib, with one bar per pod."""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbgen.cli import cli
from tests.conftest import REPO

pytest.importorskip("matplotlib")  # the `test` extra installs it; CI runs these

ADVISED = str(REPO / "examples/seed-as-advised.yaml")
FIXED = str(REPO / "examples/seed-fixed.yaml")
FAST = ["--rate", "1000", "--duration", "10s", "--trials", "6"]
SVG = "{http://www.w3.org/2000/svg}"
BAR_FILL = "fill: #4477aa"


def _simulate(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["simulate", *args, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.output)
    return data


def _bars(svg: Path) -> list[float]:
    """Heights of the bars (paths filled with the bar colour), left to right."""
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG}svg"
    bars = []
    for path in root.iter(f"{SVG}path"):
        if BAR_FILL in path.get("style", ""):
            ys = [float(y) for y in re.findall(r"[ML] [-0-9.]+ ([-0-9.]+)", path.get("d", ""))]
            xs = [float(x) for x in re.findall(r"[ML] ([-0-9.]+) ", path.get("d", ""))]
            bars.append((min(xs), max(ys) - min(ys)))
    return [height for _, height in sorted(bars)]


def test_svg_has_a_labelled_bar_per_pod_with_the_simulated_shares(tmp_path: Path) -> None:
    out = tmp_path / "compare.svg"
    data = _simulate(ADVISED, "--compare", FIXED, *FAST, "--plot", str(out))
    texts = [t.text for t in ET.parse(out).getroot().iter(f"{SVG}text")]
    # Two panels, each with pods 1-8 on its axis and the spec in its title.
    assert sorted(t for t in texts if t and t.startswith("pod ")) == sorted([f"pod {i}" for i in range(1, 9)] * 2)
    assert any(t and t.startswith("seed-as-advised") for t in texts)
    assert any(t and t.startswith("seed-fixed") for t in texts)
    heights = _bars(out)
    assert len(heights) == 16
    results = data["results"]
    assert isinstance(results, list)
    shares = [p["share"]["median"] for r in results for p in r["per_pod"]]
    # Bar heights are the median shares, on one shared axis: the advised spec's two busy
    # pods stand tall, its other six are empty, the fixed spec's eight are even.
    scale = heights[0] / shares[0]
    assert heights == pytest.approx([s * scale for s in shares], abs=0.01)
    assert heights[2:8] == [0.0] * 6 and min(heights[8:]) > 0


def test_svg_is_deterministic_and_png_is_a_png(tmp_path: Path) -> None:
    one, two, png = tmp_path / "a.svg", tmp_path / "b.svg", tmp_path / "c.png"
    for out in (one, two, png):
        _simulate(FIXED, *FAST, "--plot", str(out))
    assert one.read_bytes() == two.read_bytes()
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 200 and height > 200


def test_plot_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = CliRunner().invoke(cli, ["simulate", FIXED, *FAST, "--plot", str(tmp_path / "x.pdf")])
    assert bad.exit_code == 2 and "must end in .svg or .png" in bad.output
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    missing = CliRunner().invoke(cli, ["simulate", FIXED, *FAST, "--plot", str(tmp_path / "x.svg")])
    assert missing.exit_code == 2
    assert "needs matplotlib" in missing.output and "lbgen[plot]" in missing.output
    assert "Traceback" not in missing.output and not (tmp_path / "x.svg").exists()


def test_matplotlib_is_imported_only_for_plot() -> None:
    import subprocess

    code = ("import sys; from click.testing import CliRunner; from lbgen.cli import cli; "
            f"r = CliRunner().invoke(cli, ['simulate', {FIXED!r}, *{FAST!r}]); "
            "assert r.exit_code == 0, r.output; print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
