"""lbgen's tokenizer for crossplane (lbgen/importer/nginx_lexer.py) yields crossplane's tokens.

What crossplane parses depends on its lexer's every quirk, so the faster tokenizer is held to
crossplane's own: the same (token, line, quoted) stream and the same errors, on every nginx
config in the repository (Debian's, the examples', the hand-written ones) and on generated
text built from the characters and words that steer crossplane's lexer (escapes, quotes,
`${`, comments, braces, Unicode whitespace, carriage returns, Lua blocks handed to
crossplane.ext.lua). And `crossplane.parse` gives the same payload with either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import crossplane
import crossplane.lexer
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbgen.importer import nginx_lexer

ROOT = Path(__file__).resolve().parents[2]


def _nginx_configs() -> list[Path]:
    data = sorted(p for p in (ROOT / "tests" / "importer" / "data").rglob("*") if p.is_file()
                  and p.name not in ("SOURCE.md", "LICENSE", "copyright"))
    examples = sorted((ROOT / "examples" / "imported").rglob("nginx.conf"))
    return [*data, *examples]


def _stream(lex: Any, path: str) -> tuple[list[tuple[str, int, bool]], tuple[str, str, object] | None]:
    """The tokens up to the end or the error, and the error (type, message, line)."""
    out: list[tuple[str, int, bool]] = []
    try:
        out.extend(lex(path))
    except Exception as exc:  # noqa: BLE001 - whatever crossplane raises, lbgen's lexer must raise alike
        return out, (type(exc).__name__, str(exc), getattr(exc, "lineno", None))
    return out, None


def _same(path: Path) -> None:
    assert _stream(nginx_lexer.lex, str(path)) == _stream(crossplane.lexer.lex, str(path))


def test_the_checked_crossplane_is_the_installed_one() -> None:
    # the equivalence below is only claimed for the crossplane whose lexer was reproduced
    assert nginx_lexer.usable()
    assert crossplane.lexer.EXTERNAL_LEXERS, "crossplane registers its Lua lexer on import"


@pytest.mark.parametrize("path", _nginx_configs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_config_here_lexes_to_crossplanes_tokens(path: Path) -> None:
    _same(path)


def test_crossplane_parse_gives_the_same_payload_on_the_debian_configs() -> None:
    for path in _nginx_configs():
        options: dict[str, Any] = {"comments": True, "single": True, "check_ctx": False, "check_args": True,
                                   "catch_errors": True, "onerror": lambda exc: type(exc).__name__}
        plain = crossplane.parse(str(path), **options)
        with nginx_lexer.crossplane_lexer():
            fast = crossplane.parse(str(path), **options)
        assert fast == plain, path


def test_the_lexer_is_crossplanes_again_after_a_parse() -> None:
    before = crossplane.parser.lex
    with nginx_lexer.crossplane_lexer():
        assert crossplane.parser.lex is nginx_lexer.lex
    assert crossplane.parser.lex is before


# Pieces that each reach a branch of crossplane's lexer; joined at random they reach the
# branches' interactions (a `${` cut by whitespace, an escaped quote at the end of a file, a
# comment ending in an escaped newline, a Lua block whose string holds a brace, …).
_PIECES = st.sampled_from([
    " ", "  ", "\t", "\n", "\r\n", "\r", "\x0b", "\x1c", "\xa0", "\u2028", "\x85",
    "{", "}", ";", "#", "# c", '"', "'", "\\", "\\\\", "\\\n", '\\"', "\\'", "\\ ", "\\{", "\\;",
    "$", "${", "${a}", "$x", "}", "a", "b1", "server", "listen", "80", "é", "--", "-",
    "content_by_lua_block", "set_by_lua_block", "access_by_lua_block", "if", "(", ")",
])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_PIECES, max_size=40))
def test_generated_text_lexes_to_crossplanes_tokens(tmp_path: Path, pieces: list[str]) -> None:
    path = tmp_path / "nginx.conf"
    path.write_bytes("".join(pieces).encode("utf-8"))
    _same(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_lex_to_crossplanes_tokens(tmp_path: Path, data: bytes) -> None:
    # undecodable bytes are replaced as crossplane replaces them
    path = tmp_path / "nginx.conf"
    path.write_bytes(data)
    _same(path)


@pytest.mark.parametrize("text", [
    'content_by_lua_block {\n  ngx.say("}{")  -- a } in a comment\n}\nlisten 80;\n',
    'set_by_lua_block $v { return "a" }\nserver { listen 80; }\n',
    '"content_by_lua_block" { x }\n',
    "location / { content_by_lua_block { a } }\n",
    "content_by_lua_block\n\n  { ngx.exit(200) }   \n  return 200;",
    "content_by_lua_block { unterminated",
    "content_by_lua_block x;",
    "a ${b c} d;\n",
    "a ${b} ;\n",
    "a ${b};\n",
    "a \\\n b;\n# comment \\\n next;\n",
    "# no newline at the end",
    "a 'b\\'c' \"d\\\"e\\n\";\n",
    "a b",
    "}",
    "{",
    "a;\\",
])
def test_edge_cases_lex_to_crossplanes_tokens(tmp_path: Path, text: str) -> None:
    path = tmp_path / "nginx.conf"
    path.write_text(text, encoding="utf-8")
    _same(path)


def test_the_benchmarks_large_config_lexes_alike(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_audit", ROOT / "scripts" / "bench_audit.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path / "nginx.conf"
    path.write_text(bench.nginx_conf(200), encoding="utf-8")
    _same(path)
