"""Kong → bundled OpenResty/nginx table, and what it means for h2c and HTTP/1.1 sharing a
listener (Kong < 3.6: OpenResty 1.21.4, older than nginx 1.25.1)."""

from __future__ import annotations

from typing import Any

import pytest

from lbgen import defaults, versions
from lbgen.errors import InputError
from lbgen.io.loader import load_spec_text
from lbgen.model.types import Version
from lbgen.render import render_spec


@pytest.mark.parametrize(
    ("kong", "openresty", "nginx", "shares"),
    [
        ("3.0", "1.21.4.1", "1.21.4", False),
        ("3.4", "1.21.4.1", "1.21.4", False),
        ("3.5", "1.21.4.2", "1.21.4", False),
        ("3.6", "1.25.3.1", "1.25.3", True),
        ("3.7", "1.25.3.1", "1.25.3", True),
        ("3.8", "1.25.3.2", "1.25.3", True),
        ("3.9", "1.25.3.2", "1.25.3", True),
        ("3.10", "1.27.1.1", "1.27.1", True),
    ],
)
def test_each_kong_line_maps_to_the_openresty_its_changelog_names(
    kong: str, openresty: str, nginx: str, shares: bool
) -> None:
    bundle = versions.kong_bundle(Version(kong))
    assert (bundle.openresty, bundle.nginx) == (openresty, Version(nginx))
    assert bundle.source.startswith(("Kong/kong", "Kong Gateway changelog"))
    assert defaults.kong_h2c_shares_http1(Version(kong)) is shares


def test_the_table_is_ordered_and_its_nginx_is_openrestys_core() -> None:
    rows = versions.KONG_BUNDLED_OPENRESTY
    assert [r.kong_since for r in rows] == sorted(r.kong_since for r in rows)
    for row in rows:
        assert row.openresty.startswith(f"{row.nginx}.")


SPEC = """\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: e1, address: 10.0.0.1}]
{l4}  - kind: kong
    name: gateway
    version: "{kong}"
    instances: [{name: k1, address: 10.0.1.1}]
    proxy_listen:
{listeners}  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - {name: orders, replicas: 2, app: {preset: go}}
{grpc}"""
L4 = "  - {kind: nginx_stream, name: l4, instances: [{name: l1, address: 10.0.2.1}]}\n"
GRPC = (
    "  - {name: rpc, replicas: 2, protocol: grpc, app: {preset: go}, "
    "route: {paths: [/rpc.Svc]}}\n"
)


def spec_text(kong: str, listeners: list[str], *, l4: bool = False, grpc: bool = False) -> str:
    return (
        SPEC.replace("{kong}", kong)
        .replace("{listeners}", "".join(f"      - {entry}\n" for entry in listeners))
        .replace("{l4}", L4 if l4 else "")
        .replace("{grpc}", GRPC if grpc else "")
    )


def refused(text: str) -> Any:
    with pytest.raises(InputError) as caught:
        load_spec_text(text, "spec.yaml")
    (problem,) = caught.value.problems
    return problem


def test_edge_http1_with_only_an_h2c_listener_on_kong_3_4_is_refused_at_proxy_listen() -> None:
    text = spec_text("3.4", ["{port: 8000, http2: true}"])
    problem = refused(text)
    assert problem.path == "tiers[1].proxy_listen"
    line = text.splitlines().index("      - {port: 8000, http2: true}") + 1
    assert problem.location.line == line
    assert "Kong 3.4 bundles OpenResty 1.21.4.1 (nginx 1.21.4)" in problem.message
    assert "port 8000" in problem.message and "HTTP/2 only" in problem.message
    assert "add a cleartext proxy_listen entry without http2" in problem.hint


def test_the_same_listener_is_fine_from_kong_3_6() -> None:
    load_spec_text(spec_text("3.6", ["{port: 8000, http2: true}"]), "spec.yaml")


def test_an_l4_tier_relaying_http1_and_grpc_to_cleartext_kong_3_5_is_refused() -> None:
    problem = refused(
        spec_text("3.5", ["{port: 8000}", "{port: 8001, http2: true}"], l4=True, grpc=True)
    )
    assert problem.path == "tiers[2].proxy_listen"
    assert "relays both HTTP/1.1 and gRPC to one Kong port" in problem.message
    assert "tls: true" in problem.hint


