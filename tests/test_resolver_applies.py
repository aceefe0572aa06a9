"""`resolver` on an nginx tier renders only in upstream groups that dial a DNS name: on a tier
whose next hop is instances given as IP addresses it would render nothing, so it is refused
at load with its location (a spec field that renders nothing and feeds no rule). LB401's hint
says that pod_endpoints on an nginx tier needs that resolver."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lbgen.cli import cli
from lbgen.errors import InputError
from lbgen.io.loader import load_spec_text
from lbgen.render import render_spec
from lbgen.rules import check_spec

THROUGH_L4 = """\
name: shop
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: e1, address: 10.0.0.1}]
    resolver: {addresses: ["10.96.0.10"]}
  - kind: nginx_stream
    name: l4
    instances: [{name: l1, address: 10.0.2.1}]
    listen_port: 8000
    resolver: {addresses: ["10.96.0.10"]}
  - kind: kong
    name: gateway
    instances: [{name: k1, address: KONG}]
  - {kind: kubernetes, name: cluster, platform: self-managed}
services:
  - {name: orders, replicas: 2, app: {preset: go}}
"""


def _problems(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(InputError) as caught:
        load_spec_text(text, "spec.yaml")
    return [(p.path, p.message, p.hint) for p in caught.value.problems]


def test_a_resolver_in_front_of_ip_addresses_is_refused_where_it_is_set() -> None:
    problems = _problems(THROUGH_L4.replace("KONG", "10.0.1.1"))
    paths = [path for path, _, _ in problems]
    assert paths == ["tiers[0].resolver", "tiers[1].resolver"]
    _, message, hint = problems[0]
    assert "resolver on edge would render nothing" in message
    assert "only the IP addresses of l4's instances" in message
    assert hint.startswith("remove resolver; it applies when the tier dials names")
    assert "only the IP addresses of gateway's instances" in problems[1][1]


def test_only_the_tier_in_front_of_ip_addresses_is_refused() -> None:
    # The L4 tier dials Kong by name, so its resolver renders; the edge dials l4's IP.
    problems = _problems(THROUGH_L4.replace("KONG", "kong-1.internal.example"))
    assert [path for path, _, _ in problems] == ["tiers[0].resolver"]


def test_one_named_instance_is_enough_for_the_resolver_to_apply() -> None:
    text = THROUGH_L4.replace("KONG", "10.0.1.1").replace(
        "    instances: [{name: l1, address: 10.0.2.1}]\n",
        "    instances: [{name: l1, address: 10.0.2.1}, {name: l2, address: l4-2.internal.example}]\n",
    ).replace("    listen_port: 8000\n    resolver: {addresses: [\"10.96.0.10\"]}\n", "    listen_port: 8000\n")
    files = render_spec(load_spec_text(text, "spec.yaml").spec, "spec.yaml")
    edge = files["edge/conf.d/shop.conf"]
    assert "    resolver 10.96.0.10;\n" in edge
    assert "server l4-2.internal.example:8000 resolve;" in edge


def test_a_tier_in_front_of_kubernetes_always_dials_a_service_name() -> None:
    text = """\
name: direct
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: e1, address: 10.0.0.1}]
    resolver: {addresses: ["10.96.0.10"]}
  - {kind: kubernetes, name: cluster, platform: self-managed}
services:
  - {name: orders, replicas: 2, app: {preset: go}}
"""
    files = render_spec(load_spec_text(text, "spec.yaml").spec, "spec.yaml")
    assert "    resolver 10.96.0.10;\n" in files["edge/conf.d/direct.conf"]


def test_the_cli_reports_it_located_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(THROUGH_L4.replace("KONG", "kong-1.internal.example"), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["render", str(spec), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 2
    assert f"{spec}:6:15: error: resolver on edge would render nothing" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_lb401_hint_on_an_nginx_edge_says_pod_endpoints_needs_a_resolver() -> None:
    text = """\
name: direct
tiers:
  - kind: nginx_http
    name: edge
    instances: [{name: e1, address: 10.0.0.1}]
    balancing: {algorithm: least_conn}
  - {kind: kubernetes, name: cluster, platform: self-managed}
services:
  - {name: orders, replicas: 2, app: {preset: go}}
"""
    report = check_spec(load_spec_text(text, "spec.yaml"), select=["LB401"])
    [finding] = report.findings
    assert finding.hint == (
        "set edge backend_targets: pod_endpoints so nginx balances across the pods, and "
        "resolver (nginx ≥ 1.27.3) so the headless Service name follows the pods"
    )
