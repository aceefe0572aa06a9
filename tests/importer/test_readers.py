"""Each reader on small configs written for the case: what it translates, where it says the
value came from, and what it reports as not translated."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbgen.errors import InputError
from lbgen.importer.kong import import_kong
from lbgen.importer.kubernetes import import_kubernetes
from lbgen.importer.nginx import import_nginx_http, import_nginx_stream, nginx_duration
from lbgen.importer.sources import HopImport, Origin, Sourced, SourceText, get
from lbgen.model.types import Duration


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _shown(path: str) -> str:
    return Path(path).name


def _value(hop: HopImport, path: str) -> object:
    found = get(hop.tier, path)
    assert isinstance(found, Sourced), f"{path}: {found!r}"
    return found.value


@pytest.mark.parametrize(("text", "ms"), [("75s", 75_000), ("75", 75_000), ("1m 30s", 90_000), ("500ms", 500),
                                          ("1h", 3_600_000), ("2w", 14 * 86_400_000), ("x", None), ("", None)])
def test_nginx_times(text: str, ms: int | None) -> None:
    assert nginx_duration(text) == (Duration(ms) if ms is not None else None)


def test_http_values_are_inherited_like_nginx_does(tmp_path: Path) -> None:
    conf = _write(tmp_path, "nginx.conf", """\
