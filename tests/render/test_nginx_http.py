"""nginx L7 (edge) renderer decisions, each with the reason the output is right.

Output is parsed with crossplane (the nginx config parser used by NGINX Amplify/Agent), with
the snippet `include` resolved, so the assertions are about the directive tree nginx reads,
not about text layout. Sources: nginx.org docs ngx_http_upstream_module (#keepalive,
#keepalive_timeout, #keepalive_time, #server), ngx_http_proxy_module (#proxy_http_version,
#proxy_set_header, #proxy_next_upstream, #proxy_pass), ngx_http_grpc_module, ngx_http_realip_module,
and CHANGES 1.25.1 / 1.29.7.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import crossplane
import pytest

from lbgen.io.loader import load_spec_data
from lbgen.model.spec import Spec
from lbgen.plan.hops import resolve
from lbgen.render import nginx_http, render_spec
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
    "instances": [
        {"name": "l4-1", "address": "10.1.0.1"},
        {"name": "l4-2", "address": "10.1.0.2"},
    ],
    "listen_port": 8000,
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
    "route": {"paths": ["/orders"]},
    "kubernetes": {"port": 80, "target_port": 8000},
}


def make_spec(
    edge: dict[str, Any] | None = None,
    *,
    middle: list[dict[str, Any]] | None = None,
    services: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Spec:
    """edge → (middle tiers, default Kong) → GKE; `edge` updates the edge tier."""
    tiers = [{**copy.deepcopy(EDGE), **(edge or {})}]
    tiers += copy.deepcopy(middle if middle is not None else [KONG])
    tiers.append(copy.deepcopy(CLUSTER))
    data: dict[str, Any] = {
        "name": "path",
        "tiers": tiers,
        "services": copy.deepcopy(services or [ORDERS]),
        **(extra or {}),
    }
    return load_spec_data(data).spec


def render_files(spec: Spec) -> dict[str, str]:
    ctx = RenderContext(
        spec=spec, plan=resolve(spec), source_name="t.yaml", env=jinja_env()
    )
    return {f.path: f.content for f in nginx_http.render(ctx)}


def parse(spec: Spec, tmp_path: Path) -> Block:
    """The edge's nginx.conf as crossplane reads it, the snippet include resolved."""
    for path, content in render_files(spec).items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    payload = crossplane.parse(str(tmp_path / "edge/nginx.conf"), combine=True)
    assert payload["status"] == "ok", payload["errors"]
    return payload["config"][0]["parsed"]  # type: ignore[no-any-return]


def find(block: Block, name: str) -> list[dict[str, Any]]:
    return [d for d in block if d["directive"] == name]


def one(block: Block, name: str) -> dict[str, Any]:
    found = find(block, name)
    assert len(found) == 1, f"expected one {name}, got {found}"
    return found[0]


def http(tree: Block) -> Block:
    return one(tree, "http")["block"]  # type: ignore[no-any-return]


def upstream(tree: Block, name: str) -> Block:
    for d in find(http(tree), "upstream"):
        if d["args"] == [name]:
            return d["block"]  # type: ignore[no-any-return]
    raise AssertionError(f"no upstream {name}: {[d['args'] for d in find(http(tree), 'upstream')]}")


def servers(tree: Block) -> list[Block]:
    return [d["block"] for d in find(http(tree), "server")]


def location(server: Block, *match: str) -> Block:
    for d in find(server, "location"):
        if tuple(d["args"]) == match:
            return d["block"]  # type: ignore[no-any-return]
    raise AssertionError(f"no location {match}: {[d['args'] for d in find(server, 'location')]}")


def args(block: Block, name: str) -> list[list[str]]:
    return [d["args"] for d in find(block, name)]


def names(block: Block) -> list[str]:
    return [d["directive"] for d in block]


# --- files -------------------------------------------------------------------------------------


