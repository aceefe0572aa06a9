"""The premise of Kong < 3.6's listener handling (Spec.refusals, LB707), on the real nginx.

Kong 3.0–3.5 embed OpenResty 1.21.4 (lbgen.versions.KONG_BUNDLED_OPENRESTY). On nginx before
1.25.1 a cleartext `listen … http2` speaks HTTP/2 with prior knowledge only. The installed
nginx (Debian's 1.22.1 in CI) is such a version: an HTTP/1.1 request on that listener gets no
HTTP/1.1 response, while an h2c client gets HTTP/2 SETTINGS.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lbgen import versions
from lbgen.nginx_harness import NginxBuild, harness_http, nginx_build
from tests.runtime.harness import (
    SOCKET_TIMEOUT,
    free_port,
    require_loopback,
    start_nginx,
    stop_nginx,
)

pytestmark = pytest.mark.slow

ADDRESS = "127.0.0.1"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type SETTINGS, stream 0


@pytest.fixture
def build(nginx_bin: str) -> NginxBuild:
    found = nginx_build(nginx_bin)
    assert found.version is not None
    if found.version >= versions.NGINX_H2C_SHARES_HTTP1_SINCE.since:
        pytest.skip(f"nginx {found.version} shares a cleartext http2 listener with HTTP/1.1")
    return found


def _first_bytes(port: int, payload: bytes) -> bytes:
    """What the server sends back first (until it closes, 4 KiB, or the socket timeout)."""
    with socket.create_connection((ADDRESS, port), timeout=SOCKET_TIMEOUT) as conn:
        conn.sendall(payload)
        received = b""
        try:
            while len(received) < 4096:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                received += chunk
                if received.startswith(b"HTTP/") and b"\r\n\r\n" in received:
                    break
                if len(received) >= 9 and not received.startswith(b"HTTP/"):
                    break
        except TimeoutError:
            pass
    return received


def test_cleartext_http2_listener_before_1_25_1_answers_http2_only(
    build: NginxBuild, tmp_path: Path
) -> None:
    require_loopback(ADDRESS)
    port = free_port((ADDRESS,))
    plain = free_port((ADDRESS,))
    while plain == port:
        plain = free_port((ADDRESS,))
    (tmp_path / "temp").mkdir()
    conf = tmp_path / "conf" / "nginx.conf"
    conf.parent.mkdir()
    text = (
        "worker_processes 1;\nevents {\n}\nhttp {\n"
        f"    server {{\n        listen {ADDRESS}:{port} http2;\n"
        '        return 200 "ok\\n";\n    }\n'
        f"    server {{\n        listen {ADDRESS}:{plain};\n"
        '        return 200 "ok\\n";\n    }\n}\n'
    )
    conf.write_text(harness_http(text, tmp_path), encoding="utf-8")
    running = start_nginx(build, "kong-like", conf, ADDRESS, port)
    try:
        http1 = _first_bytes(port, b"GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
        h2c = _first_bytes(port, H2_PREFACE + EMPTY_SETTINGS)
        control = _first_bytes(plain, b"GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
    finally:
        stop_nginx(running)
    # The probe works: the same request on a listener without http2 gets its 200.
    assert control.startswith(b"HTTP/1.1 200"), control[:80]
    # HTTP/1.1: no HTTP/1.1 status line, whatever bytes (an HTTP/2 GOAWAY) come back.
    assert not http1.startswith(b"HTTP/1."), http1[:80]
    # h2c with prior knowledge: the server's first frame is SETTINGS (type 0x4).
    assert len(h2c) >= 9 and h2c[3] == 0x4, h2c[:16]
