"""Importing the hand-written seed configs (examples/imported/): the expected spec values,
each located in the file and at the line and column that set it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbgen.cli import cli
from lbgen.importer.run import ImportInputs, ImportResult, run_import
from lbgen.importer.sources import Origin

HERE = Path(__file__).resolve().parents[2] / "examples" / "imported"
ARGS = ["--nginx-http", "edge/nginx.conf", "--nginx-stream", "l4/nginx.conf", "--kong", "gateway/kong.yaml",
        "--kong-conf", "gateway/kong.conf", "--k8s", "k8s", "--assume", "app.preset=uvicorn",
        "--assume", "platform=gke", "--assume", "edge.instances=10.10.0.11,10.10.0.12"]


@pytest.fixture
def result(monkeypatch: pytest.MonkeyPatch) -> ImportResult:
    monkeypatch.chdir(HERE)
    return run_import(ImportInputs(
        nginx_http=["edge/nginx.conf"], nginx_stream=["l4/nginx.conf"], kong="gateway/kong.yaml",
        kong_conf="gateway/kong.conf", k8s=["k8s"],
        assume=["app.preset=uvicorn", "platform=gke", "edge.instances=10.10.0.11,10.10.0.12"]))


@pytest.mark.parametrize(("path", "value", "origin"), [
    ("tiers[0].upstream_keepalive.connections", 64, ("edge/nginx.conf", 21, 19)),
    ("tiers[0].upstream_keepalive.idle_timeout", "1m", ("edge/nginx.conf", 22, 27)),
    ("tiers[0].client_keepalive.timeout", "65s", ("edge/nginx.conf", 16, 23)),
    ("tiers[0].passive_health.max_fails", 3, ("edge/nginx.conf", 19, 32)),
    ("tiers[0].timeouts.read", "1m", ("edge/nginx.conf", 41, 32)),
    ("tiers[0].retry.conditions", ["error", "timeout", "http_502"], ("edge/nginx.conf", 42, 33)),
    ("tiers[1].instances[0].address", "10.20.0.11", ("edge/nginx.conf", 19, 16)),
    ("tiers[1].listen_port", 8000, ("l4/nginx.conf", 17, 16)),
    ("tiers[1].proxy_timeout", "30s", ("l4/nginx.conf", 20, 23)),
    ("tiers[1].build", "debian", ("l4/nginx.conf", 2, 13)),
    ("tiers[2].instances[1].address", "10.30.0.12", ("l4/nginx.conf", 13, 16)),
    ("tiers[2].upstream_keepalive.idle_timeout", "1m", ("gateway/kong.conf", 6, 35)),
    ("tiers[2].backend_targets", "cluster_ip", ("gateway/kong.yaml", 18, 17)),
    ("services[0].kong.algorithm", "least-connections", ("gateway/kong.yaml", 16, 16)),
    ("services[0].kong.timeouts.read", "1m", ("gateway/kong.yaml", 8, 19)),
    ("services[0].route.paths[0]", "/orders", ("gateway/kong.yaml", 12, 13)),
    ("services[0].kubernetes.session_affinity", "ClientIP", ("k8s/orders.yaml", 14, 20)),
    ("services[0].kubernetes.target_port", 8000, ("k8s/orders.yaml", 13, 19)),
    ("services[0].replicas", 8, ("k8s/orders.yaml", 22, 13)),
    ("services[0].readiness.path", "/healthz", ("k8s/orders.yaml", 39, 21)),
])
def test_value_and_origin(result: ImportResult, path: str, value: object, origin: tuple[str, int, int]) -> None:
    imported = result.origins[path]
    assert (imported.value, imported.origin) == (value, Origin(*origin))


def test_the_spec_says_what_the_files_say(result: ImportResult) -> None:
    spec = result.loaded.spec
    kong = spec.kong
    assert kong is not None and kong.backend_targets == "cluster_ip"
    assert [i.address for i in kong.instances] == ["10.30.0.11", "10.30.0.12"]
    assert spec.services[0].kubernetes.session_affinity == "ClientIP"
    assert spec.services[0].app.preset == "uvicorn"


def test_not_translated_is_reported_where_it_stands(result: ImportResult) -> None:
    skipped = {(str(s.origin), s.reason, s.item) for s in result.skipped}
    assert ("edge/nginx.conf:14:5", "out-of-scope", "gzip on") in skipped
    assert ("edge/nginx.conf:30:13", "out-of-scope", 'return 200 ok\\n') in skipped
    assert ("gateway/kong.yaml:19:1", "out-of-scope", "plugins") in skipped
    assert ("gateway/kong.conf:10:1", "out-of-scope", "log_level = notice") in skipped


def test_assumed_values_are_marked_in_the_written_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(HERE)
    out = tmp_path / "topology.yaml"
    run = CliRunner().invoke(cli, ["import", *ARGS, "-o", str(out)])
    assert run.exit_code == 0, run.output
    text = out.read_text()
    assert "preset: uvicorn  # assumed (--assume app.preset=uvicorn)" in text
    assert "location: cluster  # assumed (default: set --assume kong.location=cluster|outside)" in text
    assert "proxy_timeout: 30s  # l4/nginx.conf:20:23" in text
    assert "tiers[2].location = cluster" in run.output.split("assumed by default")[1]


def test_the_imported_spec_shows_the_paths_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(HERE)
    out = tmp_path / "topology.yaml"
    assert CliRunner().invoke(cli, ["import", *ARGS, "-o", str(out)]).exit_code == 0
    checked = CliRunner().invoke(cli, ["validate", str(out), "--format", "json"])
    codes = {f["code"] for f in json.loads(checked.output)["findings"]}
    # keep-alive races (edge → L4, Kong → uvicorn), affinity behind a proxy, Kong over a ClusterIP
    assert {"LB102", "LB103", "LB404", "LB401"} <= codes


def test_strict_fails_on_what_was_not_translated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(HERE)
    run = CliRunner().invoke(cli, ["import", *ARGS, "--strict", "--format", "json", "-o", str(tmp_path / "t.yaml")])
    assert run.exit_code == 1
    report = json.loads(run.output)
    assert report["format"] == "lbgen-import/1"
    gzip = next(s for s in report["skipped"] if s["item"] == "gzip on")
    assert (gzip["file"], gzip["line"], gzip["column"], gzip["reason"]) == ("edge/nginx.conf", 14, 5, "out-of-scope")
