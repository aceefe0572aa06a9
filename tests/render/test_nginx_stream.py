"""nginx L4 (stream) renderer decisions, each with the reason the output is right.

Output is parsed with crossplane, the snippet include resolved. Sources: nginx.org docs
ngx_stream_proxy_module (#proxy_timeout, #proxy_protocol, #proxy_next_upstream),
ngx_stream_upstream_module (#hash, #least_time), ngx_stream_realip_module, ngx_stream_core_module
(#listen), and Kong's kong.conf.default (proxy_listen flags).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import crossplane
import pytest

from lbgen.errors import InputError
from lbgen.io.loader import load_spec_data
from lbgen.model.spec import Spec
from lbgen.plan.hops import resolve
from lbgen.render import nginx_stream
from lbgen.render._base import RenderContext
from lbgen.render._env import jinja_env

Block = list[dict[str, Any]]

EDGE: dict[str, Any] = {
    "kind": "nginx_http",
    "name": "edge",
    "version": "1.30.0",
    "instances": [{"name": "edge-1", "address": "10.0.0.1"}],
}
L4: dict[str, Any] = {
    "kind": "nginx_stream",
    "name": "l4",
    "version": "1.30.0",
    "instances": [{"name": "l4-1", "address": "10.1.0.1"}],
    "listen_port": 9000,
}
KONG: dict[str, Any] = {
    "kind": "kong",
    "name": "gateway",
    "version": "3.10",
    "instances": [
        {"name": "kong-1", "address": "10.2.0.1"},
        {"name": "kong-2", "address": "10.2.0.2"},
    ],
}
CLUSTER: dict[str, Any] = {
    "kind": "kubernetes",
    "name": "k8s",
    "version": "1.33",
    "platform": "gke",
}
ORDERS: dict[str, Any] = {
    "name": "orders",
    "namespace": "shop",
    "replicas": 3,
    "app": {"preset": "uvicorn"},
    "kubernetes": {"port": 80, "target_port": 8000},
}


def make_spec(
    l4: dict[str, Any] | None = None,
    *,
    edge: dict[str, Any] | None = None,
    kong: dict[str, Any] | None = None,
    with_edge: bool = True,
    with_kong: bool = True,
) -> Spec:
    tiers = [{**copy.deepcopy(EDGE), **(edge or {})}] if with_edge else []
    tiers.append({**copy.deepcopy(L4), **(l4 or {})})
    if with_kong:
        tiers.append({**copy.deepcopy(KONG), **(kong or {})})
    tiers.append(copy.deepcopy(CLUSTER))
    return load_spec_data(
        {"name": "path", "tiers": tiers, "services": [copy.deepcopy(ORDERS)]}
    ).spec


def render_files(spec: Spec) -> dict[str, str]:
    ctx = RenderContext(
        spec=spec, plan=resolve(spec), source_name="t.yaml", env=jinja_env()
    )
    return {f.path: f.content for f in nginx_stream.render(ctx)}


def parse(spec: Spec, tmp_path: Path) -> Block:
    for path, content in render_files(spec).items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    payload = crossplane.parse(str(tmp_path / "l4/nginx.conf"), combine=True)
    assert payload["status"] == "ok", payload["errors"]
    return payload["config"][0]["parsed"]  # type: ignore[no-any-return]


def find(block: Block, name: str) -> list[dict[str, Any]]:
    return [d for d in block if d["directive"] == name]


def args(block: Block, name: str) -> list[list[str]]:
    return [d["args"] for d in find(block, name)]


def names(block: Block) -> list[str]:
    return [d["directive"] for d in block]


def stream(tree: Block) -> Block:
    (block,) = find(tree, "stream")
    return block["block"]  # type: ignore[no-any-return]


def upstream(tree: Block) -> tuple[str, Block]:
    (block,) = find(stream(tree), "upstream")
    return block["args"][0], block["block"]


def server(tree: Block) -> Block:
    (block,) = find(stream(tree), "server")
    return block["block"]  # type: ignore[no-any-return]


# --- files -------------------------------------------------------------------------------------


def test_complete_config_includes_the_snippet_inside_stream(tmp_path: Path) -> None:
    spec = make_spec()
    files = render_files(spec)
    assert set(files) == {"l4/nginx.conf", "l4/stream.d/path.conf"}
    tree = parse(spec, tmp_path)
    assert names(tree) == ["worker_processes", "events", "stream"]
    assert {d["file"] for d in stream(tree)} == {str(tmp_path / "l4/stream.d/path.conf")}


def test_load_module_first_when_asked(tmp_path: Path) -> None:
    """Debian/Ubuntu ship stream as a dynamic module (libnginx-mod-stream); load_module must
    come before the stream block, and this is where Debian installs it."""
    tree = parse(make_spec({"load_module": True}), tmp_path)
    assert names(tree)[0] == "load_module"
    assert args(tree, "load_module") == [["/usr/lib/nginx/modules/ngx_stream_module.so"]]


def test_no_load_module_by_default(tmp_path: Path) -> None:
    """nginx.org packages and most builds have stream built in; loading it again fails."""
    assert find(parse(make_spec(), tmp_path), "load_module") == []


def test_no_l4_tier_renders_nothing() -> None:
    data = {
        "name": "p",
        "tiers": [copy.deepcopy(KONG), copy.deepcopy(CLUSTER)],
        "services": [copy.deepcopy(ORDERS)],
    }
    assert render_files(load_spec_data(data).spec) == {}


# --- upstream ----------------------------------------------------------------------------------


def test_upstream_is_kong_on_its_first_cleartext_listener(tmp_path: Path) -> None:
    """Kong's stock proxy_listen is 8000 (cleartext) and 8443 (TLS): the L4 tier carries the
    edge's cleartext HTTP, so it targets 8000 on every Kong instance."""
    name, block = upstream(parse(make_spec(), tmp_path))
    assert name == "gateway"
    assert args(block, "server") == [["10.2.0.1:8000"], ["10.2.0.2:8000"]]
    assert args(server(parse(make_spec(), tmp_path)), "proxy_pass") == [["gateway"]]


