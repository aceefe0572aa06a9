"""Kong renderer decisions, each with the reason the output is right.

Sources cited in the assertions' messages: Kong/kong `kong/db/schema/entities/*.lua`,
`kong.conf.default`; developer.konghq.com (load-balancing reference, Target entity, KIC
annotations reference); the KongUpstreamPolicy CRD.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft4Validator, Draft7Validator

import lbgen
from lbgen.errors import InputError
from lbgen.model.spec import Spec
from lbgen.plan.hops import resolve
from lbgen.render import kong as kong_renderer
from lbgen.render._base import RenderContext
from lbgen.render._env import jinja_env
from lbgen.render._kic import service_annotations, upstream_policy_name
from tests.conftest import EXAMPLES

# --- helpers -------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "name": "shopfront",
    "tiers": [
        {
            "kind": "kong",
            "name": "gw",
            "version": "3.10",
            "instances": [{"name": "kong-1", "address": "10.0.0.10"}],
        },
        {"kind": "kubernetes", "name": "k8s", "platform": "self-managed"},
    ],
    "services": [
        {
            "name": "orders",
            "namespace": "shop",
            "replicas": 3,
            "app": {"preset": "uvicorn"},
            "route": {"paths": ["/orders"]},
            "kubernetes": {"port": 80, "target_port": 8000},
        }
    ],
}


def make_spec(
    *, tier: dict[str, Any] | None = None, service: dict[str, Any] | None = None,
    services: list[dict[str, Any]] | None = None, edge: dict[str, Any] | None = None,
) -> Spec:
    data = copy.deepcopy(BASE)
    data["tiers"][0].update(tier or {})
    data["services"][0].update(service or {})
    if services is not None:
        data["services"] = services
    if edge is not None:
        data["tiers"].insert(0, edge)
    return lbgen.load(data).spec


def render(spec: Spec) -> dict[str, str]:
    ctx = RenderContext(spec=spec, plan=resolve(spec), source_name="t.yaml", env=jinja_env())
    return {f.path: f.content for f in kong_renderer.render(ctx)}


def kong_yaml(spec: Spec) -> dict[str, Any]:
    doc = yaml.safe_load(render(spec)["gw/kong.yaml"])
    assert isinstance(doc, dict)
    return doc


def conf(spec: Spec) -> dict[str, str]:
    """kong.conf as {key: value}; Kong reads `key = value` lines and `#` comments."""
    out: dict[str, str] = {}
    for line in render(spec)["gw/kong.conf"].splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(" = ")
            assert key not in out, f"{key} emitted twice"
            out[key] = value
    return out


def kic_docs(spec: Spec, path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render(spec)[path]) if d is not None]


EDGE = {
    "kind": "nginx_http",
    "name": "edge",
    "instances": [{"name": "edge-1", "address": "10.1.0.1"}],
}


# --- DB-less: Service, Route, Upstream, Target ---------------------------------------------

def test_service_host_is_the_upstream_name() -> None:
    doc = kong_yaml(make_spec())
    (service,) = doc["services"]
    (upstream,) = doc["upstreams"]
    # A Kong Service uses an Upstream only when its host equals the Upstream's name;
    # otherwise Kong resolves the host by DNS and the Upstream (algorithm, health checks)
    # is never used (load-balancing-reference; upstreams.lua `name`).
    assert service["host"] == upstream["name"]
    # upstreams.lua: the name must be a hostname, no IP and no port.
    assert ":" not in upstream["name"]
    assert not upstream["name"].replace(".", "").isdigit()


def test_pod_endpoints_target_the_headless_service_so_kong_balances_per_pod() -> None:
    doc = kong_yaml(make_spec(tier={"backend_targets": "pod_endpoints"}))
    (target,) = doc["upstreams"][0]["targets"]
    # Kong resolves a hostname target and adds every A record as its own target
    # (developer.konghq.com/gateway/entities/target "Using hostnames"): the headless
    # Service has one A record per ready pod, and pods listen on the target port.
    assert target["target"] == "orders-pods.shop.svc.cluster.local:8000"


def test_cluster_ip_targets_the_service_vip_on_the_service_port() -> None:
    doc = kong_yaml(make_spec(tier={"backend_targets": "cluster_ip"}))
    (target,) = doc["upstreams"][0]["targets"]
    # The ClusterIP Service name resolves to one virtual IP listening on the Service port.
    assert target["target"] == "orders.shop.svc.cluster.local:80"
    assert doc["services"][0]["port"] == 80


def test_strip_path_is_explicit_because_kong_defaults_to_true() -> None:
    # routes.lua: strip_path default true; the spec's default is false, so it is emitted.
    route = kong_yaml(make_spec())["services"][0]["routes"][0]
    assert route["strip_path"] is False
    route = kong_yaml(make_spec(service={"route": {"paths": ["/o"], "strip_path": True}}))[
        "services"
    ][0]["routes"][0]
    assert route["strip_path"] is True


def test_route_carries_paths_hosts_and_http_protocols() -> None:
    spec = make_spec(service={"route": {"paths": ["/v2", "/v1"], "hosts": ["b.example", "a.example"]}})
    route = kong_yaml(spec)["services"][0]["routes"][0]
    assert route["paths"] == ["/v1", "/v2"]
    assert route["hosts"] == ["a.example", "b.example"]
    assert route["protocols"] == ["http", "https"]


def test_default_route_path_is_the_service_name() -> None:
    route = kong_yaml(make_spec(service={"route": {}}))["services"][0]["routes"][0]
    assert route["paths"] == ["/orders"]


def test_grpc_service_speaks_grpc_to_pods_and_matches_grpc_routes() -> None:
    doc = kong_yaml(make_spec(service={"protocol": "grpc"}))
    service = doc["services"][0]
    # grpc: Kong proxies with grpc_pass (h2c) to the pods; grpc routes only match
    # grpc/grpcs requests (routes.lua mutually_exclusive_subsets).
    assert service["protocol"] == "grpc"
    assert service["routes"][0]["protocols"] == ["grpc", "grpcs"]


def test_grpc_with_strip_path_is_refused_because_kong_rejects_it() -> None:
    # routes_subschemas.lua (grpc): strip_path `ne = true`. Refused when the spec loads.
    with pytest.raises(InputError, match="strip"):
        make_spec(service={"protocol": "grpc", "route": {"paths": ["/x"], "strip_path": True}})


def test_retries_and_timeouts_are_emitted_in_milliseconds_only_when_set() -> None:
    service = kong_yaml(make_spec())["services"][0]
    # Unset: Kong's own defaults (retries 5, 60000 ms) apply; lbgen does not restate them.
    assert not {"retries", "connect_timeout", "read_timeout", "write_timeout"} & set(service)
    spec = make_spec(
        service={"kong": {"retries": 1, "timeouts": {"connect": "500ms", "read": "30s", "send": "1m"}}}
    )
    service = kong_yaml(spec)["services"][0]
    # services.lua: *_timeout are milliseconds; the spec's `send` is Kong's write_timeout.
    assert (service["retries"], service["connect_timeout"], service["read_timeout"],
            service["write_timeout"]) == (1, 500, 30_000, 60_000)


def test_upstream_algorithm_hashing_and_slots() -> None:
    spec = make_spec(
        service={
            "kong": {
                "algorithm": "consistent-hashing",
                "hash_on": "header",
                "hash_on_header": "X-User",
                "hash_fallback": "ip",
                "slots": 100,
            }
        }
    )
    upstream = kong_yaml(spec)["upstreams"][0]
    assert upstream["algorithm"] == "consistent-hashing"
    assert (upstream["hash_on"], upstream["hash_on_header"]) == ("header", "X-User")
    assert upstream["hash_fallback"] == "ip"
    assert upstream["slots"] == 100


def test_cookie_hashing_names_the_cookie_and_its_path() -> None:
    spec = make_spec(
        service={"kong": {"algorithm": "consistent-hashing", "hash_on": "cookie",
                          "hash_on_cookie": "sid"}}
    )
    upstream = kong_yaml(spec)["upstreams"][0]
    assert (upstream["hash_on_cookie"], upstream["hash_on_cookie_path"]) == ("sid", "/")
    # upstreams.lua: hash_on cookie forces hash_fallback none, so none is emitted.
    assert "hash_fallback" not in upstream


def test_healthchecks_are_whole_seconds_and_keep_every_counter() -> None:
    spec = make_spec(
        service={
            "kong": {
                "healthchecks": {
                    "threshold": 25,
                    "active": {"type": "http", "http_path": "/healthz", "timeout": 2,
                               "healthy": {"interval": 5, "successes": 2},
                               "unhealthy": {"interval": 5, "http_failures": 3,
                                             "http_statuses": [500, 503]}},
                    "passive": {"healthy": {"successes": 5},
                                "unhealthy": {"tcp_failures": 2, "timeouts": 3}},
                }
            }
        }
    )
    checks = kong_yaml(spec)["upstreams"][0]["healthchecks"]
    # decK types threshold as number but active timeout/interval as integers (it rejects 1.5).
    assert checks["threshold"] == 25 and isinstance(checks["threshold"], int)
    active = checks["active"]
    assert (active["timeout"], active["http_path"]) == (2, "/healthz")
    assert active["healthy"] == {"interval": 5, "successes": 2}
    assert active["unhealthy"]["http_statuses"] == [500, 503]
    passive = checks["passive"]
    # Passive checks have no interval (they watch live traffic).
    assert "interval" not in passive["healthy"] and "interval" not in passive["unhealthy"]
    assert passive["unhealthy"]["tcp_failures"] == 2


def test_tcp_active_check_has_no_http_path() -> None:
    spec = make_spec(service={"kong": {"healthchecks": {"active": {"type": "tcp"}}}})
    assert "http_path" not in kong_yaml(spec)["upstreams"][0]["healthchecks"]["active"]


def test_every_entity_is_tagged_so_deck_can_select_lbgen_entities() -> None:
    doc = kong_yaml(make_spec())
    expected = ["lbgen", "lbgen-shopfront"]
    service = doc["services"][0]
    upstream = doc["upstreams"][0]
    for entity in (service, service["routes"][0], upstream, upstream["targets"][0]):
        assert entity["tags"] == expected


def test_same_service_name_in_two_namespaces_gives_distinct_kong_entities() -> None:
    services = [
        {"name": "api", "namespace": ns, "replicas": 1, "app": {"preset": "go"},
         "route": {"paths": [f"/{ns}"]}}
        for ns in ("blue", "green")
    ]
    doc = kong_yaml(make_spec(services=services))
    names = [s["name"] for s in doc["services"]]
    hosts = [u["name"] for u in doc["upstreams"]]
    assert len(set(names)) == 2 and len(set(hosts)) == 2


def test_output_is_sorted_and_deterministic() -> None:
    services = [
        {"name": n, "namespace": "shop", "replicas": 1, "app": {"preset": "go"}}
        for n in ("zeta", "alpha", "mid")
    ]
    spec = make_spec(services=services)
    reversed_spec = make_spec(services=list(reversed(services)))
    first = render(spec)
    # Spec order does not change output: diffs only show real changes.
    assert render(reversed_spec) == first == render(spec)
    doc = yaml.safe_load(first["gw/kong.yaml"])
    assert [s["name"] for s in doc["services"]] == ["shop.alpha", "shop.mid", "shop.zeta"]
    assert [u["name"] for u in doc["upstreams"]] == sorted(u["name"] for u in doc["upstreams"])


def test_kong_yaml_header_names_the_spec_and_the_kong_target() -> None:
    text = render(make_spec(tier={"edition": "enterprise", "version": "3.12"}))["gw/kong.yaml"]
    lines = text.splitlines()
    assert lines[0] == "# generated by lbgen from t.yaml — do not edit"
    assert lines[1] == "# lbgen-kong: edition=enterprise version=3.12"
    assert yaml.safe_load(text)["_format_version"] == "3.0"


def test_sticky_sessions_name_their_cookie() -> None:
    spec = make_spec(
        tier={"edition": "enterprise", "version": "3.11"},
        service={"kong": {"algorithm": "sticky-sessions", "sticky_sessions_cookie": "route"}},
    )
    upstream = kong_yaml(spec)["upstreams"][0]
    assert upstream["algorithm"] == "sticky-sessions"
    assert (upstream["sticky_sessions_cookie"], upstream["sticky_sessions_cookie_path"]) == (
        "route", "/")
    # Kong docs: sticky sessions use hash_on none (a non-none hash_on switches the algorithm).
    assert "hash_on" not in upstream


def test_sticky_sessions_with_hash_on_is_refused() -> None:
    with pytest.raises(InputError, match="sticky-sessions needs hash_on: none"):
        make_spec(
            tier={"edition": "enterprise", "version": "3.11"},
            service={"kong": {"algorithm": "sticky-sessions", "sticky_sessions_cookie": "r",
                              "hash_on": "ip"}},
        )


def test_cookie_fallback_without_a_cookie_name_is_refused() -> None:
    with pytest.raises(InputError, match="hash_on_cookie"):
        make_spec(service={"kong": {"algorithm": "consistent-hashing", "hash_on": "ip",
                                    "hash_fallback": "cookie"}})


def test_cookie_fallback_reuses_hash_on_cookie() -> None:
    spec = make_spec(service={"kong": {"algorithm": "consistent-hashing", "hash_on": "ip",
                                       "hash_fallback": "cookie", "hash_on_cookie": "sid"}})
    upstream = kong_yaml(spec)["upstreams"][0]
    assert (upstream["hash_on"], upstream["hash_fallback"], upstream["hash_on_cookie"]) == (
        "ip", "cookie", "sid")
    policy = kic_docs(make_spec(tier={"mode": "kic"}, service={"kong": {
        "algorithm": "consistent-hashing", "hash_on": "ip", "hash_fallback": "cookie",
        "hash_on_cookie": "sid"}}), KIC_PATH)[0]["spec"]
    assert policy["hashOnFallback"] == {"cookie": "sid", "cookiePath": "/"}


# --- kong.conf ------------------------------------------------------------------------------

# Every key lbgen may emit, each read in Kong/kong kong.conf.default (NGINX, DATASTORE and
# "NGINX injected directives" sections): an emitted key outside this set is a typo Kong
# would ignore or reject.
KONG_CONF_KEYS = {
    "database", "declarative_config", "proxy_listen", "upstream_keepalive_pool_size",
    "upstream_keepalive_max_requests", "upstream_keepalive_idle_timeout", "real_ip_header",
    "real_ip_recursive", "trusted_ips", "nginx_http_keepalive_timeout",
    "nginx_http_keepalive_requests",
}


def test_kong_conf_keys_are_real_kong_conf_keys() -> None:
    spec = make_spec(tier={"client_keepalive": {"max_requests": 500},
                           "real_ip": {"trusted_ips": ["10.0.0.0/8"]}})
    assert set(conf(spec)) == KONG_CONF_KEYS


def test_db_less_conf_points_kong_at_the_declarative_file() -> None:
    settings = conf(make_spec())
    assert settings["database"] == "off"
    # Absolute: Kong must find it whatever directory it is started from.
    assert settings["declarative_config"] == kong_renderer.DECLARATIVE_CONFIG_PATH
    assert settings["declarative_config"].startswith("/")


def test_default_listeners_render_exactly_like_kong_conf_default() -> None:
    # kong.conf.default: proxy_listen = 0.0.0.0:8000 reuseport backlog=16384,
    #                                   0.0.0.0:8443 http2 ssl reuseport backlog=16384
    assert conf(make_spec())["proxy_listen"] == (
        "0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384"
    )


def test_listener_flags_follow_the_spec() -> None:
    spec = make_spec(tier={"proxy_listen": [{"port": 8000, "http2": True, "proxy_protocol": True}]})
    # h2c for gRPC clients and PROXY protocol from an L4 hop, keeping Kong's socket defaults.
    assert conf(spec)["proxy_listen"] == "0.0.0.0:8000 http2 proxy_protocol reuseport backlog=16384"


def test_upstream_idle_timeout_closes_before_the_app_does() -> None:
    # uvicorn closes idle connections after 5s (--timeout-keep-alive); Kong must close its
    # pooled connection first: 5s minus the 1s minimum margin = 4 whole seconds.
    assert conf(make_spec())["upstream_keepalive_idle_timeout"] == "4"


def test_upstream_idle_timeout_is_rounded_down_to_whole_seconds_but_never_to_zero() -> None:
    # Kong reads whole seconds; rounding up would outlive the budget, and 0 means "forever".
    def idle(value: str | int) -> str:
        pool = {"connections": 16, "idle_timeout": value}  # a set pool keeps the set timeout
        return conf(make_spec(tier={"upstream_keepalive": pool}))["upstream_keepalive_idle_timeout"]

    assert idle("2500ms") == "2"
    assert idle("400ms") == "1"
    assert idle(0) == "0"  # set to 0 on purpose: kept as "forever"


def test_pool_settings_take_kong_defaults_for_the_version() -> None:
    settings = conf(make_spec(tier={"version": "3.4"}))
    # kong.conf.default before 3.5: pool 60, max_requests 100 (512 / 10000 since 3.5 / 3.6).
    assert settings["upstream_keepalive_pool_size"] == "60"
    assert settings["upstream_keepalive_max_requests"] == "100"
    settings = conf(make_spec(tier={"upstream_keepalive": {"connections": 0}}))
    assert settings["upstream_keepalive_pool_size"] == "0"


def test_client_keepalive_is_raised_above_the_edge_pool_and_injected() -> None:
    # The edge keeps idle connections to Kong for 90s (set), so Kong must keep them longer:
    # 90s + 10% margin = 99s, injected as the http{} directive keepalive_timeout.
    spec = make_spec(
        edge={**EDGE, "upstream_keepalive": {"idle_timeout": "90s"}},
    )
    assert conf(spec)["nginx_http_keepalive_timeout"] == "99s"
    assert "nginx_http_keepalive_requests" not in conf(spec)


def test_client_keepalive_defaults_to_nginx_75s() -> None:
    # Kong's templates set no keepalive_timeout, so nginx's 75s applies; lbgen states it.
    assert conf(make_spec())["nginx_http_keepalive_timeout"] == "75s"


def test_real_ip_settings() -> None:
    spec = make_spec(tier={"real_ip": {"header": "X-Forwarded-For", "recursive": True,
                                       "trusted_ips": ["10.20.0.0/24", "10.10.0.0/24"]}})
    settings = conf(spec)
    assert settings["real_ip_header"] == "X-Forwarded-For"
    assert settings["real_ip_recursive"] == "on"
    # kong.conf lists are comma-separated strings.
    assert settings["trusted_ips"] == "10.20.0.0/24,10.10.0.0/24"
    # No trusted proxies: Kong's default (none) stays; an empty value would be an error.
    assert "trusted_ips" not in conf(make_spec())


# --- KIC ----------------------------------------------------------------------------------------

KIC_PATH = "gw/kic/shop-orders.yaml"


def test_kic_renders_a_bundle_per_service_and_no_declarative_file() -> None:
    files = render(make_spec(tier={"mode": "kic"}))
    # KIC builds Kong's configuration from Kubernetes resources; a kong.yaml would compete.
    assert set(files) == {"gw/kong.conf", KIC_PATH}
    assert [d["kind"] for d in kic_docs(make_spec(tier={"mode": "kic"}), KIC_PATH)] == [
        "KongUpstreamPolicy", "Ingress"]


def test_kic_conf_has_no_database_or_declarative_config() -> None:
    text = render(make_spec(tier={"mode": "kic"}))["gw/kong.conf"]
    settings = conf(make_spec(tier={"mode": "kic"}))
    assert "database" not in settings and "declarative_config" not in settings
    assert "upstream_keepalive_idle_timeout" in settings
    assert "KONG_* environment variables" in text and "Helm values" in text


def test_service_annotation_names_the_rendered_policy() -> None:
    spec = make_spec(tier={"mode": "kic"})
    policy, _ = kic_docs(spec, KIC_PATH)
    annotations = service_annotations(spec, spec.services[0])
    # KIC attaches a KongUpstreamPolicy only through this Service annotation, by name, in
    # the Service's namespace (annotations.md §konghq.com/upstream-policy).
    assert annotations["konghq.com/upstream-policy"] == policy["metadata"]["name"]
    assert policy["metadata"]["namespace"] == spec.services[0].namespace


def test_pod_endpoints_under_kic_is_the_controller_default() -> None:
    spec = make_spec(tier={"mode": "kic", "backend_targets": "pod_endpoints"})
    # KIC sends traffic to pod IPs by default (annotations.md §service-upstream).
    assert "ingress.kubernetes.io/service-upstream" not in service_annotations(
        spec, spec.services[0])


def test_cluster_ip_under_kic_sets_service_upstream() -> None:
    spec = make_spec(tier={"mode": "kic", "backend_targets": "cluster_ip"})
    assert service_annotations(spec, spec.services[0])[
        "ingress.kubernetes.io/service-upstream"] == "true"


def test_kic_service_annotations_for_protocol_retries_and_timeouts() -> None:
    spec = make_spec(
        tier={"mode": "kic"},
        service={"protocol": "grpc", "kong": {"retries": 2, "timeouts": {
            "connect": "2s", "read": "45s", "send": "250ms"}}},
    )
    annotations = service_annotations(spec, spec.services[0])
    assert annotations["konghq.com/protocol"] == "grpc"
    # Annotation values are strings; KIC's timeouts are milliseconds like the Kong fields.
    assert (annotations["konghq.com/retries"], annotations["konghq.com/connect-timeout"],
            annotations["konghq.com/read-timeout"], annotations["konghq.com/write-timeout"]) == (
        "2", "2000", "45000", "250")


def test_db_less_needs_no_service_annotations() -> None:
    spec = make_spec(service={"protocol": "grpc", "kong": {"retries": 2}})
    assert service_annotations(spec, spec.services[0]) == {}


def test_kic_policy_maps_hashing_and_healthchecks_to_crd_fields() -> None:
    spec = make_spec(
        tier={"mode": "kic"},
        service={"kong": {"algorithm": "consistent-hashing", "hash_on": "cookie",
                          "hash_on_cookie": "sid", "slots": 1000,
                          "healthchecks": {"threshold": 50,
                                           "passive": {"healthy": {"successes": 3},
                                                       "unhealthy": {"http_failures": 2}}}}},
    )
    policy = kic_docs(spec, KIC_PATH)[0]["spec"]
    # CRD CEL: cookie needs cookiePath; Kong's hash_on_cookie_path default is "/".
    assert policy["hashOn"] == {"cookie": "sid", "cookiePath": "/"}
    assert policy["slots"] == 1000
    assert policy["healthchecks"]["threshold"] == 50
    # CRD CEL forbids interval in passive checks.
    assert policy["healthchecks"]["passive"]["unhealthy"] == {
        "httpFailures": 2, "tcpFailures": 0, "timeouts": 0}


def test_kic_fractional_threshold_is_refused_because_the_crd_wants_an_integer() -> None:
    with pytest.raises(InputError, match="whole-number"):
        make_spec(tier={"mode": "kic"}, service={"kong": {"healthchecks": {"threshold": 12.5}}})
    # DB-less Kong takes a number, so it passes through there.
    db_less = make_spec(service={"kong": {"healthchecks": {"threshold": 12.5}}})
    assert kong_yaml(db_less)["upstreams"][0]["healthchecks"]["threshold"] == 12.5


def test_kic_sticky_sessions_policy() -> None:
    spec = make_spec(
        tier={"mode": "kic", "edition": "enterprise", "version": "3.11"},
        service={"kong": {"algorithm": "sticky-sessions", "sticky_sessions_cookie": "route"}},
    )
    policy = kic_docs(spec, KIC_PATH)[0]["spec"]
    # CRD CEL: stickySessions needs algorithm sticky-sessions and hashOn.input none.
    assert policy["algorithm"] == "sticky-sessions"
    assert policy["hashOn"] == {"input": "none"}
    assert policy["stickySessions"] == {"cookie": "route", "cookiePath": "/"}


def test_kic_ingress_routes_to_the_service_port_with_kong_prefix_matching() -> None:
    spec = make_spec(tier={"mode": "kic"},
                     service={"route": {"paths": ["/orders"], "hosts": ["shop.example"]}})
    ingress = kic_docs(spec, KIC_PATH)[1]
    assert ingress["spec"]["ingressClassName"] == "kong"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "shop.example"
    (path,) = rule["http"]["paths"]
    # ImplementationSpecific: KIC hands the path to Kong as a plain prefix, like the
    # DB-less Route (Prefix would only match whole segments).
    assert (path["path"], path["pathType"]) == ("/orders", "ImplementationSpecific")
    assert path["backend"]["service"] == {"name": "orders", "port": {"number": 80}}
    assert ingress["metadata"]["annotations"] == {"konghq.com/strip-path": "false"}


def test_kic_grpc_ingress_matches_grpc_protocols_without_strip_path() -> None:
    spec = make_spec(tier={"mode": "kic"}, service={"protocol": "grpc"})
    annotations = kic_docs(spec, KIC_PATH)[1]["metadata"]["annotations"]
    assert annotations == {"konghq.com/protocols": "grpc,grpcs"}


def test_kic_ingress_with_several_hosts_has_one_rule_each_and_no_yaml_aliases() -> None:
    spec = make_spec(tier={"mode": "kic"},
                     service={"route": {"paths": ["/o"], "hosts": ["b.example", "a.example"]}})
    text = render(spec)[KIC_PATH]
    # A shared Python object would be dumped as &id001/*id001, which some tools reject.
    assert "&id" not in text and "*id" not in text
    rules = kic_docs(spec, KIC_PATH)[1]["spec"]["rules"]
    assert [r["host"] for r in rules] == ["a.example", "b.example"]


def test_no_kong_tier_renders_nothing() -> None:
    data = copy.deepcopy(BASE)
    data["tiers"] = [EDGE, data["tiers"][1]]
    assert render(lbgen.load(data).spec) == {}


# --- real consumers on every example ------------------------------------------------------------

def _kong_examples() -> list[Any]:
    params = []
    for example in EXAMPLES:
        spec = lbgen.load(example).spec
        if spec.kong is not None:
            params.append(pytest.param(example, id=example.stem))
    return params


def _schema(schemas_dir: Path, name: str) -> Any:
    return json.loads((schemas_dir / "kong" / name).read_text(encoding="utf-8"))


def _errors(validator: Any, document: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("example", _kong_examples())
def test_example_output_is_accepted_by_kong_schemas(example: Path, schemas_dir: Path) -> None:
    spec = lbgen.load(example).spec
    assert spec.kong is not None
    files = render(spec)  # the Kong renderer alone: other tiers are tested elsewhere
    tier = spec.kong.name
    if spec.kong.mode == "db-less":
        document = yaml.safe_load(files[f"{tier}/kong.yaml"])
        deck = Draft4Validator(_schema(schemas_dir, "deck-kong_json_schema.json"))
        constraints_name = kong_renderer.constraints_schema_name(spec.kong.edition,
                                                                 spec.kong.version)
        constraints = Draft7Validator(_schema(schemas_dir, constraints_name))
        assert _errors(deck, document) == []
        assert _errors(constraints, document) == []
        assert len(document["services"]) == len(spec.services)
    else:
        crd = Draft7Validator(_schema(schemas_dir, "kongupstreampolicy-v1beta1.json"))
        for service in spec.services:
            policy, ingress = yaml.safe_load_all(files[f"{tier}/kic/{service.namespace}-"
                                                       f"{service.name}.yaml"])
            assert _errors(crd, policy) == []
            assert policy["metadata"]["name"] == upstream_policy_name(service)
            kubernetes_validate.validate(ingress, "1.36", strict=True)


def test_constraints_schema_choice() -> None:
    from lbgen.model.types import Version

    # sticky-sessions and target failover exist only in Kong Enterprise ≥ 3.11 (ee-3.15 file).
    assert kong_renderer.constraints_schema_name("enterprise", Version("3.11")).endswith(
        "ee-3.15.json")
    assert kong_renderer.constraints_schema_name("enterprise", Version("3.10")).endswith(
        "ee-3.10.json")
    assert kong_renderer.constraints_schema_name("oss", Version("3.12")).endswith("ee-3.10.json")
