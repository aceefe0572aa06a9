"""Runtime proof (issue 4 item 6): the rendered nginx configs carry real traffic.

The rendered edge (L7) and L4 (stream) configs run on the real nginx of this machine, each
instance on its own loopback address, in front of stand-in HTTP servers for the Kong nodes
(tests/runtime/harness.py). Requests from a client on 127.0.0.9 go through them, and the
stand-ins record what arrives: headers, PROXY v1 lines and the TCP connections themselves.
The copy nginx runs is the rendered tree plus harness lines only (scratch paths, the stream
module, the instance address in `listen`), which `harness.assert_same_directives` proves.

nginx here is Debian's 1.22.1. nginx ≥ 1.29.7 pools upstream connections and speaks HTTP/1.1
upstream by default, so lbgen renders a different keep-alive form for it (CHANGES 1.29.7);
the tiers therefore declare version 1.28.0, for which lbgen renders the form that runs on
1.22.1 too: `keepalive N` + `proxy_http_version 1.1` + `proxy_set_header Connection ""`
(ngx_http_upstream_module #keepalive).
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lbgen.io.loader import load_spec_data
from lbgen.model.spec import Spec
from lbgen.nginx_harness import NginxBuild, nginx_build
from lbgen.render import render_spec
from tests.runtime.harness import (
    SOCKET_TIMEOUT,
    ProxyHeader,
    RunningNginx,
    SeenConnection,
    SeenRequest,
    StandIn,
    assert_same_directives,
    children,
    free_port,
    is_running_nginx,
    kernel_source_address,
    nobody_listens,
    parse_proxy_v1,
    require_loopback,
    runnable_copy,
    start_nginx,
    stop_nginx,
)

EDGE_ADDRESS = "127.0.0.2"
L4_ADDRESSES = ("127.0.0.3", "127.0.0.4")
KONG_ADDRESSES = ("127.0.0.5", "127.0.0.6")
CLIENT_ADDRESS = "127.0.0.9"
"""The end user: an address no proxy of the path has, so X-Forwarded-For can only name it."""
NGINX_VERSION = "1.28.0"
"""Declared for the nginx tiers: below 1.29.7, like the installed 1.22.1 (module docstring)."""
REQUESTS = 8
HOST = "shop.example.test"

SERVICE: dict[str, Any] = {
    "name": "orders",
    "namespace": "shop",
    "replicas": 2,
    "app": {"preset": "uvicorn"},
    "route": {"paths": ["/orders"]},
    "kubernetes": {"port": 80, "target_port": 8000},
}


@dataclass
class RunningPath:
    """One started path; `entry` is where the client connects."""

    spec: Spec
    entry: tuple[str, int]
    kong: list[StandIn]
    nginx: list[RunningNginx] = field(default_factory=list)
    listeners: list[tuple[str, int]] = field(default_factory=list)

    def kong_connections(self) -> list[SeenConnection]:
        return [conn for stand_in in self.kong for conn in stand_in.connections]

    def seen(self, path: str) -> tuple[str, SeenRequest]:
        """(stand-in name, request) for the one request with this path."""
        found = [(s.name, r) for s in self.kong for r in s.requests if r.path == path]
        assert len(found) == 1, f"{path} arrived {len(found)} times: {found}"
        return found[0]


@pytest.fixture(scope="module")
def build(nginx_bin: str) -> NginxBuild:
    require_loopback(EDGE_ADDRESS, *L4_ADDRESSES, *KONG_ADDRESSES, CLIENT_ADDRESS)
    return nginx_build(nginx_bin)


def make_spec(
    *,
    edge: dict[str, Any] | None,
    l4: dict[str, Any] | None,
    kong_port: int,
    kong_proxy_protocol: bool,
) -> Spec:
    tiers: list[dict[str, Any]] = []
    if edge is not None:
        tiers.append(
            {
                "kind": "nginx_http",
                "name": "edge",
                "version": NGINX_VERSION,
                # One worker: one upstream pool, so the connection counts below are exact.
                "worker_processes": 1,
                "instances": [{"name": "edge-1", "address": EDGE_ADDRESS}],
                **edge,
            }
        )
    if l4 is not None:
        tiers.append(
            {
                "kind": "nginx_stream",
                "name": "l4",
                "version": NGINX_VERSION,
                "worker_processes": 1,
                "load_module": True,  # Debian's libnginx-mod-stream
                "instances": [
                    {"name": f"l4-{i + 1}", "address": a} for i, a in enumerate(L4_ADDRESSES)
                ],
                **l4,
            }
        )
    tiers.append(
        {
            "kind": "kong",
            "name": "gateway",
            "version": "3.10",
            "instances": [
                {"name": f"kong-{i + 1}", "address": a} for i, a in enumerate(KONG_ADDRESSES)
            ],
            "proxy_listen": [{"port": kong_port, "proxy_protocol": kong_proxy_protocol}],
        }
    )
    tiers.append({"kind": "kubernetes", "name": "gke", "version": "1.33", "platform": "gke"})
    data = {"name": "runtime", "tiers": tiers, "services": [copy.deepcopy(SERVICE)]}
    return load_spec_data(data).spec


@contextlib.contextmanager
def running_path(
    build: NginxBuild,
    scratch: Path,
    *,
    edge: dict[str, Any] | None = None,
    l4: dict[str, Any] | None = None,
    kong_proxy_protocol: bool = False,
) -> Iterator[RunningPath]:
    """Render the spec, start stand-ins, then the L4 instances, then the edge; stop all."""
    kong_port = free_port(KONG_ADDRESSES)
    if edge is not None:
        edge = {"listen": [{"port": free_port((EDGE_ADDRESS,))}], **edge}
    if l4 is not None:
        l4 = {"listen_port": free_port(L4_ADDRESSES), **l4}
    spec = make_spec(edge=edge, l4=l4, kong_port=kong_port, kong_proxy_protocol=kong_proxy_protocol)
    files = render_spec(spec, "runtime.yaml")
    with contextlib.ExitStack() as stack:
        stand_ins = []
        for index, address in enumerate(KONG_ADDRESSES):
            stand_in = StandIn(
                f"kong-{index + 1}", address, kong_port, expect_proxy=kong_proxy_protocol
            )
            stack.callback(stand_in.close)
            stand_ins.append(stand_in)
        running = RunningPath(spec, ("", 0), stand_ins)
        running.listeners += [(address, kong_port) for address in KONG_ADDRESSES]

        def start(tier: str, name: str, address: str, port: int) -> None:
            conf = runnable_copy(files, tier, address, scratch / name, build)
            nginx = start_nginx(build, name, conf, address, port)
            stack.callback(stop_nginx, nginx)
            running.nginx.append(nginx)
            running.listeners.append((address, port))
            running.entry = (address, port)

        if spec.l4 is not None:
            for instance in spec.l4.instances:
                start("l4", instance.name, instance.address, spec.l4.listen_port)
        if spec.edge is not None:
            start("edge", "edge-1", EDGE_ADDRESS, spec.edge.listen[0].port)
        yield running


def assert_nothing_left(running: RunningPath) -> None:
    """After teardown: no nginx process of the test alive, no listener on the test's ports."""
    alive = sorted(pid for nginx in running.nginx for pid in nginx.pids if is_running_nginx(pid))
    assert not alive, f"nginx processes still running: {alive}"
    assert all(nginx.process.returncode is not None for nginx in running.nginx)
    busy = [listener for listener in running.listeners if not nobody_listens(*listener)]
    assert not busy, f"still listening: {busy}"


