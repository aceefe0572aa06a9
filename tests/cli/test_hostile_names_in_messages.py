"""The spec's file name in lbgen's own messages (`file:line:col: …`, summaries, notes, GitHub
annotations) is shown as the rendered headers show it (lbgen.errors.shown_source_name): a
name with ESC, CR, LF, U+2028 or a right-to-left override can neither forge an output line
nor send a terminal escape. JSON and SARIF keep the real name as data, escaped as JSON.

Each name is a real file in tmp_path, run through the CLI; the output must have exactly the
lines of the same run on `spec.yaml`, each printable, with the name escaped where it appears.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lbgen.cli import cli
from lbgen.errors import shown_source_name
from tests.conftest import REPO

ADVISED = (REPO / "examples" / "seed-as-advised.yaml").read_text(encoding="utf-8")  # findings
BROKEN = ADVISED.replace("name: shop", "name: shop\nunknown_field: 1", 1)  # an input error
SEED = (REPO / "examples" / "seed.yaml").read_text(encoding="utf-8")

HOSTILE = {
    "esc": "x\x1b[2J\x1b]0;owned\x07.yaml",  # clear screen, set the terminal title
    "cr": "x\rspec.yaml:1:1: error: forged.yaml",  # CR returns to the line start
    "lf": "x\nspec.yaml:1:1: LB999 [error] forged\n.yaml",
    "u2028": "x\u2028forged.yaml",  # LINE SEPARATOR
    "rtl": "x\u202elmay.exe",  # right-to-left override: shows as `xexe.yaml`
}


def _run(tmp_path: Path, name: str, text: str, *args: str) -> Result:
    spec = tmp_path / name
    spec.write_text(text, encoding="utf-8")
    try:
        command = [arg.replace("SPEC", str(spec)) for arg in args]
        return CliRunner().invoke(cli, command, catch_exceptions=False)
    finally:
        spec.unlink()


def _lines(result: Result) -> list[str]:
    # splitlines() breaks at every Unicode line break, as the most liberal terminal would.
    return (result.stdout + result.stderr).splitlines()


CASES = {
    "findings-text": (ADVISED, ("validate", "SPEC")),
    "findings-github": (ADVISED, ("validate", "SPEC", "--format", "github")),
    "input-error-text": (BROKEN, ("validate", "SPEC")),
    "input-error-github": (BROKEN, ("validate", "SPEC", "--format", "github")),
    "render-input-error": (BROKEN, ("render", "SPEC", "-o", "OUT")),
    "render-check": (SEED, ("render", "SPEC", "-o", "OUT", "--check")),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("key", HOSTILE)
def test_a_hostile_name_stays_on_the_lines_that_show_it(tmp_path: Path, key: str, case: str) -> None:
    text, args = CASES[case]
    args = tuple(arg.replace("OUT", str(tmp_path / "out")) for arg in args)
    name = HOSTILE[key]
    plain = _run(tmp_path, "spec.yaml", text, *args)
    hostile = _run(tmp_path, name, text, *args)
    assert hostile.exit_code == plain.exit_code != 0
    lines, plain_lines = _lines(hostile), _lines(plain)
    assert len(lines) == len(plain_lines), lines
    raw, shown = str(tmp_path / name), shown_source_name(str(tmp_path / name))
    assert raw not in hostile.stdout + hostile.stderr
    seen = 0
    for line, plain_line in zip(lines, plain_lines, strict=True):
        assert line.isprintable(), line  # no ESC, CR, U+202E… left raw
        if line == plain_line:
            continue
        seen += 1
        if case == "render-check" and line.startswith("+"):
            # A line of the diff `--check` prints: rendered text, which names the file
            # without its directory (tests/cli/test_hostile_file_names.py covers it).
            assert "spec.yaml" in plain_line
            continue
        # The only difference: the name, shown escaped (GitHub properties escape `:` too).
        expected = plain_line.replace(str(tmp_path / "spec.yaml"), shown)
        if case.endswith("github"):
            expected = plain_line.replace(
                str(tmp_path / "spec.yaml").replace(":", "%3A"),
                shown.replace("%", "%25").replace(":", "%3A").replace(",", "%2C"),
                1,
            ).replace(str(tmp_path / "spec.yaml"), shown)
        assert line == expected
    assert seen, "the name appears in the output"


@pytest.mark.parametrize("fmt", ["json", "sarif"])
@pytest.mark.parametrize("key", HOSTILE)
def test_json_and_sarif_keep_the_real_name_as_escaped_data(tmp_path: Path, key: str, fmt: str) -> None:
    name = HOSTILE[key]
    for text in (ADVISED, BROKEN):
        result = _run(tmp_path, name, text, "validate", "SPEC", "--format", fmt)
        # Only json's own newlines between lines are not printable.
        assert all(ch.isprintable() or ch == "\n" for ch in result.stdout)
        document = json.loads(result.stdout)
        if fmt == "json":
            entries = document["findings"] if text is ADVISED else document["errors"]
            assert entries and {entry["file"] for entry in entries} == {str(tmp_path / name)}
        else:
            run = document["runs"][0]
            locations = [r["locations"][0] for r in run["results"]] + [
                n["locations"][0] for n in run["invocations"][0].get("toolExecutionNotifications", [])
            ]
            uris = {loc["physicalLocation"]["artifactLocation"]["uri"] for loc in locations}
            assert len(uris) == 1 and all(ch.isprintable() and ord(ch) < 128 for ch in uris.pop())


def test_merged_skip_reasons_show_each_name_escaped(tmp_path: Path) -> None:
    one, two = tmp_path / "a\x1b[31m.yaml", tmp_path / "b\u2028.yaml"
    one.write_text(SEED, encoding="utf-8")
    two.write_text(SEED, encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(one), str(two), "--show-skipped"])
    skipped = [line for line in result.stdout.splitlines() if line.startswith("skipped ")]
    assert skipped and all(line.isprintable() for line in result.stdout.splitlines())
    assert any(shown_source_name(str(one)) + ": " in line for line in skipped)
    assert any(shown_source_name(str(two)) + ": " in line for line in skipped)


@pytest.mark.parametrize("key", HOSTILE)
def test_the_refusal_to_replace_the_specs_own_directory_shows_the_name_escaped(
    tmp_path: Path, key: str
) -> None:
    spec = tmp_path / HOSTILE[key]
    spec.write_text(SEED, encoding="utf-8")
    result = CliRunner().invoke(cli, ["render", str(spec), "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert f"it contains {shown_source_name(str(spec))}, the spec being rendered" in result.stderr
    assert all(line.isprintable() for line in result.stderr.splitlines())
    assert spec.read_text(encoding="utf-8") == SEED


@pytest.mark.parametrize("key", HOSTILE)
def test_an_output_directory_that_cannot_be_opened_is_named_escaped(tmp_path: Path, key: str) -> None:
    # -o names a directory under a parent that does not exist: the parent appears in the error.
    out = tmp_path / HOSTILE[key] / "out"
    spec = tmp_path / "spec.yaml"
    spec.write_text(SEED, encoding="utf-8")
    result = CliRunner().invoke(cli, ["render", str(spec), "-o", str(out)])
    assert result.exit_code == 2
    assert f"cannot open {shown_source_name(str(out.parent))}" in result.stderr
    assert all(line.isprintable() for line in result.stderr.splitlines())


@pytest.mark.parametrize("key", HOSTILE)
def test_foreign_entries_of_the_output_directory_are_listed_escaped(tmp_path: Path, key: str) -> None:
    # The entries of a directory lbgen did not write come from whoever wrote it.
    spec = tmp_path / "spec.yaml"
    spec.write_text(SEED, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / HOSTILE[key]).write_text("not lbgen's\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["render", str(spec), "-o", str(out)])
    assert result.exit_code == 2
    assert "was not generated by lbgen" in result.stderr
    assert shown_source_name(HOSTILE[key]) in result.stderr
    assert all(line.isprintable() for line in result.stderr.splitlines())
    replaced = CliRunner().invoke(cli, ["render", str(spec), "-o", str(out), "--replace-foreign"])
    assert replaced.exit_code == 0, replaced.output
    assert shown_source_name(HOSTILE[key]) in replaced.stderr
    assert all(line.isprintable() for line in replaced.stderr.splitlines())