def test_complete_config_includes_the_snippet_inside_http(tmp_path: Path) -> None:
    """nginx.conf is runnable on its own and the snippet is includable into any http {}: the
    only thing nginx.conf's http {} holds is the include of conf.d/<spec>.conf."""
    spec = make_spec({"worker_processes": 4})
    files = render_files(spec)
    assert set(files) == {"edge/nginx.conf", "edge/conf.d/path.conf"}
    for content in files.values():
        assert content.startswith("# generated by lbgen from t.yaml — do not edit\n")
    tree = parse(spec, tmp_path)
    assert names(tree) == ["worker_processes", "events", "http"]
    assert one(tree, "worker_processes")["args"] == ["4"]
    included = {d["file"] for d in http(tree)}
    assert included == {str(tmp_path / "edge/conf.d/path.conf")}


def test_no_edge_tier_renders_nothing() -> None:
    data = {
        "name": "p",
        "tiers": [copy.deepcopy(KONG), copy.deepcopy(CLUSTER)],
        "services": [copy.deepcopy(ORDERS)],
    }
    assert render_files(load_spec_data(data).spec) == {}


def test_output_is_deterministic() -> None:
    spec = make_spec(services=[ORDERS, {**ORDERS, "name": "cart", "route": {"paths": ["/cart"]}}])
    assert render_files(spec) == render_files(spec)


# --- upstream: balancing and keep-alive --------------------------------------------------------


@pytest.mark.parametrize(
    ("balancing", "version", "expected"),
    [
        ({"algorithm": "least_conn"}, "1.28.0", ["least_conn"]),
        ({"algorithm": "ip_hash"}, "1.28.0", ["ip_hash"]),
        (
            {"algorithm": "hash", "hash_key": "$request_uri", "consistent": True},
            "1.28.0",
            ["hash", "$request_uri", "consistent"],
        ),
        ({"algorithm": "hash", "hash_key": "$remote_addr"}, "1.28.0", ["hash", "$remote_addr"]),
        ({"algorithm": "random"}, "1.28.0", ["random"]),
        ({"algorithm": "random-two"}, "1.28.0", ["random", "two"]),
        ({"algorithm": "least_time"}, "1.31.0", ["least_time", "header"]),
    ],
)
def test_balancing_method_comes_before_keepalive(
    tmp_path: Path, balancing: dict[str, Any], version: str, expected: list[str]
) -> None:
    """Before 1.29.7 a method other than round-robin had to be activated before `keepalive`
    (upstream module #keepalive), so it is always the first line of the upstream."""
    tree = parse(make_spec({"balancing": balancing, "version": version}), tmp_path)
    block = upstream(tree, "gateway")
    first = block[0]
    assert [first["directive"], *first["args"]] == expected
    assert names(block).index("keepalive") > 0


def test_round_robin_has_no_method_directive(tmp_path: Path) -> None:
    """Weighted round-robin is nginx's default; it has no directive."""
    block = upstream(parse(make_spec(), tmp_path), "gateway")
    assert names(block)[0] == "server"
    methods = {"least_conn", "ip_hash", "hash", "random", "least_time"}
    assert not methods & set(names(block))


def test_keepalive_values_come_from_the_budget(tmp_path: Path) -> None:
    """The pool's idle timeout is the budget's derived value: with the L4 proxy_timeout set
    to 30s, the edge must close pooled connections first, 30s minus the 10% (3s) margin."""
    l4 = {**L4, "proxy_timeout": "30s"}
    spec = make_spec(
        {"upstream_keepalive": {"connections": 16, "max_requests": 500}}, middle=[l4, KONG]
    )
    block = upstream(parse(spec, tmp_path), "l4")
    assert args(block, "keepalive") == [["16"]]
    assert args(block, "keepalive_timeout") == [["27s"]]
    assert args(block, "keepalive_requests") == [["500"]]
    assert args(block, "keepalive_time") == [["1h"]]  # nginx's default lifetime, made explicit


def test_keepalive_has_no_local_parameter(tmp_path: Path) -> None:
    """`keepalive N` without `local`: all locations proxy an upstream the same way, so a shared
    pool is safe, and `local` (1.29.7) would make the config invalid on older nginx."""
    block = upstream(parse(make_spec({"version": "1.30.0"}), tmp_path), "gateway")
    assert args(block, "keepalive") == [["32"]]


