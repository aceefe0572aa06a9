"""`lbgen render`: rules gate the write, --check diffs, --verify reports, refusals exit 2.

Most tests replace the renderer and the verifiers with fixed fakes, so they test the
command's decisions (what is written when, which exit code) and not the renderers'
content, which has its own snapshot tests. The last tests run the real renderer.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import lbgen
import lbgen.cli
import lbgen.verify
from lbgen.cli import cli
from lbgen.rules import check_spec
from lbgen.verify import CheckResult
from tests.conftest import REPO

SPECS = Path(__file__).parent / "specs"
FILES = {"edge/nginx.conf": "events {}\n", "README.md": "# generated\n"}

Invoke = Callable[..., Result]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.chdir(SPECS)
    # Only LB101 and LB9xx gate these renders, so that rules added later (which may flag the
    # small test specs) do not change what these tests are about: the command's decisions.
    monkeypatch.setattr(lbgen.cli, "check_spec", partial(check_spec, select=["LB101", "LB9"]))
    runner = CliRunner()

    def invoke(*args: str | Path) -> Result:
        return runner.invoke(cli, [str(a) for a in args], prog_name="lbgen",
                             catch_exceptions=False)

    return invoke


@pytest.fixture
def fake_render(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    files = dict(FILES)
    monkeypatch.setattr(lbgen, "render", lambda loaded, plan=None: dict(files))
    return files


def _fake_verify(monkeypatch: pytest.MonkeyPatch, results: list[CheckResult]) -> list[object]:
    calls: list[object] = []

    def verify(files: Mapping[str, str], schemas_dir: Path | None) -> list[CheckResult]:
        calls.append((dict(files), schemas_dir))
        return results

    monkeypatch.setattr(lbgen.verify, "verify_files", verify)
    return calls


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text("utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".lbgen")
    }


def test_render_writes_the_files(run: Invoke, fake_render: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("render", "clean.yaml", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Wrote 2 files to {out}\n"
    assert _tree(out) == FILES


def test_error_finding_blocks_the_write(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run("render", "findings.yaml", "-o", out)
    assert result.exit_code == 1
    assert not out.exists()
    assert "findings.yaml:8:40: LB101 [error]" in result.stderr
    assert "error-level findings remain, so nothing was written" in result.stderr


def test_force_writes_despite_error_findings(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run("render", "findings.yaml", "-o", out, "--force")
    assert result.exit_code == 0
    assert "LB101 [error]" in result.stderr  # still shown
    assert _tree(out) == FILES


def test_suppressed_error_does_not_block(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path
) -> None:
    result = run("render", "suppressed.yaml", "-o", tmp_path / "out")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_check_is_clean_after_a_render_and_writes_nothing(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run("render", "clean.yaml", "-o", out).exit_code == 0
    before = _tree(out)
    result = run("render", "clean.yaml", "-o", out, "--check")
    assert result.exit_code == 0
    assert result.stdout == f"{out} is up to date (2 files)\n"
    assert _tree(out) == before


def test_check_reports_drift_as_a_diff(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run("render", "clean.yaml", "-o", out).exit_code == 0
    (out / "README.md").write_text("# edited by hand\n", encoding="utf-8")
    result = run("render", "clean.yaml", "-o", out, "--check")
    assert result.exit_code == 1
    assert "-# edited by hand\n+# generated\n" in result.stdout
    assert f"{out} is out of date" in result.stderr
    assert (out / "README.md").read_text("utf-8") == "# edited by hand\n"


def test_check_on_a_missing_directory_fails(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path
) -> None:
    result = run("render", "clean.yaml", "-o", tmp_path / "never-rendered", "--check")
    assert result.exit_code == 1
    assert not (tmp_path / "never-rendered").exists()


def test_verify_prints_one_line_per_check(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_verify(monkeypatch, [
        CheckResult("nginx -t edge/nginx.conf", "passed"),
        CheckResult("deck file validate gateway/kong.yaml", "skipped", "deck is not installed"),
    ])
    out = tmp_path / "out"
    result = run("render", "clean.yaml", "-o", out, "--verify", "--schemas", tmp_path)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "passed     nginx -t edge/nginx.conf",
        "skipped    deck file validate gateway/kong.yaml  deck is not installed",
        f"Wrote 2 files to {out}",
    ]
    assert calls == [(FILES, tmp_path)]


def test_failed_verification_writes_nothing(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_verify(monkeypatch, [
        CheckResult("nginx -t edge/nginx.conf", "failed", "nginx: [emerg] unknown directive\nline 2"),
    ])
    out = tmp_path / "out"
    result = run("render", "clean.yaml", "-o", out, "--verify")
    assert result.exit_code == 1
    assert result.stdout == (
        "failed     nginx -t edge/nginx.conf  nginx: [emerg] unknown directive\n    line 2\n"
    )
    assert "verification failed, so nothing was written" in result.stderr
    assert not out.exists()


SHORT_OF_PROOF = [
    CheckResult("nginx -t edge/nginx.conf", "not provable", "nginx 1.22.1 rejects `http2 on`",
                tested_on="nginx 1.22.1", declared="nginx 1.30.0"),
    CheckResult("nginx -t l4/nginx.conf", "passed", adapted=("added `load_module m.so;`",)),
    CheckResult("nginx -t x/nginx.conf", "passed", tested_on="nginx 1.22.1", declared="nginx 1.30.0"),
]


def test_short_of_proof_is_said_and_still_written(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not provable, adapted, other version: each says so in words; none is a failed render."""
    _fake_verify(monkeypatch, SHORT_OF_PROOF)
    out = tmp_path / "out"
    result = run("render", "clean.yaml", "-o", out, "--verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        ("unprovable nginx -t edge/nginx.conf  not provable here (nginx 1.22.1, declared nginx "
        "1.30.0); nginx 1.22.1 rejects `http2 on`"),
        "adapted    nginx -t l4/nginx.conf  passed after adapting: added `load_module m.so;`",
        "unproven   nginx -t x/nginx.conf  proven on nginx 1.22.1, not on declared nginx 1.30.0",
        f"Wrote 2 files to {out}",
    ]
    assert _tree(out) == FILES


