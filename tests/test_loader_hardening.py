"""Loader edge cases from the hostile-input campaign (issue #7 item 3): explicit scalar tags,
tags on collections, repeated merge keys, non-regular files, Unicode line separators,
durations with inner blanks, and rule codes with non-ASCII digits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbgen.cli import cli
from lbgen.io.loader import load_spec_text
from lbgen.model.types import Duration
from tests.conftest import REPO
from tests.test_input_errors import at, edit, position, problems_of


@pytest.mark.parametrize(
    ("replacement", "shown"),
    [
        ('name: !!bool "abc"', "'abc' is not a valid !!bool"),
        ('name: !!int ""', "'' is not a valid !!int"),
        ("name: !!int 0x", "'0x' is not a valid !!int"),
        ("name: !!float abc", "'abc' is not a valid !!float"),
        ("name: !!timestamp 2026-13-45", "'2026-13-45' is not a valid !!timestamp"),
    ],
)
def test_an_explicit_scalar_tag_the_text_does_not_fit_is_a_located_error(
    tmp_path: Path, replacement: str, shown: str
) -> None:
    text = edit("name: seed", replacement)
    (problem,) = problems_of(text)
    assert problem.message == shown
    assert at(problem) == position(text, replacement.split(": ", 1)[1])
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(spec)])
    assert result.exit_code == 2
    assert f"{spec}:{at(problem)[0]}:{at(problem)[1]}: error: {shown}" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("old", "new", "shown"),
    [
        ("    listen:\n      - {port: 80}", "    listen: !!seq\n      - {port: 80}", "!!seq"),
        ("    listen:\n      - {port: 80}", "    listen: !!map\n      - {port: 80}", "!!map"),
        ("    listen:\n      - {port: 80}", "    listen: !!set\n      - {port: 80}", "!!set"),
        ("timeouts: {read: 370s}", "timeouts: !!omap {read: 75s}", "!!omap"),
        ("timeouts: {read: 370s}", "timeouts: !local {read: 75s}", "!local"),
    ],
)
def test_a_tag_on_a_collection_is_refused(old: str, new: str, shown: str) -> None:
    text = edit(old, new)
    (problem,) = problems_of(text)
    assert f"YAML tag {shown} is not supported" in problem.message
    assert at(problem) == position(text, shown)


def test_a_repeated_merge_key_is_a_duplicate_key() -> None:
    text = edit(
        "    timeouts: {read: 370s}",
        "    x-a: &a {read: 370s}\n    x-b: &b {send: 75s}\n"
        "    timeouts:\n      <<: *a\n      <<: *b",
    )
    problems = problems_of(text)
    duplicate = [p for p in problems if "duplicate key '<<'" in p.message]
    assert len(duplicate) == 1
    assert at(duplicate[0]) == position(text, "<<", 2)
    assert f"first defined on line {position(text, '<<')[0]}" in duplicate[0].message


def test_a_fifo_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    # A subprocess with a timeout: the old loader blocks forever opening a FIFO with no writer.
    done = subprocess.run(
        [sys.executable, "-m", "lbgen", "validate", str(fifo)], capture_output=True, text=True,
        timeout=30, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
    )
    assert done.returncode == 2
    assert f"{fifo}:1:1: error: the spec is a FIFO (named pipe), not a regular file" in done.stderr


def test_a_character_device_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "/dev/null"])
    assert result.exit_code == 2
    assert "the spec is a character device, not a regular file" in result.output


def _line_col(text: str, snippet: str) -> tuple[int, int]:
    """The oracle: lines end at LF, CRLF or CR only, as in editors and YAML 1.2."""
    offset = text.index(snippet)
    lines = text[:offset].replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return len(lines), len(lines[-1]) + 1


@pytest.mark.parametrize("separator", ["\u2028", "\x85", "\u2029"])
def test_unicode_line_separators_in_comments_neither_shift_lines_nor_become_yaml(
    separator: str,
) -> None:
    comment = f"    # keep{separator}bogus: 1{separator}and more{separator}\n"
    text = edit("    forwarded_headers: true\n", comment + "    forwarded_headers: true\n")
    text = edit("    passive_health: {max_fails: 0}", "    passive_healht: {max_fails: 0}", text)
    (problem,) = problems_of(text)
    assert problem.message == "unknown key 'passive_healht'"
    assert at(problem) == _line_col(text, "passive_healht")
    # The comment stays a comment: its text is not read as a key.
    assert "bogus" not in problem.message


def test_a_spec_with_separators_only_in_comments_loads() -> None:
    text = edit("name: seed", "name: seed  # a\u2028b: 1\x85c")
    assert load_spec_text(text).spec.name == "seed"


@pytest.mark.parametrize("value", ['"x\u2028y"', "'x\x85y'", "|\n      x\u2029y"])
def test_a_unicode_line_separator_inside_a_value_is_refused_where_it_is(value: str) -> None:
    text = edit("    forwarded_headers: true", f"    forwarded_headers: {value}")
    (problem,) = problems_of(text)
    assert "which YAML 1.1 readers take for a line break" in problem.message
    separator = next(ch for ch in value if ch in "\u2028\x85\u2029")
    assert at(problem) == _line_col(text, separator)


@pytest.mark.parametrize("text", ["1 30", "1 30s", "1h 30m", "7\t5s", "1\u00a030s"])
def test_durations_with_inner_blanks_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        Duration.parse(text)


def test_a_duration_with_an_inner_blank_is_a_located_input_error() -> None:
    text = edit("timeouts: {read: 370s}", 'timeouts: {read: "1 30"}')
    (problem,) = problems_of(text)
    assert "'1 30' is not a duration" in problem.message
    assert at(problem) == position(text, '"1 30"')


@pytest.mark.parametrize("code", ["LB\u0661\u0660\u0661", "LB1\u06f0\u06f1", "LB\uff11\uff10\uff11"])
def test_rule_codes_take_ascii_digits_only(code: str) -> None:
    text = edit(
        "    passive_health: {max_fails: 0}",
        "    passive_health: {max_fails: 0}\n    suppress:\n"
        f"      - {{rule: \"{code}\", reason: testing non-ASCII digits}}",
    )
    (problem,) = problems_of(text)
    assert "has characters that are not allowed here" in problem.message
    assert problem.hint == "use a rule code such as LB101"
    assert at(problem) == position(text, f'"{code}"')


@pytest.mark.parametrize("code", ["LB\u0661\u0660\u0661", "LB\u0661"])
def test_select_and_ignore_take_ascii_digits_only(code: str) -> None:
    for option in ("--select", "--ignore"):
        result = CliRunner().invoke(cli, ["validate", str(REPO / "examples" / "seed.yaml"),
                                          option, code])
        assert result.exit_code == 2, (option, result.output)
        assert "unknown rule" in result.output
