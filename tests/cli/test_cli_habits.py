"""CLI habits users bring from ruff, kube-linter and yamllint (issue #7 item 10).

Standard input as SPEC `-`, `--quiet`, `--color`/NO_COLOR, `--format github`, `render
--diff`, shell completion, located skips in JSON, `lbgen examples`.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lbgen.cli import cli
from lbgen.errors import SourceLocation
from lbgen.report import report_to_github
from lbgen.rules import CheckReport, Finding, Severity
from tests.conftest import EXAMPLES, REPO

SPECS = Path(__file__).parent / "specs"
SELECT = ("--select", "LB101,LB9")
SEED = REPO / "examples" / "seed.yaml"
ANSI = "\x1b["
SGR = re.compile(r"\x1b\[[0-9;]*m")

Invoke = Callable[..., Result]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.chdir(SPECS)
    monkeypatch.delenv("NO_COLOR", raising=False)
    runner = CliRunner()

    def invoke(*args: str | Path, stdin: str | None = None) -> Result:
        return runner.invoke(cli, [str(a) for a in args], input=stdin, prog_name="lbgen",
                             catch_exceptions=False)

    return invoke


def lbgen_process(
    *args: str | Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lbgen", *map(str, args)],
        input=stdin, capture_output=True, text=True, check=False, cwd=SPECS,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


# --- SPEC `-`: standard input ------------------------------------------------------------------


def test_validate_reads_standard_input_and_locates_findings_there(run: Invoke) -> None:
    text = (SPECS / "findings.yaml").read_text("utf-8")
    from_file = run("validate", "findings.yaml", *SELECT)
    result = run("validate", "-", *SELECT, stdin=text)
    assert result.exit_code == from_file.exit_code == 1
    assert result.stdout == from_file.stdout.replace("findings.yaml:", "<stdin>:")
    assert result.stdout.startswith("<stdin>:")


def test_input_errors_on_standard_input_say_stdin(run: Invoke) -> None:
    result = run("validate", "-", stdin="name: shop\ntiers: [\n")
    assert result.exit_code == 2
    assert result.stderr.startswith("<stdin>:")
    assert "Found 1 error in <stdin>; nothing was checked." in result.stderr


def test_standard_input_is_read_once(run: Invoke) -> None:
    result = run("validate", "-", "-", stdin="name: shop\n")
    assert result.exit_code == 2
    assert "standard input (-) can be read only once" in result.stderr


def test_render_reads_standard_input(run: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("render", "-", "-o", out, stdin=SEED.read_text("utf-8"))
    assert result.exit_code == 0, result.stderr
    from_file = tmp_path / "from-file"
    assert run("render", SEED, "-o", from_file).exit_code == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(
        p.relative_to(from_file).as_posix() for p in from_file.rglob("*") if p.is_file()
    )
    assert "edge/nginx.conf" in written


def test_a_real_pipe_into_validate() -> None:
    result = lbgen_process("validate", "-", *SELECT, stdin=(SPECS / "clean.yaml").read_text())
    assert result.returncode == 0, result.stderr
    assert result.stdout == "All checks passed; 3 rules selected.\n"


# --- --quiet ----------------------------------------------------------------------------------


def test_quiet_validate_prints_only_the_findings(run: Invoke) -> None:
    loud = run("validate", "findings.yaml", *SELECT)
    quiet = run("validate", "findings.yaml", *SELECT, "-q")
    assert quiet.exit_code == loud.exit_code == 1
    assert "Found" not in quiet.stdout
    assert loud.stdout.startswith(quiet.stdout)
    assert quiet.stdout.count("[error]") == loud.stdout.count("[error]") >= 1


def test_quiet_validate_of_a_clean_spec_prints_nothing(run: Invoke) -> None:
    result = run("validate", "clean.yaml", *SELECT, "--quiet")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_quiet_render_prints_only_the_findings(run: Invoke, tmp_path: Path) -> None:
    loud = run("render", "clean.yaml", "-o", tmp_path / "loud")
    quiet = run("render", "clean.yaml", "-o", tmp_path / "out", "-q")
    assert quiet.exit_code == loud.exit_code == 0
    assert loud.stdout.startswith("Wrote ") and quiet.stdout == ""
    # Warnings (rules other than LB101) still show, without the summary line.
    assert "[warning]" in quiet.stderr and "Found" not in quiet.stderr
    assert loud.stderr.startswith(quiet.stderr) and "Found" in loud.stderr
    assert (tmp_path / "out" / "edge" / "nginx.conf").is_file()


def test_quiet_still_prints_input_errors(run: Invoke) -> None:
    result = run("validate", "broken/empty.yaml", "-q")
    assert result.exit_code == 2
    assert "the spec is empty" in result.stderr


# --- colour -----------------------------------------------------------------------------------


def test_no_colour_when_output_is_not_a_terminal(run: Invoke) -> None:
    result = run("validate", "findings.yaml", *SELECT)
    assert ANSI not in result.stdout


def test_color_always_colours_even_in_a_pipe() -> None:
    result = lbgen_process("validate", "findings.yaml", *SELECT, "--color", "always")
    assert "\x1b[1;31mLB101 [error]\x1b[0m" in result.stdout
    plain = lbgen_process("validate", "findings.yaml", *SELECT)
    assert SGR.sub("", result.stdout) == plain.stdout  # colour adds nothing but colour


def test_color_auto_and_never_do_not_colour_a_pipe() -> None:
    for choice in ("auto", "never"):
        result = lbgen_process("validate", "findings.yaml", *SELECT, "--color", choice)
        assert result.returncode == 1
        assert ANSI not in result.stdout + result.stderr, choice


def _on_a_terminal(*args: str, env: dict[str, str]) -> str:
    """Run lbgen with stdout and stderr on a pseudo-terminal; returns what it printed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "lbgen", *args], stdout=terminal, stderr=terminal,
        stdin=subprocess.DEVNULL, cwd=SPECS, env=env,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(controller)
    return b"".join(chunks).decode("utf-8")


