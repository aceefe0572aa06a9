"""WebSocket/SSE services and names in upstreams (issue 8 items 2–3): what each hop renders.

The runtime side (a real WebSocket and SSE stream through nginx) is in
tests/runtime/test_proxying_runtime.py; this pins the directives and the model's refusals.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from lbgen.errors import InputError
from lbgen.io.loader import load_spec_data, load_spec_text
from lbgen.plan.hops import resolve
from lbgen.render import nginx_stream, render_spec
from lbgen.render._base import RenderContext
from lbgen.render._env import jinja_env
from tests.render.test_nginx_http import (
    CLUSTER,
    KONG,
    L4,
    ORDERS,
    args,
    find,
    http,
    location,
    make_spec,
    parse,
    servers,
    upstream,
)

LIVE: dict[str, Any] = {**ORDERS, "name": "live", "route": {"paths": ["/live"]}}


def live(streaming: list[str], **extra: Any) -> dict[str, Any]:
    return {**copy.deepcopy(LIVE), "streaming": streaming, **extra}


def test_websocket_location_forwards_upgrade_through_the_map(tmp_path: Path) -> None:
    tree = parse(make_spec(services=[ORDERS, live(["websocket"])]), tmp_path)
    (upgrade_map,) = find(http(tree), "map")
    assert upgrade_map["args"] == ["$http_upgrade", "$connection_upgrade"]
    assert [d["directive"] for d in upgrade_map["block"]] == ["default", ""]
    assert [d["args"] for d in upgrade_map["block"]] == [["upgrade"], [""]]
    server = servers(tree)[0]
    loc = location(server, "/live")
    assert args(loc, "proxy_http_version") == [["1.1"]]
    headers = args(loc, "proxy_set_header")
    assert ["Upgrade", "$http_upgrade"] in headers
    assert ["Connection", "$connection_upgrade"] in headers
    assert ["Connection", ""] not in headers
    # Everything else still clears Connection for the pool.
    assert ["Connection", ""] in args(location(server, "/"), "proxy_set_header")


def test_no_map_without_websocket_services(tmp_path: Path) -> None:
    tree = parse(make_spec(services=[ORDERS, live(["sse"])]), tmp_path)
    assert find(http(tree), "map") == []


def test_sse_location_does_not_buffer_and_outlives_stream_idle(tmp_path: Path) -> None:
    tree = parse(
        make_spec({"timeouts": {"read": "75s"}}, services=[live(["sse"], stream_idle="5m")]),
        tmp_path,
    )
    server = servers(tree)[0]
    loc = location(server, "/live")
    assert args(loc, "proxy_buffering") == [["off"]]
    # stream_idle 5m + 10%: a quiet stream is not taken for a dead upstream.
    assert args(loc, "proxy_read_timeout") == [["330s"]]
    assert args(location(server, "/"), "proxy_read_timeout") == [["75s"]]
    assert find(location(server, "/"), "proxy_buffering") == []


def test_websocket_without_pool_still_speaks_http_1_1(tmp_path: Path) -> None:
    spec = make_spec(
        {"version": "1.28.0", "upstream_keepalive": {"connections": 0}},
        services=[live(["websocket"])],
    )
    server = servers(parse(spec, tmp_path))[0]
    assert args(location(server, "/live"), "proxy_http_version") == [["1.1"]]
    assert find(location(server, "/"), "proxy_http_version") == []


def test_kong_route_of_sse_service_turns_response_buffering_off() -> None:
    spec = make_spec(services=[ORDERS, live(["sse"])])
    kong_yaml = render_spec(spec, "t.yaml")["gateway/kong.yaml"]
    assert kong_yaml.count("response_buffering: false") == 1
    explicit = make_spec(services=[live(["sse"], kong={"response_buffering": True})])
    assert "response_buffering: true" in render_spec(explicit, "t.yaml")["gateway/kong.yaml"]


def test_kic_ingress_of_sse_service_carries_the_annotation() -> None:
    spec = make_spec(
        middle=[{**KONG, "mode": "kic", "instances": [{"name": "k", "address": "10.2.0.1"}]}],
        services=[live(["sse"])],
    )
    files = render_spec(spec, "t.yaml")
    ingress = next(text for path, text in files.items() if "kic" in path and "live" in path)
    assert "konghq.com/response-buffering: 'false'" in ingress or (
        'konghq.com/response-buffering: "false"' in ingress
    )


def test_grpc_service_cannot_declare_websocket() -> None:
    with pytest.raises(InputError, match="does not apply to a gRPC service"):
        make_spec(services=[{**LIVE, "protocol": "grpc", "streaming": ["websocket"]}])


# --- names in upstreams ---------------------------------------------------------------------


def test_pod_endpoints_with_resolver_render_zone_resolver_and_resolve(tmp_path: Path) -> None:
    spec = make_spec(
        {"backend_targets": "pod_endpoints", "resolver": {"addresses": ["10.96.0.10"], "valid": "10s"}},
        middle=[],
    )
    block = upstream(parse(spec, tmp_path), "orders.shop")
    assert args(block, "zone") == [["orders.shop", "64k"]]
    assert args(block, "resolver") == [["10.96.0.10", "valid=10s"]]
    assert args(block, "server") == [["orders-pods.shop.svc.cluster.local:8000", "resolve"]]


def test_a_resolver_in_front_of_ip_addresses_only_is_refused() -> None:
    # It would render nothing (tests/test_resolver_applies.py); IP addresses in a group that
    # also dials a name get no `resolve` (below).
    with pytest.raises(InputError, match="resolver on edge would render nothing"):
        make_spec({"resolver": {"addresses": ["10.96.0.10"]}})


def test_stream_tier_resolves_kong_host_names() -> None:
    data = {
        "name": "path",
        "tiers": [
            {**L4, "resolver": {"addresses": ["[fd00::53]:53"]}},
            {**KONG, "instances": [{"name": "k1", "address": "kong-1.internal"}, {"name": "k2", "address": "10.2.0.2"}]},
            CLUSTER,
        ],
        "services": [ORDERS],
    }
    spec = load_spec_data(data).spec
    ctx = RenderContext(spec=spec, plan=resolve(spec), source_name="t", env=jinja_env())
    snippet = {f.path: f.content for f in nginx_stream.render(ctx)}["l4/stream.d/path.conf"]
    assert "zone gateway 64k;" in snippet
    assert "resolver [fd00::53]:53;" in snippet
    assert "server kong-1.internal:8000 resolve;" in snippet
    assert "server 10.2.0.2:8000;" in snippet


def test_resolver_on_nginx_before_1_27_3_is_a_located_error() -> None:
    text = """\