def test_pool_disabled_on_1_29_7_needs_an_explicit_keepalive_0(tmp_path: Path) -> None:
    """Since 1.29.7 an upstream without `keepalive` pools 32 connections per worker, so turning
    the pool off takes `keepalive 0`; the other keepalive_* lines would be meaningless."""
    spec = make_spec({"version": "1.30.0", "upstream_keepalive": {"connections": 0}})
    block = upstream(parse(spec, tmp_path), "gateway")
    assert args(block, "keepalive") == [["0"]]
    assert not {"keepalive_timeout", "keepalive_requests", "keepalive_time"} & set(names(block))


def test_pool_disabled_before_1_29_7_means_no_keepalive_at_all(tmp_path: Path) -> None:
    """Before 1.29.7 no `keepalive` means no pool, and `keepalive 0` is rejected as invalid;
    without a pool there is no reason to switch to HTTP/1.1 or clear Connection either."""
    spec = make_spec({"version": "1.28.0", "upstream_keepalive": {"connections": 0}})
    tree = parse(spec, tmp_path)
    block = upstream(tree, "gateway")
    assert not {"keepalive", "keepalive_timeout", "keepalive_requests"} & set(names(block))
    loc = location(servers(tree)[0], "/")
    assert find(loc, "proxy_http_version") == []
    assert ["Connection", ""] not in args(loc, "proxy_set_header")


@pytest.mark.parametrize(
    ("version", "present", "absent"),
    [
        ("1.14.2", {"keepalive"}, {"keepalive_timeout", "keepalive_requests", "keepalive_time"}),
        ("1.18.0", {"keepalive", "keepalive_timeout", "keepalive_requests"}, {"keepalive_time"}),
        (
            "1.19.10",
            {"keepalive", "keepalive_timeout", "keepalive_requests", "keepalive_time"},
            set(),
        ),
    ],
)
def test_keepalive_tuning_directives_follow_the_version(
    tmp_path: Path, version: str, present: set[str], absent: set[str]
) -> None:
    """Upstream keepalive_timeout/keepalive_requests appeared in 1.15.3 and keepalive_time in
    1.19.10 (upstream module docs): older versions would reject them as unknown."""
    spec = make_spec({"version": version, "upstream_keepalive": {"connections": 32}})
    block = upstream(parse(spec, tmp_path), "gateway")
    assert present <= set(names(block))
    assert not absent & set(names(block))


def test_before_1_15_3_lbgen_does_not_pool_by_default(tmp_path: Path) -> None:
    """nginx < 1.15.3 has no upstream idle timer, so a pooled connection waits for the next hop
    to close it (the 502 race LB110 reports): unless the spec asks for a pool, none is rendered."""
    tree = parse(make_spec({"version": "1.14.2"}), tmp_path)
    assert find(upstream(tree, "gateway"), "keepalive") == []
    assert find(location(servers(tree)[0], "/"), "proxy_http_version") == []


# --- HTTP version and headers ------------------------------------------------------------------


def test_before_1_29_7_pooling_needs_http_1_1_and_a_cleared_connection_header(
    tmp_path: Path,
) -> None:
    """Before 1.29.7 nginx talks HTTP/1.0 upstream and sends `Connection: close`, so a pooled
    connection is never reused unless proxy_http_version is 1.1 and Connection is cleared
    (upstream module #keepalive)."""
    loc = location(servers(parse(make_spec({"version": "1.28.0"}), tmp_path))[0], "/")
    assert args(loc, "proxy_http_version") == [["1.1"]]
    assert ["Connection", ""] in args(loc, "proxy_set_header")


