"""Harness of the runtime proof: real nginx on loopback, and stand-ins for the next hops.

`start_nginx` runs one rendered tier (its `nginx.conf` and include) as one instance of that
tier. It reuses what `lbgen.verify.nginx` does to make a rendered tree runnable (scratch
access_log/temp paths in http {}, the stream module loaded the way this build needs it, pid
and error_log on the command line), and changes one thing more: `listen PORT` becomes
`listen <instance address>:PORT`, so that several instances of a tier can share a port on one
machine and nothing listens beyond 127.0.0.0/8. `assert_same_directives` proves with
crossplane that the copy nginx runs differs from the rendered tree in nothing else.

`StandIn` is a threaded HTTP/1.1 server standing in for a Kong node or a pod. It records each
TCP connection it accepts, the PROXY v1 header it starts with (when told to expect one) and
every request on it, and answers 200 with a JSON body naming itself.
"""

from __future__ import annotations

import contextlib
import grp
import ipaddress
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path, PurePosixPath
from socketserver import ThreadingTCPServer
from typing import Any

import crossplane

from lbgen.nginx_harness import (
    LISTEN_RE,
    STREAM_BLOCK_RE,
    NginxBuild,
    harness_http,
    load_stream_module,
    tier_files,
)
from lbgen.verify._base import file_targets

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
SOCKET_TIMEOUT = 5.0
"""Every socket of the harness gives up after this long: nothing can hang the test run."""

# PROXY protocol v1 (haproxy doc/proxy-protocol.txt, 2.1): one line of at most 107 bytes,
# "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF; ports in decimal without
# leading zeros.
PROXY_V1_MAX = 107
_PROXY_V1_RE = re.compile(
    rb"PROXY (?P<family>TCP4|TCP6) (?P<src>[0-9A-Fa-f.:]+) (?P<dst>[0-9A-Fa-f.:]+) "
    rb"(?P<sport>0|[1-9][0-9]{0,4}) (?P<dport>0|[1-9][0-9]{0,4})\r\n"
)


# --- addresses and ports ---------------------------------------------------------------------


def require_loopback(*addresses: str) -> None:
    """Fail (never skip) when an address is outside 127.0.0.0/8 or cannot be bound here."""
    for address in addresses:
        assert ipaddress.ip_address(address) in LOOPBACK, f"{address} is not a loopback address"
        with socket.socket() as probe:
            try:
                probe.bind((address, 0))
            except OSError as exc:  # pragma: no cover - Linux binds all of 127/8
                raise AssertionError(f"cannot bind {address} here: {exc}") from exc