def test_sending_proxy_protocol_targets_kongs_proxy_protocol_listener(tmp_path: Path) -> None:
    """A proxy_protocol listener requires the PROXY header and a plain one rejects it, so the
    listener must match what the L4 tier sends."""
    kong = {"proxy_listen": [{"port": 8000}, {"port": 8002, "proxy_protocol": True}]}
    tree = parse(make_spec({"send_proxy_protocol": True}, kong=kong), tmp_path)
    assert args(upstream(tree)[1], "server") == [["10.2.0.1:8002"], ["10.2.0.2:8002"]]
    assert args(server(tree), "proxy_protocol") == [["on"]]


def test_not_sending_proxy_protocol_avoids_kongs_proxy_protocol_listener(tmp_path: Path) -> None:
    kong = {"proxy_listen": [{"port": 8002, "proxy_protocol": True}, {"port": 8000}]}
    tree = parse(make_spec(kong=kong), tmp_path)
    assert args(upstream(tree)[1], "server") == [["10.2.0.1:8000"], ["10.2.0.2:8000"]]
    assert find(server(tree), "proxy_protocol") == []


def test_grpc_on_the_path_prefers_kongs_http2_listener(tmp_path: Path) -> None:
    """The one L4 port carries the edge's gRPC too, which needs HTTP/2 at Kong; Kong's stock
    8443 (TLS, HTTP/2) is the only such listener, and the edge then speaks TLS through."""
    spec = load_spec_data(
        {
            "name": "path",
            "tiers": [
                copy.deepcopy(EDGE),
                copy.deepcopy(L4),
                copy.deepcopy(KONG),
                copy.deepcopy(CLUSTER),
            ],
            "services": [{**ORDERS, "protocol": "grpc"}],
        }
    ).spec
    assert args(upstream(parse(spec, tmp_path))[1], "server") == [
        ["10.2.0.1:8443"],
        ["10.2.0.2:8443"],
    ]


