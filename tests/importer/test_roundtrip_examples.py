"""Every example that renders imports back to a spec with the same effective values.

What cannot round-trip, and why:
- kic.yaml: Kong run by the Kong Ingress Controller is configured from Kubernetes resources
  (KongUpstreamPolicy, annotations), which `lbgen import` does not read: it reads Kong's
  declarative config and kong.conf.
- Not in any rendered file, so given with --assume (`roundtrip.assumptions`): the spec's and the
  tiers' names, the Kubernetes version, the edge's own instances, where Kong runs, the
  platform, and each service's replicas and app server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lbgen.io.loader import load_spec_file
from tests.importer.roundtrip import effective, import_rendered, write_rendered

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p.name != "kic.yaml")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_rendered_example_imports_to_the_same_plan(example: Path, tmp_path: Path) -> None:
    spec = load_spec_file(example).spec
    write_rendered(spec, tmp_path, example.name)
    result = import_rendered(spec, tmp_path)
    assert effective(result.loaded.spec) == effective(spec)
    assert result.skipped == [], [str(s) for s in result.skipped]