def free_port(addresses: tuple[str, ...]) -> int:
    """A port no one listens on at any of `addresses` right now (the kernel picks it)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind((addresses[0], 0))
            port: int = first.getsockname()[1]
            if all(_bindable(address, port) for address in addresses[1:]):
                return port
    raise AssertionError(f"no common free port on {addresses}")


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def nobody_listens(address: str, port: int) -> bool:
    """No socket listens on address:port (TIME_WAIT leftovers do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
            probe.listen(1)
        except OSError:
            return False
    return True


def is_listening(address: str, port: int) -> bool:
    """A socket listens on address:port, per /proc/net/tcp.

    Read, not probed: a test connection would travel through a stream proxy to the stand-ins
    and be counted there.
    """
    local = f"{int.from_bytes(socket.inet_aton(address), sys.byteorder):08X}:{port:04X}"
    listen_state = "0A"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == listen_state:
            return True
    return False


def kernel_source_address(destination: str) -> str:
    """The source address the kernel gives an unbound socket connecting to `destination`.

    nginx does not bind its upstream sockets unless told to (proxy_bind, which lbgen does not
    render), so this is the address a proxy on this machine appears to come from.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((destination, 9))  # UDP connect sends nothing; it only picks a route
        source: str = probe.getsockname()[0]
        return source


# --- PROXY protocol v1 -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyHeader:
    family: str
    source: str
    destination: str
    source_port: int
    destination_port: int


def parse_proxy_v1(line: bytes) -> ProxyHeader:
    """Parse one PROXY v1 line strictly; ValueError says what is wrong with it."""
    if len(line) > PROXY_V1_MAX:
        raise ValueError(f"PROXY v1 line longer than {PROXY_V1_MAX} bytes: {line[:120]!r}")
    match = _PROXY_V1_RE.fullmatch(line)
    if match is None:
        raise ValueError(f"not a PROXY v1 TCP4/TCP6 line: {line!r}")
    family = match["family"].decode()
    version = 4 if family == "TCP4" else 6
    addresses = []
    for part in ("src", "dst"):
        text = match[part].decode()
        address = ipaddress.ip_address(text)  # ValueError for 1.2.3.999, 01.2.3.4, …
        if address.version != version:
            raise ValueError(f"{family} header with an IPv{address.version} address {text}")
        addresses.append(text)
    ports = [int(match["sport"]), int(match["dport"])]
    if any(port > 65535 for port in ports):
        raise ValueError(f"port out of range in {line!r}")
    return ProxyHeader(family, addresses[0], addresses[1], ports[0], ports[1])


# --- stand-in HTTP server --------------------------------------------------------------------


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    version: str
    headers: tuple[tuple[str, str], ...]

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def one(self, name: str) -> str:
        values = self.all(name)
        assert len(values) == 1, f"expected one {name} header, got {values} in {self.headers}"
        return values[0]


@dataclass
class SeenConnection:
    peer: tuple[str, int]
    proxy: ProxyHeader | None = None
    error: str | None = None
    requests: list[SeenRequest] = field(default_factory=list)


class _Server(ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = True  # server_close() waits for the handlers (bounded by their timeout)

    def __init__(self, name: str, address: tuple[str, int], *, expect_proxy: bool) -> None:
        self.name = name
        self.expect_proxy = expect_proxy
        self.connections: list[SeenConnection] = []
        self.lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep the connection open when the request allows it
    timeout = SOCKET_TIMEOUT
    server: _Server
    seen: SeenConnection

    def handle(self) -> None:
        host, port = self.client_address[:2]
        self.seen = SeenConnection((str(host), int(port)))
        with self.server.lock:
            self.server.connections.append(self.seen)
        if self.server.expect_proxy:
            line = self.rfile.readline(PROXY_V1_MAX + 1)
            try:
                self.seen.proxy = parse_proxy_v1(line)
            except ValueError as exc:
                self.seen.error = str(exc)
                return
        super().handle()

    def do_GET(self) -> None:
        self.seen.requests.append(
            SeenRequest(
                self.command,
                self.path,
                self.request_version,
                tuple((key, value) for key, value in self.headers.items()),
            )
        )
        body = json.dumps({"served_by": self.server.name, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test asserts on the records, not on a log


class StandIn:
    """One next-hop instance (a Kong node, a pod) listening on address:port."""

    def __init__(self, name: str, address: str, port: int, *, expect_proxy: bool) -> None:
        self.name = name
        self.address = address
        self.port = port
        self._server = _Server(name, (address, port), expect_proxy=expect_proxy)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def connections(self) -> list[SeenConnection]:
        with self._server.lock:
            return list(self._server.connections)

    @property
    def requests(self) -> list[SeenRequest]:
        return [request for conn in self.connections for request in conn.requests]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(SOCKET_TIMEOUT)
        assert not self._thread.is_alive(), f"stand-in {self.name} did not stop"


# --- nginx -----------------------------------------------------------------------------------


@dataclass
class RunningNginx:
    name: str
    process: subprocess.Popen[bytes]
    address: str
    port: int
    log: Path
    pids: set[int]
    """The master and every worker seen: the teardown checks each is gone."""

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def runnable_copy(
    files: Mapping[str, str], tier: str, address: str, scratch: Path, build: NginxBuild
) -> Path:
    """Write the tier's rendered files to `scratch/conf`, runnable here; returns nginx.conf.

    Harness lines: those of `lbgen.verify.nginx` (scratch paths, stream module) and the
    instance address in `listen`. `assert_same_directives` checks there is nothing else.
    """
    (scratch / "temp").mkdir(parents=True)
    texts = tier_files(files, PurePosixPath(tier))
    conf = PurePosixPath("nginx.conf")
    text = texts[conf]
    if STREAM_BLOCK_RE.search(text):
        target = file_targets(files).get(f"{tier}/nginx.conf")
        text, problem = load_stream_module(text, build, [], target.build if target is not None else None)
        assert problem is None, problem
    texts[conf] = harness_http(text, scratch)
    texts = {
        rel: LISTEN_RE.sub(lambda m: f"{m['lead']}{address}:{m['port']}", body)
        for rel, body in texts.items()
    }
    for root, contents in (("rendered", tier_files(files, PurePosixPath(tier))), ("conf", texts)):
        for rel, body in contents.items():
            target = scratch / root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body, encoding="utf-8")
    assert_same_directives(scratch / "rendered" / "nginx.conf", scratch / "conf" / "nginx.conf")
    return scratch / "conf" / "nginx.conf"


# What `lbgen.verify.nginx` may add to make a rendered tree runnable (harness_http,
# _stream_module): nothing that routes, balances or rewrites traffic.
_HARNESS_ONLY = frozenset(
    {"access_log", "load_module"}
    | {f"{module}_temp_path" for module in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
)


def parse_tree(conf: Path) -> list[dict[str, Any]]:
    payload = crossplane.parse(str(conf), combine=True)
    assert payload["status"] == "ok", payload["errors"]
    return _strip_positions(payload["config"][0]["parsed"])


def _strip_positions(block: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "directive": d["directive"],
            "args": d["args"],
            **({"block": _strip_positions(d["block"])} if "block" in d else {}),
        }
        for d in block
    ]


def assert_same_directives(rendered: Path, runnable: Path) -> None:
    """The runnable copy = the rendered tree, except harness-only lines and listen addresses.

    Harness-only directives (scratch access_log and temp paths, the build's stream module)
    may be added where the rendered tree has none of that name; a `listen` may gain a
    loopback address in front of its port; nothing else may differ.
    """
    expected = parse_tree(rendered)
    actual = parse_tree(runnable)
    assert _normalised(actual, _names(expected)) == expected, (
        f"the copy nginx runs differs from the rendered {rendered} beyond the harness lines"
    )


def _names(block: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for d in block:
        names.add(d["directive"])
        names |= _names(d.get("block", []))
    return names


def _normalised(block: list[dict[str, Any]], rendered_names: set[str]) -> list[dict[str, Any]]:
    out = []
    for d in block:
        if d["directive"] in _HARNESS_ONLY and d["directive"] not in rendered_names:
            continue
        args = list(d["args"])
        if d["directive"] == "listen" and args:
            host, _, port = args[0].rpartition(":")
            if host and ipaddress.ip_address(host) in LOOPBACK:
                args[0] = port
        item: dict[str, Any] = {"directive": d["directive"], "args": args}
        if "block" in d:
            item["block"] = _normalised(d["block"], rendered_names)
        out.append(item)
    return out


def assert_loopback_only(conf: Path) -> None:
    """Every `listen` and upstream `server` of the runnable copy is in 127.0.0.0/8."""
    for d in _walk(parse_tree(conf)):
        if d["directive"] == "listen" or (d["directive"] == "server" and "block" not in d):
            host = d["args"][0].rpartition(":")[0]
            assert host and ipaddress.ip_address(host) in LOOPBACK, (
                f"{d['directive']} {d['args']} is not on a loopback address"
            )


def _walk(block: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for d in block:
        yield d
        yield from _walk(d.get("block", []))


def start_nginx(build: NginxBuild, name: str, conf: Path, address: str, port: int) -> RunningNginx:
    """Run nginx in the foreground on `conf` and wait until address:port accepts."""
    assert_loopback_only(conf)
    scratch = conf.parent.parent
    root = conf.parent
    text = conf.read_text(encoding="utf-8")
    globals_ = ["daemon off;", "master_process on;"]
    if not re.search(r"^\s*pid\s", text, re.MULTILINE):
        globals_.append(f"pid {scratch}/nginx.pid;")
    if not re.search(r"^\s*error_log\s", text, re.MULTILINE):
        globals_.append("error_log stderr notice;")
    if os.geteuid() == 0 and not re.search(r"^\s*user\s", text, re.MULTILINE):
        # As root nginx would switch its workers to nobody; keep them the current user, who
        # owns the scratch prefix.
        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        globals_.append(f"user {user} {group};")
    command = [build.path, "-p", f"{root}/", "-c", str(conf)]
    if build.error_log_option:
        command += ["-e", "stderr"]
    command += ["-g", " ".join(globals_)]
    log = scratch / "nginx.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    running = RunningNginx(name, process, address, port, log, {process.pid})
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise AssertionError(
                f"nginx {name} exited with {process.returncode}:\n{running.log_text()}"
            )
        if is_listening(address, port):
            break
        if time.monotonic() > deadline:
            stop_nginx(running)
            raise AssertionError(
                f"nginx {name} did not listen on {address}:{port}:\n{running.log_text()}"
            )
        time.sleep(0.02)
    running.pids |= children(process.pid)
    return running


def children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (nginx workers of a master)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return found


def is_running_nginx(pid: int) -> bool:
    """`pid` is a live (not zombie) nginx process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    state = stat.rsplit(")", 1)[1].split()[0]
    return name == "nginx" and state != "Z"


def stop_nginx(running: RunningNginx) -> None:
    """Fast shutdown (SIGTERM); SIGKILL for the master and each worker if it hangs."""
    process = running.process
    if process.poll() is None:
        running.pids |= children(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
    for pid in running.pids - {process.pid}:
        if is_running_nginx(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
