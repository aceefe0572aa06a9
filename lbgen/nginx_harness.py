"""Running the installed nginx on rendered files: what `render --verify` and `lbgen lab` share.

`render --verify` tests each rendered nginx.conf with `nginx -t`; `lbgen lab` serves traffic
with it. Both copy a tier's rendered files into a scratch prefix and make them runnable there
with the same few changes: the stream module loaded the way the installed build needs it,
http {}'s access log and temp paths pointed into the scratch directory where the config sets
none (they stand for nginx's compiled-in paths and route nothing), and, for the lab, every
`listen PORT` bound to an instance address. This module knows nginx and plain text only: it
imports no renderer, rule or plan, so both callers (and the tests that run nginx) can use it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Literal

from lbgen import versions
from lbgen.model.types import Version

NGINX_ENV = "LBGEN_NGINX"
"""Path of the nginx binary to use, e.g. a newer build than the distribution's."""

LISTEN_RE = re.compile(r"^(?P<lead>\s*listen\s+)(?P<port>\d+)(?=[\s;])", re.MULTILINE)
"""A `listen PORT` with no address (the rendered files' form)."""
HTTP_BLOCK_RE = re.compile(r"^(?P<indent>[ \t]*)http\s*\{[^\n]*\n", re.MULTILINE)
STREAM_BLOCK_RE = re.compile(r"^\s*stream\s*\{", re.MULTILINE)
LOAD_STREAM_RE = re.compile(
    r"^\s*load_module\s+(?P<path>\S*ngx_stream_module\.so)\s*;[^\n]*\n?", re.MULTILINE
)
DIRECTIVE_RE = "^\\s*{name}\\s"
"""`DIRECTIVE_RE.format(name=…)`: a line that sets that directive."""
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass(frozen=True)
class NginxBuild:
    """What `nginx -V` says about the installed nginx."""

    path: str
    version: Version | None
    stream: Literal["static", "dynamic", "none"]
    modules_path: Path
    error_log_option: bool
    """`-e` exists (1.19.5): the start-up error log can go to stderr."""


def find_nginx() -> str | None:
    """$LBGEN_NGINX, else `nginx` on PATH, else /usr/sbin/nginx (Debian's path for root)."""
    override = os.environ.get(NGINX_ENV)
    if override:
        return override if Path(override).is_file() else None
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None


@cache
def nginx_build(path: str) -> NginxBuild:
    """`nginx -V` of the binary at `path`, read once per process."""
    proc = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=30, check=False)
    text = proc.stderr + proc.stdout
    found = re.search(r"nginx version: \S+?/(\d+\.\d+\.\d+)", text)
    version = Version(found.group(1)) if found else None
    if "--with-stream=dynamic" in text:
        stream: Literal["static", "dynamic", "none"] = "dynamic"
    elif re.search(r"--with-stream(\s|$)", text):
        stream = "static"
    else:
        stream = "none"
    modules = re.search(r"--modules-path=(\S+)", text)
    prefix = re.search(r"--prefix=(\S+)", text)
    modules_path = (
        Path(modules.group(1))
        if modules
        else Path(prefix.group(1) if prefix else "/usr/local/nginx") / "modules"
    )
    return NginxBuild(
        path=path,
        version=version,
        stream=stream,
        modules_path=modules_path,
        error_log_option=version is None or versions.NGINX_ERROR_LOG_OPTION.reached(version),
    )


def tier_files(files: Mapping[str, str], tier_dir: PurePosixPath) -> dict[PurePosixPath, str]:
    """Files under the tier's directory, relative to it (what nginx.conf can include)."""
    out: dict[PurePosixPath, str] = {}
    for path, text in files.items():
        pure = PurePosixPath(path)
        if tier_dir != PurePosixPath(".") and tier_dir not in pure.parents:
            continue
        rel = pure.relative_to(tier_dir)
        if rel.is_absolute() or ".." in rel.parts:
            continue
        out[rel] = text
    return out