def get(
    entry: tuple[str, int],
    path: str,
    headers: dict[str, str] | None = None,
    *,
    preamble: bytes = b"",
) -> tuple[int, dict[str, Any]]:
    """One GET on a fresh client connection from CLIENT_ADDRESS; (status, JSON body).

    `preamble` is sent first on the connection (a PROXY line from a hop in front).
    """
    conn = http.client.HTTPConnection(
        *entry, timeout=SOCKET_TIMEOUT, source_address=(CLIENT_ADDRESS, 0)
    )
    try:
        conn.connect()
        if preamble:
            assert conn.sock is not None
            conn.sock.sendall(preamble)
        conn.request("GET", path, headers={"Host": f"{HOST}:{entry[1]}", **(headers or {})})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body)
        return response.status, json.loads(body)
    finally:
        conn.close()


# --- edge (L7) → Kong -----------------------------------------------------------------------


@pytest.mark.slow  # a runtime proof (pyproject markers); about 0.3 s
def test_edge_forwards_client_headers_and_reuses_pooled_connections(
    build: NginxBuild, tmp_path: Path
) -> None:
    """The pooled edge (keepalive + HTTP/1.1 + Connection "") reuses one upstream connection
    per Kong instance for all requests, although every request comes on a new client
    connection; the forwarded headers name the client as the rendered proxy_set_header say."""
    with running_path(build, tmp_path, edge={}) as running:
        bodies = []
        for i in range(REQUESTS):
            spoof = {"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "198.51.100.1"}
            _, body = get(running.entry, f"/orders/{i}", spoof if i == 0 else None)
            bodies.append(body)

        for i, body in enumerate(bodies):
            served_by, request = running.seen(f"/orders/{i}")
            assert body == {"served_by": served_by, "path": f"/orders/{i}"}
            # $host: the client's host name without the port; the next hop routes on it.
            assert request.one("Host") == HOST
            assert request.one("X-Forwarded-Host") == HOST
            assert request.one("X-Forwarded-Proto") == "http"
            # X-Real-IP is replaced, never passed through: a client cannot choose it.
            assert request.one("X-Real-IP") == CLIENT_ADDRESS
            # $proxy_add_x_forwarded_for appends the client to what it sent.
            expected_xff = f"203.0.113.7, {CLIENT_ADDRESS}" if i == 0 else CLIENT_ADDRESS
            assert request.one("X-Forwarded-For") == expected_xff
            # The pooled form: HTTP/1.1 and no `Connection: close`.
            assert request.version == "HTTP/1.1"
            assert request.all("Connection") == []
        assert {body["served_by"] for body in bodies} == {"kong-1", "kong-2"}

        for stand_in in running.kong:
            conns = stand_in.connections
            assert len(conns) == 1, (
                f"{stand_in.name}: {len(stand_in.requests)} requests on {len(conns)} "
                "connections; one pooled connection (one worker) should carry them all"
            )
        assert len(running.kong_connections()) < REQUESTS
    assert_nothing_left(running)


@pytest.mark.slow  # a runtime proof (pyproject markers); about 0.3 s
def test_edge_without_pool_opens_one_connection_per_request(
    build: NginxBuild, tmp_path: Path
) -> None:
    """`connections: 0`: no keepalive line, so nginx < 1.29.7 speaks HTTP/1.0 with
    `Connection: close` and each request costs a new upstream connection."""
    with running_path(build, tmp_path, edge={"upstream_keepalive": {"connections": 0}}) as running:
        for i in range(REQUESTS):
            get(running.entry, f"/orders/{i}")
        for stand_in in running.kong:
            for request in stand_in.requests:
                assert request.version == "HTTP/1.0"
                assert request.one("Connection") == "close"
            assert len(stand_in.connections) == len(stand_in.requests)
        assert len(running.kong_connections()) == REQUESTS
    assert_nothing_left(running)


# --- edge (L7) → L4 (stream) → Kong ------------------------------------------------------------


@pytest.mark.slow  # a runtime proof (pyproject markers); about 0.3 s
def test_edge_through_l4_sends_proxy_protocol_and_keeps_connections(
    build: NginxBuild, tmp_path: Path
) -> None:
    """With send_proxy_protocol the L4 starts each Kong connection with a PROXY v1 line naming
    its own client, the edge (not the end user, who is in X-Forwarded-For); the edge's pooled
    connections to the two L4 instances map to exactly two Kong connections."""
    with running_path(
        build, tmp_path, edge={}, l4={"send_proxy_protocol": True}, kong_proxy_protocol=True
    ) as running:
        for i in range(REQUESTS):
            _, body = get(running.entry, f"/orders/{i}")
            assert body["path"] == f"/orders/{i}"
            served_by, request = running.seen(f"/orders/{i}")
            assert body["served_by"] == served_by
            assert request.one("X-Forwarded-For") == CLIENT_ADDRESS
            assert request.one("X-Real-IP") == CLIENT_ADDRESS
            assert request.one("Host") == HOST

        spec_l4 = running.spec.l4
        assert spec_l4 is not None
        edge_source = kernel_source_address(L4_ADDRESSES[0])
        conns = running.kong_connections()
        assert all(conn.error is None for conn in conns), [conn.error for conn in conns]
        headers = [conn.proxy for conn in conns]
        for header in headers:
            assert isinstance(header, ProxyHeader)
            assert header.family == "TCP4"
            assert header.source == edge_source != CLIENT_ADDRESS
            assert header.destination in L4_ADDRESSES
            assert header.destination_port == spec_l4.listen_port
        # Round-robin at the edge used both L4 instances.
        assert {h.destination for h in headers if h is not None} == set(L4_ADDRESSES)
        # One pooled edge connection per L4 instance, one Kong connection per L4 connection.
        assert len(conns) == len(L4_ADDRESSES) < REQUESTS
    assert_nothing_left(running)


@pytest.mark.slow  # a runtime proof (pyproject markers); about 0.6 s
@pytest.mark.parametrize(("max_requests", "kong_connections"), [(1_000_000, 2), (2, 4)])
def test_edge_pool_through_l4_is_spread_again_only_when_connections_recycle(
    build: NginxBuild, tmp_path: Path, max_requests: int, kong_connections: int
) -> None:
    """LB109's premise: the L4 tier picks a Kong node per connection, so the edge's pooled
    connections decide the spread. With a huge keepalive_requests the first two pooled
    connections (one per L4 instance) carry every request to the Kong nodes the L4 tier
    chose for them; with keepalive_requests 2 each one is closed after two requests and the
    L4 tier is asked again for every replacement."""
    edge = {"upstream_keepalive": {"max_requests": max_requests}}
    with running_path(build, tmp_path, edge=edge, l4={}) as running:
        for i in range(REQUESTS):
            get(running.entry, f"/orders/{i}")
        conns = running.kong_connections()
        assert all(conn.error is None for conn in conns), [conn.error for conn in conns]
        assert sorted(len(conn.requests) for conn in conns) == sorted(
            [REQUESTS // kong_connections] * kong_connections
        )
        assert len(conns) == kong_connections
    assert_nothing_left(running)


@pytest.mark.slow  # a runtime proof (pyproject markers); about 0.3 s
def test_l4_without_proxy_protocol_forwards_the_bytes_untouched(
    build: NginxBuild, tmp_path: Path
) -> None:
    """An L4 tier first in the path: the stand-in gets the client's request as sent, with no
    PROXY line (it would be a malformed request line) and no added headers."""
    with running_path(build, tmp_path, l4={}) as running:
        for i in range(REQUESTS // 2):
            _, body = get(running.entry, f"/orders/{i}", {"X-Client": "yes"})
            served_by, request = running.seen(f"/orders/{i}")
            assert body == {"served_by": served_by, "path": f"/orders/{i}"}
            assert request.one("Host") == f"{HOST}:{running.entry[1]}"
            assert request.one("X-Client") == "yes"
            assert request.all("X-Forwarded-For") == []
            assert request.version == "HTTP/1.1"
        # The stand-in's peer is the L4 instance's outgoing side, not the client.
        peers = {conn.peer[0] for conn in running.kong_connections()}
        assert peers == {kernel_source_address(KONG_ADDRESSES[0])}
    assert_nothing_left(running)


@pytest.mark.slow  # a runtime proof (pyproject markers); about 0.3 s
@pytest.mark.parametrize(
    ("trusted", "expected_source"),
    [
        pytest.param(["127.0.0.9/32"], ("203.0.113.7", 51000), id="sender-trusted"),
        pytest.param([], (CLIENT_ADDRESS, None), id="sender-not-trusted"),
    ],
)
def test_l4_passes_on_the_proxy_protocol_client_only_from_trusted_senders(
    build: NginxBuild,
    tmp_path: Path,
    trusted: list[str],
    expected_source: tuple[str, int | None],
) -> None:
    """accept + send proxy_protocol: the PROXY line the L4 sends names the end user from the
    line it received only when the sender is in trusted_proxies (stream realip,
    `set_real_ip_from`); otherwise it names the sender, its direct peer."""
    l4 = {"accept_proxy_protocol": True, "send_proxy_protocol": True, "trusted_proxies": trusted}
    with running_path(build, tmp_path, l4=l4, kong_proxy_protocol=True) as running:
        address, port = running.entry
        received = f"PROXY TCP4 203.0.113.7 {address} 51000 {port}\r\n".encode()
        _, body = get(running.entry, "/orders/pp", preamble=received)
        assert body["path"] == "/orders/pp"
        [conn] = [c for c in running.kong_connections() if c.requests]
        assert conn.error is None, conn.error
        assert conn.proxy is not None
        source, source_port = expected_source
        assert conn.proxy.source == source
        if source_port is not None:
            assert conn.proxy.source_port == source_port
        assert (conn.proxy.destination, conn.proxy.destination_port) == (address, port)
    assert_nothing_left(running)


# --- the harness itself ------------------------------------------------------------------------


@pytest.mark.slow  # a runtime proof (pyproject markers); about 0.3 s
def test_leftover_check_sees_running_nginx_and_busy_ports(
    build: NginxBuild, tmp_path: Path
) -> None:
    """assert_nothing_left is not vacuous: while the path runs it reports the nginx pids
    (master and worker) and the listening ports."""
    with running_path(build, tmp_path, l4={}) as running:
        get(running.entry, "/orders/0")
        for nginx in running.nginx:
            nginx.pids |= children(nginx.process.pid)
            assert len(nginx.pids) == 2, nginx.pids  # the master and worker_processes 1
        with pytest.raises(AssertionError, match="nginx processes still running"):
            assert_nothing_left(running)
    assert_nothing_left(running)


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 127.0.0.1 127.0.0.3 40000\r\n",  # a port missing
        b"PROXY TCP4 127.0.0.1 127.0.0.3 40000 8000\n",  # LF only
        b"PROXY TCP4 127.0.0.1 127.0.0.3 040000 8000\r\n",  # leading zero
        b"PROXY TCP4 127.0.0.1 127.0.0.3 40000 70000\r\n",  # port out of range
        b"PROXY TCP4 127.0.0.256 127.0.0.3 40000 8000\r\n",  # not an address
        b"PROXY TCP4 ::1 127.0.0.3 40000 8000\r\n",  # IPv6 in a TCP4 line
        b"PROXY TCP4  127.0.0.1 127.0.0.3 40000 8000\r\n",  # two spaces
        b"PROXY UNKNOWN\r\n",  # valid v1, but a proxied TCP connection is never UNKNOWN
        b"GET /orders HTTP/1.1\r\n",  # no header at all
        b"PROXY TCP6 " + b"1" * 100 + b" ::1 1 2\r\n",  # over 107 bytes
    ],
)
def test_proxy_parser_rejects_malformed_lines(line: bytes) -> None:
    with pytest.raises(ValueError):
        parse_proxy_v1(line)


def test_proxy_parser_reads_a_valid_line() -> None:
    assert parse_proxy_v1(b"PROXY TCP4 127.0.0.1 127.0.0.3 40000 8000\r\n") == ProxyHeader(
        "TCP4", "127.0.0.1", "127.0.0.3", 40000, 8000
    )


def test_harness_refuses_a_copy_that_changes_a_directive(tmp_path: Path) -> None:
    """assert_same_directives lets listen addresses and harness paths through, nothing else."""
    rendered = tmp_path / "rendered.conf"
    rendered.write_text(
        "events {}\nhttp {\n upstream u { server 127.0.0.5:1; keepalive 8; }\n"
        " server { listen 80; location / { proxy_pass http://u; } }\n}\n"
    )
    allowed = tmp_path / "allowed.conf"
    allowed.write_text(
        "events {}\nhttp {\n access_log /tmp/x.log;\n"
        " upstream u { server 127.0.0.5:1; keepalive 8; }\n"
        " server { listen 127.0.0.2:80; location / { proxy_pass http://u; } }\n}\n"
    )
    assert_same_directives(rendered, allowed)
    changed = tmp_path / "changed.conf"
    changed.write_text(allowed.read_text().replace("keepalive 8", "keepalive 9"))
    with pytest.raises(AssertionError):
        assert_same_directives(rendered, changed)