name: old
tiers:
  - kind: nginx_http
    name: edge
    version: "1.26.2"
    instances: [{name: e1, address: 10.0.0.1}]
    resolver: {addresses: [10.96.0.10]}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - {name: orders, replicas: 2, app: {preset: go}}
"""
    with pytest.raises(InputError) as caught:
        load_spec_text(text, "old.yaml")
    (problem,) = caught.value.problems
    assert str(problem.location).startswith("old.yaml:7:")
    assert "1.27.3" in problem.message
    assert "IP addresses" in problem.message + problem.hint


@pytest.mark.parametrize("address", ["dns.example", "10.96.0.10:0", "fd00::53", "[10.0.0.1]:53"])
def test_resolver_address_must_be_an_ip(address: str) -> None:
    with pytest.raises(InputError, match="resolver address"):
        make_spec({"resolver": {"addresses": [address]}})


def test_streaming_services_sharing_a_path_share_one_location(tmp_path: Path) -> None:
    """Two services on /live under different hosts: one location in front of Kong (nginx
    refuses duplicate locations), with what both need."""
    chat = live(["websocket"], route={"paths": ["/live"], "hosts": ["chat.example.com"]})
    feed = live(
        ["sse"], name="feed", stream_idle="2m", route={"paths": ["/live"], "hosts": ["feed.example.com"]}
    )
    server = servers(parse(make_spec(services=[chat, feed]), tmp_path))[0]
    assert [d["args"] for d in find(server, "location")] == [["/live"], ["/"]]
    loc = location(server, "/live")
    assert args(loc, "proxy_buffering") == [["off"]]
    assert ["Upgrade", "$http_upgrade"] in args(loc, "proxy_set_header")
    assert args(loc, "proxy_read_timeout") == [["132s"]]


def _comments(text: str) -> str:
    return " ".join(text.replace("#", " ").split())


def test_headless_comment_says_when_the_name_is_resolved() -> None:
    without = render_spec(make_spec({"backend_targets": "pod_endpoints"}, middle=[]), "t.yaml")
    assert "resolved when nginx loads" in _comments(without["edge/conf.d/path.conf"])
    with_resolver = render_spec(
        make_spec(
            {"backend_targets": "pod_endpoints", "resolver": {"addresses": ["10.96.0.10"]}},
            middle=[],
        ),
        "t.yaml",
    )
    assert "re-resolved while nginx runs" in _comments(with_resolver["edge/conf.d/path.conf"])
