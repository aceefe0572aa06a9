"""`lbgen import` on the command line: exit codes, located errors, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbgen.cli import cli

HERE = Path(__file__).resolve().parents[2] / "examples" / "imported"
KONG = ["--kong", "gateway/kong.yaml", "--kong-conf", "gateway/kong.conf", "--k8s", "k8s"]


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["import", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def _in_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)


def test_unreadable_input_is_exit_2_with_its_location_and_nothing_written(tmp_path: Path) -> None:
    out = tmp_path / "topology.yaml"
    code, stdout, stderr = _run("--nginx-http", "edge/missing.conf", *KONG, "-o", str(out))
    assert code == 2
    assert "edge/missing.conf:1:1: error: cannot read the nginx config" in stderr
    assert "Traceback" not in stderr + stdout
    assert not out.exists()


def test_a_directory_as_nginx_config_is_refused(tmp_path: Path) -> None:
    code, _, stderr = _run("--nginx-http", "edge", "-o", str(tmp_path / "t.yaml"))
    assert code == 2 and "not a regular file" in stderr


def test_no_input_is_a_usage_error(tmp_path: Path) -> None:
    code, _, stderr = _run("-o", str(tmp_path / "t.yaml"))
    assert code == 2 and "no input files" in stderr


@pytest.mark.parametrize("assume", ["novalue", "app.preset=", "weird key=1", "planet.x=1"])
def test_bad_assumptions_are_refused(tmp_path: Path, assume: str) -> None:
    code, _, stderr = _run(*KONG, "--assume", assume, "-o", str(tmp_path / "t.yaml"))
    assert code == 2 and "--assume" in stderr


def test_an_import_that_makes_no_valid_spec_is_located_in_the_input(tmp_path: Path) -> None:
    # Kong outside the cluster cannot reach the ClusterIP its kong.yaml targets.
    out = tmp_path / "t.yaml"
    code, _, stderr = _run(*KONG, "--assume", "kong.location=outside", "-o", str(out))
    assert code == 2
    assert "gateway/kong.yaml:18:17: error: the imported value does not make a valid spec" in stderr
    assert not out.exists()


def test_an_existing_spec_not_written_by_import_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "topology.yaml"
    out.write_text("name: mine\n")
    code, _, stderr = _run(*KONG, "-o", str(out))
    assert code == 2 and "was not written by lbgen import" in stderr
    assert out.read_text() == "name: mine\n"


def test_a_spec_written_by_import_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "topology.yaml"
    assert _run(*KONG, "-o", str(out))[0] == 0
    assert _run(*KONG, "--assume", "app.preset=gunicorn", "-o", str(out))[0] == 0
    assert "preset: gunicorn  # assumed (--assume app.preset=gunicorn)" in out.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["topology.yaml"]  # no temporary file left


def test_stdout_output_puts_the_report_on_stderr() -> None:
    code, stdout, stderr = _run(*KONG, "--format", "json", "-o", "-")
    assert code == 0
    assert stdout.startswith("# imported by lbgen import")
    report = json.loads(stderr)
    assert report["format"] == "lbgen-import/1" and report["spec"] == "-"
    assumed = {a["path"]: a for a in report["assumed"]}
    assert assumed["tiers[1].platform"]["source"] == "default"


def test_strict_passes_when_everything_is_translated_and_told(tmp_path: Path) -> None:
    conf = tmp_path / "kong.conf"
    conf.write_text("upstream_keepalive_idle_timeout = 4\n")
    manifest = tmp_path / "svc.yaml"
    manifest.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: b}\n"
                        "spec: {selector: {app: a}, ports: [{port: 80, targetPort: 8000}]}\n")
    told = ["--assume", "name=t", "--assume", "kong.version=3.10", "--assume", "kong.location=cluster",
            "--assume", "kong.instances=10.0.0.1", "--assume", "kubernetes.version=1.33",
            "--assume", "platform=self-managed", "--assume", "app.preset=uvicorn", "--assume", "services.replicas=2"]
    code, stdout, _ = _run("--kong-conf", str(conf), "--k8s", str(manifest), *told, "--strict",
                           "-o", str(tmp_path / "t.yaml"))
    assert code == 0, stdout
    assert "not translated: nothing" in stdout


def test_a_probed_idle_timeout_alone_makes_a_custom_app_server_with_its_note() -> None:
    code, stdout, _ = _run(*KONG, "--assume", "app.idle_timeout=7s (probed)", "-o", "-")
    assert code == 0
    assert "idle_timeout: 7s  # assumed (--assume app.idle_timeout=7s (probed))" in stdout
    assert "preset: custom  # assumed (default: a server with the assumed idle timeout;" in stdout


def test_a_value_the_spec_refuses_is_left_out_and_reported(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text('http {\n  upstream u { server 10.0.0.1:8000; keepalive 8; }\n  server {\n    listen 80;\n'
                    '    location "/a b" {\n      proxy_pass http://u;\n      proxy_http_version 1.1;\n    }\n  }\n}\n')
    code, stdout, stderr = _run("--nginx-http", str(conf), "--format", "json", "-o", "-")
    assert code == 0, stderr
    report = json.loads(stderr)
    [refused] = [s for s in report["skipped"] if s["item"].startswith("services[0].route.paths[0]")]
    assert (refused["line"], refused["reason"]) == (5, "unsupported")
    assert "/a b" not in stdout


def test_files_without_any_backend_are_a_clear_error(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("http {\n  server {\n    listen 80;\n    location / { return 200; }\n  }\n}\n")
    code, _, stderr = _run("--nginx-http", str(conf), "-o", str(tmp_path / "t.yaml"))
    assert code == 2 and "nothing to import: no service was found" in stderr
