"""Shared fixtures: paths to the repository's examples and to ../shared/schemas."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def shared_schemas_dir() -> Path:
    """`../shared/schemas` beside the checkout (CI lays it there); LBGEN_SCHEMAS overrides."""
    override = os.environ.get("LBGEN_SCHEMAS")
    return Path(override) if override else REPO.parent / "shared" / "schemas"


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    path = shared_schemas_dir()
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"schemas directory {path} is missing in CI")
        pytest.skip(f"schemas directory {path} not found (set LBGEN_SCHEMAS)")
    return path


def _require(tool: str, why: str) -> None:
    """Skip locally, but fail in CI: real-consumer checks must run there."""
    message = f"{tool} is not installed: {why}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must install it: see .ci/run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    import shutil

    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path is None:
        _require("nginx", "Debian packages nginx-light and libnginx-mod-stream")
    assert path is not None
    return path