def test_color_auto_colours_a_terminal_unless_no_color_is_set() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONPATH"] = str(REPO)
    coloured = _on_a_terminal("validate", "findings.yaml", *SELECT, env=env)
    assert "\x1b[1;31mLB101 [error]\x1b[0m" in coloured
    plain = _on_a_terminal("validate", "findings.yaml", *SELECT, env={**env, "NO_COLOR": "1"})
    assert "LB101 [error]" in plain and ANSI not in plain
    forced = _on_a_terminal(
        "validate", "findings.yaml", *SELECT, "--color", "always", env={**env, "NO_COLOR": "1"}
    )
    assert ANSI in forced  # an explicit flag overrides NO_COLOR (no-color.org)


# --- --format github --------------------------------------------------------------------------


def test_github_format_prints_one_workflow_annotation_per_finding(run: Invoke) -> None:
    result = run("validate", "findings.yaml", *SELECT, "--format", "github")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    text = run("validate", "findings.yaml", *SELECT, "--format", "json")
    findings = json.loads(text.stdout)["findings"]
    assert len(lines) == len(findings)
    for line, finding in zip(lines, findings, strict=True):
        level = {"error": "error", "warning": "warning", "info": "notice"}[finding["severity"]]
        assert line.startswith(
            f"::{level} file=findings.yaml,line={finding['line']},col={finding['column']},"
            f"title={finding['code']}::"
        )
        assert "\n" not in line and "%0Ahint: " in line