def load_stream_module(
    conf_text: str, build: NginxBuild, adapted: list[str], declared_build: str | None
) -> tuple[str, str | None]:
    """Make `stream {}` loadable by this build; returns (text, reason to skip or None).

    The file loads the module the way its declared build needs (`build debian`: a
    `load_module` line; `build nginx.org`: none). When the installed build differs, the copy
    is changed to match it and the change is recorded in `adapted`.
    """
    loaded = LOAD_STREAM_RE.search(conf_text)
    build_name = declared_build or ("debian" if loaded else "nginx.org")
    written_for = "an nginx.org" if build_name == "nginx.org" else f"a {build_name}"
    if build.stream == "none":
        return conf_text, "the installed nginx was built without the stream module"
    if build.stream == "static":
        if loaded:
            adapted.append(
                f"dropped `load_module {loaded.group('path')}`: the installed nginx has the "
                f"stream module built in, the file is written for {written_for} build with "
                "a dynamic module"
            )
            conf_text = LOAD_STREAM_RE.sub("", conf_text, count=1)
        return conf_text, None
    module = build.modules_path / "ngx_stream_module.so"
    if not module.is_file():
        return conf_text, (
            f"the installed nginx builds stream as a dynamic module but {module} is missing "
            "(Debian/Ubuntu: apt-get install libnginx-mod-stream)"
        )
    if loaded is None:
        adapted.append(
            f"added `load_module {module};`: the installed nginx has the stream module only as "
            f"a dynamic module, the file is written for {written_for} build with stream "
            "built in (set build: debian on the tier for Debian/Ubuntu packages)"
        )
        return f"load_module {module};\n" + conf_text, None
    if Path(loaded.group("path")) != module:
        adapted.append(
            f"loaded the stream module from {module} instead of {loaded.group('path')} "
            "(the installed nginx's --modules-path)"
        )
        return conf_text.replace(loaded.group("path"), str(module), 1), None
    return conf_text, None


def harness_http(conf_text: str, scratch: Path) -> str:
    """Point access_log and temp paths of http {} into the scratch directory."""
    block = HTTP_BLOCK_RE.search(conf_text)
    if block is None:
        return conf_text
    indent = block.group("indent") + "    "
    lines = []
    if not re.search(DIRECTIVE_RE.format(name="access_log"), conf_text, re.MULTILINE):
        lines.append(f"{indent}access_log {scratch}/access.log;\n")
    for module in TEMP_PATHS:
        directive = f"{module}_temp_path"
        if not re.search(DIRECTIVE_RE.format(name=directive), conf_text, re.MULTILINE):
            lines.append(f"{indent}{directive} {scratch}/temp/{module};\n")
    return conf_text[: block.end()] + "".join(lines) + conf_text[block.end() :]


def has_stream_block(conf_text: str) -> bool:
    return STREAM_BLOCK_RE.search(conf_text) is not None


def bind_listens(conf_text: str, address: str) -> str:
    """Every `listen PORT` as `listen ADDRESS:PORT` (one instance's own address)."""
    return LISTEN_RE.sub(lambda m: f"{m.group('lead')}{address}:{m.group('port')}", conf_text)


def serve_argv(build: NginxBuild, run_dir: Path) -> tuple[str, ...]:
    """nginx serving `run_dir/nginx.conf` in the foreground with prefix, pid file and error log
    in `run_dir` (as root: the lab's namespace has no other user)."""
    globals_ = f"daemon off; master_process on; pid {run_dir}/nginx.pid; user root;"
    argv = [build.path, "-p", f"{run_dir}/", "-c", f"{run_dir}/nginx.conf"]
    if build.error_log_option:
        argv += ["-e", f"{run_dir}/error.log"]
    return (*argv, "-g", f"{globals_} error_log {run_dir}/error.log notice;")


def check_argv(build: NginxBuild, root: Path, scratch: Path, conf_text: str, *, as_root: bool) -> list[str]:
    """`nginx -t -q` of `root/nginx.conf` with prefix `root`, its pid file in `scratch`, its
    start-up errors on stderr; `as_root`: add `user root;` where the config sets no user."""
    globals_ = []
    if not re.search(DIRECTIVE_RE.format(name="pid"), conf_text, re.MULTILINE):
        globals_.append(f"pid {scratch}/nginx.pid;")
    if not re.search(DIRECTIVE_RE.format(name="error_log"), conf_text, re.MULTILINE):
        globals_.append("error_log stderr;")
    if as_root and not re.search(DIRECTIVE_RE.format(name="user"), conf_text, re.MULTILINE):
        globals_.append("user root;")
    command = [build.path, "-t", "-q", "-p", f"{root}/", "-c", str(root / "nginx.conf")]
    if build.error_log_option:
        command += ["-e", "stderr"]
    if globals_:
        command += ["-g", " ".join(globals_)]
    return command
