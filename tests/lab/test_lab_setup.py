"""What `lbgen lab` would set up, without running it (no root needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lbgen.lab.kube_proxy import ServiceRules, iptables_restore, nft_ruleset, sep_chain, svc_chain
from lbgen.model.types import Version

ROOT = Path(__file__).resolve().parents[2]

SERVICE = ServiceRules("shop/orders:http", "10.96.0.10", 80,
                       (("10.244.0.1", 8000), ("10.244.0.2", 8000), ("10.244.0.3", 8000)), None)


def test_iptables_chains_follow_kube_proxy() -> None:
    text = iptables_restore((SERVICE,))
    svc = svc_chain(SERVICE)
    assert svc.startswith("KUBE-SVC-") and len(svc) == len("KUBE-SVC-") + 16
    rules = [line for line in text.splitlines() if line.startswith(f"-A {svc} ")]
    # endpoint i of n: probability 1/(n-i), the last one unconditional
    assert [r.split("--probability ")[1].split()[0] if "--probability" in r else None for r in rules] == [
        "0.3333333333", "0.5000000000", None]
    assert [r.rsplit("-j ", 1)[1] for r in rules] == [sep_chain(SERVICE, e) for e in SERVICE.endpoints]
    assert "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp" in text and "--dport 80 -j " + svc in text
    assert "-j DNAT --to-destination 10.244.0.2:8000" in text
    assert "recent" not in text


def test_client_ip_affinity_adds_recent_rules_before_the_random_ones() -> None:
    sticky = ServiceRules(SERVICE.name, SERVICE.cluster_ip, SERVICE.port, SERVICE.endpoints, 10800)
    rules = [line for line in iptables_restore((sticky,)).splitlines() if line.startswith(f"-A {svc_chain(sticky)} ")]
    assert ["--rcheck --seconds 10800 --reap" in r for r in rules] == [True] * 3 + [False] * 3
    assert iptables_restore((sticky,)).count("--rsource --set -m tcp -j DNAT") == 3
    nft = nft_ruleset((sticky,))
    assert "numgen random mod 3 vmap" in nft and nft.count("timeout 10800s") == 3


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lbgen", "lab", *args], capture_output=True, text=True,
                          timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}, cwd=ROOT)


def test_dry_run_prints_the_plan_and_creates_nothing() -> None:
    before = sorted(Path("/tmp").glob("lbgen-lab-*"))
    proc = _cli("examples/seed-as-advised.yaml", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "10.30.0.11    kong-1       gateway (kong)" in out
    assert "STAND-IN" in out and "real nginx" in out
    assert "-m statistic --mode random --probability 0.1250000000" in out
    assert "`listen PORT` → `listen <instance address>:PORT` (10.10.0.11 for edge-1" in out
    assert "orders.shop.svc.cluster.local → 10.96.0.10" in out
    assert sorted(Path("/tmp").glob("lbgen-lab-*")) == before


def test_pod_endpoints_spec_has_no_kube_proxy_rules() -> None:
    proc = _cli("examples/seed-fixed.yaml", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "reached by pod endpoints" in proc.stdout and "KUBE-SVC-" not in proc.stdout


def test_missing_nginx_exits_2_saying_what_to_install() -> None:
    proc = _cli("examples/seed-fixed.yaml", "--dry-run", LBGEN_NGINX="/nonexistent/nginx")
    assert proc.returncode == 2
    assert "apt-get install -y nginx-light libnginx-mod-stream" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_grpc_service_is_refused_with_a_located_reason() -> None:
    proc = _cli("examples/grpc.yaml", "--dry-run")
    assert proc.returncode == 2
    assert "gRPC" in proc.stderr and "examples/grpc.yaml" in proc.stderr


def test_only_lab_imports_the_lab() -> None:
    from tests.cli.test_cold_start import loaded_by

    for args in (("validate", "examples/seed.yaml"), ("rules",)):
        modules, _ = loaded_by(*args)
        assert not {m for m in modules if m.startswith("lbgen.lab")}, args
    modules, _ = loaded_by("lab", "examples/seed.yaml", "--dry-run")
    assert "lbgen.lab.setup" in modules and "lbgen.lab.runner" in modules
    assert "numpy" not in modules  # the prediction is computed only for a real run


def test_wrk_is_refused_for_what_it_cannot_run() -> None:
    proc = _cli("examples/seed-fixed.yaml", "--scenario", "idle-race", "--client", "wrk", "--dry-run")
    assert proc.returncode == 2
    assert "--client" in proc.stderr and ("steady" in proc.stderr or "apt-get install -y wrk" in proc.stderr)


def test_scale_out_through_pod_endpoints_dry_run_prints_the_target_sets_and_leaves_nothing() -> None:
    before = sorted(Path("/tmp").glob("lbgen-lab-*"))
    proc = _cli("examples/seed-fixed.yaml", "--scenario", "scale-out", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # The plan's endpoint propagation for Kong resolving the headless Service: its 30s DNS
    # TTL, spread over the two instances, the last one at the full TTL.
    assert "the plan's endpoint propagation: the headless Service's DNS TTL (30s" in out
    assert "  kong-1: 15s after each change\n  kong-2: 30s after each change\n" in out
    assert "  before (upstream orders-before: orders-0, orders-1, orders-2, orders-3, orders-4, orders-5, " \
           "orders-6, orders-7): from the start\n" in out
    assert "  after (upstream orders-after: orders-0, " in out and "orders-10, orders-11): once /tmp/" in out
    assert "-RUN/{kong-1,kong-2}/targets-after exists" in out
    assert sorted(Path("/tmp").glob("lbgen-lab-*")) == before


def _build(spec_path: Path, **kwargs: Any) -> Any:
    from lbgen.io.loader import load_spec_file
    from lbgen.lab import setup as lab_setup
    from lbgen.nginx_harness import NginxBuild
    from lbgen.plan import resolve
    from lbgen.render import render_spec

    spec = load_spec_file(spec_path).spec
    plan = resolve(spec)
    nginx = NginxBuild("/usr/sbin/nginx", Version("1.22.1"), "dynamic", Path("/usr/lib/nginx/modules"), True)
    return lab_setup.build(spec, plan, render_spec(spec, spec_path.name, plan), spec.services[0], nginx,
                           Path("/tmp/lbgen-lab-test-RUN"), namespace="lbgen-lab-test", **kwargs)


def test_the_kong_stand_in_picks_its_target_set_per_request_from_step_files() -> None:
    setup = _build(ROOT / "examples/seed-fixed.yaml", rollout=True)
    kong = next(p for p in setup.processes if p.name == "kong-2")
    conf = kong.files["nginx.conf"]
    # One upstream block per set, each with Kong's pool; the request takes the last set whose
    # step file exists (no reload ever).
    for k in range(9):
        assert f"    upstream orders-step{k} {{\n        least_conn;\n" in conf
    assert conf.count("keepalive_timeout 4s;") == 9
    assert "            set $lab_targets orders-step0;\n" \
           "            if (-f /tmp/lbgen-lab-test-RUN/kong-2/targets-step1) { set $lab_targets orders-step1; }\n" in conf
    assert "proxy_pass http://$lab_targets;" in conf
    # The set after step 3: old pods 3… and new pods …2.
    assert setup.target_groups[3].pods == ("orders-3", "orders-4", "orders-5", "orders-6", "orders-7",
                                            "orders-v2-0", "orders-v2-1", "orders-v2-2")
    assert setup.rules == "" and setup.rollout_rules == ()
    assert dict(setup.switch_delays) == {"kong-1": 15.0, "kong-2": 30.0} and setup.sync_s == 30.0


def test_an_nginx_front_dialing_pods_is_reloaded_and_one_that_re_resolves_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "edge-pods.yaml"
    spec.write_text(EDGE_PODS)
    setup = _build(spec, add=1)
    assert setup.switch == "reload" and dict(setup.switch_delays) == {"edge-1": 0.0, "edge-2": 0.0}
    assert "orders-pods.shop.svc.cluster.local only when it loads its configuration" in setup.propagation
    after = setup.target_groups[1].hosts.splitlines()
    assert [line for line in after if "orders-pods" in line] == [
        f"10.244.0.{i} orders-pods.shop.svc.cluster.local" for i in range(1, 5)]
    proc = _cli(str(spec), "--scenario", "rollout", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "by a reload of each instance (nginx -s reload: SIGHUP to its master)" in proc.stdout
    # With a resolver (nginx ≥ 1.27.3) nginx follows the DNS answers while it runs, which the
    # lab (no DNS server) cannot change.
    resolving = tmp_path / "resolving.yaml"
    resolving.write_text(EDGE_PODS.replace('version: "1.22.1"', 'version: "1.28.0"').replace(
        "    backend_targets: pod_endpoints\n", "    backend_targets: pod_endpoints\n    resolver: {addresses: [10.40.0.10]}\n"))
    refused = _cli(str(resolving), "--scenario", "rollout", "--dry-run")
    assert refused.returncode == 2
    assert "re-resolves the headless Service while it runs" in refused.stderr and "Traceback" not in refused.stderr


EDGE_PODS = """name: direct
tiers:
  - kind: nginx_http
    name: edge
    version: "1.22.1"
    instances:
      - {name: edge-1, address: 10.10.0.11}
      - {name: edge-2, address: 10.10.0.12}
    backend_targets: pod_endpoints
    upstream_keepalive: {connections: 16}
  - kind: kubernetes
    name: gke
    version: "1.33"
    platform: gke
