"""Runtime proof of issue 8 items 1–2 on the installed nginx (Debian 12: 1.22.1).

1. Every shipped example whose edge pools really reuses upstream connections when its rendered
   edge runs on this nginx, although most examples declare nginx 1.30.0, whose HTTP/1.1
   upstream default this older binary lacks: the rendered file says `proxy_http_version 1.1`
   and clears `Connection` itself. The example is run as written except for the harness's
   changes to the spec: loopback addresses, free ports, one worker (one pool, exact counts),
   and a plain HTTP/1.1 client listener.
2. A WebSocket opens and carries messages through the rendered edge, the rendered L4, and
   both in a row; server-sent events cross the edge as they come (the first event arrives
   while the stand-in still holds the stream open).
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from lbgen.io.loader import load_spec_data
from lbgen.model.spec import Spec
from lbgen.nginx_harness import NginxBuild, nginx_build
from lbgen.render import render_spec
from lbgen.versions import NGINX_UPSTREAM_RESOLVE_SINCE
from tests.runtime.dns import DnsStandIn, query_a
from tests.runtime.harness import (
    SOCKET_TIMEOUT,
    RunningNginx,
    StandIn,
    free_port,
    require_loopback,
    runnable_copy,
    start_nginx,
    stop_nginx,
)
from tests.runtime.streams import (
    StreamStandIn,
    first_event_before_release,
    websocket_exchange,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EDGE_ADDRESS = "127.0.0.2"
L4_ADDRESSES = ("127.0.0.3", "127.0.0.4")
NEXT_ADDRESSES = ("127.0.0.5", "127.0.0.6", "127.0.0.7")
CLIENT_ADDRESS = "127.0.0.9"
REQUESTS = 12
HOST = "live.example.test"


@pytest.fixture(scope="module")
def build(nginx_bin: str) -> NginxBuild:
    require_loopback(EDGE_ADDRESS, *L4_ADDRESSES, *NEXT_ADDRESSES, CLIENT_ADDRESS)
    return nginx_build(nginx_bin)


@contextlib.contextmanager
def running_tier(
    build: NginxBuild, files: dict[str, str], tier: str, address: str, port: int, scratch: Path
) -> Iterator[RunningNginx]:
    conf = runnable_copy(files, tier, address, scratch / f"{tier}-{address}", build)
    nginx = start_nginx(build, f"{tier}-{address}", conf, address, port)
    try:
        yield nginx
    finally:
        stop_nginx(nginx)


def get(entry: tuple[str, int], path: str) -> int:
    conn = http.client.HTTPConnection(
        *entry, timeout=SOCKET_TIMEOUT, source_address=(CLIENT_ADDRESS, 0)
    )
    try:
        conn.request("GET", path, headers={"Host": HOST})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


# --- item 1: every pooling example reuses its upstream connections -------------------------


def _example_data(name: str) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def _pooling_examples() -> list[str]:
    names = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        data = _example_data(path.name)
        edge = next((t for t in data["tiers"] if t["kind"] == "nginx_http"), None)
        if edge is None:
            continue
        if (edge.get("upstream_keepalive") or {}).get("connections") == 0:
            continue
        names.append(path.name)
    return names


def _on_loopback(data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """The example with loopback addresses and free ports; (data, edge's next-hop sockets)."""
    data = copy.deepcopy(data)
    tiers = data["tiers"]
    edge_index = next(i for i, t in enumerate(tiers) if t["kind"] == "nginx_http")
    edge = tiers[edge_index]
    edge["instances"] = [{"name": "edge-1", "address": EDGE_ADDRESS}]
    # The client side in plain HTTP/1.1 (no TLS files here; a cleartext `listen … http2`
    # before nginx 1.25.1 speaks only HTTP/2): the upstream side under test is unchanged.
    edge["listen"] = [{"port": free_port((EDGE_ADDRESS,))}]
    edge.pop("tls", None)
    edge["worker_processes"] = 1  # one pool, so the connection counts below are exact
    callee = tiers[edge_index + 1]
    count = len(callee["instances"])
    addresses = NEXT_ADDRESSES[:count]
    assert len(addresses) == count, f"{count} next-hop instances; the test has {NEXT_ADDRESSES}"
    callee["instances"] = [
        {"name": f"{callee['name']}-{i + 1}", "address": a} for i, a in enumerate(addresses)
    ]
    if callee["kind"] == "nginx_stream":
        port = free_port(addresses)
        callee["listen_port"] = port
        return data, [(a, port) for a in addresses]
    assert callee["kind"] == "kong"
    listeners = callee.get("proxy_listen") or [{"port": 8000}, {"port": 8443, "tls": True, "http2": True}]
    ports: list[int] = []
    while len(ports) < len(listeners):  # distinct: two free_port calls may agree
        port = free_port(addresses)
        if port not in ports:
            ports.append(port)
    callee["proxy_listen"] = [
        {**entry, "port": port} for entry, port in zip(listeners, ports, strict=True)
    ]
    return data, []


@pytest.mark.slow  # a runtime proof (pyproject markers); about 0.5 s per example
@pytest.mark.parametrize("example", _pooling_examples())
def test_example_edge_reuses_upstream_connections_on_installed_nginx(
    build: NginxBuild, tmp_path: Path, example: str
) -> None:
    data, sockets = _on_loopback(_example_data(example))
    spec = load_spec_data(data).spec
    assert spec.edge is not None
    files = render_spec(spec, example)
    snippet = files[f"{spec.edge.name}/conf.d/{spec.name}.conf"]
    if not sockets:
        # Kong callee: the stand-ins listen where the rendered http upstream points.
        block = snippet.split(f"upstream {spec.tiers[1].name} {{", 1)[1].split("}", 1)[0]
        servers = [line.split()[1].rstrip(";") for line in block.splitlines() if line.strip().startswith("server ")]
        sockets = [(host, int(port)) for host, _, port in (s.rpartition(":") for s in servers)]
    # An HTTP service's path, or (gRPC-only examples) a path the edge's `location /` takes.
    path = next((p for s in spec.services if s.protocol == "http" for p in s.paths), "/probe")
    with contextlib.ExitStack() as stack:
        stand_ins = []
        for index, (address, port) in enumerate(sockets):
            stand_in = StandIn(f"next-{index + 1}", address, port, expect_proxy=False)
            stack.callback(stand_in.close)
            stand_ins.append(stand_in)
        edge_port = spec.edge.listen[0].port
        stack.enter_context(running_tier(build, files, "edge", EDGE_ADDRESS, edge_port, tmp_path))
        for i in range(REQUESTS):
            assert get((EDGE_ADDRESS, edge_port), f"{path}/{i}") == 200
        requests = [r for s in stand_ins for r in s.requests]
        assert len(requests) == REQUESTS
        for request in requests:
            assert request.version == "HTTP/1.1"
            assert request.all("Connection") == []
        for stand_in in stand_ins:
            if stand_in.requests:
                # One worker, one pool: one connection per next-hop instance carries them all.
                assert len(stand_in.connections) == 1, (
                    f"{example}: {len(stand_in.requests)} requests on "
                    f"{len(stand_in.connections)} connections to {stand_in.name}"
                )


def test_every_edge_example_is_covered() -> None:
    """The examples above are all examples with an edge (none disables its pool)."""
    with_edge = [
        p.name
        for p in sorted(EXAMPLES.glob("*.yaml"))
        if any(t["kind"] == "nginx_http" for t in _example_data(p.name)["tiers"])
    ]
    assert _pooling_examples() == with_edge
    assert "seed.yaml" in with_edge


# --- item 2: WebSocket and SSE ----------------------------------------------------------------


SERVICE: dict[str, Any] = {
    "name": "live",
    "namespace": "shop",
    "replicas": 2,
    "app": {"preset": "nodejs"},
    "route": {"paths": ["/live"]},
    "streaming": ["websocket", "sse"],
}


def stream_spec(*, edge: bool, l4: bool, next_port: int, service: dict[str, Any]) -> Spec:
    tiers: list[dict[str, Any]] = []
    if edge:
        tiers.append(
            {
                "kind": "nginx_http",
                "name": "edge",
                "version": "1.30.0",
                "worker_processes": 1,
                "instances": [{"name": "edge-1", "address": EDGE_ADDRESS}],
                "listen": [{"port": free_port((EDGE_ADDRESS,))}],
            }
        )
    if l4:
        tiers.append(
            {
                "kind": "nginx_stream",
                "name": "l4",
                "version": "1.30.0",
                "worker_processes": 1,
                "load_module": True,
                "instances": [{"name": "l4-1", "address": L4_ADDRESSES[0]}],
                "listen_port": free_port(L4_ADDRESSES[:1]),
            }
        )
    tiers.append(
        {
            "kind": "kong",
            "name": "gateway",
            "instances": [{"name": "kong-1", "address": NEXT_ADDRESSES[0]}],
            "proxy_listen": [{"port": next_port}],
        }
    )
    tiers.append({"kind": "kubernetes", "name": "gke", "platform": "gke"})
    data = {"name": "live", "tiers": tiers, "services": [copy.deepcopy(service)]}
    return load_spec_data(data).spec


@contextlib.contextmanager
def stream_path(
    build: NginxBuild, scratch: Path, *, edge: bool, l4: bool, service: dict[str, Any] = SERVICE
) -> Iterator[tuple[tuple[str, int], StreamStandIn, dict[str, str]]]:
    port = free_port(NEXT_ADDRESSES[:1])
    spec = stream_spec(edge=edge, l4=l4, next_port=port, service=service)
    files = render_spec(spec, "live.yaml")
    with contextlib.ExitStack() as stack:
        stand_in = StreamStandIn("kong-1", NEXT_ADDRESSES[0], port)
        stack.callback(stand_in.close)
        entry = (NEXT_ADDRESSES[0], port)
        if spec.l4 is not None:
            entry = (L4_ADDRESSES[0], spec.l4.listen_port)
            stack.enter_context(running_tier(build, files, "l4", *entry, scratch))
        if spec.edge is not None:
            entry = (EDGE_ADDRESS, spec.edge.listen[0].port)
            stack.enter_context(running_tier(build, files, "edge", *entry, scratch))
        yield entry, stand_in, files


@pytest.mark.slow  # a runtime proof; about 0.5 s each
@pytest.mark.parametrize(("edge", "l4"), [(True, False), (False, True), (True, True)],
                         ids=["edge", "l4", "edge-l4"])
def test_websocket_through_rendered_tiers(
    build: NginxBuild, tmp_path: Path, edge: bool, l4: bool
) -> None:
    with stream_path(build, tmp_path, edge=edge, l4=l4) as (entry, stand_in, _):
        result = websocket_exchange(
            entry, "/live/socket", HOST, ["hello", "again"], source=CLIENT_ADDRESS
        )
        assert result.status_line.startswith("HTTP/1.1 101"), result
        assert result.replies == ["kong-1: hello", "kong-1: again"]
        (handshake,) = stand_in.requests
        assert handshake.headers["upgrade"] == "websocket"
        assert handshake.headers["connection"].lower() == "upgrade"
        # An ordinary request on the same path still keeps the pooled connection: the map
        # sends no Connection header when the client sent no Upgrade.
        if edge:
            assert get(entry, "/live/plain") == 200
            plain = stand_in.requests[-1]
            assert plain.path == "/live/plain"
            assert "connection" not in plain.headers
            assert "upgrade" not in plain.headers


@pytest.mark.slow  # a runtime proof; about 0.5 s
def test_sse_first_event_arrives_before_the_stream_ends(build: NginxBuild, tmp_path: Path) -> None:
    """The first event reaches the client while the stand-in still holds the stream open.

    Measured here too: on this nginx (1.22.1) a small event also got through a location
    without `proxy_buffering off` (nginx writes buffered data on as the client can take it),
    so this proves the rendered SSE location delivers events as they come, and
    tests/render/test_streaming.py proves which directive the location carries.
    """
    with stream_path(build, tmp_path, edge=True, l4=False) as (entry, stand_in, files):
        arrived_early, body = first_event_before_release(
            entry, "/live/events", HOST, [stand_in], source=CLIENT_ADDRESS
        )
        assert arrived_early, (body, files["edge/conf.d/live.conf"])
        assert b"data: first" in body
        assert b"data: second" in body
        (request,) = stand_in.requests
        assert request.path == "/live/events"


# --- item 3: a name in an upstream, without `resolve` -----------------------------------------
#
# What this machine can prove: the installed nginx (1.22.1) has no `resolve` in open source
# (CHANGES 1.27.3), and `apt-cache policy nginx` offers nothing newer, so the rendered
# `server … resolve` form cannot run here. What runs here is the form lbgen renders without a
# resolver (and LB310 warns about): nginx resolves the name once, at load. nginx runs in a
# private mount namespace whose /etc/hosts is a scratch file, so the test can move the name.


@pytest.mark.slow  # a runtime proof; about 1.5 s
def test_name_without_resolve_is_resolved_once_at_load(build: NginxBuild, tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a private /etc/hosts (CI runs these as root)")
    port = free_port(NEXT_ADDRESSES[:2])
    edge_port = free_port((EDGE_ADDRESS,))
    data = {
        "name": "named",
        "tiers": [
            {
                "kind": "nginx_http",
                "name": "edge",
                "version": "1.28.0",
                "worker_processes": 1,
                "instances": [{"name": "edge-1", "address": EDGE_ADDRESS}],
                "listen": [{"port": edge_port}],
            },
            {
                "kind": "kong",
                "name": "gateway",
                "instances": [{"name": "kong-1", "address": "kong-1.lbgen.test"}],
                "proxy_listen": [{"port": port}],
            },
            {"kind": "kubernetes", "name": "gke", "platform": "gke"},
        ],
        "services": [copy.deepcopy({**SERVICE, "streaming": []})],
    }
    spec = load_spec_data(data).spec
    files = render_spec(spec, "named.yaml")
    assert f"server kong-1.lbgen.test:{port};" in files["edge/conf.d/named.conf"]
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{NEXT_ADDRESSES[0]} kong-1.lbgen.test\n")
    conf = runnable_copy(files, "edge", EDGE_ADDRESS, tmp_path / "edge", build)
    root = conf.parent
    script = 'hosts="$1"; shift; mount --bind "$hosts" /etc/hosts && exec "$@"'
    command = [
        unshare, "--mount", "--", "sh", "-c", script, "sh", str(hosts),
        build.path, "-p", f"{root}/", "-c", str(conf), "-e", "stderr",
        "-g", f"daemon off; master_process on; pid {tmp_path}/nginx.pid; error_log stderr notice;",
    ]  # fmt: skip
    old = StandIn("old", NEXT_ADDRESSES[0], port, expect_proxy=False)
    new = StandIn("new", NEXT_ADDRESSES[1], port, expect_proxy=False)
    log = (tmp_path / "nginx.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 5
        while get_or_none((EDGE_ADDRESS, edge_port), "/live/0") is None:
            assert process.poll() is None, (tmp_path / "nginx.log").read_text()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        # The name moves; the running nginx keeps the address it resolved at load.
        with hosts.open("r+") as same_inode:  # the bind mount shows this very file
            same_inode.truncate(0)
            same_inode.write(f"127.0.0.1 localhost\n{NEXT_ADDRESSES[1]} kong-1.lbgen.test\n")
        time.sleep(1.0)
        for i in range(4):
            assert get((EDGE_ADDRESS, edge_port), f"/live/after-move-{i}") == 200
        assert [r.path for r in new.requests] == []
        assert len([r for r in old.requests if "after-move" in r.path]) == 4
        # Only a reload resolves the name again.
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not new.requests:
            assert time.monotonic() < deadline, "after a reload nginx still used the old address"
            get_or_none((EDGE_ADDRESS, edge_port), "/live/after-reload")
            time.sleep(0.05)
        assert new.requests[-1].path == "/live/after-reload"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        old.close()
        new.close()


def get_or_none(entry: tuple[str, int], path: str) -> int | None:
    try:
        return get(entry, path)
    except OSError:
        return None


# --- item 3: the `resolve` form, where an nginx ≥ 1.27.3 is available --------------------------


def test_dns_stand_in_answers_and_follows_changes() -> None:
    """The DNS stand-in the `resolve` proof relies on: A answers, changes, NXDOMAIN."""
    dns = DnsStandIn("127.0.0.8", {"kong-1.lbgen.test": ["127.0.0.5"]})
    try:
        assert query_a((dns.address, dns.port), "kong-1.lbgen.test") == (0, ["127.0.0.5"])
        dns.set("kong-1.lbgen.test", ["127.0.0.6", "127.0.0.7"])
        assert query_a((dns.address, dns.port), "KONG-1.lbgen.test") == (
            0,
            ["127.0.0.6", "127.0.0.7"],
        )
        assert query_a((dns.address, dns.port), "other.lbgen.test") == (3, [])
    finally:
        dns.close()


@pytest.mark.slow  # a runtime proof; about 3 s where it runs
def test_name_with_resolve_follows_the_name_while_nginx_runs(
    build: NginxBuild, tmp_path: Path
) -> None:
    """zone + resolver + `server … resolve` (rendered with `resolver`): traffic moves to the
    name's new address without a reload. Needs open-source nginx ≥ 1.27.3 (CHANGES 1.27.3);
    set LBGEN_NGINX to one. Debian 12's 1.22.1 cannot run this form, so here it is skipped
    and the proof stands where such an nginx runs the test."""
    if build.version < NGINX_UPSTREAM_RESOLVE_SINCE.since:
        pytest.skip(
            f"installed nginx {build.version} has no `server … resolve` (open source since "
            "1.27.3); set LBGEN_NGINX to a newer nginx to run this proof"
        )
    dns = DnsStandIn("127.0.0.8", {"kong-1.lbgen.test": [NEXT_ADDRESSES[0]]}, ttl=1)
    port = free_port(NEXT_ADDRESSES[:2])
    edge_port = free_port((EDGE_ADDRESS,))
    data = {
        "name": "named",
        "tiers": [
            {
                "kind": "nginx_http",
                "name": "edge",
                "version": "1.28.0",
                "worker_processes": 1,
                "instances": [{"name": "edge-1", "address": EDGE_ADDRESS}],
                "listen": [{"port": edge_port}],
                "resolver": {"addresses": [f"{dns.address}:{dns.port}"], "valid": "1s"},
            },
            {
                "kind": "kong",
                "name": "gateway",
                "instances": [{"name": "kong-1", "address": "kong-1.lbgen.test"}],
                "proxy_listen": [{"port": port}],
            },
            {"kind": "kubernetes", "name": "gke", "platform": "gke"},
        ],
        "services": [copy.deepcopy({**SERVICE, "streaming": []})],
    }
    files = render_spec(load_spec_data(data).spec, "named.yaml")
    assert f"server kong-1.lbgen.test:{port} resolve;" in files["edge/conf.d/named.conf"]
    conf = runnable_copy(files, "edge", EDGE_ADDRESS, tmp_path / "edge", build)
    command = [
        build.path, "-p", f"{conf.parent}/", "-c", str(conf), "-e", "stderr",
        "-g", f"daemon off; master_process on; pid {tmp_path}/nginx.pid; error_log stderr notice;",
    ]  # fmt: skip
    old = StandIn("old", NEXT_ADDRESSES[0], port, expect_proxy=False)
    new = StandIn("new", NEXT_ADDRESSES[1], port, expect_proxy=False)
    log = (tmp_path / "nginx.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 5
        while not old.requests:
            assert process.poll() is None, (tmp_path / "nginx.log").read_text()
            assert time.monotonic() < deadline, "nginx never reached the name's first address"
            get_or_none((EDGE_ADDRESS, edge_port), "/live/before")
            time.sleep(0.05)
        dns.set("kong-1.lbgen.test", [NEXT_ADDRESSES[1]])
        deadline = time.monotonic() + 8
        while not new.requests:
            assert time.monotonic() < deadline, "nginx did not follow the name to its new address"
            get_or_none((EDGE_ADDRESS, edge_port), "/live/after")
            time.sleep(0.1)
        assert process.poll() is None  # no reload, no restart: the same nginx followed it
        assert any(name == "kong-1.lbgen.test" for name, _ in dns.queries)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        old.close()
        new.close()
        dns.close()