@pytest.mark.parametrize("version", ["1.28.0", "1.30.0"])
def test_pooled_locations_say_http_1_1_on_every_version(tmp_path: Path, version: str) -> None:
    """1.29.7 made HTTP/1.1 and no `Connection: close` the default (CHANGES 1.29.7), but the
    file may run on an older nginx (Debian 12: 1.22.1), where relying on the default opens
    one upstream connection per request: the lines are rendered whatever the version."""
    loc = location(servers(parse(make_spec({"version": version}), tmp_path))[0], "/")
    assert args(loc, "proxy_http_version") == [["1.1"]]
    assert ["Connection", ""] in args(loc, "proxy_set_header")


def test_every_proxy_set_header_is_at_the_location_level(tmp_path: Path) -> None:
    """A level with any proxy_set_header inherits none from outer levels (proxy module
    #proxy_set_header): keeping them all in the location means none is silently dropped,
    in particular the Connection "" that keep-alive needs before 1.29.7."""
    tree = parse(make_spec({"version": "1.28.0"}), tmp_path)
    assert find(http(tree), "proxy_set_header") == []
    server = servers(tree)[0]
    assert find(server, "proxy_set_header") == []
    headers = [h[0] for h in args(location(server, "/"), "proxy_set_header")]
    assert headers == [
        "Host",
        "Connection",
        "X-Real-IP",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
    ]


def test_forwarded_headers(tmp_path: Path) -> None:
    """The next hops recover the client and scheme from these; X-Forwarded-For appends this
    hop's client to any list received ($proxy_add_x_forwarded_for)."""
    loc = location(servers(parse(make_spec(), tmp_path))[0], "/")
    assert args(loc, "proxy_set_header") == [
        ["Host", "$host"],
        ["Connection", ""],
        ["X-Real-IP", "$remote_addr"],
        ["X-Forwarded-For", "$proxy_add_x_forwarded_for"],
        ["X-Forwarded-Proto", "$scheme"],
        ["X-Forwarded-Host", "$host"],
    ]


def test_without_forwarded_headers_only_host_is_set(tmp_path: Path) -> None:
    """Host is always passed: the next hop (Kong) routes on it, and nginx's default would be
    the upstream block's name."""
    loc = location(servers(parse(make_spec({"forwarded_headers": False}), tmp_path))[0], "/")
    assert args(loc, "proxy_set_header") == [["Host", "$host"], ["Connection", ""]]


# --- timeouts, retries, passive health ---------------------------------------------------------


def test_timeouts_only_when_set(tmp_path: Path) -> None:
    tree = parse(make_spec({"timeouts": {"connect": "2s", "read": "90s"}}), tmp_path)
    loc = location(servers(tree)[0], "/")
    assert args(loc, "proxy_connect_timeout") == [["2s"]]
    assert args(loc, "proxy_read_timeout") == [["90s"]]
    assert find(loc, "proxy_send_timeout") == []


def test_unset_retry_keeps_nginx_default(tmp_path: Path) -> None:
    """Unset: nginx's `error timeout`, which never resends a POST/LOCK/PATCH that reached a
    server (proxy module #proxy_next_upstream)."""
    loc = location(servers(parse(make_spec(), tmp_path))[0], "/")
    assert find(loc, "proxy_next_upstream") == []


def test_retry_conditions_are_rendered_as_listed_and_never_add_non_idempotent(
    tmp_path: Path,
) -> None:
    spec = make_spec(
        {"retry": {"conditions": ["error", "http_502", "error"], "tries": 2, "timeout": "5s"}}
    )
    loc = location(servers(parse(spec, tmp_path))[0], "/")
    assert args(loc, "proxy_next_upstream") == [["error", "http_502"]]
    assert args(loc, "proxy_next_upstream_tries") == [["2"]]
    assert args(loc, "proxy_next_upstream_timeout") == [["5s"]]


def test_non_idempotent_only_when_the_user_lists_it(tmp_path: Path) -> None:
    """The model accepts it (the rules flag it); the renderer passes the user's choice on."""
    spec = make_spec({"retry": {"conditions": ["error", "non_idempotent"]}})
    loc = location(servers(parse(spec, tmp_path))[0], "/")
    assert args(loc, "proxy_next_upstream") == [["error", "non_idempotent"]]


