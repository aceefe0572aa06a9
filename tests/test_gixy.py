"""gixy-ng finds nothing of medium or higher severity in any rendered example nginx config.

Issue 4 item 7. gixy-ng (PyPI `gixy-ng`, a test dependency) is run through its command line,
`python -m gixy -f json`, the interface its users script against; one run covers every
config. It is pointed at each rendered `<tier>/nginx.conf`, so it reads the snippet through
the `include` as nginx does.

gixy is quiet about what it could not read: a missing include or a file it cannot parse
gives a warning on stderr, exit 0 and no finding (tried with gixy-ng 0.2.59). So every config
is also checked as a canary copy whose include has `error_log off;` appended, which gixy
reports (error_log_off, MEDIUM) in the include file: that finding proves gixy read the
include of that very tree. And stderr must carry no warning.

Run without `--nginx-version`, gixy's CVE check (nginx_cves) stays off: it audits the nginx
binary's version, which a rendered config does not determine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

import lbgen
from tests.conftest import EXAMPLES

GIXY = (sys.executable, "-m", "gixy")
BLOCKING = ("MEDIUM", "HIGH")
"""gixy severities (gixy/core/severity.py: UNSPECIFIED < LOW < MEDIUM < HIGH) that fail."""
CANARY = "error_log off;\n"
CANARY_PLUGIN = "error_log_off"
TIMEOUT_SECONDS = 120

Finding = dict[str, Any]


@dataclass(frozen=True)
class GixyRun:
    findings: list[Finding]
    stderr: str

    def for_config(self, conf: Path) -> list[Finding]:
        return [f for f in self.findings if Path(f["path"]) == conf]


def run_gixy(confs: list[Path]) -> GixyRun:
    proc = subprocess.run(
        [*GIXY, "-f", "json", *map(str, confs)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    # Exit 0: nothing found; 1: findings or a configuration error (gixy/cli/main.py).
    assert proc.returncode in (0, 1), f"gixy exited {proc.returncode}:\n{proc.stderr}"
    findings: list[Finding] = json.loads(proc.stdout)
    return GixyRun(findings, proc.stderr)


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f["severity"] in BLOCKING]


def describe(findings: list[Finding]) -> str:
    return "\n".join(
        f"  {f['severity']} [{f['plugin']}] {f['file']}:{f['line']}: {f['summary']} "
        f"({f['reason']})\n    {f['config'].strip()}"
        for f in findings
    )


def assert_no_blocking(conf: Path, findings: list[Finding]) -> None:
    found = blocking(findings)
    assert not found, f"gixy findings of medium or higher severity in {conf}:\n{describe(found)}"


def write_tree(files: Mapping[str, str], root: Path) -> list[Path]:
    """Write rendered files under `root`; returns the nginx.conf paths."""
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return sorted(root / rel for rel in files if PurePosixPath(rel).name == "nginx.conf")


def includes_of(conf: Path) -> list[Path]:
    """The tier's snippet(s): every file beside or below nginx.conf other than itself."""
    return sorted(p for p in conf.parent.rglob("*.conf") if p != conf)


@dataclass(frozen=True)
class Audit:
    confs: dict[str, list[Path]]
    """Example stem → its rendered nginx.conf files."""
    canaries: dict[Path, Path]
    """Rendered nginx.conf → its canary copy."""
    run: GixyRun


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Audit:
    root = tmp_path_factory.mktemp("gixy")
    confs: dict[str, list[Path]] = {}
    canaries: dict[Path, Path] = {}
    for example in EXAMPLES:
        files = lbgen.render(lbgen.load(example))
        confs[example.stem] = write_tree(files, root / example.stem)
        canary_root = root / f"{example.stem}.canary"
        for canary_conf in write_tree(files, canary_root):
            for include in includes_of(canary_conf):
                include.write_text(include.read_text(encoding="utf-8") + CANARY, encoding="utf-8")
            canaries[root / example.stem / canary_conf.relative_to(canary_root)] = canary_conf
    everything = [c for group in confs.values() for c in group] + list(canaries.values())
    return Audit(confs, canaries, run_gixy(everything))


def test_every_nginx_tier_of_every_example_is_audited(audit: Audit) -> None:
    """The test below would pass vacuously for a tier whose config was not written."""
    for example in EXAMPLES:
        spec = lbgen.load(example).spec
        tiers = {tier.name for tier in (spec.edge, spec.l4) if tier is not None}
        assert {conf.parent.name for conf in audit.confs[example.stem]} == tiers
    assert sum(len(group) for group in audit.confs.values()) >= 2


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_gixy_finds_nothing_medium_or_higher(audit: Audit, example: Path) -> None:
    # gixy reports files it could not find or parse on stderr only (module docstring).
    assert audit.run.stderr == ""
    for conf in audit.confs[example.stem]:
        assert_no_blocking(conf, audit.run.for_config(conf))
        # The canary copy proves gixy read this tree's include (module docstring).
        canary = audit.canaries[conf]
        seen = [
            (f["plugin"], Path(f["file"]))
            for f in audit.run.for_config(canary)
            if f["plugin"] == CANARY_PLUGIN
        ]
        assert seen == [(CANARY_PLUGIN, include) for include in includes_of(canary)], (
            f"gixy did not report the canary in the include of {canary}: {seen}"
        )


# --- the check can fail ------------------------------------------------------------------------


BAD_LOCATION = """
server {
    listen 8080;
    server_tokens off;
    add_header X-Frame-Options DENY always;

    location /fetch {
        # SSRF: the upstream is whatever the client puts in ?target=
        proxy_pass http://$arg_target;
    }
}
"""


def test_the_check_fails_on_a_bad_config(tmp_path: Path) -> None:
    """A rendered tree with a deliberately bad server block added to its include: gixy flags
    it (HIGH ssrf), and assert_no_blocking fails with the finding in its message."""
    seed = next(e for e in EXAMPLES if e.stem == "seed")
    files = dict(lbgen.render(lbgen.load(seed)))
    [conf, *_] = [c for c in write_tree(files, tmp_path) if c.parent.name == "edge"]
    [include] = includes_of(conf)
    include.write_text(include.read_text(encoding="utf-8") + BAD_LOCATION, encoding="utf-8")

    findings = run_gixy([conf]).findings
    ssrf = [f for f in findings if f["plugin"] == "ssrf"]
    assert [(f["severity"], Path(f["file"])) for f in ssrf] == [("HIGH", include)], findings
    with pytest.raises(AssertionError) as failure:
        assert_no_blocking(conf, findings)
    assert "HIGH [ssrf]" in str(failure.value)
    assert "proxy_pass http://$arg_target" in str(failure.value)


def test_the_check_fails_without_server_tokens_off(tmp_path: Path) -> None:
    """lbgen's `server_tokens off` is what keeps gixy's version_disclosure (HIGH) quiet."""
    seed = next(e for e in EXAMPLES if e.stem == "seed")
    files = dict(lbgen.render(lbgen.load(seed)))
    [conf, *_] = [c for c in write_tree(files, tmp_path) if c.parent.name == "edge"]
    [include] = includes_of(conf)
    text = include.read_text(encoding="utf-8")
    assert "server_tokens off;" in text
    include.write_text(text.replace("server_tokens off;", ""), encoding="utf-8")

    findings = run_gixy([conf]).findings
    assert [(f["plugin"], f["severity"]) for f in blocking(findings)] == [
        ("version_disclosure", "HIGH")
    ], findings