def test_directly_in_front_of_kubernetes_the_service_clusterip(tmp_path: Path) -> None:
    """A stream tier has no backend_targets setting: it forwards to the single Service's
    ClusterIP (its DNS name) on the Service port."""
    tree = parse(make_spec(with_kong=False), tmp_path)
    name, block = upstream(tree)
    assert name == "orders.shop"
    assert args(block, "server") == [["orders.shop.svc.cluster.local:80"]]


@pytest.mark.parametrize(
    ("balancing", "version", "expected"),
    [
        ({"algorithm": "least_conn"}, "1.28.0", ["least_conn"]),
        (
            {"algorithm": "hash", "hash_key": "$remote_addr", "consistent": True},
            "1.28.0",
            ["hash", "$remote_addr", "consistent"],
        ),
        ({"algorithm": "random-two"}, "1.28.0", ["random", "two"]),
        # stream's least_time needs a metric; connect time is the per-connection one
        ({"algorithm": "least_time"}, "1.31.0", ["least_time", "connect"]),
    ],
)
def test_balancing_method(
    tmp_path: Path, balancing: dict[str, Any], version: str, expected: list[str]
) -> None:
    block = upstream(parse(make_spec({"balancing": balancing, "version": version}), tmp_path))[1]
    assert [block[0]["directive"], *block[0]["args"]] == expected


@pytest.mark.parametrize(
    ("balancing", "message"),
    [
        # ngx_stream_upstream_module has no ip_hash directive: nginx -t would reject it.
        ({"algorithm": "ip_hash"}, "stream {} has no ip_hash"),
        # $request_uri is an HTTP variable; stream {} only knows connection variables.
        ({"algorithm": "hash", "hash_key": "$request_uri"}, "does not have"),
    ],
)
def test_methods_stream_lacks_are_refused_at_load(balancing: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        make_spec({"balancing": balancing})


def test_passive_health(tmp_path: Path) -> None:
    tree = parse(make_spec({"passive_health": {"max_fails": 2, "fail_timeout": "5s"}}), tmp_path)
    assert args(upstream(tree)[1], "server") == [
        ["10.2.0.1:8000", "max_fails=2", "fail_timeout=5s"],
        ["10.2.0.2:8000", "max_fails=2", "fail_timeout=5s"],
    ]


# --- server ------------------------------------------------------------------------------------


def test_proxy_timeout_outlives_the_edge_pool(tmp_path: Path) -> None:
    """proxy_timeout closes both legs of an idle connection; the edge's pooled connections
    must be closed by the edge first. With the edge's idle timeout set to 15m, the budget
    raises nginx's 10m default to 15m plus the 10% margin: 990s."""
    spec = make_spec(edge={"upstream_keepalive": {"idle_timeout": "15m"}})
    assert args(server(parse(spec, tmp_path)), "proxy_timeout") == [["990s"]]


def test_proxy_timeout_default_is_explicit(tmp_path: Path) -> None:
    """Shown even when it is nginx's 10m, because the budget table refers to it."""
    assert args(server(parse(make_spec(), tmp_path)), "proxy_timeout") == [["10m"]]


def test_listen_with_proxy_protocol_and_trusted_peers(tmp_path: Path) -> None:
    """Stream realip trusts the PROXY header's address only from these peers."""
    spec = make_spec({"accept_proxy_protocol": True, "trusted_proxies": ["10.0.0.0/24"]})
    block = server(parse(spec, tmp_path))
    assert args(block, "listen") == [["9000", "proxy_protocol"]]
    assert args(block, "set_real_ip_from") == [["10.0.0.0/24"]]


def test_optional_directives_only_when_set(tmp_path: Path) -> None:
    block = server(parse(make_spec(), tmp_path))
    assert names(block) == ["listen", "proxy_pass", "proxy_timeout"]


def test_connect_timeout_and_next_upstream(tmp_path: Path) -> None:
    spec = make_spec({"connect_timeout": "3s", "next_upstream": False, "next_upstream_tries": 2})
    block = server(parse(spec, tmp_path))
    assert args(block, "proxy_connect_timeout") == [["3s"]]
    assert args(block, "proxy_next_upstream") == [["off"]]
    assert args(block, "proxy_next_upstream_tries") == [["2"]]