services:
  - name: orders
    namespace: shop
    replicas: 3
    app: {preset: uvicorn}
    route: {paths: [/orders]}
    kubernetes: {port: 80, target_port: 8000}
"""
"""An edge nginx straight to the pods of a headless Service (resolved when nginx loads its config)."""


def test_the_kong_stand_in_label_says_whether_a_kong_binary_is_installed(tmp_path: Path) -> None:
    path = os.environ.get("PATH", "") + ":/usr/sbin"
    without = _cli("examples/seed-as-advised.yaml", "--dry-run", PATH=path)
    assert without.returncode == 0, without.stderr
    if "no kong binary on PATH" not in without.stdout:
        assert "a kong binary is installed" in without.stdout  # this machine has Kong
        return
    kong = tmp_path / "kong"
    kong.write_text("#!/bin/sh\necho 'Kong 3.10.0'\n")
    kong.chmod(0o755)
    found = _cli("examples/seed-as-advised.yaml", "--dry-run", PATH=f"{tmp_path}:{path}")
    assert found.returncode == 0, found.stderr
    # Never "not installed" when it is: the label names the binary and says it is not run.
    assert f"a kong binary is installed ({kong}) but the lab does not run real Kong yet" in found.stdout
    assert "not installed" not in found.stdout
    assert "STAND-IN" in found.stdout


def test_rollout_dry_run_prints_each_replacement() -> None:
    proc = _cli("examples/seed-as-advised.yaml", "--scenario", "rollout", "--dry-run", PATH=os.environ.get(
        "PATH", "") + ":/usr/sbin")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "8 + 8 (rollout) pods of shop/orders" in out
    assert "the old pod has no preStop hook, then shuts down" in out
    assert "  orders-0 → orders-v2-0: then the Service's endpoints are orders-1, orders-2, orders-3, " in out
    assert "  orders-7 → orders-v2-7: then the Service's endpoints are orders-v2-0, orders-v2-1," in out


def test_rollout_through_pod_endpoints_dry_run_prints_each_target_set() -> None:
    proc = _cli("examples/seed-fixed.yaml", "--scenario", "rollout", "--dry-run",
                PATH=os.environ.get("PATH", "") + ":/usr/sbin")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "endpoint changes reach the front tier without a reload" in out
    assert "  step0 (upstream orders-step0: orders-0, " in out and "orders-7): from the start\n" in out
    assert "  step8 (upstream orders-step8: orders-v2-0, " in out and "-RUN/{kong-1,kong-2}/targets-step8 exists" in out
    assert "the old pod sleeps 35s in preStop" in out
    assert "  orders-7 → orders-v2-7: then the Service's endpoints are orders-v2-0, " in out and "(target set step8)" in out


def test_rollout_with_wrk_is_refused() -> None:
    proc = _cli("examples/seed-as-advised.yaml", "--scenario", "rollout", "--client", "wrk", "--dry-run")
    assert proc.returncode == 2


def test_rollout_gives_errors_over_time_and_each_old_pods_own_counts() -> None:
    from lbgen.lab import measure

    steps = [{"pod": "a-0", "replaced_by": "a-v2-0", "deleted_at": 101.0, "rules_at": 102.0,
              "shutdown_at": 103.0, "killed_at": 131.0},
             {"pod": "a-1", "replaced_by": "a-v2-1", "deleted_at": 103.0, "rules_at": None,
              "shutdown_at": 105.0, "killed_at": 133.0}]
    load = {"requests": 10, "errors": {"status_502": 4, "reset": 1}, "latency_ms": {"p50": 1.0, "p99": 2.0},
            "rounds": [], "rollout_steps": steps, "rollout_started": 100.0,
            "error_times": [[100.5, "reset"], [102.5, "status_502"], [103.0, "status_502"],
                            [103.2, "status_502"], [106.0, "status_502"]],
            "upstream_errors": {"kong-1": {"recv() failed (104: Connection reset by peer)": 4}}}
    pods = {"pods": [{"pod": p, "requests": 5, "connections": 1, "resets": r, "shutdown_closes": c}
                     for p, r, c in (("a-0", 2, 3), ("a-1", 0, 1), ("a-v2-0", 0, 0), ("a-v2-1", 0, 0))],
            "timeline": []}
    rollout = measure(load, pods).rollout
    assert rollout is not None
    assert rollout["errors_before"] == {"reset": 1}
    assert rollout["errors_per_bin"] == {"bin_s": 0.5, "counts": [0, 1, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 1],
                                         "first_errors_only": False}
    # The client keeps the times of its first errors only: the bins say so when more happened.
    cut = measure({**load, "errors": {"status_502": 40000}}, pods).rollout
    assert cut is not None and cut["errors_per_bin"]["first_errors_only"] is True
    first, second = rollout["steps"]
    assert (first["deleted_at_s"], first["rules_at_s"], first["shutdown_at_s"]) == (1.0, 2.0, 3.0)
    assert (first["shutdown_closes"], first["resets"]) == (3, 2)
    assert second["rules_at_s"] is None and (second["shutdown_closes"], second["resets"]) == (1, 0)
    assert rollout["upstream_errors"] == load["upstream_errors"]