def test_empty_retry_list_turns_retries_off(tmp_path: Path) -> None:
    loc = location(servers(parse(make_spec({"retry": {"conditions": []}}), tmp_path))[0], "/")
    assert args(loc, "proxy_next_upstream") == [["off"]]


def test_passive_health_on_every_server(tmp_path: Path) -> None:
    spec = make_spec({"passive_health": {"max_fails": 3, "fail_timeout": "30s"}})
    block = upstream(parse(spec, tmp_path), "gateway")
    assert args(block, "server") == [
        ["10.2.0.1:8000", "max_fails=3", "fail_timeout=30s"],
        ["10.2.0.2:8000", "max_fails=3", "fail_timeout=30s"],
    ]


# --- listeners, TLS, HTTP/2, client keep-alive, real IP ----------------------------------------


def test_listen_parameters_and_tls(tmp_path: Path) -> None:
    spec = make_spec(
        {
            "listen": [{"port": 80, "proxy_protocol": True}, {"port": 443, "tls": True}],
            "tls": {
                "certificate": "/etc/nginx/tls/a.crt",
                "certificate_key": "/etc/nginx/tls/a.key",
            },
        }
    )
    server = servers(parse(spec, tmp_path))[0]
    assert args(server, "listen") == [["80", "proxy_protocol"], ["443", "ssl"]]
    assert args(server, "ssl_certificate") == [["/etc/nginx/tls/a.crt"]]
    assert args(server, "ssl_certificate_key") == [["/etc/nginx/tls/a.key"]]
    assert args(server, "ssl_protocols") == [["TLSv1.2", "TLSv1.3"]]
    assert args(server, "add_header") == [
        ["Strict-Transport-Security", "max-age=63072000", "always"]
    ]


def test_no_tls_settings_without_a_tls_listener(tmp_path: Path) -> None:
    server = servers(parse(make_spec(), tmp_path))[0]
    assert not {"ssl_certificate", "ssl_protocols", "add_header"} & set(names(server))
    assert args(server, "server_tokens") == [["off"]]


def test_http2_before_1_25_1_is_a_listen_parameter(tmp_path: Path) -> None:
    """`http2 on` only exists since 1.25.1 (CHANGES 1.25.1); before, HTTP/2 is `listen … http2`."""
    spec = make_spec({"version": "1.24.0", "listen": [{"port": 8080, "http2": True}, {"port": 80}]})
    server = servers(parse(spec, tmp_path))[0]
    assert args(server, "listen") == [["8080", "http2"], ["80"]]
    assert find(server, "http2") == []


def test_http2_from_1_25_1_is_the_http2_directive(tmp_path: Path) -> None:
    """The listen parameter is deprecated since 1.25.1; HTTP/2 is enabled per server."""
    spec = make_spec({"version": "1.25.1", "listen": [{"port": 8080, "http2": True}]})
    server = servers(parse(spec, tmp_path))[0]
    assert args(server, "listen") == [["8080"]]
    assert args(server, "http2") == [["on"]]


def test_client_keepalive_comes_from_the_budget(tmp_path: Path) -> None:
    """Behind a GCP application LB (fixed 600s backend keep-alive) the edge must keep idle
    client connections longer than the LB: 600s plus the 10% margin = 660s (11m)."""
    spec = make_spec(
        {"client_keepalive": {"max_requests": 5000}},
        extra={"external_lb": {"kind": "gcp-application"}},
    )
    server = servers(parse(spec, tmp_path))[0]
    assert args(server, "keepalive_timeout") == [["11m"]]
    assert args(server, "keepalive_requests") == [["5000"]]


def test_real_ip(tmp_path: Path) -> None:
    spec = make_spec(
        {
            "real_ip": {
                "header": "X-Forwarded-For",
                "trusted": ["10.0.0.0/8", "192.0.2.0/24"],
                "recursive": True,
            }
        }
    )
    server = servers(parse(spec, tmp_path))[0]
    assert args(server, "set_real_ip_from") == [["10.0.0.0/8"], ["192.0.2.0/24"]]
    assert args(server, "real_ip_header") == [["X-Forwarded-For"]]
    assert args(server, "real_ip_recursive") == [["on"]]


