"""The cache of compiled templates (lbgen/render/_env.py): it speeds up cold renders and
must never change what is rendered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SEED = REPO / "examples" / "seed.yaml"


def _render(out: Path, cache_home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONDONTWRITEBYTECODE", "LBGEN_NO_CACHE")}
    return subprocess.run(
        [sys.executable, "-m", "lbgen", "render", str(SEED), "-o", str(out)],
        capture_output=True, text=True, check=False,
        env={**base, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache_home), **env},
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_templates_are_cached_and_the_cache_changes_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _render(tmp_path / "cold", cache).returncode == 0
    entries = list((cache / "lbgen").glob("templates-*/*.cache"))
    assert entries, "the first render caches the compiled templates"
    assert _render(tmp_path / "warm", cache).returncode == 0
    assert _tree(tmp_path / "warm") == _tree(tmp_path / "cold")


def test_no_cache_is_written_when_bytecode_writing_is_off(tmp_path: Path) -> None:
    for env in ({"PYTHONDONTWRITEBYTECODE": "1"}, {"LBGEN_NO_CACHE": "1"}):
        cache = tmp_path / next(iter(env))
        assert _render(tmp_path / f"out-{next(iter(env))}", cache, **env).returncode == 0
        assert not list(cache.rglob("*.cache")), env


def _tamper(directory: Path, name: str, replacement: str) -> None:
    """Replace the cached code of template `name` with that of `replacement`, keeping the
    checksum of the real source (what a hostile writer of the cache directory could do)."""
    from jinja2 import Environment
    from jinja2.bccache import Bucket, FileSystemBytecodeCache

    from lbgen.render import filters
    from lbgen.render._env import _OPTIONS, templates_dir

    env = Environment(**_OPTIONS)
    env.filters.update(filters.FILTERS)
    filename = str(templates_dir() / name)
    cache = FileSystemBytecodeCache(str(directory))
    source = Path(filename).read_text("utf-8")
    bucket = Bucket(env, cache.get_cache_key(name, filename), cache.get_source_checksum(source))
    bucket.code = env.compile(replacement, name, filename)
    path = directory / (cache.pattern % bucket.key)
    assert path.is_file(), "the first render cached this template"
    with path.open("wb") as handle:
        bucket.write_bytecode(handle)


def test_only_a_private_cache_directory_is_trusted(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _render(tmp_path / "first", cache).returncode == 0
    (directory,) = (cache / "lbgen").glob("templates-*")
    _tamper(directory, "kubernetes/KUBE-PROXY.md.j2", "TAMPERED\n")
    # The cache is really used: a private directory's entry is executed as is.
    assert _render(tmp_path / "private", cache).returncode == 0
    assert "TAMPERED" in (tmp_path / "private" / "gke" / "KUBE-PROXY.md").read_text("utf-8")
    directory.chmod(0o777)  # writable by others: nothing in it is loaded
    try:
        assert _render(tmp_path / "shared", cache).returncode == 0
    finally:
        directory.chmod(0o700)
    assert _tree(tmp_path / "shared") == _tree(tmp_path / "first")


def test_a_broken_or_unwritable_cache_only_costs_time(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _render(tmp_path / "first", cache).returncode == 0
    (directory,) = (cache / "lbgen").glob("templates-*")
    for entry in directory.iterdir():  # garbage where compiled code should be
        entry.write_bytes(b"j2 not marshal data")
    result = _render(tmp_path / "second", cache)
    assert result.returncode == 0, result.stderr
    assert _tree(tmp_path / "second") == _tree(tmp_path / "first")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory would go\n")
    result = _render(tmp_path / "third", blocked)
    assert result.returncode == 0, result.stderr
    assert _tree(tmp_path / "third") == _tree(tmp_path / "first")
