"""docs/rules/ and docs/lbgen.schema.json are generated; stale copies fail the suite."""

from __future__ import annotations

import subprocess
import sys

from lbgen.report import explain
from lbgen.rules import ALL_RULES
from tests.conftest import REPO


def test_generated_docs_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_rule_docs.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    # On failure: run `python3 scripts/gen_rule_docs.py` and commit docs/.
    assert result.returncode == 0, result.stderr


def test_rule_pages_are_the_explain_text() -> None:
    for rule in ALL_RULES:
        page = (REPO / "docs" / "rules" / f"{rule.code}.md").read_text("utf-8")
        assert page.endswith(explain(rule)), rule.code


def test_index_links_every_rule() -> None:
    index = (REPO / "docs" / "rules" / "index.md").read_text("utf-8")
    for rule in ALL_RULES:
        assert f"| [{rule.code}]({rule.code}.md) | `{rule.name}` | {rule.severity} |" in index
