"""Every way a spec file can be wrong gives a located `InputError`, never a traceback.

Each problem names file:line:column (of the offending key or value, computed here from
the text, not copied from the loader), shows the offending value, and carries a hint.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

import lbgen
from lbgen.cli import cli
from lbgen.errors import InputError, Problem
from lbgen.io.loader import MAX_ALIAS_NODES, MAX_DEPTH, load_spec_file, load_spec_text
from lbgen.model.spec import Spec
from tests.conftest import EXAMPLES

SEED = (Path(__file__).resolve().parent.parent / "examples" / "seed.yaml").read_text("utf-8")
LOCATED = re.compile(r"^[^:\n]+:\d+:\d+: error: .+")


def problems_of(text: str, name: str = "spec.yaml") -> list[Problem]:
    with pytest.raises(InputError) as caught:
        load_spec_text(text, name)
    problems = caught.value.problems
    for problem in problems:
        # The contract of every problem: located, explained, with a way forward.
        assert problem.location.file == name
        assert problem.location.line >= 1 and problem.location.column >= 1
        assert problem.message and problem.hint, problem
        assert LOCATED.match(problem.format().splitlines()[0]), problem.format()
    return problems


def position(text: str, snippet: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) where the `occurrence`-th `snippet` starts in `text`."""
    offset = -1
    for _ in range(occurrence):
        offset = text.index(snippet, offset + 1)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def at(problem: Problem) -> tuple[int, int]:
    return problem.location.line, problem.location.column


def edit(old: str, new: str, text: str = SEED) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_the_seed_example_loads() -> None:
    # Baseline for every edit below: the unmodified seed is valid.
    assert load_spec_text(SEED).spec.name == "seed"


# --- YAML level ---------------------------------------------------------------------------


def test_yaml_syntax_error_is_located_at_the_bad_token() -> None:
    text = edit("listen_port: 8000", "listen_port: [8000")
    (problem,) = problems_of(text)
    assert "invalid YAML" in problem.message
    # The unclosed '[' is only detected at the ':' of the next line; the hint says so.
    assert at(problem) == position(text, ": {algorithm")
    assert "the one before" in problem.hint
    assert "indentation, quoting and brackets" in problem.hint


def test_tab_indentation_gets_a_tab_specific_hint() -> None:
    text = edit("    listen_port: 8000", "\tlisten_port: 8000")
    (problem,) = problems_of(text)
    assert at(problem) == position(text, "\tlisten_port")
    assert "tabs" in problem.hint


def test_every_duplicate_key_is_reported_at_once_with_both_lines() -> None:
    text = edit("    listen_port: 8000", "    listen_port: 8000\n    listen_port: 8001")
    text = edit("    replicas: 8", "    replicas: 8\n    replicas: 9", text)
    first, second = problems_of(text)
    assert at(first) == position(text, "listen_port", 2)
    assert "duplicate key 'listen_port' with value 8001" in first.message
    assert f"first defined on line {position(text, 'listen_port')[0]}" in first.message
    assert at(second) == position(text, "replicas", 2)
    assert "duplicate key 'replicas' with value 9" in second.message


def test_a_key_repeated_in_two_different_mappings_is_fine() -> None:
    # `name` appears in every tier: duplicates are per mapping, not per file.
    assert SEED.count("name: ") > 2
    load_spec_text(SEED)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "--- \n...\n"])
def test_an_empty_spec_is_refused_with_a_pointer_to_the_examples(text: str) -> None:
    (problem,) = problems_of(text)
    assert at(problem) == (1, 1)
    assert problem.message == "the spec is empty"
    # Not "examples/": a wheel has no such directory; `lbgen examples` ships them.
    assert "`lbgen examples`" in problem.hint


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_a_spec_that_is_not_a_mapping_is_refused(text: str) -> None:
    (problem,) = problems_of(text)
    assert "must be a YAML mapping" in problem.message


def test_several_documents_are_refused_at_the_second_one() -> None:
    text = SEED + "---\nname: other\n"
    (problem,) = problems_of(text)
    assert problem.location.line == position(text, "---\nname: other")[0]
    assert "several YAML documents" in problem.message