def test_an_l4_tier_on_kong_3_5_uses_a_tls_http2_listener_where_alpn_picks_per_connection() -> None:
    text = spec_text(
        "3.5", ["{port: 8001, http2: true}", "{port: 8443, tls: true, http2: true}"],
        l4=True, grpc=True,
    )
    files = render_spec(load_spec_text(text, "spec.yaml").spec, "spec.yaml")
    stream = files["l4/stream.d/shop.conf"]
    assert "server 10.0.1.1:8443" in stream and ":8001" not in stream
    edge = files["edge/conf.d/shop.conf"]
    assert "proxy_pass https://l4;" in edge and "grpc_pass grpcs://l4-grpc;" in edge


def test_an_l4_tier_on_kong_3_6_shares_the_cleartext_h2c_listener() -> None:
    text = spec_text("3.6", ["{port: 8000}", "{port: 8001, http2: true}"], l4=True, grpc=True)
    files = render_spec(load_spec_text(text, "spec.yaml").spec, "spec.yaml")
    assert "server 10.0.1.1:8001" in files["l4/stream.d/shop.conf"]


def test_grpc_only_through_l4_to_an_h2c_listener_is_fine_on_old_kong() -> None:
    data = spec_text("3.4", ["{port: 8001, http2: true}"], l4=True, grpc=True)
    http_service = "  - {name: orders, replicas: 2, app: {preset: go}}\n"
    assert http_service in data  # only the gRPC service is left
    data = data.replace(http_service, "")
    assert all(s.protocol == "grpc" for s in load_spec_text(data, "spec.yaml").spec.services)


def test_without_an_edge_what_clients_speak_is_not_lbgens_to_refuse() -> None:
    """L4 first: the clients' connections reach Kong as they are (LB707 warns instead)."""
    text = spec_text("3.4", ["{port: 8000, http2: true}"], l4=True)
    text = text.replace(
        "  - kind: nginx_http\n    name: edge\n    instances: [{name: e1, address: 10.0.0.1}]\n", ""
    )
    assert "nginx_http" not in text
    load_spec_text(text, "spec.yaml")


SPLIT = """\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: e1, address: 10.0.0.1}]
  - kind: nginx_stream
    name: l4
    instances: [{name: l1, address: 10.0.2.1}]
    listen_port: 8000
    grpc_listen_port: 8001
  - kind: kong
    name: gateway
    version: "3.4"
    instances: [{name: k1, address: 10.0.1.1}]
    proxy_listen:
      - {port: 8000}
      - {port: 8001, http2: true}
  - kind: kubernetes
    name: cluster
    platform: self-managed
services:
  - {name: orders, replicas: 2, app: {preset: go}}
  - {name: rpc, replicas: 2, protocol: grpc, app: {preset: go}, route: {paths: [/rpc.Svc]}}
"""


def test_an_l4_grpc_port_renders_h2c_and_http1_on_separate_listeners_end_to_end() -> None:
    """Kong 3.4 through L4: listen_port relays HTTP/1.1 to Kong's plain 8000, grpc_listen_port
    relays gRPC to Kong's h2c 8001, and the edge's gRPC upstream points at the L4 gRPC port."""
    files = render_spec(load_spec_text(SPLIT, "spec.yaml").spec, "spec.yaml")
    stream = files["l4/stream.d/shop.conf"]
    assert "upstream gateway {\n    server 10.0.1.1:8000;\n}" in stream
    assert "upstream gateway-grpc {\n    server 10.0.1.1:8001;\n}" in stream
    assert "    listen 8000;\n    proxy_pass gateway;\n" in stream
    assert "    listen 8001;\n    proxy_pass gateway-grpc;\n" in stream
    edge = files["edge/conf.d/shop.conf"]
    assert "upstream l4 {\n    server 10.0.2.1:8000;" in edge
    assert "upstream l4-grpc {\n    server 10.0.2.1:8001;" in edge
    assert "grpc_pass grpc://l4-grpc;" in edge and "proxy_pass http://l4;" in edge
    conf = files["gateway/kong.conf"]
    assert "0.0.0.0:8000 reuseport" in conf and "0.0.0.0:8001 http2 reuseport" in conf


def test_without_the_grpc_port_the_same_path_is_refused_with_the_port_as_a_choice() -> None:
    problem = refused(SPLIT.replace("    grpc_listen_port: 8001\n", ""))
    assert "set grpc_listen_port on l4" in problem.hint


def test_a_grpc_port_without_grpc_services_is_refused() -> None:
    text = SPLIT.replace(
        "  - {name: rpc, replicas: 2, protocol: grpc, app: {preset: go}, "
        "route: {paths: [/rpc.Svc]}}\n", ""
    )
    problem = refused(text)
    assert problem.path == "tiers[1].grpc_listen_port"
    assert "a listener nothing uses" in problem.message
