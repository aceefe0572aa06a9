"""`lbgen simulate` end to end: the seed examples, --compare, exit codes, input errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lbgen.cli import cli
from tests.conftest import REPO

ADVISED = str(REPO / "examples/seed-as-advised.yaml")
FIXED = str(REPO / "examples/seed-fixed.yaml")
FAST = ["--rate", "1000", "--duration", "20s", "--trials", "8"]


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["simulate", *args], catch_exceptions=False)


def _json(*args: str) -> list[dict[str, Any]]:
    result = _run(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["schema"] == "lbgen-simulate/1"
    results: list[dict[str, Any]] = document["results"]
    return results


def test_compare_shows_the_fixed_spec_spreading_evenly_and_the_advised_one_not() -> None:
    advised, fixed = _json(ADVISED, "--compare", FIXED, *FAST)
    assert (advised["spec"], fixed["spec"]) == ("seed-as-advised", "seed-fixed")
    # Advised: ClientIP affinity behind Kong's two instances: at most 2 of 8 pods.
    assert advised["summary"]["pods_used"]["p95"] <= 2
    assert advised["summary"]["max_mean"]["median"] > 3.5
    assert advised["per_pod"][2]["share"]["p95"] == 0
    # Fixed: Kong balances each request over the pod endpoints.
    assert fixed["summary"]["pods_used"]["p5"] == 8
    assert fixed["summary"]["max_mean"]["p95"] < 1.05
    assert fixed["summary"]["cv"]["p95"] < 0.05
    assert {r["code"] for r in advised["rules"]} >= {"LB401", "LB404", "LB410"}
    assert fixed["rules"] == []
    assert "per new connection" in advised["why"][0] and "per request" in fixed["why"][0]


def test_compare_text_has_both_columns_and_bars() -> None:
    result = _run(ADVISED, "--compare", FIXED, *FAST)
    assert result.exit_code == 0
    rows = [line for line in result.output.splitlines() if line.lstrip().startswith("pod ")]
    assert len(rows) == 8
    # pod 3 onwards: no bar for the advised spec, a bar for the fixed one.
    assert "0.0%" in rows[2] and "█" in rows[2].split("0.0%", 1)[1]
    assert "LB404" in result.output


def test_the_path_comes_from_the_plan() -> None:
    (fixed,) = _json(FIXED, *FAST)
    edge, l4, gateway, cluster = fixed["path"]
    assert (edge["pool_size"], edge["max_requests"], edge["lifetime_s"]) == (32, 1000, 600.0)
    assert l4["reuse"] == "per-connection" and l4["algorithm"] == "least_conn"
    assert gateway["targets"] == "pods" and gateway["idle_s"] == 4.0  # derived below uvicorn's 5s
    assert cluster["kube_proxy"] == "iptables" and cluster["session_affinity_s"] is None
    (advised,) = _json(ADVISED, *FAST)
    assert advised["path"][0]["idle_s"] == 10.0  # l4's proxy_timeout closes the edge's pool first
    assert advised["path"][0]["idle_closed_by"] == "l4's proxy_timeout"
    assert advised["path"][3]["session_affinity_s"] == 10800.0


def test_scale_event_time_to_fair_share() -> None:
    fixed, advised = _json(FIXED, "--compare", ADVISED, "--rate", "500", "--duration", "60s", "--trials", "10",
                           "--event", "scale orders +4 at 10s")
    # Kong balances per request, but each instance sees the new pods only when its cached
    # answer for the headless Service expires: within the cluster DNS TTL (30s).
    event = fixed["scale_events"][0]
    assert event["reached_90_percent"] == 1.0 and event["to_90_percent_s"]["p95"] <= 31
    assert event["to_50_percent_s"]["median"] < event["to_90_percent_s"]["median"]
    assert fixed["pods"] == 12 and fixed["window_s"] == [10.0, 60.0]
    assert fixed["path"][2]["discovery_s"] == 30.0
    # Affinity pins both sources: the new pods never get their share.
    assert advised["scale_events"][0]["reached_50_percent"] == 0.0
    assert advised["scale_events"][0]["to_50_percent_s"] is None


def test_same_seed_same_output() -> None:
    assert _run(FIXED, *FAST, "--seed", "4").output == _run(FIXED, *FAST, "--seed", "4").output


def test_max_skew_and_max_cv_gate_the_exit_code() -> None:
    assert _run(ADVISED, *FAST, "--max-skew", "1.5").exit_code == 1
    assert _run(FIXED, *FAST, "--max-skew", "1.5", "--max-cv", "0.1").exit_code == 0
    failed = _run(FIXED, *FAST, "--compare", ADVISED, "--max-cv", "0.5")
    assert failed.exit_code == 1 and "seed-as-advised: median CV" in failed.output


def test_the_spec_workload_is_read_and_flags_override_it(tmp_path: Path) -> None:
    spec = tmp_path / "w.yaml"
    text = Path(FIXED).read_text()
    spec.write_text(text + "workload:\n  rate: 200\n  clients: 7\n  duration: 5s\n"
                    "  events: [{service: orders, add: 2, at: 2s}]\n")
    (result,) = _json(str(spec), "--trials", "2")
    assert result["workload"]["rate"] == 200 and result["workload"]["clients"] == 7
    assert result["workload"]["duration_s"] == 5.0 and result["pods"] == 10
    (result,) = _json(str(spec), "--trials", "2", "--clients", "3", "--closed-loop")
    assert result["workload"]["clients"] == 3 and result["workload"]["closed_loop"] is True


def test_input_errors_exit_2_without_a_traceback(tmp_path: Path) -> None:
    for args, says in (
        (["--service", "nope"], "no service 'nope'"),
        (["--event", "scale orders 4 at 30s"], "scale SERVICE +N at TIME"),
        (["--event", "scale carts +4 at 30s"], "no such service"),
        (["--duration", "soon"], "--duration"),
        (["--rate", "5", "--closed-loop"], "not both"),
        (["--rate", "100000"], "requests per trial"),
    ):
        result = CliRunner().invoke(cli, ["simulate", FIXED, *args])
        assert result.exit_code == 2, (args, result.output)
        assert says in result.output and "Traceback" not in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(FIXED).read_text() + "workload:\n  rate: 10\n  clients: 0\n")
    result = CliRunner().invoke(cli, ["simulate", str(bad)])
    assert result.exit_code == 2 and "bad.yaml:" in result.output and "clients" in result.output


@pytest.mark.parametrize("example", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_simulates(example: Path) -> None:
    import lbgen

    service = lbgen.load(example).spec.services[0].name
    (result,) = _json(str(example), "--rate", "200", "--duration", "5s", "--trials", "2",
                      "--event", f"scale {service} +2 at 2s")
    assert result["pods"] == result["path"][-1]["replicas"] + 2
    assert sum(p["share"]["median"] for p in result["per_pod"]) == pytest.approx(1, abs=0.05)


def test_workload_protocol_sources_and_response_spread_reach_the_simulation(tmp_path: Path) -> None:
    # Clients straight to a Service with ClientIP affinity (no proxy tier): the workload's
    # source addresses are what affinity sees, and gRPC clients pin one connection each.
    spec = tmp_path / "direct.yaml"
    spec.write_text(
        "name: direct\n"
        "tiers:\n  - {kind: kubernetes, name: k8s, platform: self-managed}\n"
        "services:\n  - name: orders\n    namespace: shop\n    replicas: 8\n    app: {preset: uvicorn}\n"
        "    route: {paths: [/orders]}\n"
        "    kubernetes: {port: 80, target_port: 8000, session_affinity: ClientIP}\n"
        "workload: {rate: 500, clients: 40, keepalive: false, source_addresses: 2, response_time_p99: 200ms}\n"
    )
    (natted,) = _json(str(spec), "--duration", "5s", "--trials", "10")
    assert natted["workload"]["source_addresses"] == 2 and natted["workload"]["response_time_p99_s"] == 0.2
    assert natted["summary"]["pods_used"]["p95"] <= 2
    (direct,) = _json(str(spec), "--duration", "5s", "--trials", "10", "--source-addresses", "40")
    assert direct["summary"]["pods_used"]["p5"] == 8
    (grpc,) = _json(str(spec), "--duration", "5s", "--trials", "10", "--source-addresses", "40",
                    "--protocol", "grpc", "--closed-loop", "--clients", "3", "--client-connections", "10")
    assert grpc["workload"]["protocol"] == "grpc"
    assert grpc["summary"]["pods_used"]["p95"] <= 3 and grpc["summary"]["decider_connections"]["median"] == 3


def test_a_p99_below_the_median_is_an_input_error() -> None:
    result = _run(FIXED, *FAST, "--response-time", "50ms", "--response-time-p99", "10ms")
    assert result.exit_code == 2
    assert "--response-time-p99" in result.output and "below the median" in result.output


def test_added_pods_reach_a_front_dialing_pods_when_the_plan_says(tmp_path: Path) -> None:
    # Kong under KIC: the controller pushes the new endpoints (KIC --proxy-sync-seconds 3s,
    # then Kong's worker_state_update_frequency 5s), so the added pods get traffic within 8s.
    kic = tmp_path / "kic.yaml"
    kic.write_text(Path(FIXED).read_text().replace("    location: outside\n    dns_resolver: [10.40.0.10]\n",
                                                   "    mode: kic\n"))
    (fixed,) = _json(str(kic), "--rate", "500", "--duration", "30s", "--trials", "6",
                     "--event", "scale orders +4 at 10s")
    assert fixed["path"][2]["discovery_s"] == 8.0 and fixed["path"][2]["sees_added_pods"] is True
    assert fixed["scale_events"][0]["to_90_percent_s"]["p95"] <= 9
    assert any("within 8s (KIC" in line for line in fixed["why"])
    # An nginx edge balancing over the headless Service's pods resolves the name only when it
    # loads its configuration (before `server … resolve`): the added pods get nothing.
    edge = tmp_path / "edge-pods.yaml"
    edge.write_text(
        "name: edge-pods\ntiers:\n"
        "  - {kind: nginx_http, name: edge, version: '1.26.0', backend_targets: pod_endpoints,\n"
        "     instances: [{name: edge-1, address: 10.10.0.11}]}\n"
        "  - {kind: kubernetes, name: k8s, version: '1.33', platform: self-managed}\n"
        "services:\n  - {name: orders, namespace: shop, replicas: 4, app: {preset: uvicorn}}\n")
    (nginx_front,) = _json(str(edge), "--rate", "500", "--duration", "30s", "--trials", "4",
                           "--event", "scale orders +4 at 10s")
    assert nginx_front["path"][0]["sees_added_pods"] is False
    assert nginx_front["scale_events"][0]["reached_50_percent"] == 0.0
    assert nginx_front["summary"]["pods_used"]["p95"] == 4
    assert any("until it is reloaded" in line for line in nginx_front["why"])