def test_non_utf8_bytes_are_located(tmp_path: Path) -> None:
    raw = SEED.encode("utf-8").replace(b"# The seed path", b"# The s\xe9ed path")
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes(raw)

    with pytest.raises(InputError) as caught:
        load_spec_file(spec)

    (problem,) = caught.value.problems
    line, column = position(SEED, "eed path")
    assert at(problem) == (line, column)  # the byte after "# The s"
    assert "0xe9" in problem.message and "UTF-8" in problem.hint


def test_a_utf16_file_is_refused_as_not_utf8(tmp_path: Path) -> None:
    spec = tmp_path / "utf16.yaml"
    spec.write_bytes(SEED.encode("utf-16"))
    with pytest.raises(InputError) as caught:
        load_spec_file(spec)
    assert "not valid UTF-8" in caught.value.problems[0].message


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    spec = tmp_path / "bom.yaml"
    spec.write_bytes(b"\xef\xbb\xbf" + SEED.encode("utf-8"))
    assert load_spec_file(spec).spec.name == "seed"


def test_a_nul_character_is_located() -> None:
    text = edit("name: seed", "name: se\x00ed")
    (problem,) = problems_of(text)
    assert at(problem) == position(text, "\x00")
    assert "NUL" in problem.message


def test_an_unreadable_spec_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        lbgen.load(tmp_path / "missing.yaml")
    assert "cannot read the spec" in caught.value.problems[0].message


@pytest.mark.parametrize(
    ("snippet", "replacement", "wanted"),
    [
        ("name: seed", "name: !!python/object:os.system seed", "not supported"),
        ("name: seed", "name: !!binary c2VlZA==", "not supported"),
        ("name: seed", "name: !custom seed", "not supported"),
    ],
)
def test_yaml_tags_beyond_plain_data_are_refused(snippet: str, replacement: str, wanted: str) -> None:
    text = edit(snippet, replacement)
    (problem,) = problems_of(text)
    assert wanted in problem.message
    assert problem.location.line == position(text, replacement)[0]


def test_a_non_string_key_is_refused_with_the_key_shown() -> None:
    text = edit("    listen_port: 8000", "    8000: listen_port")
    (problem,) = problems_of(text)
    assert at(problem) == position(text, "8000: listen")
    assert "got 8000" in problem.message and "quote the key" in problem.hint


