"""Snapshots of every example's rendered output: one readable file per rendered file.

They pin output so that a diff shows up in review whenever behaviour changes; the reasons
the output is right are stated by the per-renderer tests in tests/render/.
Update with `python3 -m pytest tests/test_snapshots.py --snapshot-update` and commit.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

import lbgen
from tests.conftest import EXAMPLES


class _TextSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT


class ConfSnapshot(_TextSnapshot):
    file_extension = "conf"


class YamlSnapshot(_TextSnapshot):
    file_extension = "yaml"


class MarkdownSnapshot(_TextSnapshot):
    file_extension = "md"


_BY_SUFFIX: dict[str, type[_TextSnapshot]] = {
    ".conf": ConfSnapshot,
    ".yaml": YamlSnapshot,
    ".md": MarkdownSnapshot,
}


def _rendered_files() -> list[Any]:
    params = []
    for example in EXAMPLES:
        files = lbgen.render(lbgen.load(example))
        for path, content in files.items():
            test_id = f"{example.stem}--{path.replace('/', '--').replace('.', '_')}"
            params.append(pytest.param(path, content, id=test_id))
    return params


@pytest.mark.parametrize(("path", "content"), _rendered_files())
def test_rendered_file_matches_snapshot(path: str, content: str, snapshot: Any) -> None:
    extension = _BY_SUFFIX[PurePosixPath(path).suffix]
    assert content == snapshot.use_extension(extension)
