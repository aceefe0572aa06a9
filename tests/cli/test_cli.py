"""The command line, through click's CliRunner: exit codes, output formats, input errors.

Snapshots run over the small fixed specs in tests/cli/specs/ and select only LB101 and the
LB9xx rules, so that rules added later do not change them. Paths in the output are
relative because every test runs from the specs directory.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from jsonschema import Draft7Validator, Draft202012Validator

from lbgen.cli import cli
from lbgen.examples import HINT as EXAMPLES_HINT
from lbgen.report import explain
from lbgen.rules import ALL_RULES, get_rule
from tests.conftest import EXAMPLES, REPO

SPECS = Path(__file__).parent / "specs"
BROKEN = SPECS / "broken"
SELECT = ("--select", "LB101,LB9")
LOCATED = re.compile(r"^[\w./-]+\.yaml:\d+:\d+: ")

Invoke = Callable[..., Result]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.chdir(SPECS)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), prog_name="lbgen", catch_exceptions=False)

    return invoke


def _sarif_errors(document: Any, schemas_dir: Path) -> list[str]:
    schema = json.loads((schemas_dir / "sarif" / "sarif-schema-2.1.0.json").read_text("utf-8"))
    return [error.message for error in Draft7Validator(schema).iter_errors(document)]


# --- validate: exit codes -----------------------------------------------------------------


def test_clean_spec_exits_0_with_a_summary(run: Invoke) -> None:
    result = run("validate", "clean.yaml", *SELECT)
    assert result.exit_code == 0
    assert result.stdout == "All checks passed; 3 rules selected.\n"
    assert result.stderr == ""


def test_error_finding_exits_1(run: Invoke) -> None:
    result = run("validate", "findings.yaml", *SELECT)
    assert result.exit_code == 1
    assert "findings.yaml:8:40: LB101 [error]" in result.stdout


def test_warnings_alone_pass_by_default_and_fail_with_fail_on_warning(run: Invoke) -> None:
    # Only LB9xx: the expired (LB901) and unused (LB902) suppressions are warnings.
    assert run("validate", "findings.yaml", "--select", "LB9").exit_code == 0
    assert run("validate", "findings.yaml", "--select", "LB9", "--fail-on", "warning").exit_code == 1
    assert run("validate", "findings.yaml", "--select", "LB9", "--fail-on", "info").exit_code == 1
    assert run("validate", "clean.yaml", *SELECT, "--fail-on", "info").exit_code == 0


def test_ignore_drops_a_rule(run: Invoke) -> None:
    result = run("validate", "findings.yaml", "--select", "LB101,LB9", "--ignore", "LB101")
    assert result.exit_code == 0
    assert "LB101 [error]" not in result.stdout
    assert "LB901 [warning]" in result.stdout


def test_select_accepts_names_and_repeats(run: Invoke) -> None:
    result = run(
        "validate", "findings.yaml",
        "--select", "edge-pool-outlives-gateway-keepalive", "--select", "lb902",
    )
    codes = re.findall(r": (LB\d{3}) \[", result.stdout)
    assert codes == ["LB101", "LB902"]


@pytest.mark.parametrize("option", ["--select", "--ignore"])
def test_unknown_rule_reference_is_a_usage_error(run: Invoke, option: str) -> None:
    result = run("validate", "clean.yaml", option, "LB999")
    assert result.exit_code == 2
    assert f"Invalid value for '{option}': unknown rule 'LB999'" in result.stderr
    assert "Traceback" not in result.output


def test_empty_select_is_a_usage_error(run: Invoke) -> None:
    result = run("validate", "clean.yaml", "--select", " , ")
    assert result.exit_code == 2
    assert "no rule codes given" in result.stderr


def test_several_specs_are_checked_together(run: Invoke) -> None:
    # pre-commit passes every staged spec at once.
    result = run("validate", "clean.yaml", "suppressed.yaml", "findings.yaml", *SELECT)
    assert result.exit_code == 1
    assert result.stdout.endswith(
        "Found 3 findings (1 error, 2 warnings) in 3 specs; 3 rules selected; 1 suppressed.\n"
    )


def test_a_broken_spec_among_several_still_reports_the_others(run: Invoke) -> None:
    result = run("validate", "findings.yaml", "broken/empty.yaml", *SELECT, "--format", "json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert [f["code"] for f in report["findings"]] == ["LB101", "LB901", "LB902"]
    assert report["errors"] == [
        {"message": "the spec is empty", "hint": EXAMPLES_HINT,
         "path": "", "file": "broken/empty.yaml", "line": 1, "column": 1}
    ]


# --- validate: formats (snapshots) --------------------------------------------------------


def test_validate_text(run: Invoke, snapshot: Any) -> None:
    result = run("validate", "findings.yaml", *SELECT)
    assert result.stdout == snapshot


def test_validate_text_suppressed(run: Invoke) -> None:
    result = run("validate", "suppressed.yaml", *SELECT)
    assert result.exit_code == 0
    assert result.stdout == "All checks passed; 3 rules selected; 1 suppressed.\n"


def test_validate_json(run: Invoke, snapshot: Any) -> None:
    result = run("validate", "findings.yaml", *SELECT, "--format", "json")
    assert result.exit_code == 1
    assert result.stdout == snapshot
    report = json.loads(result.stdout)
    assert list(report) == ["findings", "skipped", "suppressed"]
    keys = ["code", "name", "severity", "message", "hint", "path", "file", "line", "column",
            "related"]
    assert all(list(f) == keys for f in report["findings"])
    lb101 = report["findings"][0]
    # Both hops of the conflict are located in the user's file.
    assert (lb101["path"], lb101["line"], lb101["column"]) == (
        "tiers[0].upstream_keepalive.idle_timeout", 8, 40)
    assert lb101["related"] == {"path": "tiers[1].client_keepalive.timeout",
                                "file": "findings.yaml", "line": 12, "column": 33}


def test_validate_json_lists_suppressed_findings_with_their_reason(run: Invoke) -> None:
    result = run("validate", "suppressed.yaml", *SELECT, "--format", "json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["findings"] == []
    [item] = report["suppressed"]
    assert item["code"] == "LB101"
    assert item["suppression"] == {
        "reason": "the edge pool is tuned by the network team",
        "expires": None,
        "path": "tiers[0].suppress[0]",
        "file": "suppressed.yaml",
        "line": 9,
        "column": 9,
    }


def test_validate_sarif(run: Invoke, snapshot: Any, schemas_dir: Path) -> None:
    result = run("validate", "findings.yaml", "suppressed.yaml", *SELECT, "--format", "sarif")
    assert result.exit_code == 1
    assert result.stdout == snapshot
    log = json.loads(result.stdout)
    assert _sarif_errors(log, schemas_dir) == []


def test_sarif_carries_what_github_code_scanning_needs(run: Invoke) -> None:
    result = run("validate", "findings.yaml", "suppressed.yaml", *SELECT, "--format", "sarif")
    [run_] = json.loads(result.stdout)["runs"]
    rules = run_["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["LB101", "LB901", "LB902"]
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["help"]["text"] and rule["help"]["markdown"].startswith(f"# {rule['name']}")
        # The full documentation travels in the log (GitHub shows help.markdown).
        assert rule["help"]["markdown"] == explain(get_rule(rule["id"]))
    assert rules[0]["defaultConfiguration"] == {"level": "error"}
    results = run_["results"]
    for item in results:
        # ruleIndex must point at the descriptor of the same rule.
        assert rules[item["ruleIndex"]]["id"] == item["ruleId"]
        location = item["locations"][0]["physicalLocation"]
        assert not location["artifactLocation"]["uri"].startswith(("/", "file:"))
        assert location["region"]["startLine"] >= 1
        assert item["partialFingerprints"]
    lb101 = results[0]
    assert lb101["relatedLocations"][0]["physicalLocation"]["region"] == {
        "startLine": 12, "startColumn": 33}
    assert "[the other hop's value](1)" in lb101["message"]["text"]
    suppressed = [r for r in results if "suppressions" in r]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
            for r in suppressed] == [("LB101", "suppressed.yaml")]
    assert suppressed[0]["suppressions"] == [
        {"kind": "inSource", "justification": "the edge pool is tuned by the network team"}]


def test_sarif_for_a_broken_spec_is_valid_and_unsuccessful(run: Invoke, schemas_dir: Path) -> None:
    result = run("validate", "broken/unknown-key.yaml", "--format", "sarif")
    assert result.exit_code == 2
    log = json.loads(result.stdout)
    assert _sarif_errors(log, schemas_dir) == []
    [invocation] = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    first = invocation["toolExecutionNotifications"][0]
    assert first["message"]["text"] == "unknown key 'idle_timout' Hint: did you mean 'idle_timeout'?"
    assert first["locations"][0]["physicalLocation"]["region"] == {"startLine": 6, "startColumn": 26}
    assert log["runs"][0]["results"] == []


# --- input errors: located, exit 2, no traceback -------------------------------------------


@pytest.mark.parametrize(
    "name", ["unknown-key", "bad-yaml", "empty", "duplicate-key", "wrong-values"]
)
def test_input_errors_are_located(run: Invoke, snapshot: Any, name: str) -> None:
    result = run("validate", f"broken/{name}.yaml")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    problem_lines = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert problem_lines and all(LOCATED.match(line) for line in problem_lines)
    assert result.stderr == snapshot


def test_unknown_key_suggests_the_right_one(run: Invoke) -> None:
    result = run("validate", "broken/unknown-key.yaml")
    assert result.stderr.startswith(
        "broken/unknown-key.yaml:6:26: error: unknown key 'idle_timout' "
        "[tiers[0].upstream_keepalive.idle_timout]\n  hint: did you mean 'idle_timeout'?\n"
    )


def test_non_utf8_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"name: shop\ntiers:\n  - name: caf\xe9\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "latin1.yaml"], prog_name="lbgen")
    assert result.exit_code == 2
    assert result.stderr == (
        "latin1.yaml:3:14: error: the spec is not valid UTF-8 (byte 0xe9)\n"
        "  hint: save the file as UTF-8\n"
        "Found 1 error in latin1.yaml; nothing was checked.\n"
    )


def test_input_errors_in_json_format(run: Invoke) -> None:
    result = run("validate", "broken/duplicate-key.yaml", "--format", "json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["findings"] == []
    [error] = report["errors"]
    assert (error["file"], error["line"], error["column"]) == ("broken/duplicate-key.yaml", 5, 5)
    assert "duplicate key" in error["message"]
    assert "duplicate key" in result.stderr  # people reading the CI log see it too


def test_missing_file_is_a_usage_error(run: Invoke) -> None:
    result = run("validate", "nope.yaml")
    assert result.exit_code == 2
    assert "'nope.yaml' does not exist" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_command_and_option_are_usage_errors(run: Invoke) -> None:
    assert run("frobnicate").exit_code == 2
    result = run("validate", "clean.yaml", "--format", "xml")
    assert result.exit_code == 2
    assert "'xml' is not one of 'text', 'json', 'sarif'" in result.stderr


# --- rules, explain, schema ---------------------------------------------------------------


def test_rules_text_lists_every_rule(run: Invoke, snapshot: Any) -> None:
    result = run("rules")
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert listed == [r.code for r in ALL_RULES]
    # Only the rules this suite owns are snapshotted, with the padding that aligns the
    # columns (it depends on the longest name of all rules) collapsed.
    ours = [
        re.sub(r" {2,}", "  ", line)
        for line in result.stdout.splitlines()
        if line.startswith(("LB101", "LB9"))
    ]
    assert "\n".join(ours) == snapshot


def test_rules_json_documents_every_rule(run: Invoke, snapshot: Any) -> None:
    result = run("rules", "--format", "json")
    assert result.exit_code == 0
    rules = json.loads(result.stdout)
    assert [r["code"] for r in rules] == [r.code for r in ALL_RULES]
    for rule in rules:
        assert list(rule) == ["code", "name", "severity", "status", "since", "summary", "tiers",
                              "versions", "reads", "docs", "references"]
        assert rule["status"] in ("stable", "preview") and rule["since"] in ("0.1.0", "0.2.0")
        assert list(rule["docs"]) == ["what", "why", "example", "fix"]
        assert all(rule["docs"].values()) and rule["references"]
    assert [r for r in rules if r["code"].startswith("LB9")] == snapshot


def test_explain(run: Invoke, snapshot: Any) -> None:
    result = run("explain", "LB101")
    assert result.exit_code == 0
    assert result.stdout == snapshot
    headings = re.findall(r"^#+ .*$", result.stdout, flags=re.MULTILINE)
    assert headings == [
        "# edge-pool-outlives-gateway-keepalive (LB101)",
        "## What it checks",
        "## Why it matters",
        "## Example",
        "## Use instead",
        "## References",
    ]


def test_explain_by_name_and_lowercase_code(run: Invoke) -> None:
    by_code = run("explain", "LB902").stdout
    assert run("explain", "lb902").stdout == by_code
    assert run("explain", "suppression-unused").stdout == by_code


def test_explain_unknown_rule(run: Invoke) -> None:
    result = run("explain", "suppression-expird")
    assert result.exit_code == 2
    assert "did you mean 'suppression-expired'?" in result.stderr
    assert "Traceback" not in result.output


def test_schema_is_the_committed_editor_schema(run: Invoke) -> None:
    result = run("schema")
    assert result.exit_code == 0
    assert result.stdout == (REPO / "docs" / "lbgen.schema.json").read_text("utf-8")
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "lbgen spec"


def test_schema_help_documents_the_modeline(run: Invoke) -> None:
    result = run("schema", "--help")
    assert "# yaml-language-server: $schema=../docs/lbgen.schema.json" in result.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_editor_schema_accepts_every_example(example: Path) -> None:
    import yaml

    schema = json.loads((REPO / "docs" / "lbgen.schema.json").read_text("utf-8"))
    # YAML dates (suppression expiry) reach an editor's JSON view as strings.
    document = json.loads(json.dumps(yaml.safe_load(example.read_text("utf-8")), default=str))
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(document)]
    assert errors == []


@pytest.mark.parametrize("command", ["render", "validate", "rules", "explain", "schema"])
def test_every_command_has_help(run: Invoke, command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    description = result.stdout.split("\n\n")[1].strip()
    assert len(description) > 20


def test_top_level_help_and_version(run: Invoke) -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "Exit codes: 0 ok, 1 findings or failed checks, 2 usage or input error." in result.stdout
    assert re.fullmatch(r"lbgen, version \d+\.\d+\.\d+\n", run("--version").stdout)


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lbgen", "explain", "LB901"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# suppression-expired (LB901)\n")


INSIDE_MARGIN = """\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: e1, address: 10.0.0.1}]
    upstream_keepalive: {idle_timeout: 74s}
  - kind: kong
    name: gateway
    instances: [{name: k1, address: 10.0.1.1}]
    client_keepalive: {timeout: 75s}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - {name: orders, replicas: 2, app: {preset: go}}
"""


def test_a_finding_inside_the_margin_is_a_warning_everywhere(run: Invoke, tmp_path: Path) -> None:
    spec = tmp_path / "margin.yaml"
    spec.write_text(INSIDE_MARGIN, encoding="utf-8")
    text = run("validate", str(spec), "--select", "LB101")
    assert text.exit_code == 0  # a warning does not fail the default --fail-on error
    assert "margin.yaml:6:40: LB101 [warning]" in text.stdout
    assert "inside lbgen's keep-alive margin of 7s" in text.stdout
    assert run("validate", str(spec), "--select", "LB101", "--fail-on", "warning").exit_code == 1
    [finding] = json.loads(run("validate", str(spec), "--select", "LB101", "--format", "json")
                           .stdout)["findings"]
    assert finding["severity"] == "warning"
    sarif = json.loads(run("validate", str(spec), "--select", "LB101", "--format", "sarif").stdout)
    [result] = sarif["runs"][0]["results"]
    [rule] = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert (result["level"], rule["defaultConfiguration"]["level"]) == ("warning", "error")
