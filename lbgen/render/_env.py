"""The one Jinja environment of lbgen."""

from __future__ import annotations

import hashlib
import os
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbgen.render import filters

if TYPE_CHECKING:
    from jinja2 import BytecodeCache, Environment

_OPTIONS: dict[str, Any] = {
    "autoescape": False,  # configs, not HTML: values are validated/quoted by filters instead
    "keep_trailing_newline": True,
    "trim_blocks": True,
    "lstrip_blocks": True,
}


def templates_dir() -> Path:
    """Templates ship inside the wheel as `lbgen/templates`; in a checkout they are the
    top-level `templates/` directory."""
    packaged = Path(__file__).resolve().parent.parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "templates"


@cache
def jinja_env() -> Environment:
    # Imported here: the rules import renderer helpers, and `lbgen rules` needs no Jinja.
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        undefined=StrictUndefined,
        bytecode_cache=_bytecode_cache(),
        **_OPTIONS,
    )
    env.filters.update(filters.FILTERS)
    return env


def cache_dir() -> Path | None:
    """Where compiled templates are cached: `$XDG_CACHE_HOME/lbgen` (`~/.cache/lbgen`);
    None when LBGEN_NO_CACHE is set or there is no home directory."""
    if os.environ.get("LBGEN_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME")
    try:
        return (Path(base) if base else Path.home() / ".cache") / "lbgen"
    except RuntimeError:  # no home directory
        return None


def _bytecode_cache() -> BytecodeCache | None:
    """Compiling the templates costs more than rendering them, on every run; like Python's
    `__pycache__`, the compiled code is cached (Jinja checks each entry against the template's
    source). The directory is keyed by everything else the compiled code depends on. Writing
    is skipped under PYTHONDONTWRITEBYTECODE, and a cache that cannot be written only costs time."""
    import jinja2
    from jinja2 import FileSystemBytecodeCache

    from lbgen import __version__

    root = cache_dir()
    if root is None:
        return None
    key = repr((__version__, jinja2.__version__, sys.version, str(templates_dir()), _OPTIONS))
    directory = root / f"templates-{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    class Cache(FileSystemBytecodeCache):
        def load_bytecode(self, bucket: Any) -> None:
            # Cached code is executed: only trust a directory that is ours and that nobody
            # else can write to (as Jinja's own default cache directory requires).
            try:
                info = directory.stat()
            except OSError:
                return
            if info.st_uid != os.getuid() or info.st_mode & 0o022:
                return
            super().load_bytecode(bucket)

        def dump_bytecode(self, bucket: Any) -> None:
            if sys.dont_write_bytecode:
                return
            try:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                super().dump_bytecode(bucket)
            except OSError:
                pass

    return Cache(str(directory))