http {
    proxy_read_timeout 90s;
    set_real_ip_from 10.0.0.0/8;
    real_ip_header X-Forwarded-For;
    upstream next { server 10.1.0.1:8000; server 10.1.0.2:8000; least_conn; keepalive 16; }
    server {
        listen 443 ssl proxy_protocol;
        http2 on;
        ssl_certificate /etc/tls/a.crt;
        ssl_certificate_key /etc/tls/a.key;
        location / {
            proxy_pass http://next;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
""")
    hop = import_nginx_http([conf], SourceText(), _shown)
    read = get(hop.tier, "timeouts.read")
    assert read == Sourced("90s", Origin("nginx.conf", 2, 24))
    assert _value(hop, "balancing.algorithm") == "least_conn"
    assert _value(hop, "upstream_keepalive.connections") == 16
    assert _value(hop, "tls.certificate") == "/etc/tls/a.crt"
    assert _value(hop, "real_ip.header") == "X-Forwarded-For"
    trusted = get(hop.tier, "real_ip.trusted")
    assert isinstance(trusted, list) and [t.value for t in trusted if isinstance(t, Sourced)] == ["10.0.0.0/8"]
    listener = hop.tier["listen"]
    assert isinstance(listener, list) and isinstance(listener[0], dict)
    assert {k: v.value for k, v in listener[0].items() if isinstance(v, Sourced)} == {
        "port": 443, "tls": True, "http2": True, "proxy_protocol": True}
    assert _value(hop, "forwarded_headers") is False  # no X-Forwarded-For is sent
    assert [s.value for s in hop.links.forwards["next"]] == ["10.1.0.1:8000", "10.1.0.2:8000"]


def test_disagreeing_locations_keep_the_first_and_report_the_other(tmp_path: Path) -> None:
    conf = _write(tmp_path, "nginx.conf", """\
http {
    upstream next { server 10.1.0.1:8000; }
    server {
        listen 80;
        location /a { proxy_pass http://next; proxy_http_version 1.1; proxy_read_timeout 30s; }
        location /b { proxy_pass http://next; proxy_http_version 1.1; proxy_read_timeout 60s; }
    }
}
""")
    hop = import_nginx_http([conf], SourceText(), _shown)
    assert _value(hop, "timeouts.read") == "30s"
    [ambiguous] = [s for s in hop.skipped if s.reason == "ambiguous"]
    assert ambiguous.origin == Origin("nginx.conf", 6, 90)
    assert "30s" in ambiguous.detail and "1m" in ambiguous.item


def test_http_1_0_upstream_and_unknown_directives_are_reported(tmp_path: Path) -> None:
    conf = _write(tmp_path, "nginx.conf", """\
http {
    gzip on;
    map $http_upgrade $connection_upgrade { default upgrade; }
    upstream next { server 10.1.0.1:8000 weight=5; }
    server { listen 80; location / { proxy_pass http://next; } }
}
""")
    hop = import_nginx_http([conf], SourceText(), _shown)
    reported = {(s.origin.line, s.reason, s.item.split()[0]) for s in hop.skipped}
    assert (2, "out-of-scope", "gzip") in reported
    assert (3, "out-of-scope", "map") in reported
    assert (4, "unsupported", "server") in reported  # weight=5
    assert (5, "unsupported", "proxy_http_version") in reported  # unset: HTTP/1.0, no pool


def test_includes_are_followed_and_located_in_the_included_file(tmp_path: Path) -> None:
    main = _write(tmp_path, "nginx.conf", "http {\n    include conf.d/*.conf;\n    keepalive_timeout 30s;\n}\n")
    _write(tmp_path, "conf.d/app.conf", "upstream next { server 10.1.0.1:8000; keepalive_timeout 20s; }\n"
           "server { listen 80; location / { proxy_pass http://next; proxy_http_version 1.1; } }\n")
    hop = import_nginx_http([main], SourceText(), _shown)
    assert get(hop.tier, "upstream_keepalive.idle_timeout") == Sourced("20s", Origin("app.conf", 1, 57))
    # the line after the include stays attributed to nginx.conf
    assert get(hop.tier, "client_keepalive.timeout") == Sourced("30s", Origin("nginx.conf", 3, 23))


def test_a_missing_include_is_reported_not_fatal(tmp_path: Path) -> None:
    main = _write(tmp_path, "nginx.conf", "http {\n    include /nonexistent/mime.types;\n}\n")
    hop = import_nginx_http([main], SourceText(), _shown)
    [missing] = hop.skipped
    assert (missing.origin, missing.reason) == (Origin("nginx.conf", 2, 5), "ambiguous")


def test_unparsable_nginx_is_a_located_error(tmp_path: Path) -> None:
    conf = _write(tmp_path, "nginx.conf", "http {\n    upstream next {\n        server 10.0.0.1;\n")
    with pytest.raises(InputError) as caught:
        import_nginx_http([conf], SourceText(), _shown)
    [problem] = caught.value.problems
    assert (problem.location.file, problem.location.line) == ("nginx.conf", 3)
    assert "unexpected end of file" in problem.message


def test_stream_tier(tmp_path: Path) -> None:
    conf = _write(tmp_path, "stream.conf", """\
stream {
    upstream kong { hash $remote_addr consistent; server 10.3.0.1:8000; server 10.3.0.2:8000 max_fails=0; }
    server {
        listen 9000 proxy_protocol;
        proxy_pass kong;
        proxy_timeout 15m;
        proxy_protocol on;
        proxy_next_upstream_tries 2;
        set_real_ip_from 10.1.0.0/16;
    }
}
""")
    hop = import_nginx_stream([conf], SourceText(), _shown)
    assert _value(hop, "listen_port") == 9000
    assert _value(hop, "accept_proxy_protocol") is True
    assert _value(hop, "send_proxy_protocol") is True
    assert _value(hop, "proxy_timeout") == "15m"
    assert _value(hop, "balancing.hash_key") == "$remote_addr"
    assert _value(hop, "balancing.consistent") is True
    assert _value(hop, "next_upstream_tries") == 2
    # one server sets max_fails=0, the other leaves nginx's 1: one tier value cannot say both
    assert _value(hop, "passive_health.max_fails") == 0
    assert any(s.reason == "ambiguous" and s.origin.line == 2 for s in hop.skipped)


KONG_YAML = """\
_format_version: "3.0"
services:
  - name: api
    host: api.up
    port: 8080
    protocol: grpc
    retries: 2
    connect_timeout: 1500
upstreams:
  - name: api.up
    algorithm: consistent-hashing
    hash_on: header
    hash_on_header: X-User
    healthchecks:
      active:
        http_path: /ready
        healthy: {interval: 5, successes: 2}
routes:
  - name: api
    service: {name: api}
    paths: [/api]
targets:
  - upstream: api.up
    target: api-pods.shop.svc.cluster.local:8080
    weight: 50
consumers:
  - username: alice
"""


def test_kong_declarative_with_top_level_routes_and_targets(tmp_path: Path) -> None:
    path = _write(tmp_path, "kong.yaml", KONG_YAML)
    hop = import_kong(path, None, _shown)
    service = hop.services["api"]
    assert get(service, "protocol") == Sourced("grpc", Origin("kong.yaml", 6, 15))
    assert get(service, "kong.timeouts.connect") == Sourced("1500ms", Origin("kong.yaml", 8, 22))
    assert get(service, "kong.hash_on_header") == Sourced("X-User", Origin("kong.yaml", 13, 21))
    assert get(service, "kong.healthchecks.active.healthy.interval") == Sourced(5, Origin("kong.yaml", 17, 29))
    paths = get(service, "route.paths")
    assert isinstance(paths, list) and [p.value for p in paths if isinstance(p, Sourced)] == ["/api"]
    assert [t.value for t in hop.links.forwards["api"]] == ["api-pods.shop.svc.cluster.local:8080"]
    reported = {(s.origin.line, s.item) for s in hop.skipped}
    assert (25, "weight: 50") in reported
    assert (26, "consumers") in reported


def test_kong_conf(tmp_path: Path) -> None:
    path = _write(tmp_path, "kong.conf", """\
# comment
proxy_listen = 0.0.0.0:8000 proxy_protocol, 0.0.0.0:8443 ssl http2
upstream_keepalive_idle_timeout = 30   # seconds
nginx_http_keepalive_timeout = 120s
dns_resolver = 10.0.0.10,10.0.0.11
mem_cache_size = 128m
""")
    hop = import_kong(None, path, _shown)
    assert _value(hop, "upstream_keepalive.idle_timeout") == "30s"
    assert get(hop.tier, "client_keepalive.timeout") == Sourced("2m", Origin("kong.conf", 4, 32))
    assert _value(hop, "dns_resolver") == ["10.0.0.10", "10.0.0.11"]
    listeners = hop.tier["proxy_listen"]
    assert isinstance(listeners, list) and len(listeners) == 2
    [extra] = hop.skipped
    assert (extra.origin, extra.reason) == (Origin("kong.conf", 6, 1), "out-of-scope")


def test_invalid_kong_yaml_is_a_located_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "kong.yaml", "services:\n  - name: a\n    host: [unclosed\n")
    with pytest.raises(InputError) as caught:
        import_kong(path, None, _shown)
    assert caught.value.problems[0].location.file == "kong.yaml"
    assert caught.value.problems[0].location.line >= 3


K8S = """\
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop, annotations: {cloud.google.com/neg: '{"ingress": true}'}}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
---
apiVersion: v1
kind: Service
metadata: {name: api-pods, namespace: shop}
spec:
  clusterIP: None
  selector: {app: api}
  ports: [{port: 8080, targetPort: 8080}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: api, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicas: 3
  maxReplicas: 9
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: api, namespace: shop}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: api}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
"""


def test_kubernetes_service_headless_sibling_hpa_pdb(tmp_path: Path) -> None:
    _write(tmp_path, "k8s/api.yaml", K8S)
    hop = import_kubernetes([str(tmp_path / "k8s")], None, _shown)
    [(key, service)] = hop.services.items()
    assert key == "shop/api"
    assert get(service, "kubernetes.session_affinity_timeout") == Sourced(600, Origin("api.yaml", 8, 54))
    assert get(service, "autoscaling.min_replicas") == Sourced(3, Origin("api.yaml", 23, 16))
    assert get(service, "disruption_budget.min_available") == Sourced(2, Origin("api.yaml", 30, 17))
    assert hop.links.kinds["api-pods.shop.svc:8080"] == "headless"
    assert hop.links.kinds["api.shop.svc:80"] == "cluster_ip"
    reported = {s.item for s in hop.skipped}
    assert "annotation cloud.google.com/neg" in reported
    assert "Ingress web" in reported


def test_kube_proxy_configmap_values_are_located_inside_config_conf(tmp_path: Path) -> None:
    path = _write(tmp_path, "kube-proxy.yaml", """\
apiVersion: v1
kind: ConfigMap
metadata: {name: kube-proxy, namespace: kube-system}
data:
  config.conf: |
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    kind: KubeProxyConfiguration
    mode: ipvs
    ipvs:
      scheduler: lc
      syncPeriod: 30s
    metricsBindAddress: 0.0.0.0:10249
""")
    hop = import_kubernetes([], path, _shown)
    assert get(hop.tier, "kube_proxy.mode") == Sourced("ipvs", Origin("kube-proxy.yaml", 8, 11))
    assert get(hop.tier, "kube_proxy.ipvs.scheduler") == Sourced("lc", Origin("kube-proxy.yaml", 10, 18))
    assert get(hop.tier, "kube_proxy.sync_period") == Sourced("30s", Origin("kube-proxy.yaml", 11, 19))
    [extra] = hop.skipped
    assert (extra.origin.line, extra.reason) == (12, "out-of-scope")


def test_yaml_anchors_and_merge_keys_are_read_with_positions(tmp_path: Path) -> None:
    path = _write(tmp_path, "kong.yaml", """\
_format_version: "3.0"
x-defaults: &timeouts {connect_timeout: 2000, read_timeout: 30000}
services:
  - name: a
    host: a.svc
    <<: *timeouts
""")
    hop = import_kong(path, None, _shown)
    assert get(hop.services["a"], "kong.timeouts.read") == Sourced("30s", Origin("kong.yaml", 2, 61))


def test_duplicate_yaml_keys_are_a_located_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "kong.yaml", "services:\n  - name: a\n    name: b\n")
    with pytest.raises(InputError) as caught:
        import_kong(path, None, _shown)
    assert str(caught.value.problems[0].location) == "kong.yaml:3:5"


def test_several_directives_on_one_line_have_their_own_columns(tmp_path: Path) -> None:
    conf = _write(tmp_path, "nginx.conf",
                  "http { upstream u { server 10.0.0.1:80; keepalive 4; } server { listen 80; "
                  "location /a { proxy_pass http://u; proxy_http_version 1.1; proxy_read_timeout 5s; } } }\n")
    hop = import_nginx_http([conf], SourceText(), _shown)
    line = Path(conf).read_text()
    assert get(hop.tier, "upstream_keepalive.connections") == Sourced(4, Origin("nginx.conf", 1, line.find("4;") + 1))
    assert get(hop.tier, "timeouts.read") == Sourced("5s", Origin("nginx.conf", 1, line.find("5s") + 1))


def test_one_nginx_conf_with_http_and_stream_reports_its_main_context_once(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from lbgen.importer.run import ImportInputs, run_import

    _write(tmp_path, "nginx.conf", """\
user nginx;
events {}
http {
    upstream l4 { server 10.2.0.1:9000; keepalive 8; }
    server { listen 80; location / { proxy_pass http://l4; proxy_http_version 1.1; } }
}
stream {
    upstream kong { server 10.3.0.1:8000; }
    server { listen 9000; proxy_pass kong; }
}
""")
    monkeypatch.chdir(tmp_path)
    result = run_import(ImportInputs(nginx_http=["nginx.conf"], nginx_stream=["nginx.conf"], assume=["app.preset=go"]))
    users = [s for s in result.skipped if s.item == "user nginx"]
    assert len(users) == 1
    assert not any("block is read with" in s.detail for s in result.skipped)  # both blocks were read
    spec = result.loaded.spec
    assert spec.l4 is not None and spec.l4.listen_port == 9000
    assert spec.kong is None and [i.address for i in spec.l4.instances] == ["10.2.0.1"]


def test_a_kong_service_url_is_its_protocol_host_and_port(tmp_path: Path) -> None:
    path = _write(tmp_path, "kong.yaml", '_format_version: "3.0"\nservices:\n'
                  "  - name: a\n    url: grpc://a.shop.svc.cluster.local:9000/v1\n    routes: [{paths: [/a]}]\n")
    hop = import_kong(path, None, _shown)
    assert [t.value for t in hop.links.forwards["a"]] == ["a.shop.svc.cluster.local:9000"]
    assert get(hop.services["a"], "protocol") == Sourced("grpc", Origin("kong.yaml", 4, 10))
    assert [(s.item, s.reason) for s in hop.skipped] == [("url path /v1", "unsupported")]


def test_kong_routes_without_paths(tmp_path: Path) -> None:
    path = _write(tmp_path, "kong.yaml", '_format_version: "3.0"\nservices:\n'
                  "  - {name: a, host: a.svc, routes: [{hosts: [a.example.com]}]}\n"
                  "  - {name: b, host: b.svc}\n")
    hop = import_kong(path, None, _shown)
    paths = get(hop.services["a"], "route.paths")
    assert isinstance(paths, list) and [p.value for p in paths if isinstance(p, Sourced)] == ["/"]
    [unrouted] = [s for s in hop.skipped if s.item == "service b"]
    assert (unrouted.origin.line, unrouted.reason) == (4, "ambiguous")
