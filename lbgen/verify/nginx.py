"""Real-consumer check of nginx output: the installed `nginx -t` on every `*/nginx.conf`.

Each rendered `<tier>/nginx.conf` is tested with its tier directory copied to a scratch
directory, so `include` resolves exactly as it will on the server. The check must not
depend on DNS, must not touch the host, and must run as root and as an ordinary user:

- Host names. nginx resolves `server host:port` when it loads. Preferred: run nginx in new
  mount + network namespaces (`unshare`; as an ordinary user inside a user namespace too)
  with a scratch /etc/hosts bind-mounted over the real one, mapping every host name of the
  config to 127.0.0.1: the files are tested verbatim and the empty network namespace proves
  nothing was looked up in DNS. Fallback, where namespaces are unavailable (unprivileged
  user namespaces disabled, no `unshare`): the scratch copy has those names replaced by
  127.0.0.1 and, for an ordinary user, privileged `listen` ports moved above 1024 (nginx -t
  binds them); those are adaptations of the file, reported as such.
- Host side effects. `nginx -t` creates the pid file and the temp directories and opens the
  log files of the config (chowning the directories when root). The run gets `pid` via -g and
  the scratch copy's http {} gets access_log and *_temp_path lines pointing into the scratch
  directory, only where the config sets none: they stand for nginx's compiled-in paths and
  change nothing the config says, so they are not counted as adaptations.
- Files the config reads: missing ssl_certificate files are replaced by a throwaway
  self-signed pair (openssl), and the stream module is loaded the way the installed build
  needs it when that differs from the build the file is written for (its `FileTarget.build`,
  recorded by the render). Both change the file: the result says "passed after adapting".

The installed nginx's version is compared with the version the file was written for (its
`FileTarget.version`; the `# lbgen-target:` comment says the same to a reader): a pass on another version is "proven on X, not on declared Y"; a
failure on an older nginx caused by a directive newer than it (and not newer than the
declared version) is "not provable here", not a failure of the file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Literal

from lbgen import nginx_harness, versions
from lbgen.model.types import Version, is_ip_address
from lbgen.nginx_harness import (
    LISTEN_RE,
    NGINX_ENV,
    NginxBuild,
    check_argv,
    find_nginx,
    has_stream_block,
)
from lbgen.render._base import FileTarget
from lbgen.verify._base import CheckResult, file_targets

TIMEOUT_SECONDS = 120

__all__ = ["NGINX_ENV", "NginxBuild", "check_config", "find_nginx", "verify"]

Isolation = Literal["namespace", "rewrite"]

_SERVER_RE = re.compile(
    r"^(?P<lead>\s*server\s+)(?P<host>[A-Za-z0-9.-]+):(?P<port>\d+)(?=[\s;])", re.MULTILINE
)
_CERT_RE = re.compile(r"^\s*ssl_certificate(?P<key>_key)?\s+(?P<path>/\S+?)\s*;", re.MULTILINE)

# Failures whose cause is a directive newer than the installed nginx: (nginx's message, the
# version that introduced it, hint). Sources: nginx.org module docs ("appeared in version"),
# CHANGES 1.25.1 (http2), 1.29.7 (keepalive default/local/0), 1.27.3 (server … resolve),
# 1.31.0 (least_time in open source).
_VERSION_GATED = (
    ('unknown directive "http2"', versions.NGINX_HTTP2_DIRECTIVE_SINCE.since,
     "`http2 on` needs nginx ≥ 1.25.1"),
    ('invalid parameter "local"', versions.NGINX_KEEPALIVE_BY_DEFAULT.since,
     "`keepalive … local` needs nginx ≥ 1.29.7"),
    ('invalid value "0" in "keepalive"', versions.NGINX_KEEPALIVE_BY_DEFAULT.since,
     "`keepalive 0` (no pool) is valid from nginx 1.29.7"),
    ('unknown directive "keepalive_time"', versions.NGINX_UPSTREAM_KEEPALIVE_TIME_SINCE.since,
     "upstream keepalive_time needs nginx ≥ 1.19.10"),
    ('invalid parameter "resolve"', versions.NGINX_UPSTREAM_RESOLVE_SINCE.since,
     "`server … resolve` is open source since nginx 1.27.3"),
    ('unknown directive "least_time"', versions.NGINX_LEAST_TIME.since,
     "least_time is open source only since nginx 1.31.0"),
)
# Hints for failures whose cause is the installed build rather than the config.
_HINTS = (
    *((needle, hint) for needle, _since, hint in _VERSION_GATED),
    ('unknown directive "set_real_ip_from"', "this nginx was built without the realip module"),
    ('unknown directive "stream"', "this nginx has no stream module loaded"),
)


def verify(
    files: Mapping[str, str], schemas_dir: Path | None, targets: Mapping[str, FileTarget] | None = None
) -> list[CheckResult]:
    confs = sorted(path for path in files if PurePosixPath(path).name == "nginx.conf")
    if not confs:
        return []
    nginx = find_nginx()
    if nginx is None:
        reason = (
            "nginx is not installed (Debian/Ubuntu: apt-get install nginx-light "
            f"libnginx-mod-stream), or set {NGINX_ENV} to an nginx binary"
        )
        return [CheckResult(f"nginx -t {path}", "skipped", reason) for path in confs]
    build = nginx_harness.nginx_build(nginx)
    known = file_targets(files, targets)
    return [check_config(path, files, build, target=known.get(path)) for path in confs]


def check_config(
    conf_path: str,
    files: Mapping[str, str],
    build: NginxBuild,
    *,
    target: FileTarget | None = None,
    isolation: Isolation | None = None,
) -> CheckResult:
    """`nginx -t` on one rendered nginx.conf; `target`: what it was written for (default: as
    the render of `files` recorded); `isolation` forces a mode (tests)."""
    if target is None:
        target = file_targets(files).get(conf_path)
    name = f"nginx -t {conf_path}"
    tier_dir = PurePosixPath(conf_path).parent
    notes: list[str] = []
    adapted: list[str] = []
    declared = target.version if target is not None else None
    versions: dict[str, str] = {}
    if declared is not None and build.version is not None and declared != build.version:
        versions = {"tested_on": f"nginx {build.version}", "declared": f"nginx {declared}"}
    with tempfile.TemporaryDirectory(prefix="lbgen-nginx-") as scratch_name:
        scratch = Path(scratch_name)
        root = scratch / "conf"
        (scratch / "temp").mkdir()
        texts = nginx_harness.tier_files(files, tier_dir)
        conf_rel = PurePosixPath("nginx.conf")

        conf_text = texts[conf_rel]
        if has_stream_block(conf_text):
            declared_build = target.build if target is not None else None
            conf_text, problem = nginx_harness.load_stream_module(conf_text, build, adapted, declared_build)
            if problem is not None:
                return CheckResult(name, "skipped", "; ".join([problem, *adapted, *notes]))
        texts[conf_rel] = nginx_harness.harness_http(conf_text, scratch)

        texts = _replace_missing_certificates(texts, scratch, adapted, notes)

        mode = isolation or _isolation_available()
        hosts = sorted(_host_names(texts.values()))
        if mode == "rewrite":
            texts = _rewrite_for_fallback(texts, adapted)
        elif hosts:
            notes.append(
                f"host names resolved to 127.0.0.1 in a private /etc/hosts: {', '.join(hosts)}"
            )

        for rel, text in texts.items():
            copy = root / rel
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(text, encoding="utf-8")

        # Inside a user namespace nginx believes it is root and chowns its temp directories
        # to the worker user; only root (the caller's own uid) is mapped there.
        command = check_argv(build, root, scratch, texts[conf_rel],
                             as_root=mode == "namespace" and os.geteuid() != 0)
        if mode == "namespace":
            command = _in_namespace(command, scratch, hosts)
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            return CheckResult(
                name, "failed", "; ".join([f"nginx -t took over {TIMEOUT_SECONDS}s", *notes]),
                adapted=tuple(adapted), **versions,
            )
        output = (proc.stderr + proc.stdout).replace(str(root) + "/", f"{tier_dir}/")
        if proc.returncode == 0:
            return CheckResult(
                name, "passed", "; ".join(notes), adapted=tuple(adapted), **versions
            )
        hints = [hint for needle, hint in _HINTS if needle in output]
        newer = _newer_than_installed(output, build.version, declared)
        if newer is not None:
            # Right for the declared version, unknown to this one: nothing is proven either way.
            return CheckResult(
                name,
                "not provable",
                "\n".join([
                    (
                        f"nginx {build.version} rejects a directive of nginx {newer} that the "
                        f"declared nginx {declared} has: {output.strip()}"
                    ),
                    *hints,
                    f"run the check with an nginx ≥ {newer} (set {NGINX_ENV}) to prove the file",
                    *notes,
                ]),
                adapted=tuple(adapted),
                **versions,
            )
        return CheckResult(
            name, "failed", "\n".join([output.strip(), *hints, *notes]),
            adapted=tuple(adapted), **versions,
        )


def _newer_than_installed(
    output: str, installed: Version | None, declared: Version | None
) -> Version | None:
    """The version of the directive nginx rejected, when it is newer than the installed nginx
    and not newer than the declared one (the file is right for its target)."""
    if installed is None or declared is None or declared <= installed:
        return None
    for needle, since, _hint in _VERSION_GATED:
        if needle in output and installed < since <= declared:
            return since
    return None


def _replace_missing_certificates(
    texts: dict[PurePosixPath, str], scratch: Path, adapted: list[str], notes: list[str]
) -> dict[PurePosixPath, str]:
    missing = sorted(
        {
            m.group("path")
            for text in texts.values()
            for m in _CERT_RE.finditer(text)
            if not Path(m.group("path")).is_file()
        }
    )
    if not missing:
        return texts
    openssl = shutil.which("openssl")
    if openssl is None:
        notes.append(
            f"certificate files {', '.join(missing)} do not exist here and openssl is not installed"
        )
        return texts
    cert, key = scratch / "selfsigned.crt", scratch / "selfsigned.key"
    made = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=lbgen-verify",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if made.returncode != 0:
        notes.append(
            f"certificate files {', '.join(missing)} do not exist here and openssl could not "
            f"make a stand-in: {made.stderr.strip()}"
        )
        return texts
    adapted.append(
        f"certificate files not present on this machine were replaced by a throwaway "
        f"self-signed pair: {', '.join(missing)}"
    )

    def swap(match: re.Match[str]) -> str:
        if match.group("path") not in missing:
            return match.group(0)
        replacement = key if match.group("key") else cert
        return match.group(0).replace(match.group("path"), str(replacement))

    return {rel: _CERT_RE.sub(swap, text) for rel, text in texts.items()}


def _host_names(texts: Iterable[str]) -> set[str]:
    names: set[str] = set()
    for text in texts:
        for match in _SERVER_RE.finditer(text):
            host = match.group("host")
            if not is_ip_address(host):
                names.add(host.lower())
    return names


def _rewrite_for_fallback(
    texts: dict[PurePosixPath, str], adapted: list[str]
) -> dict[PurePosixPath, str]:
    """No namespaces: point host names at 127.0.0.1; as non-root, move privileged ports."""
    renamed: set[str] = set()

    def local(match: re.Match[str]) -> str:
        if is_ip_address(match.group("host")):
            return match.group(0)
        renamed.add(match.group("host").lower())
        return f"{match.group('lead')}127.0.0.1:{match.group('port')}"

    texts = {rel: _SERVER_RE.sub(local, text) for rel, text in texts.items()}
    if renamed:
        adapted.append(
            "no private /etc/hosts possible here (unshare unavailable), so the check replaced "
            f"these host names by 127.0.0.1 in its copy: {', '.join(sorted(renamed))}"
        )
    if os.geteuid() != 0:
        used = {int(m.group("port")) for text in texts.values() for m in LISTEN_RE.finditer(text)}
        moved: dict[int, int] = {}
        candidate = 20000
        for port in sorted(p for p in used if p < 1024):
            while candidate in used or candidate in moved.values():
                candidate += 1
            moved[port] = candidate

        def unprivileged(match: re.Match[str]) -> str:
            port = int(match.group("port"))
            return f"{match.group('lead')}{moved.get(port, port)}"

        if moved:
            texts = {rel: LISTEN_RE.sub(unprivileged, text) for rel, text in texts.items()}
            adapted.append(
                "nginx -t binds the listen ports and this user may not bind below 1024, so the "
                "check moved " + ", ".join(f"{a}→{b}" for a, b in sorted(moved.items()))
            )
    return texts


def _unshare_prefix() -> list[str]:
    unshare = shutil.which("unshare") or "unshare"
    if os.geteuid() == 0:
        return [unshare, "--mount", "--net"]
    return [unshare, "--user", "--map-root-user", "--mount", "--net"]


def _in_namespace(command: list[str], scratch: Path, hosts: list[str]) -> list[str]:
    hosts_file = scratch / "hosts"
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost"]
    lines += [f"127.0.0.1 {host}" for host in hosts]
    hosts_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    script = 'hosts="$1"; shift; mount --bind "$hosts" /etc/hosts && exec "$@"'
    return [*_unshare_prefix(), "--", "sh", "-c", script, "sh", str(hosts_file), *command]


@cache
def _isolation_available() -> Isolation:
    """Whether this process can run nginx in private mount + network namespaces."""
    if shutil.which("unshare") is None:
        return "rewrite"
    with tempfile.TemporaryDirectory(prefix="lbgen-nginx-probe-") as scratch_name:
        command = _in_namespace(["true"], Path(scratch_name), [])
        try:
            proc = subprocess.run(command, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "rewrite"
    return "namespace" if proc.returncode == 0 else "rewrite"
