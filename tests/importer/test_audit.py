"""`lbgen audit`: the rules on imported files, findings located in the original files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbgen.cli import cli
from lbgen.io.loader import load_spec_file
from tests.importer.roundtrip import assumptions, write_rendered

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "examples" / "imported"
ARGS = ["--nginx-http", "edge/nginx.conf", "--nginx-stream", "l4/nginx.conf", "--kong", "gateway/kong.yaml",
        "--kong-conf", "gateway/kong.conf", "--k8s", "k8s", "--assume", "app.preset=uvicorn",
        "--assume", "platform=gke", "--assume", "edge.instances=10.10.0.11,10.10.0.12"]


def _findings(*args: str) -> tuple[int, list[dict[str, object]]]:
    run = CliRunner().invoke(cli, ["audit", *args, "--format", "json"])
    assert run.exit_code in (0, 1), run.output
    return run.exit_code, json.loads(run.stdout)["findings"]


def test_handwritten_seed_problems_are_located_in_the_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)
    code, findings = _findings(*ARGS)
    assert code == 1  # LB102 and LB103 are errors
    located = {(f["code"], f["file"], f["line"], f["column"]) for f in findings}
    assert ("LB102", "edge/nginx.conf", 22, 27) in located  # edge pool 60s > L4 proxy_timeout 30s
    assert ("LB103", "gateway/kong.conf", 6, 35) in located  # Kong pool 60s > uvicorn 5s
    assert ("LB404", "k8s/orders.yaml", 14, 20) in located  # ClientIP affinity behind Kong
    assert ("LB401", "gateway/kong.yaml", 16, 16) in located  # least-connections over one ClusterIP
    race = next(f for f in findings if f["code"] == "LB102")
    assert race["related"]["file"] == "l4/nginx.conf" and race["related"]["line"] == 20


def test_text_output_starts_each_finding_with_the_file_position(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)
    run = CliRunner().invoke(cli, ["audit", *ARGS, "--select", "LB102"])
    assert run.exit_code == 1
    assert run.stdout.startswith("edge/nginx.conf:22:27: LB102 [error]")
    assert "related: l4/nginx.conf:20:23" in run.stdout


def test_fail_on_select_and_ignore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)
    code, findings = _findings(*ARGS, "--ignore", "LB1")
    assert code == 0 and findings and not any(str(f["code"]).startswith("LB1") for f in findings)
    assert _findings(*ARGS, "--ignore", "LB1", "--fail-on", "warning")[0] == 1


def test_sarif_points_at_the_original_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)
    run = CliRunner().invoke(cli, ["audit", *ARGS, "--select", "LB404", "--format", "sarif"])
    log = json.loads(run.stdout)
    [result] = log["runs"][0]["results"]
    place = result["locations"][0]["physicalLocation"]
    assert place["artifactLocation"]["uri"].endswith("k8s/orders.yaml")
    assert place["region"]["startLine"] == 14


def test_audit_of_rendered_output_reports_what_validate_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = ROOT / "examples" / "seed-as-advised.yaml"
    spec = load_spec_file(example).spec
    write_rendered(spec, tmp_path, example.name)
    validated = CliRunner().invoke(cli, ["validate", str(example), "--format", "json"])
    expected = sorted({f["code"] for f in json.loads(validated.stdout)["findings"]})
    assert expected  # seed-as-advised carries the advice's problems
    monkeypatch.chdir(tmp_path)
    args = ["--nginx-http", "edge/nginx.conf", "--nginx-stream", "l4/nginx.conf", "--kong", "gateway/kong.yaml",
            "--kong-conf", "gateway/kong.conf", "--k8s", "gke"]
    for assumption in assumptions(spec):
        args += ["--assume", assumption]
    _, findings = _findings(*args)
    assert sorted({str(f["code"]) for f in findings}) == expected
    rendered = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert {str(f["file"]) for f in findings} <= rendered | {"--assume"}
    assert any(f["file"] == "gateway/kong.conf" for f in findings)