def test_github_format_escapes_data_and_properties() -> None:
    # Rules of @actions/core's command.ts: data escapes % CR LF; properties also : and ,.
    finding = Finding(
        code="LB101", name="x", severity=Severity.WARNING, message="100% sure\r\nsecond: line",
        hint="a, b", path=("tiers", 0), location=SourceLocation("dir,x/a:b.yaml", 3, 7),
    )
    report = CheckReport(findings=[finding], skipped=[], suppressed=[])
    assert report_to_github(report) == (
        "::warning file=dir%2Cx/a%3Ab.yaml,line=3,col=7,title=LB101::"
        "100%25 sure%0D%0Asecond: line%0Ahint: a, b\n"
    )


def test_github_format_annotates_input_errors_too(run: Invoke) -> None:
    result = run("validate", "broken/empty.yaml", "--format", "github")
    assert result.exit_code == 2
    assert result.stdout.startswith(
        "::error file=broken/empty.yaml,line=1,col=1,title=lbgen input error::the spec is empty"
    )


# --- render --diff ----------------------------------------------------------------------------


def test_render_diff_previews_changes_and_writes_nothing(run: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("render", SEED, "-o", out).exit_code == 0
    conf = out / "edge" / "nginx.conf"
    conf.write_text(conf.read_text("utf-8").replace("worker_processes", "worker_processes  "))
    (out / "gke" / "KUBE-PROXY.md").unlink()
    (out / "stray.txt").write_text("left over\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    result = run("render", SEED, "-o", out, "--diff", "--replace-foreign")
    assert result.exit_code == 0
    assert "--- a/edge/nginx.conf\n+++ b/edge/nginx.conf\n" in result.stdout
    assert "--- /dev/null\n+++ b/gke/KUBE-PROXY.md\n" in result.stdout
    assert "--- a/stray.txt\n+++ /dev/null\n" in result.stdout
    assert result.stdout.endswith(
        f"{out} would change: 1 added (gke/KUBE-PROXY.md), 1 changed (edge/nginx.conf), "
        "1 removed (stray.txt); nothing was written\n"
    )
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    # Without --replace-foreign a render would refuse the stray file: the preview says so.
    refused = run("render", SEED, "-o", out, "--diff")
    assert refused.exit_code == 2
    assert "--- a/stray.txt\n+++ /dev/null\n" in refused.stdout
    assert "stray.txt" in refused.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_render_diff_of_an_up_to_date_directory(run: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("render", SEED, "-o", out).exit_code == 0
    result = run("render", SEED, "-o", out, "--diff")
    assert result.exit_code == 0
    assert result.stdout == f"{out} is up to date: a render would change nothing\n"


def test_render_diff_of_a_new_directory_lists_every_file_as_added(
    run: Invoke, tmp_path: Path
) -> None:
    result = run("render", SEED, "-o", tmp_path / "new", "--diff")
    assert result.exit_code == 0
    assert "--- /dev/null\n+++ b/edge/nginx.conf\n" in result.stdout
    assert "0 changed, 0 removed; nothing was written" in result.stdout
    assert not (tmp_path / "new").exists()


def test_render_diff_and_check_exclude_each_other(run: Invoke, tmp_path: Path) -> None:
    result = run("render", SEED, "-o", tmp_path / "out", "--diff", "--check")
    assert result.exit_code == 2


# --- shell completion -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("bash", "complete -o nosort -F _lbgen_completion lbgen"),
        ("zsh", "compdef _lbgen_completion lbgen"),
        ("fish", "complete --no-files --command lbgen"),
    ],
)
def test_completion_script_is_produced(shell: str, expected: str) -> None:
    # The commands the README documents: eval "$(_LBGEN_COMPLETE=bash_source lbgen)" etc.
    result = lbgen_process(env={"_LBGEN_COMPLETE": f"{shell}_source"})
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


def _complete(words: str) -> list[str]:
    result = lbgen_process(env={
        "_LBGEN_COMPLETE": "bash_complete", "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    })
    assert result.returncode == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines()]


def test_completion_of_commands_rule_codes_and_examples() -> None:
    assert "validate" in _complete("lbgen val")
    assert "examples" in _complete("lbgen ex")
    codes = _complete("lbgen explain LB10")
    assert "LB101" in codes and all(code.startswith("LB10") for code in codes)
    assert "LB1,LB101" in _complete("lbgen validate x.yaml --ignore LB1,LB10")
    assert _complete("lbgen examples seed") == ["seed", "seed-as-advised", "seed-fixed"]


# --- JSON skipped[] locations ----------------------------------------------------------------


def test_json_skips_are_located_at_the_value_they_are_about(run: Invoke) -> None:
    result = run("validate", SEED, "--format", "json")
    skipped = {s["code"]: s for s in json.loads(result.stdout)["skipped"]}
    line = next(
        n for n, text in enumerate(SEED.read_text("utf-8").splitlines(), 1)
        if text.strip() == "platform: gke"
    )
    assert skipped["LB703"] == {
        "code": "LB703",
        "name": "ipvs-scheduler-unavailable",
        "reason": skipped["LB703"]["reason"],
        "file": str(SEED),
        "path": "tiers[3].platform",
        "line": line,
        "column": 15,
    }
    # A default value is located at the tier that holds it (the `- kind: kong` item).
    kong_line = next(
        n for n, text in enumerate(SEED.read_text("utf-8").splitlines(), 1)
        if text.strip() == "- kind: kong"
    )
    for code in ("LB108", "LB207"):
        assert skipped[code]["path"] == "tiers[2].backend_targets"
        assert (skipped[code]["line"], skipped[code]["column"]) == (kong_line, 5)
    # A skip about something the spec lacks has the file but no line.
    assert skipped["LB104"]["file"] == str(SEED)
    assert (skipped["LB104"]["path"], skipped["LB104"]["line"]) == (None, None)


# --- examples for wheel users ----------------------------------------------------------------


def test_examples_lists_and_prints_the_shipped_specs(run: Invoke) -> None:
    listing = run("examples")
    assert listing.exit_code == 0
    names = [line.split()[0] for line in listing.stdout.splitlines()]
    assert names == sorted(p.stem for p in EXAMPLES)
    assert "The seed path: edge nginx (L7)" in listing.stdout
    printed = run("examples", "seed")
    assert printed.stdout == SEED.read_text("utf-8")
    unknown = run("examples", "sead")
    assert unknown.exit_code == 2
    assert "no example named 'sead'; examples: grpc," in unknown.stderr


def test_the_wheel_ships_the_examples_where_lbgen_looks_for_them(tmp_path: Path) -> None:
    # hatchling's force-include puts examples/ at lbgen/examples in the wheel; emulate that
    # installed layout (without the checkout beside it) and ask lbgen for an example.
    config = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    mapping = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert mapping["examples"] == "lbgen/examples"
    site = tmp_path / "site"
    shutil.copytree(REPO / "lbgen", site / "lbgen", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "examples", site / mapping["examples"])
    shutil.copytree(REPO / "templates", site / "lbgen" / "templates")
    result = subprocess.run(
        [sys.executable, "-m", "lbgen", "examples", "seed"], capture_output=True, text=True,
        check=False, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == SEED.read_text("utf-8")


def test_hints_name_lbgen_examples_not_a_directory_a_wheel_lacks(run: Invoke) -> None:
    result = run("validate", "broken/empty.yaml")
    assert "hint: start from an example: `lbgen examples` lists them" in result.stderr
    assert "files in examples/" not in result.stderr


def test_coloured_input_errors_keep_the_plain_text(run: Invoke) -> None:
    plain = run("validate", "broken/unknown-key.yaml")
    coloured = run("validate", "broken/unknown-key.yaml", "--color", "always")
    assert ANSI in coloured.stderr and "\x1b[1;31merror:\x1b[0m" in coloured.stderr
    assert SGR.sub("", coloured.stderr) == plain.stderr
