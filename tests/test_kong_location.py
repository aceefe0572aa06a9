"""Where Kong runs (issue #8 item 4) and Kubernetes fields below their version (item 11):
settings that cannot work where the spec says things run are located errors, never silent.

Sources: kong.conf.default `dns_resolver` ("ip[:port]"; unset: resolv.conf); GKE alias IPs
(pod IPs routable in the VPC of a VPC-native cluster); kubernetes virtual-ips.md
(trafficDistribution PreferClose GA 1.33, PreferSameZone/PreferSameNode GA 1.35).
"""

from __future__ import annotations

import pytest

import lbgen
from lbgen.errors import InputError, Problem
from lbgen.io.loader import load_spec_text

SPEC = """\
name: shop
tiers:
  - kind: kong
    name: gw
    instances: [{name: k1, address: 10.30.0.11}]
    KONG
  - kind: kubernetes
    name: k8s
    platform: gke
    version: "1.33"
services:
  - name: orders
    namespace: shop
    replicas: 2
    app: {preset: go}
    readiness: {path: /healthz}
    pre_stop_delay: 35s
    termination_grace_period: 100s
    kubernetes: {traffic_distribution: PreferClose}
"""


def spec_text(kong: str, **replace: str) -> str:
    text = SPEC.replace("KONG", kong.replace("\n", "\n    "))
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def only_problem(text: str) -> Problem:
    with pytest.raises(InputError) as caught:
        load_spec_text(text, "s.yaml")
    problems = caught.value.problems
    assert len(problems) == 1, problems
    return problems[0]


def line_of(text: str, snippet: str) -> int:
    return text[: text.index(snippet)].count("\n") + 1


def test_kong_outside_with_pod_endpoints_needs_a_resolver() -> None:
    text = spec_text("location: outside")
    problem = only_problem(text)
    assert problem.path == "tiers[0].dns_resolver"
    # dns_resolver is absent, so the error points at the Kong tier it belongs to.
    assert problem.location.line == line_of(text, "kind: kong")
    assert "name resolution failed" in problem.message and "dns_resolver" in problem.hint


def test_kong_outside_with_a_resolver_renders_dns_resolver_and_the_routing_note() -> None:
    loaded = load_spec_text(spec_text("location: outside\ndns_resolver: [10.40.0.10, '[fd00::a]:5353']"), "s.yaml")
    files = lbgen.render(loaded)
    assert "\ndns_resolver = 10.40.0.10,[fd00::a]:5353\n" in files["gw/kong.conf"]
    readme = files["README.md"]
    assert "### `gw` runs outside the cluster" in readme
    assert "VPC-native cluster" in readme
    assert "dig +short @10.40.0.10 orders-pods.shop.svc.cluster.local" in readme


def test_kong_in_the_cluster_renders_no_resolver_and_no_note() -> None:
    files = lbgen.render(load_spec_text(spec_text("location: cluster"), "s.yaml"))
    assert "dns_resolver" not in files["gw/kong.conf"]
    assert "runs outside the cluster" not in files["README.md"]


def test_kong_outside_targeting_cluster_ips_is_refused_at_backend_targets() -> None:
    text = spec_text("location: outside\ndns_resolver: [10.40.0.10]\nbackend_targets: cluster_ip")
    problem = only_problem(text)
    assert problem.path == "tiers[0].backend_targets"
    assert problem.location.line == line_of(text, "backend_targets: cluster_ip")
    assert "cluster_ip_routed" in problem.hint


def test_routed_cluster_ips_made_explicit_load() -> None:
    text = spec_text("location: outside\ndns_resolver: [10.40.0.10]\nbackend_targets: cluster_ip\n"
                     "cluster_ip_routed: true")
    files = lbgen.render(load_spec_text(text, "s.yaml"))
    assert "cluster_ip_routed" in files["README.md"]


def test_cluster_ip_routed_alone_is_refused() -> None:
    with pytest.raises(InputError):
        load_spec_text(spec_text("cluster_ip_routed: true"), "s.yaml")


def test_kic_outside_the_cluster_is_refused() -> None:
    text = spec_text("location: outside\nmode: kic")
    problem = only_problem(text)
    assert problem.path == "tiers[0].location"
    assert problem.location.line == line_of(text, "location: outside")


@pytest.mark.parametrize("entry", ["kube-dns.kube-system", "10.0.0.1:99999", "10.0.0.1:", "[10.0.0.1]:53"])
def test_a_resolver_that_is_not_ip_or_ip_port_is_refused(entry: str) -> None:
    with pytest.raises(InputError) as caught:
        load_spec_text(spec_text(f"location: outside\ndns_resolver: ['{entry}']"), "s.yaml")
    assert "is not a nameserver address" in caught.value.problems[0].message


@pytest.mark.parametrize(
    ("value", "version"),
    [("PreferClose", "1.32"), ("PreferSameZone", "1.34"), ("PreferSameNode", "1.34")],
)
def test_traffic_distribution_below_its_version_is_a_located_error(value: str, version: str) -> None:
    text = spec_text("location: cluster", **{
        'version: "1.33"': f'version: "{version}"',
        "traffic_distribution: PreferClose": f"traffic_distribution: {value}",
    })
    problem = only_problem(text)
    assert problem.path == "services[0].kubernetes.traffic_distribution"
    assert problem.location.line == line_of(text, "traffic_distribution:")
    assert "GA from Kubernetes" in problem.message and version in problem.message


def test_seed_says_kong_runs_outside_and_how_it_resolves_cluster_names() -> None:
    from tests.conftest import EXAMPLES

    seed = next(e for e in EXAMPLES if e.stem == "seed")
    loaded = lbgen.load(seed)
    kong = loaded.spec.kong
    assert kong is not None and kong.location == "outside" and kong.dns_resolver
    assert "dns_resolver = " in lbgen.render(loaded)["gateway/kong.conf"]


def test_a_grpc_readiness_probe_needs_kubernetes_1_24() -> None:
    text = spec_text("location: cluster", **{
        'version: "1.33"': 'version: "1.23"',
        "    kubernetes: {traffic_distribution: PreferClose}\n": "",
        "  - name: orders\n": "  - name: orders\n    protocol: grpc\n",
        "readiness: {path: /healthz}": "readiness: {period_seconds: 5}",
    })
    problem = only_problem(text)
    assert problem.path == "services[0].readiness"
    assert "1.24" in problem.message