def test_no_real_ip_directives_unless_asked(tmp_path: Path) -> None:
    server = servers(parse(make_spec(), tmp_path))[0]
    assert not {"set_real_ip_from", "real_ip_header", "real_ip_recursive"} & set(names(server))


# --- what the edge talks to --------------------------------------------------------------------


def test_in_front_of_l4_one_upstream_named_after_it(tmp_path: Path) -> None:
    """The L4 tier is transparent TCP: the edge targets its instances on its listen port and
    leaves all routing to Kong behind it (one `location /`)."""
    tree = parse(make_spec(middle=[L4, KONG]), tmp_path)
    assert args(upstream(tree, "l4"), "server") == [["10.1.0.1:8000"], ["10.1.0.2:8000"]]
    server = servers(tree)[0]
    assert args(server, "location") == [["/"]]
    assert args(location(server, "/"), "proxy_pass") == [["http://l4"]]


def test_through_l4_to_a_tls_kong_listener_uses_https(tmp_path: Path) -> None:
    """The L4 tier passes TLS through untouched, so when the Kong listener behind it speaks
    TLS the edge must start TLS itself."""
    kong = {**KONG, "proxy_listen": [{"port": 8443, "tls": True}]}
    loc = location(servers(parse(make_spec(middle=[L4, kong]), tmp_path))[0], "/")
    assert args(loc, "proxy_pass") == [["https://l4"]]


def test_kong_first_cleartext_listener(tmp_path: Path) -> None:
    """Kong's stock listeners are 8000 (cleartext) and 8443 (TLS, HTTP/2): the edge ended TLS
    already, so it uses 8000."""
    tree = parse(make_spec(), tmp_path)
    assert args(upstream(tree, "gateway"), "server") == [["10.2.0.1:8000"], ["10.2.0.2:8000"]]
    assert args(location(servers(tree)[0], "/"), "proxy_pass") == [["http://gateway"]]


def test_kong_listener_with_proxy_protocol_is_avoided(tmp_path: Path) -> None:
    """An http proxy cannot send a PROXY header, and a proxy_protocol listener requires one."""
    kong = {**KONG, "proxy_listen": [{"port": 8000, "proxy_protocol": True}, {"port": 8001}]}
    tree = parse(make_spec(middle=[kong]), tmp_path)
    assert args(upstream(tree, "gateway"), "server") == [["10.2.0.1:8001"], ["10.2.0.2:8001"]]


def test_kong_http_prefers_a_listener_without_http2_and_grpc_one_with_it(tmp_path: Path) -> None:
    """A cleartext `listen … http2` on nginx < 1.25.1 answers HTTP/2 only, so HTTP/1.1 goes to
    the plain listener when there is one; gRPC needs the HTTP/2 one."""
    kong = {**KONG, "proxy_listen": [{"port": 8000, "http2": True}, {"port": 8001}]}
    grpc = {**ORDERS, "name": "greeter", "protocol": "grpc", "route": {"paths": ["/g.G"]}}
    tree = parse(make_spec(middle=[kong], services=[ORDERS, grpc]), tmp_path)
    assert args(upstream(tree, "gateway"), "server") == [["10.2.0.1:8001"], ["10.2.0.2:8001"]]
    assert args(upstream(tree, "gateway-grpc"), "server") == [["10.2.0.1:8000"], ["10.2.0.2:8000"]]


