"""`lbgen audit`: the rules run on imported files and point at the lines of those files.

Two inputs: the hand-written seed configs under examples/imported/ (a user's own files) and
the rendered output of examples/seed-as-advised.yaml (where `validate` on the spec is the
reference). A location is checked by reading the audited file at that line: it must be the
directive or field the finding is about.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbgen.audit import audit
from lbgen.cli import cli
from lbgen.io.loader import load_spec_file
from lbgen.rules import Finding, check_spec
from tests.importer.roundtrip import rendered_inputs, write_rendered
from tests.importer.seed import SEED_ARGS, seed_inputs

ROOT = Path(__file__).resolve().parents[2]


def _line(root: Path, location: object) -> str:
    file, line = location.file, location.line
    return (root / file).read_text(encoding="utf-8").splitlines()[line - 1]


def _by_code(findings: list[Finding]) -> dict[str, Finding]:
    return {f.code: f for f in findings}


def test_the_seed_paths_problems_are_found_on_the_lines_that_cause_them(in_imported: Path) -> None:
    findings = _by_code(audit(seed_inputs()).report.findings)
    # The edge pool outlives the L4 idle timer: the edge upstream's keepalive_timeout,
    # against the stream proxy_timeout in the other hop's file.
    pool = findings["LB102"]
    assert pool.location.file == "edge/nginx.conf"
    assert _line(in_imported, pool.location).split() == ["keepalive_timeout", "60s;"]
    assert pool.related_location is not None and pool.related_location.file == "l4/nginx.conf"
    assert _line(in_imported, pool.related_location).split() == ["proxy_timeout", "30s;"]
    # Kong's pool outlives uvicorn's 5 s: kong.conf's idle timeout; uvicorn was assumed.
    app = findings["LB103"]
    assert _line(in_imported, app.location).startswith("upstream_keepalive_idle_timeout")
    assert "--assume app.preset=uvicorn" in app.hint
    # ClientIP affinity behind the gateway, and an algorithm over one ClusterIP.
    affinity = findings["LB404"]
    assert _line(in_imported, affinity.location).split() == ["sessionAffinity:", "ClientIP"]
    algorithm = findings["LB401"]
    assert _line(in_imported, algorithm.location).split() == ["algorithm:", "least-connections"]
    assert "orders.shop.svc.cluster.local" in _line(in_imported, algorithm.related_location)


def test_every_finding_points_into_an_audited_file(in_imported: Path) -> None:
    report = audit(seed_inputs()).report
    audited = {"edge/nginx.conf", "l4/nginx.conf", "gateway/kong.yaml", "gateway/kong.conf", "k8s/orders.yaml"}
    assert report.findings
    for finding in report.findings:
        assert finding.location.file in audited, finding
        assert finding.related_location is None or finding.related_location.file in audited, finding
    assert report.findings == sorted(
        report.findings, key=lambda f: (f.location.file, f.location.line, f.location.column, f.code))


def test_auditing_rendered_output_finds_what_validate_finds_on_the_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path = ROOT / "examples" / "seed-as-advised.yaml"
    spec = load_spec_file(spec_path).spec
    write_rendered(spec, tmp_path, spec_path.name)
    inputs = rendered_inputs(spec)
    monkeypatch.chdir(tmp_path)
    audited = audit(inputs).report.findings
    validated = check_spec(load_spec_file(spec_path)).findings
    rendered = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    # The spec's kube_proxy settings on GKE (LB701, LB702) are in no rendered file (GKE manages
    # kube-proxy, lbgen writes no ConfigMap for it): `assumptions` passes them as --assume.
    assert not any("kube-proxy" in path for path in rendered)
    assert sorted({f.code for f in audited}) == sorted({f.code for f in validated})
    assert all(f.location.file in rendered for f in audited)


def test_cli_text_says_what_was_assumed_and_exits_1_on_errors(in_imported: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", *SEED_ARGS])
    assert result.exit_code == 1, result.output
    head = result.stdout.split("\n\n", 1)[0]
    assert head.startswith("audited 5 file(s): edge/nginx.conf, gateway/kong.conf")
    assert "assumed tiers[2].location = cluster" in head
    assert "\nedge/nginx.conf:22:" in result.stdout


def test_cli_select_and_fail_on_work_as_in_validate(in_imported: Path) -> None:
    only_affinity = CliRunner().invoke(cli, ["audit", *SEED_ARGS, "--select", "LB404", "-q"])
    assert only_affinity.exit_code == 0  # a warning does not reach the default --fail-on error
    assert [line.split(": ")[1].split()[0] for line in only_affinity.stdout.splitlines()
            if not line.startswith("  ")] == ["LB404"]
    strict = CliRunner().invoke(cli, ["audit", *SEED_ARGS, "--select", "LB404", "--fail-on", "warning", "-q"])
    assert strict.exit_code == 1


def test_cli_sarif_locates_results_in_the_audited_files(in_imported: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", *SEED_ARGS, "--format", "sarif"])
    sarif = json.loads(result.stdout)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in sarif["runs"][0]["results"]}
    assert "l4/nginx.conf" in uris and "k8s/orders.yaml" in uris
    assert not any("imported" in uri for uri in uris)


def test_an_unreadable_input_is_a_located_error_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "--nginx-http", str(tmp_path / "missing.conf")])
    assert result.exit_code == 2
    assert "missing.conf" in result.stderr
    assert "Traceback" not in result.output


def test_ignore_removes_a_family_and_fail_on_warning_still_fails(in_imported: Path) -> None:
    ignored = CliRunner().invoke(cli, ["audit", *SEED_ARGS, "--ignore", "LB1", "--format", "json"])
    findings = json.loads(ignored.stdout)["findings"]
    assert ignored.exit_code == 0  # the errors were LB102 and LB103
    assert findings and not any(str(f["code"]).startswith("LB1") for f in findings)
    strict = CliRunner().invoke(cli, ["audit", *SEED_ARGS, "--ignore", "LB1", "--fail-on", "warning", "-q"])
    assert strict.exit_code == 1


def test_import_report_lists_what_was_not_translated(in_imported: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", *SEED_ARGS, "--select", "LB404", "--import-report"])
    assert "not translated (" in result.stdout
    assert "edge/nginx.conf:14:5: out-of-scope: gzip on" in result.stdout
