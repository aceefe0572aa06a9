"""The generated spec reference must match the model, and field docs must reach the schema."""

from __future__ import annotations

import subprocess
import sys

from lbgen.model.docs import attribute_docstrings, spec_json_schema
from lbgen.model.tiers import NginxStreamTier
from tests.conftest import REPO


def test_docs_spec_md_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_spec_docs.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_attribute_docstrings_become_schema_descriptions() -> None:
    # The docstring under `proxy_timeout` in tiers.py is what editors must show.
    docs = attribute_docstrings(NginxStreamTier)
    assert docs["proxy_timeout"].startswith("Idle time after which both legs are closed")
    schema = spec_json_schema()
    prop = schema["$defs"]["NginxStreamTier"]["properties"]["proxy_timeout"]
    assert prop["description"] == docs["proxy_timeout"]
    assert schema["$schema"].startswith("https://json-schema.org/")