def test_kong_before_3_6_gets_http1_and_h2c_on_separate_listeners(tmp_path: Path) -> None:
    """Kong 3.4 bundles OpenResty 1.21.4 (nginx 1.21.4): its cleartext http2 listener speaks
    HTTP/2 only. The edge's HTTP/1.1 upstream uses the plain port, gRPC the h2c one, and
    kong.conf listens on both."""
    kong = {**KONG, "version": "3.4", "proxy_listen": [{"port": 8001, "http2": True}, {"port": 8000}]}
    grpc = {**ORDERS, "name": "greeter", "protocol": "grpc", "route": {"paths": ["/g.G"]}}
    spec = make_spec(middle=[kong], services=[ORDERS, grpc])
    tree = parse(spec, tmp_path)
    assert args(upstream(tree, "gateway"), "server") == [["10.2.0.1:8000"], ["10.2.0.2:8000"]]
    assert args(upstream(tree, "gateway-grpc"), "server") == [["10.2.0.1:8001"], ["10.2.0.2:8001"]]
    files = render_spec(spec, "t.yaml")
    proxy_listen = next(
        line for line in files["gateway/kong.conf"].splitlines() if line.startswith("proxy_listen")
    )
    assert "0.0.0.0:8000 reuseport" in proxy_listen and "0.0.0.0:8001 http2 reuseport" in proxy_listen


def test_kong_tls_only_listener_means_https(tmp_path: Path) -> None:
    kong = {**KONG, "proxy_listen": [{"port": 8443, "tls": True}]}
    loc = location(servers(parse(make_spec(middle=[kong]), tmp_path))[0], "/")
    assert args(loc, "proxy_pass") == [["https://gateway"]]


def test_grpc_through_kong_goes_to_an_http2_listener(tmp_path: Path) -> None:
    """gRPC must leave nginx over HTTP/2 (grpc_pass) and Kong's stock 8000 has no http2, so
    gRPC paths go to 8443 (TLS, HTTP/2) through a second upstream, everything else to 8000."""
    grpc = {
        **ORDERS,
        "name": "greeter",
        "protocol": "grpc",
        "route": {"paths": ["/helloworld.Greeter"]},
    }
    tree = parse(
        make_spec(
            {
                "listen": [{"port": 443, "tls": True, "http2": True}],
                "tls": {"certificate": "/c.crt", "certificate_key": "/c.key"},
            },
            services=[ORDERS, grpc],
        ),
        tmp_path,
    )
    assert args(upstream(tree, "gateway-grpc"), "server") == [["10.2.0.1:8443"], ["10.2.0.2:8443"]]
    server = servers(tree)[0]
    grpc_loc = location(server, "/helloworld.Greeter")
    assert args(grpc_loc, "grpc_pass") == [["grpcs://gateway-grpc"]]
    assert ["Host", "$host"] in args(grpc_loc, "grpc_set_header")
    assert find(grpc_loc, "proxy_set_header") == []
    assert args(location(server, "/"), "proxy_pass") == [["http://gateway"]]


def test_grpc_gets_its_own_upstream_block_even_on_the_same_listener(tmp_path: Path) -> None:
    """The keep-alive cache belongs to the upstream block: with its own block, a gRPC (HTTP/2)
    request never picks up a connection pooled by an HTTP/1.1 request, and vice versa."""
    kong = {**KONG, "proxy_listen": [{"port": 8000, "http2": True}]}
    grpc = {**ORDERS, "protocol": "grpc"}
    tree = parse(make_spec(middle=[kong], services=[grpc]), tmp_path)
    assert args(upstream(tree, "gateway"), "server") == args(
        upstream(tree, "gateway-grpc"), "server"
    )
    server = servers(tree)[0]
    assert args(location(server, "/orders"), "grpc_pass") == [["grpc://gateway-grpc"]]
    assert args(location(server, "/"), "proxy_pass") == [["http://gateway"]]


def test_grpc_through_l4_gets_its_own_upstream_block(tmp_path: Path) -> None:
    """Through the L4 tier both protocols reach the same Kong port; the pools stay apart."""
    kong = {**KONG, "proxy_listen": [{"port": 8000, "http2": True}]}
    grpc = {**ORDERS, "protocol": "grpc"}
    tree = parse(make_spec(middle=[L4, kong], services=[grpc]), tmp_path)
    assert args(upstream(tree, "l4-grpc"), "server") == [["10.1.0.1:8000"], ["10.1.0.2:8000"]]
    server = servers(tree)[0]
    assert args(location(server, "/orders"), "grpc_pass") == [["grpc://l4-grpc"]]
    assert args(location(server, "/"), "proxy_pass") == [["http://l4"]]