@pytest.mark.parametrize("index", [0, 1, 2])
def test_strict_turns_anything_short_of_proof_into_exit_1(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    index: int,
) -> None:
    short = SHORT_OF_PROOF[index]
    _fake_verify(monkeypatch, [CheckResult("kong schema gateway/kong.yaml", "passed"), short])
    out = tmp_path / "out"
    result = run("render", "clean.yaml", "-o", out, "--verify", "--strict")
    assert result.exit_code == 1, result.output
    assert f"--strict: 1 check(s) short of proof as written on the declared version: {short.name} " \
        f"({short.label})" in result.stderr
    assert _tree(out) == FILES  # the files are right; only the proof is missing


def test_strict_counts_a_skipped_check_as_no_proof(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_verify(monkeypatch, [CheckResult("deck file validate", "skipped", "deck is not installed")])
    result = run("render", "clean.yaml", "-o", tmp_path / "out", "--verify", "--strict")
    assert result.exit_code == 1
    assert "deck file validate (skipped)" in result.stderr


def test_strict_passes_when_every_check_is_proof(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_verify(monkeypatch, [CheckResult("nginx -t edge/nginx.conf", "passed")])
    result = run("render", "clean.yaml", "-o", tmp_path / "out", "--verify", "--strict")
    assert result.exit_code == 0, result.output
    assert "--strict" not in result.stderr


def test_strict_without_verify_is_a_usage_error(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path
) -> None:
    result = run("render", "clean.yaml", "-o", tmp_path / "out", "--strict")
    assert result.exit_code == 2
    assert "--strict only applies together with --verify" in result.stderr


def test_schemas_without_verify_is_a_usage_error(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path
) -> None:
    result = run("render", "clean.yaml", "-o", tmp_path / "out", "--schemas", tmp_path)
    assert result.exit_code == 2
    assert "--schemas only applies together with --verify" in result.stderr


def test_refuses_a_directory_lbgen_did_not_generate(
    run: Invoke, fake_render: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "src"
    out.mkdir()
    (out / "main.py").write_text("print('mine')\n", encoding="utf-8")
    result = run("render", "clean.yaml", "-o", out)
    assert result.exit_code == 2
    assert result.stderr.startswith("lbgen: error: ")
    assert "Traceback" not in result.output
    assert (out / "main.py").read_text("utf-8") == "print('mine')\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository root holding the spec beside a Makefile and a Helm values file."""
    root = tmp_path / "project"
    (root / "deploy").mkdir(parents=True)
    shutil.copy(SPECS / "clean.yaml", root / "lb.yaml")
    (root / "Makefile").write_text("all:\n\tmake deploy\n")
    (root / "deploy" / "values.yaml").write_text("replicas: 3\n")
    monkeypatch.chdir(root)
    monkeypatch.setattr(lbgen.cli, "check_spec", partial(check_spec, select=["LB101", "LB9"]))
    return root


def _snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_force_only_ignores_findings_it_never_replaces_a_foreign_directory(
    project: Path, fake_render: dict[str, str]
) -> None:
    # `lbgen render SPEC -o . --force` used to delete the Makefile and deploy/values.yaml.
    subdir = project / "deploy"
    before = _snapshot(project)

    result = CliRunner().invoke(cli, ["render", "lb.yaml", "-o", ".", "--force"])
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(subdir)
        in_subdir = CliRunner().invoke(cli, ["render", "../lb.yaml", "-o", ".", "--force"])

    assert result.exit_code == 2 and in_subdir.exit_code == 2
    assert "the spec being rendered" in result.stderr
    assert "values.yaml" in in_subdir.stderr and "--replace-foreign" in in_subdir.stderr
    assert _snapshot(project) == before


def test_replace_foreign_never_deletes_the_spec(
    project: Path, fake_render: dict[str, str]
) -> None:
    before = _snapshot(project)

    result = CliRunner().invoke(
        cli, ["render", "lb.yaml", "-o", ".", "--force", "--replace-foreign"]
    )

    assert result.exit_code == 2
    assert "contains lb.yaml, the spec being rendered" in result.stderr
    assert "Traceback" not in result.output
    assert _snapshot(project) == before


def test_replace_foreign_lists_what_it_deletes(project: Path, fake_render: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["render", "lb.yaml", "-o", "deploy", "--replace-foreign"])

    assert result.exit_code == 0, result.output
    assert "deleting 1 entries lbgen did not write (or that changed since):\n  values.yaml\n" in (
        result.stderr
    )
    assert _tree(project / "deploy") == FILES


@pytest.mark.parametrize("setup", ["foreign", "holds-spec"])
def test_check_reports_what_a_plain_render_would_refuse(
    project: Path, fake_render: dict[str, str], setup: str
) -> None:
    out = "deploy" if setup == "foreign" else "."
    render = CliRunner().invoke(cli, ["render", "lb.yaml", "-o", out])
    check = CliRunner().invoke(cli, ["render", "lb.yaml", "-o", out, "--check"])

    assert render.exit_code == 2 and check.exit_code == 2
    reason = render.stderr.strip().splitlines()[-1]
    assert reason.startswith("lbgen: error: ") and reason in check.stderr
    assert "up to date" not in check.stdout


def test_input_error_exits_2_and_writes_nothing(run: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("render", "broken/unknown-key.yaml", "-o", out)
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Found 2 errors in broken/unknown-key.yaml; nothing was written.\n")
    assert not out.exists()


def test_output_option_is_required(run: Invoke) -> None:
    result = run("render", "clean.yaml")
    assert result.exit_code == 2
    assert "Missing option '-o' / '--output'" in result.stderr


# --- with the real renderer -------------------------------------------------------------


def test_render_seed_example_then_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "seed.yaml"
    shutil.copy(REPO / "examples" / "seed.yaml", spec)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["render", "seed.yaml", "-o", "out"], prog_name="lbgen")
    assert result.exit_code == 0, result.output
    assert _tree(tmp_path / "out") == lbgen.render(lbgen.load("seed.yaml"))
    result = runner.invoke(cli, ["render", "seed.yaml", "-o", "out", "--check"], prog_name="lbgen")
    assert result.exit_code == 0, result.output
