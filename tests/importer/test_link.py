"""Linking tiers by address: pod IPs, an edge that is the gateway, two routes to one Service."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbgen.importer.run import ImportInputs, run_import

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: %(name)s, namespace: shop}
spec: {selector: {app: %(name)s}, ports: [{port: 80, targetPort: %(port)d}]}
"""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    k8s = tmp_path / "k8s"
    k8s.mkdir()
    (k8s / "a.yaml").write_text(SERVICE % {"name": "orders", "port": 8000})
    (k8s / "b.yaml").write_text(SERVICE % {"name": "search", "port": 9000})
    return k8s


def test_kong_targets_pod_ips_linked_by_the_pods_port(tmp_path: Path, manifests: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kong.yaml").write_text("""\
_format_version: "3.0"
services:
  - {name: orders, host: orders.up, port: 8000, routes: [{paths: [/orders]}]}
  - {name: search, host: search.up, port: 9000, routes: [{paths: [/search]}]}
upstreams:
  - {name: orders.up, targets: [{target: "10.8.0.5:8000"}, {target: "10.8.0.6:8000"}]}
  - {name: search.up, targets: [{target: "10.8.1.5:9000"}]}
""")
    monkeypatch.chdir(tmp_path)
    result = run_import(ImportInputs(kong="kong.yaml", k8s=["k8s"], assume=["app.preset=go"]))
    spec = result.loaded.spec
    assert spec.kong is not None and spec.kong.backend_targets == "pod_endpoints"
    assert {s.name: s.paths for s in spec.services} == {"orders": ["/orders"], "search": ["/search"]}
    assert any("pod IPs" in link for link in result.links)


def test_an_edge_in_front_of_the_cluster_is_the_gateway(tmp_path: Path, manifests: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nginx.conf").write_text("""\
http {
    upstream orders { server orders.shop.svc.k8s.example:80; }
    upstream search { server search.shop.svc.k8s.example:80; }
    server {
        listen 80;
        location /orders { proxy_pass http://orders; proxy_http_version 1.1; }
        location /search/ { proxy_pass http://search; proxy_http_version 1.1; }
    }
}
""")
    monkeypatch.chdir(tmp_path)
    result = run_import(ImportInputs(nginx_http=["nginx.conf"], k8s=["k8s"], assume=["app.preset=nodejs"]))
    spec = result.loaded.spec
    assert spec.cluster.cluster_domain == "k8s.example"
    assert spec.edge is not None and spec.edge.backend_targets == "cluster_ip"
    assert {s.name: s.paths for s in spec.services} == {"orders": ["/orders"], "search": ["/search/"]}
    assert str(result.origins["tiers[1].cluster_domain"].origin) == "nginx.conf:2:30"


def test_two_routes_to_one_service_keep_the_first_and_say_so(tmp_path: Path, manifests: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kong.yaml").write_text("""\
_format_version: "3.0"
services:
  - {name: a, host: orders.shop.svc.cluster.local, port: 80, routes: [{paths: [/a]}]}
  - {name: b, host: orders.shop.svc.cluster.local, port: 80, routes: [{paths: [/b]}]}
""")
    monkeypatch.chdir(tmp_path)
    result = run_import(ImportInputs(kong="kong.yaml", k8s=["k8s"], assume=["app.preset=go"]))
    assert [s.paths for s in result.loaded.spec.services] == [["/a"]]
    reasons = {(s.origin.line, s.reason) for s in result.skipped}
    assert (4, "ambiguous") in reasons  # the second Kong service
    assert any(s.item == "Service shop/search" and s.reason == "out-of-scope" for s in result.skipped)
