"""`lbgen probe` against real HTTP servers on loopback: uvicorn, gunicorn (sync and gthread),
nginx, Python's http.server, and a hand-made server that never sends a FIN.

Defaults measured here, from the servers' own docs:
- uvicorn `--timeout-keep-alive` "Default: 5" (https://www.uvicorn.org/settings/#timeouts;
  encode/uvicorn uvicorn/config.py `timeout_keep_alive: int = 5`);
- gunicorn `--keep-alive` default 2, and "sync worker does not support persistent connections
  and will ignore this option" (https://docs.gunicorn.org/en/stable/settings.html#keepalive);
- nginx `keepalive_timeout` (default 75s) and `keepalive_requests` (default 1000)
  (https://nginx.org/en/docs/http/ngx_http_core_module.html#keepalive_timeout).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbgen.cli import cli
from lbgen.probe import ProbeResult, parse_url, probe
from tests.conftest import REPO
from tests.runtime.harness import free_port, is_listening

BIN = Path(sys.executable).parent


def _free_port() -> int:
    return free_port(("127.0.0.1",))


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''!r}")
        if is_listening("127.0.0.1", port):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} after {timeout}s")


def _serve(command: list[str], port: int, cwd: Path = REPO) -> Iterator[str]:
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (python3 -m pip install 'lbgen[test]')")
    return str(path)


@pytest.fixture
def uvicorn_1s() -> Iterator[str]:
    port = _free_port()
    yield from _serve([_tool("uvicorn"), "tests.probe.apps:asgi", "--port", str(port),
                       "--timeout-keep-alive", "1", "--log-level", "warning"], port)


@pytest.fixture
def uvicorn_default() -> Iterator[str]:
    port = _free_port()
    yield from _serve([_tool("uvicorn"), "tests.probe.apps:asgi", "--port", str(port),
                       "--log-level", "warning"], port)


def _gunicorn(port: int, *extra: str) -> list[str]:
    return [_tool("gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1", "--log-level", "warning",
            *extra, "tests.probe.apps:wsgi"]


@pytest.fixture
def gunicorn_sync() -> Iterator[str]:
    port = _free_port()
    yield from _serve(_gunicorn(port), port)  # sync is gunicorn's default worker class


@pytest.fixture
def gunicorn_gthread_default() -> Iterator[str]:
    port = _free_port()
    yield from _serve(_gunicorn(port, "-k", "gthread"), port)


def _nginx(tmp_path: Path, nginx_bin: str, server_block: str) -> Iterator[str]:
    port = _free_port()
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"daemon off;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n  fastcgi_temp_path {tmp_path}/fastcgi;\n"
        f"  uwsgi_temp_path {tmp_path}/uwsgi;\n  scgi_temp_path {tmp_path}/scgi;\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n{server_block}\n"
        "    location / { return 200 \"ok\\n\"; }\n  }\n}\n"
    )
    yield from _serve([nginx_bin, "-p", str(tmp_path), "-c", str(conf), "-e", f"{tmp_path}/logs/error.log"],
                      port, cwd=tmp_path)


def _run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["probe", *args])
    return result.exit_code, result.output


def _json(*args: str) -> dict[str, object]:
    code, out = _run_cli(*args, "--format", "json")
    assert code == 0, out
    data: dict[str, object] = json.loads(out)
    return data


# --- uvicorn ----------------------------------------------------------------------------------


def test_uvicorn_idle_timeout_is_measured_from_the_close_and_printed_as_an_assume(uvicorn_1s: str) -> None:
    started = time.monotonic()
    code, out = _run_cli(uvicorn_1s, "--max-idle", "4s")
    elapsed = time.monotonic() - started
    assert code == 0, out
    assert "server: uvicorn" in out
    assert "keep-alive    honoured" in out
    assert "  --assume app.idle_timeout=1s\n" in out
    # Bounded by the timeout it found (plus the stagger and the grace), not by --max-idle.
    assert elapsed < 3.5


def test_uvicorn_json_has_every_idle_connection_close_near_the_setting(uvicorn_1s: str) -> None:
    # --max-idle 3s: the reuse ladder is 0.047 … 0.75, 1.5s, no rung at the 1s timeout itself
    # (a reuse just as the server closes is the race the rules are about, either outcome).
    data = _json(uvicorn_1s, "--max-idle", "3s")
    idle = data["idle_timeout"]
    assert isinstance(idle, dict)
    assert idle["kind"] == "measured"
    assert idle["closes_s"], idle
    assert all(0.9 <= c <= 1.2 for c in idle["closes_s"]), idle
    # A request after less than the timeout was answered: the ladder below it holds.
    assert idle["served_after_s"] == [0.047, 0.094, 0.188, 0.375, 0.75]
    assert data["keepalive"] == {"honoured": True,
                                 "evidence": "a second request on the same connection was answered"}
    assert data["max_requests"] == {"limit": None, "sent": 1000,
                                    "evidence": "no limit within 1000 requests on one connection"}
    assert data["assume"] == ["app.idle_timeout=1s"]
    assert data["connections"] == 11


@pytest.mark.slow
def test_uvicorn_default_keep_alive_is_5s(uvicorn_default: str) -> None:
    data = _json(uvicorn_default, "--max-idle", "20s")
    assert data["assume"] == ["app.idle_timeout=5s"]


def test_a_server_slower_to_close_than_max_idle_gives_a_lower_bound(uvicorn_1s: str) -> None:
    code, out = _run_cli(uvicorn_1s, "--max-idle", "500ms")
    assert code == 0, out
    assert "longer than 0.5s: no idle connection was closed within --max-idle" in out
    assert "for lbgen import (a lower bound):\n  --assume app.idle_timeout=500ms\n" in out


# --- gunicorn ---------------------------------------------------------------------------------


def test_gunicorn_sync_worker_does_not_keep_connections_alive(gunicorn_sync: str) -> None:
    data = _json(gunicorn_sync, "--max-idle", "3s")
    assert data["keepalive"] == {"honoured": False, "evidence": "it answered with Connection: close"}
    assert data["idle_timeout"]["kind"] == "not-applicable"  # type: ignore[index]
    assert data["max_requests"]["limit"] == 1  # type: ignore[index]
    assert data["assume"] == ["app.idle_timeout=0s"]
    assert data["connections"] == 1


def test_gunicorn_gthread_default_keep_alive_is_2s_give_or_take_its_idle_sweep(
        gunicorn_gthread_default: str) -> None:
    data = _json(gunicorn_gthread_default, "--max-idle", "5s")
    idle = data["idle_timeout"]
    assert isinstance(idle, dict)
    # gthread closes expired connections on its poll loop's wake-ups (once a second when idle),
    # so a connection is closed between 2s and about 3s after its last response.
    assert idle["kind"] == "measured"
    assert 1.95 <= idle["seconds"] <= 3.1, idle
    assert data["keepalive"]["honoured"] is True  # type: ignore[index]


# --- nginx ------------------------------------------------------------------------------------


def test_nginx_keepalive_timeout_and_keepalive_requests(tmp_path: Path, nginx_bin: str) -> None:
    for url in _nginx(tmp_path, nginx_bin, "    keepalive_timeout 1s;\n    keepalive_requests 7;"):
        data = _json(url, "--max-idle", "4s")
        assert data["server"] is not None and str(data["server"]).startswith("nginx")
        assert data["max_requests"] == {"limit": 7, "sent": 7, "evidence": "response 7 said Connection: close"}
        assert data["assume"] == ["app.idle_timeout=1s"]
        assert data["idle_timeout"]["advertised_s"] is None  # type: ignore[index]


def test_nginx_announced_keep_alive_header_is_reported_beside_the_measured_close(
        tmp_path: Path, nginx_bin: str) -> None:
    # The second keepalive_timeout value only sets the header: the close still comes after 1s.
    for url in _nginx(tmp_path, nginx_bin, "    keepalive_timeout 1s 30s;"):
        code, out = _run_cli(url, "--max-idle", "4s")
        assert code == 0, out
        assert "(it announces Keep-Alive: timeout=30)" in out
        assert "--assume app.idle_timeout=1s" in out


def test_nginx_keepalive_timeout_0_disables_keep_alive(tmp_path: Path, nginx_bin: str) -> None:
    for url in _nginx(tmp_path, nginx_bin, "    keepalive_timeout 0;"):
        data = _json(url)
        assert data["keepalive"] == {"honoured": False, "evidence": "it answered with Connection: close"}
        assert data["assume"] == ["app.idle_timeout=0s"]


# --- other servers ----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_http_1_0_server_is_reported_as_closing_every_connection() -> None:
    # http.server answers in HTTP/1.0 unless protocol_version is changed.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = probe(f"http://127.0.0.1:{server.server_address[1]}/", max_idle_s=2)
    finally:
        server.shutdown()
        server.server_close()
    assert not result.keepalive.honoured
    assert result.keepalive.evidence == "it answered in HTTP/1.0 without Connection: keep-alive"
    assert result.assume == ["app.idle_timeout=0s"]


class _SilentTimeoutServer:
    """Keeps idle connections open forever but drops, unanswered, a request that comes more
    than `timeout` after the previous response; closes after `limit` requests without saying so."""

    def __init__(self, timeout: float, limit: int) -> None:
        self.timeout, self.limit = timeout, limit
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        last = time.monotonic()
        served = 0
        try:
            while served < self.limit:
                await reader.readuntil(b"\r\n\r\n")
                if time.monotonic() - last > self.timeout:
                    break
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                await writer.drain()
                served += 1
                last = time.monotonic()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> str:
        self._thread.start()
        self._ready.wait(5)
        return f"http://127.0.0.1:{self.port}/"

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def test_a_server_that_never_sends_a_fin_is_bracketed_by_the_reuse_ladder() -> None:
    with _SilentTimeoutServer(timeout=0.6, limit=10_000) as url:
        result = probe(url, max_idle_s=3.2, max_requests=50)
    idle = result.idle_timeout
    # Ladder for 3.2s: 0.05 0.1 0.2 0.4 0.8 1.6: served up to 0.4, refused from 0.8.
    assert (idle.kind, idle.seconds, idle.refused_after_s[0]) == ("range", 0.4, 0.8)
    assert idle.served_after_s == [0.05, 0.1, 0.2, 0.4]
    assert result.assume == ["app.idle_timeout=400ms"]


def test_a_silent_close_after_n_requests_is_the_request_limit() -> None:
    with _SilentTimeoutServer(timeout=60, limit=3) as url:
        result = probe(url, max_idle_s=0.5, max_requests=100)
    assert result.max_requests.limit == 3
    assert result.max_requests.evidence == (
        "it closed the connection after 3 requests without saying so (request 4 was not answered)")


def test_a_server_that_closes_silently_after_one_response_has_no_keep_alive() -> None:
    with _SilentTimeoutServer(timeout=60, limit=1) as url:
        result: ProbeResult = probe(url, max_idle_s=0.5)
    assert not result.keepalive.honoured
    assert result.keepalive.evidence == "it closed the connection after the first response without saying so"
    assert result.assume == ["app.idle_timeout=0s"]


# --- bad input --------------------------------------------------------------------------------


def test_https_is_refused_with_exit_2() -> None:
    code, out = _run_cli("https://127.0.0.1:8443/")
    assert code == 2
    assert "https is not supported" in out and "Traceback" not in out


def test_an_unreachable_server_exits_2_and_says_what_to_check() -> None:
    code, out = _run_cli(f"http://127.0.0.1:{_free_port()}/", "--max-idle", "1s")
    assert code == 2
    assert "(Connection refused): check that the server is running, that it listens on" in out


@pytest.mark.parametrize("url", ["ftp://example.com/", "127.0.0.1:8000", "http://"])
def test_not_an_http_url_exits_2(url: str) -> None:
    code, out = _run_cli(url)
    assert code == 2
    assert "give an http:// URL with a host" in out


def test_max_idle_is_bounded() -> None:
    code, out = _run_cli("http://127.0.0.1:1/", "--max-idle", "11m")
    assert code == 2
    assert "at most 10m" in out


def test_url_parts_become_the_request_target() -> None:
    target = parse_url("http://[::1]:8080/healthz?full=1")
    assert (target.host, target.port, target.path, target.host_header) == (
        "::1", 8080, "/healthz?full=1", "[::1]:8080")
    assert parse_url("http://app.local").host_header == "app.local"


def test_the_probe_module_is_loaded_only_by_the_probe_command() -> None:
    # `lbgen --version` stays light: the probe (asyncio) is imported inside its command.
    out = subprocess.run([sys.executable, "-c", "import lbgen.cli, sys; print('lbgen.probe' in sys.modules)"],
                         capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "False"

