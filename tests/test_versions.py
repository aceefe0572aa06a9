"""Version knowledge lives in one table (lbgen.versions): one cited row per gate."""

from __future__ import annotations

import re

from lbgen import versions
from lbgen.model.types import Version
from tests.conftest import REPO


def test_every_gate_is_cited_and_listed_once() -> None:
    assert len(set(map(id, versions.GATES))) == len(versions.GATES)
    for gate in versions.GATES:
        assert gate.source.strip() and gate.what.strip(), gate
    gates_defined = {
        name for name, value in vars(versions).items() if isinstance(value, versions.VersionGate)
    }
    listed = {name for name in gates_defined if getattr(versions, name) in versions.GATES}
    assert listed == gates_defined


def test_reached_is_at_or_after_since() -> None:
    gate = versions.NGINX_UPSTREAM_KEEPALIVE_TUNING_SINCE
    assert not gate.reached(Version("1.15.2"))
    assert gate.reached(Version("1.15.3")) and gate.reached(Version("1.30.0"))


# A version literal outside the table is a gate written down twice. Allowed: the table, the
# default version a tier is declared with when the spec says none, and the oldest Kong the
# model accepts (the first row of the bundle table, read through the model's own check).
_LITERAL = re.compile(r"""Version\("[0-9.]+"\)|at_least\("[0-9.]+"\)""")
_ALLOWED = re.compile(r"default_factory=lambda: Version\(|at_least\(\"3\.0\"\)")


def test_no_version_literal_outside_the_table() -> None:
    offenders = []
    for path in sorted((REPO / "lbgen").rglob("*.py")):
        if path.name == "versions.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _LITERAL.search(line) and not _ALLOWED.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