def test_without_grpc_services_no_grpc_upstream(tmp_path: Path) -> None:
    tree = parse(make_spec(middle=[L4, KONG]), tmp_path)
    assert [d["args"] for d in find(http(tree), "upstream")] == [["l4"]]


# --- the edge as the gateway (next hop: Kubernetes) --------------------------------------------


def test_in_front_of_kubernetes_one_upstream_per_service(tmp_path: Path) -> None:
    """Each Service is its own upstream: the ClusterIP Service's DNS name on the Service port,
    or the headless Service's name (one A record per ready pod) on the target port."""
    cart = {
        **ORDERS,
        "name": "cart",
        "namespace": "store",
        "route": {"paths": ["/cart"]},
        "kubernetes": {"port": 8080, "target_port": 3000},
    }
    tree = parse(make_spec(middle=[], services=[ORDERS, cart]), tmp_path)
    assert args(upstream(tree, "orders.shop"), "server") == [["orders.shop.svc.cluster.local:80"]]
    assert args(upstream(tree, "cart.store"), "server") == [["cart.store.svc.cluster.local:8080"]]
    server = servers(tree)[0]
    assert args(location(server, "/orders"), "proxy_pass") == [["http://orders.shop"]]
    assert args(location(server, "/cart"), "proxy_pass") == [["http://cart.store"]]
    # Unrouted paths get a 404 instead of nginx's html directory.
    assert args(location(server, "/"), "return") == [["404"]]


def test_pod_endpoints_target_the_headless_service(tmp_path: Path) -> None:
    tree = parse(make_spec({"backend_targets": "pod_endpoints"}, middle=[]), tmp_path)
    assert args(upstream(tree, "orders.shop"), "server") == [
        ["orders-pods.shop.svc.cluster.local:8000"]
    ]


def test_grpc_service_uses_grpc_pass(tmp_path: Path) -> None:
    grpc = {**ORDERS, "protocol": "grpc", "route": {"paths": ["/shop.Orders"]}}
    server = servers(parse(make_spec(middle=[], services=[grpc]), tmp_path))[0]
    loc = location(server, "/shop.Orders")
    assert args(loc, "grpc_pass") == [["grpc://orders.shop"]]
    assert find(loc, "proxy_pass") == []


def test_strip_path_like_kong(tmp_path: Path) -> None:
    """Kong's strip_path turns /orders/x into /x and /orders into /: a URI in proxy_pass
    replaces the matched location prefix (proxy module #proxy_pass)."""
    service = {**ORDERS, "route": {"paths": ["/orders"], "strip_path": True}}
    server = servers(parse(make_spec(middle=[], services=[service]), tmp_path))[0]
    assert args(location(server, "/orders/"), "proxy_pass") == [["http://orders.shop/"]]
    assert args(location(server, "=", "/orders"), "proxy_pass") == [["http://orders.shop/"]]


def test_route_hosts_get_their_own_server_blocks(tmp_path: Path) -> None:
    """Like Kong routes with hosts, a service with hosts only answers for those hosts; the
    catch-all server (default_server) keeps the services without hosts."""
    web = {**ORDERS, "name": "web", "route": {"paths": ["/"], "hosts": ["www.example.com"]}}
    tree = parse(make_spec(middle=[], services=[ORDERS, web]), tmp_path)
    catch_all, www = servers(tree)
    assert all("default_server" in listen for listen in args(catch_all, "listen"))
    assert find(catch_all, "server_name") == []
    assert args(location(catch_all, "/orders"), "proxy_pass") == [["http://orders.shop"]]
    assert args(www, "server_name") == [["www.example.com"]]
    assert args(www, "location") == [["/"]]
    assert args(location(www, "/"), "proxy_pass") == [["http://web.shop"]]