# --- alias bombs and nesting: refused by construction -------------------------------------


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        previous, current = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{current}: &{current} [" + ", ".join([f"*{previous}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.fixture
def no_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the data ever reaches schema validation."""

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the document should have been refused before validation")

    monkeypatch.setattr(Spec, "model_validate", unreachable)


def test_a_billion_laughs_document_is_refused_without_expanding_it(no_validation: None) -> None:
    text = billion_laughs()  # 10^9 strings when expanded
    (problem,) = problems_of(text)
    # Refused at the alias where the arithmetic count first exceeds the budget: line 5
    # (10^5 values), long before the 10^9 of line 9. Expansion would never get that far.
    assert 10**4 < MAX_ALIAS_NODES <= 10**5
    assert problem.location.line == 5
    assert "alias bomb" in problem.message


def test_a_recursive_alias_is_refused(no_validation: None) -> None:
    text = "name: &n [1, *n]\n"
    (problem,) = problems_of(text)
    assert at(problem) == position(text, "*n")
    assert "refers to the node that contains it" in problem.message


def test_an_alias_without_anchor_is_refused(no_validation: None) -> None:
    text = edit("name: seed", "name: *nowhere")
    (problem,) = problems_of(text)
    assert at(problem) == position(text, "*nowhere")


def test_reasonable_alias_reuse_loads_and_errors_inside_are_located_at_the_anchor() -> None:
    services = SEED[SEED.index("services:") :]
    first_service = services[len("services:\n") :]
    more = (
        first_service.replace("name: orders", "name: orders-{i}")
        .replace("paths: [/orders]", "paths: [/orders-{i}]")
        .replace("app: {preset: uvicorn}", "app: *app")
    )
    text = edit("app: {preset: uvicorn}", "app: &app {preset: uvicorn}")
    text += "".join(more.replace("{i}", str(i)) for i in range(50))
    loaded = load_spec_text(text)
    assert [s.app.preset for s in loaded.spec.services] == ["uvicorn"] * 51

    broken = text.replace("&app {preset: uvicorn}", "&app {preset: uvicornx}")
    problems = problems_of(broken)
    assert len(problems) == 51  # the bad anchored value is reported for every use
    assert at(problems[0]) == position(broken, "uvicornx")
    assert all(p.location.line >= 1 for p in problems)


def test_merge_keys_apply_with_explicit_keys_winning() -> None:
    text = edit(
        "    app: {preset: uvicorn}",
        "    app:\n      <<: &base {preset: gunicorn, idle_timeout: 5s}\n      preset: uvicorn",
    )
    service = load_spec_text(text).spec.services[0]
    assert service.app.preset == "uvicorn"
    assert service.app.idle_timeout is not None and service.app.idle_timeout.seconds == 5


def test_deep_flow_nesting_is_refused_before_the_yaml_scanner_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ten thousand '[' take seconds in ruamel's scanner; the text pre-scan stops at 65.
    def no_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the YAML parser should not have been reached")

    monkeypatch.setattr(YAML, "parse", no_parse)
    text = "name: " + "[" * 10_000 + "]" * 10_000 + "\n"
    (problem,) = problems_of(text)
    assert at(problem) == (1, len("name: ") + MAX_DEPTH + 1)


def test_brackets_inside_quoted_strings_and_comments_do_not_count_as_nesting() -> None:
    deep = "[" * (MAX_DEPTH + 5)
    text = edit("name: seed", f"name: seed  # {deep}\n# {deep}")
    text = edit("    readiness: {path: /healthz}", f"    readiness: {{path: /healthz}}  # '{deep}'", text)
    assert load_spec_text(text).spec.name == "seed"
    quoted = edit("name: seed", f'name: "{deep}"')
    (problem,) = problems_of(quoted)
    assert problem.path == "name" and "nests" not in problem.message  # a bad name


def test_deep_block_nesting_is_refused_at_the_level_that_exceeds_the_limit(
    no_validation: None,
) -> None:
    text = "".join("  " * depth + f"k{depth}:\n" for depth in range(MAX_DEPTH + 10))
    (problem,) = problems_of(text)
    assert "nests more than" in problem.message
    assert problem.location.line == MAX_DEPTH + 1


# --- schema level: several problems at once, each located ---------------------------------


def test_wrong_types_are_all_reported_at_once_with_values_and_hints() -> None:
    text = edit("listen_port: 8000", 'listen_port: "8000"')
    text = edit("replicas: 8", "replicas: eight", text)
    text = edit("    forwarded_headers: true", '    forwarded_headers: "yes"', text)
    text = edit("      - {name: kong-1, address: 10.30.0.11}\n      - {name: kong-2, address: 10.30.0.12}",
                "      edge-1", text)
    problems = problems_of(text)
    by_path = {p.path: p for p in problems}
    assert set(by_path) == {
        "tiers[0].forwarded_headers",
        "tiers[1].listen_port",
        "tiers[2].instances",
        "services[0].replicas",
    }
    assert at(by_path["tiers[1].listen_port"]) == position(text, '"8000"')
    assert "'8000'" in by_path["tiers[1].listen_port"].message
    assert "whole number" in by_path["tiers[1].listen_port"].hint
    assert at(by_path["services[0].replicas"]) == position(text, "eight")
    assert "'yes'" in by_path["tiers[0].forwarded_headers"].message
    assert "true or false" in by_path["tiers[0].forwarded_headers"].hint
    assert "list" in by_path["tiers[2].instances"].hint
    assert [p.location.line for p in problems] == sorted(p.location.line for p in problems)


@pytest.mark.parametrize(
    ("old", "new", "key", "hint"),
    [
        ("replicas: 8", "replica: 8", "replica", "did you mean 'replicas'?"),
        ("    forwarded_headers: true", "    forwarded_header: true", "forwarded_header",
         "did you mean 'forwarded_headers'?"),
        ("balancing: {algorithm: least_conn}", "balancing: {algoritm: least_conn}", "algoritm",
         "did you mean 'algorithm'?"),
        ("    platform: gke", "    platform: gke\n    zzz: 1", "zzz", "allowed keys here: "),
    ],
)
def test_unknown_keys_are_located_at_the_key_with_a_suggestion(
    old: str, new: str, key: str, hint: str
) -> None:
    text = edit(old, new)
    problems = problems_of(text)
    unknown = next(p for p in problems if p.message == f"unknown key {key!r}")
    assert at(unknown) == position(text, f"{key}:")
    assert unknown.hint.startswith(hint)


def test_a_missing_required_key_is_located_at_its_parent_with_what_to_add() -> None:
    text = edit("    replicas: 8\n", "")
    (problem,) = problems_of(text)
    assert problem.message == "missing required key 'replicas'"
    assert problem.location.line == position(text, "  - name: orders")[0]
    assert problem.hint.startswith("add replicas:")


def test_a_bad_enum_value_lists_the_allowed_values() -> None:
    text = edit("least_conn", "leastconn")
    (problem,) = problems_of(text)
    assert at(problem) == position(text, "leastconn")
    assert "'leastconn'" in problem.message
    assert "'least_conn'" in problem.hint and "'random-two'" in problem.hint


def test_an_unknown_tier_kind_is_located_at_the_kind() -> None:
    text = edit("kind: kong", "kind: kongx")
    (problem,) = problems_of(text)
    assert at(problem) == position(text, "kongx")
    assert "'kongx'" in problem.message and "'nginx_stream'" in problem.hint


@pytest.mark.parametrize(
    ("old", "new", "shown", "hint"),
    [
        ('version: "3.10"', "version: 3.10", "3.10", 'use a quoted string: "3.10"'),
        ('version: "1.30.0"\n    instances:\n      - {name: edge-1',
         "version: 1\n    instances:\n      - {name: edge-1", "version 1",
         'use a quoted string: "1"'),
    ],
)
def test_unquoted_versions_show_what_the_user_wrote(old: str, new: str, shown: str, hint: str) -> None:
    # YAML reads 3.10 as the float 3.1: the message must say 3.10, or the hint misleads.
    text = edit(old, new)
    (problem,) = problems_of(text)
    assert shown in problem.message
    assert problem.hint == hint


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("1.30", "version 1.30 is a number in YAML, so 1.30 and 1.3 are the same number"),
        ("1.31", "version 1.31 is a number in YAML"),
    ],
)
def test_unquoted_version_message_says_why_and_how_to_fix_it(written: str, message: str) -> None:
    # Before: "1.30 is a number in YAML (1.30 and 1.30 are the same number)" — the value
    # substitution also rewrote the 1.3 of the explanation.
    old = 'version: "1.30.0"\n    instances:\n      - {name: edge-1'
    text = edit(old, old.replace('"1.30.0"', written))
    (problem,) = problems_of(text)
    assert problem.message == message
    assert problem.hint == f'use a quoted string: "{written}"'


@pytest.mark.parametrize(
    ("old", "new", "value", "hint"),
    [
        ("replicas: 8", "replicas: 0", "0", "use a value ≥ 1"),
        ("listen_port: 8000", "listen_port: 70000", "70000", "use a value ≤ 65535"),
        ("name: orders", "name: Orders", "'Orders'", "lower-case letters"),
        ("paths: [/orders]", "paths: [/orders;]", "'/orders;'", "URL path"),
        ("address: 10.10.0.11", "address: 10.10.0.11;", "'10.10.0.11;'", "IP address"),
    ],
)
def test_value_errors_show_the_value_and_how_to_fix_it(old: str, new: str, value: str, hint: str) -> None:
    text = edit(old, new)
    (problem,) = problems_of(text)
    assert value in problem.message
    assert hint in problem.hint or hint in problem.message
    line, column = position(text, new)
    offending = new.split(": ", 1)[1].lstrip("[")
    assert at(problem) == (line, column + new.index(offending))


def test_a_bad_duration_splits_message_and_advice() -> None:
    text = edit("listen_port: 8000", "listen_port: 8000\n    proxy_timeout: soon")
    (problem,) = problems_of(text)
    assert problem.message.startswith("'soon' is not a duration")
    assert problem.hint.startswith("use whole seconds")
    assert at(problem) == position(text, "soon")


def test_cross_field_errors_are_located_at_the_section() -> None:
    text = edit("balancing: {algorithm: least_conn}", "balancing: {algorithm: hash}")
    (problem,) = problems_of(text)
    assert "needs hash_key" in problem.message
    assert problem.location.line == position(text, "balancing:")[0]


@pytest.mark.parametrize(
    ("setting", "directive"),
    [("idle_timeout: 30s", "keepalive_timeout"), ("max_requests: 100", "keepalive_requests")],
)
def test_upstream_keepalive_tuning_before_nginx_1_15_3_is_refused(setting: str, directive: str) -> None:
    """nginx < 1.15.3 has no upstream keepalive_timeout/keepalive_requests: a value set there
    would be dropped from the output, so the spec is refused instead."""
    text = edit('version: "1.30.0"\n    instances:\n      - {name: edge-1',
                'version: "1.14.2"\n    upstream_keepalive: {' + setting + '}\n'
                '    instances:\n      - {name: edge-1')
    (problem,) = problems_of(text)
    assert f"(upstream {directive}) needs nginx ≥ 1.15.3" in problem.message
    assert problem.location.line == position(text, "- kind: nginx_http")[0]


def test_mapping_input_is_validated_too_with_problems_at_line_one() -> None:
    with pytest.raises(InputError) as caught:
        lbgen.load({"name": "x;y", "tiers": [], "services": []})
    paths = {p.path for p in caught.value.problems}
    assert paths == {"name", "tiers", "services"}
    assert all(p.hint for p in caught.value.problems)


# --- the CLI: exit 2, located message, no traceback --------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name: [\n",
        billion_laughs(),
        edit("replicas: 8", "replica: 8"),
        edit("name: seed", "name: se\x00ed"),
    ],
    ids=["empty", "syntax", "alias-bomb", "unknown-key", "nul"],
)
def test_cli_validate_exits_2_with_located_messages(tmp_path: Path, text: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")

    result = CliRunner().invoke(cli, ["validate", str(spec)])

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{spec}:") and LOCATED.match(first), result.stderr
    assert "hint:" in result.stderr


def test_cli_validate_reports_a_non_utf8_file_with_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"name: caf\xe9\n")
    result = CliRunner().invoke(cli, ["validate", str(spec)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{spec}:1:10: error: the spec is not valid UTF-8")


@pytest.mark.parametrize("word", ["null", "~", ""])
def test_a_yaml_null_where_text_belongs_says_to_quote_it(word: str) -> None:
    text = edit("name: seed", f"name: {word}".rstrip())
    (problem,) = problems_of(text)
    assert problem.path == "name" and "got None" in problem.message
    assert "quote it" in problem.hint


def test_a_bad_label_key_is_located_at_the_key_and_shown_quoted_in_the_path() -> None:
    text = edit("    kubernetes: {port: 80, target_port: 8000}",
                "    kubernetes:\n      port: 80\n      labels: {team: shop, \"bad key\": x}")
    (problem,) = problems_of(text)
    assert at(problem) == position(text, '"bad key"')
    assert problem.path == 'services[0].kubernetes.labels["bad key"]'
    assert "label key" in problem.hint


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_c_and_python_parsers_read_the_same_data_and_positions(example: Path) -> None:
    # Specs are read with libyaml (ruamel.yaml.clib) for speed; the Python scanner is the
    # reference for errors. Both must yield the same values at the same line:column.
    from lbgen.io.loader import SourceMap, _Composer

    text = example.read_text(encoding="utf-8")
    fast, slow = SourceMap("x"), SourceMap("x")
    assert _Composer(text, fast, pure=False).document() == _Composer(text, slow, pure=True).document()
    assert (fast.keys, fast.values) == (slow.keys, slow.values)


def test_an_empty_workload_is_located_and_says_what_it_needs() -> None:
    text = edit("name: seed\n", "name: seed\nworkload: {}\n")
    [problem] = problems_of(text)
    assert at(problem) == position(text, "{}")
    assert "rate" in problem.message and "concurrency" in problem.message


def test_a_workload_rate_must_be_positive() -> None:
    text = edit("name: seed\n", "name: seed\nworkload: {rate: 0}\n")
    [problem] = problems_of(text)
    assert at(problem) == position(text, "0}")
