"""`lbgen lab` on this machine: real nginx, real kernel rules, in a private namespace.

These run in CI as root (skipped only when not root). Each run is a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                       reason="lbgen lab needs Linux and root"),
]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}


def _lab(spec: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "lbgen", "lab", str(spec), "--format", "json", *args],
                          capture_output=True, text=True, timeout=120, env=_env(), check=False)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _variant(tmp_path: Path, source: str, old: str, new: str, name: str) -> Path:
    text = (EXAMPLES / source).read_text()
    assert old in text
    out = tmp_path / name
    out.write_text(text.replace(old, new))
    return out


def _lab_processes() -> list[str]:
    """Command lines of live processes the lab starts (pods, load client, nginx in its run dirs)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "lbgen.lab." in text or "lbgen-lab-" in text:
            found.append(f"{cmdline.parent.name} {text}")
    return found


def _netns_inode(name: str) -> int | None:
    try:
        return Path(f"/run/netns/{name}").stat().st_ino
    except OSError:
        return None


def _nginx_processes(namespaces: set[int], namespace: str) -> set[str]:
    """nginx processes (masters and workers, whose command line is just `nginx: worker
    process`) that belong to one lab run: inside one of its network namespaces (by inode), or
    started on its run directory."""
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "comm").read_text().strip() != "nginx":
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            inode = (proc / "ns" / "net").stat().st_ino
        except OSError:
            continue
        if inode in namespaces or f"{namespace}-" in cmdline:
            found.add(f"{proc.name} {cmdline.strip()}")
    return found


def _host_state(namespace: str) -> dict[str, str]:
    """What a run may not leave behind, seen from the host. Other lab runs on this machine (a
    parallel test session) are left out of the namespace list: only `namespace` is this run's."""
    def run(*argv: str) -> str:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False).stdout

    netns = [line for line in run("ip", "netns", "list").splitlines()
             if not line.startswith("lbgen-lab-") or line.split()[0] == namespace]
    return {
        "netns": "\n".join(netns),
        "iptables": "\n".join(line for line in run("iptables-save").splitlines() if not line.startswith("#")),
        "nft": run("nft", "list", "ruleset"),
        "addresses": run("ip", "-o", "addr"),
        "processes": "\n".join(sorted(p for p in _lab_processes() if namespace in p)),
        "etc_netns": "\n".join(sorted(p.name for p in Path("/etc/netns").glob(namespace))),
    }


NOT_YET = "lbgen-lab-not-started"
"""The state before a run is taken before its process (and so its namespace's name) exists."""


class _Watched:
    """A `lbgen lab` child, with its namespace's inode and the nginx processes in it recorded
    while it runs (the namespace is gone afterwards, so this is the only time to learn them)."""

    def __init__(self, *args: str) -> None:
        self.child = subprocess.Popen([sys.executable, "-m", "lbgen", "lab", *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env=_env())
        self.namespace = f"lbgen-lab-{self.child.pid}"
        self.inodes: set[int] = set()
        self.nginx_seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set() and self.child.poll() is None:
            inode = _netns_inode(self.namespace)
            if inode is not None:
                self.inodes.add(inode)
                self.nginx_seen |= _nginx_processes(self.inodes, self.namespace)
            time.sleep(0.02)

    def wait_running(self) -> None:
        deadline = time.monotonic() + 30
        while not self.nginx_seen:
            assert time.monotonic() < deadline and self.child.poll() is None
            time.sleep(0.05)
        time.sleep(1.5)  # every process started and the load running

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        out, err = self.child.communicate(timeout=timeout)
        self.out = out.decode()
        self._stop.set()
        self._thread.join(5)
        return self.child.returncode, err.decode()

    def assert_left_nothing(self, before: dict[str, str]) -> None:
        assert self.inodes, "the namespace was never seen: nothing was proven"
        assert _host_state(self.namespace) == before
        assert _nginx_processes(self.inodes, self.namespace) == set()


def test_pooling_through_a_cluster_ip_skews_and_pod_endpoints_do_not(tmp_path: Path) -> None:
    # seed-as-advised without ClientIP affinity: Kong pools connections to the ClusterIP,
    # kube-proxy picks a pod per connection, so a few dozen long-lived connections decide.
    pooled = _variant(tmp_path, "seed-as-advised.yaml", "session_affinity: ClientIP", "session_affinity: None",
                      "pooled.yaml")
    skewed = _lab(pooled, "--duration", "3s", "--client", "builtin")["measured"]
    fair = _lab(EXAMPLES / "seed-fixed.yaml", "--duration", "3s", "--client", "builtin")["measured"]
    assert skewed["errors"] == {} and fair["errors"] == {}
    assert skewed["max_mean"] > 1.3, skewed
    assert fair["max_mean"] < 1.15, fair
    assert fair["pods_used"] == 8
    assert skewed["cv"] > 2 * fair["cv"]


def test_client_ip_affinity_behind_the_gateway_puts_everything_on_one_pod(tmp_path: Path) -> None:
    # One gateway instance: every connection to the ClusterIP comes from its address, and
    # the `recent` rules send them all to the first pod chosen.
    text = (EXAMPLES / "seed-as-advised.yaml").read_text()
    one = text.replace("      - {name: kong-2, address: 10.30.0.12}\n", "")
    assert one != text and "session_affinity: ClientIP" in one
    spec = tmp_path / "affinity.yaml"
    spec.write_text(one)
    data = _lab(spec, "--duration", "2s", "--client", "wrk")
    assert data["workload"]["client"] == "wrk"
    measured = data["measured"]
    assert measured["pods_used"] == 1, measured["per_pod"]
    assert measured["per_pod"][0]["requests"] >= measured["requests"] > 100
    assert measured["per_pod"][0]["connections"] > 1  # many connections, one pod: affinity, not pooling
    assert data["simulated"]["pods_used"]["median"] == 1


def test_idle_race_separates_the_broken_budget_from_the_fixed_one() -> None:
    broken = _lab(EXAMPLES / "seed-as-advised.yaml", "--scenario", "idle-race", "--duration", "6s")["measured"]
    fixed = _lab(EXAMPLES / "seed-fixed.yaml", "--scenario", "idle-race", "--duration", "6s")["measured"]
    # Kong pools pod connections for 60s; the pods close them after 5s: the POSTs after a
    # 5.1s gap reuse connections the pods are closing, and nginx does not retry a POST.
    assert broken["errors"].get("status_502", 0) > 0, broken
    assert any(r["errors"] for r in broken["rounds"] if r["after_gap_s"])
    # The fixed budget closes Kong's pooled connections after 4s: no request meets a closing one.
    assert fixed["errors"] == {}, fixed
    assert fixed["requests"] == broken["requests"]


def test_cleanup_after_success(tmp_path: Path) -> None:
    before = _host_state(NOT_YET)
    run = _Watched(str(EXAMPLES / "seed-fixed.yaml"), "--duration", "2s", "--format", "json")
    code, err = run.finish()
    assert code == 0, err
    # The edge, L4 and Kong stand-in nginx instances ran in the namespace (masters and workers).
    assert any("worker process" in p for p in run.nginx_seen), run.nginx_seen
    assert any(run.namespace in p for p in run.nginx_seen), run.nginx_seen
    run.assert_left_nothing(before)


def test_cleanup_after_failure(tmp_path: Path) -> None:
    # An L4 instance cannot start (its address and port are the other instance's) after the
    # namespace, the rules and the other processes exist.
    clash = _variant(tmp_path, "seed-as-advised.yaml", "{name: l4-2, address: 10.20.0.12}",
                     "{name: l4-2, address: 10.20.0.11}", "clash.yaml")
    before = _host_state(NOT_YET)
    run = _Watched(str(clash), "--duration", "2s")
    code, err = run.finish()
    assert code == 2, err
    assert "l4-2" in err and "removed" in err
    assert run.nginx_seen, "no nginx had started before the failure: the case proves less"
    run.assert_left_nothing(before)


def test_cleanup_after_sigint() -> None:
    before = _host_state(NOT_YET)
    run = _Watched(str(EXAMPLES / "seed-fixed.yaml"), "--duration", "30s")
    run.wait_running()
    during = _host_state(run.namespace)
    assert during["netns"] != before["netns"] and during["processes"] != before["processes"]
    run.child.send_signal(signal.SIGINT)
    code, err = run.finish(timeout=60)
    assert code == 130, err
    assert "interrupted" in err
    run.assert_left_nothing(before)


def _nftables(tmp_path: Path, affinity: bool) -> Path:
    text = (EXAMPLES / "seed-as-advised.yaml").read_text()
    text = text.replace("platform: gke", "platform: self-managed").replace("mode: ipvs", "mode: nftables")
    if not affinity:
        text = text.replace("session_affinity: ClientIP", "session_affinity: None")
    out = tmp_path / f"nft-{affinity}.yaml"
    out.write_text(text)
    return out


def test_nftables_mode_numgen_spreads_per_connection_and_affinity_pins(tmp_path: Path) -> None:
    pinned = _lab(_nftables(tmp_path, affinity=True), "--duration", "2s")
    spread = _lab(_nftables(tmp_path, affinity=False), "--duration", "2s")
    assert pinned["kube_proxy"]["mode"] == spread["kube_proxy"]["mode"] == "nftables"
    # Two gateway instances, two source addresses: the affinity sets allow at most two pods.
    assert pinned["measured"]["pods_used"] <= 2
    # numgen random over ~30 pooled connections reaches more pods, unevenly.
    assert spread["measured"]["pods_used"] > 2
    assert spread["measured"]["max_mean"] > 1.3
    assert spread["measured"]["errors"] == {}


def test_every_examples_edge_reuses_upstream_connections() -> None:
    checked = []
    for spec in sorted(EXAMPLES.glob("*.yaml")):
        if spec.name == "grpc.yaml":  # gRPC: the lab's client speaks HTTP/1.1 only
            continue
        data = _lab(spec, "--duration", "1s")
        measured = data["measured"]
        edge_next = next(hop for hop in measured["connections_opened"] if hop not in ("edge", "pods"))
        opened = measured["connections_opened"][edge_next]
        # 20 client connections; a pooling edge opens a few dozen upstream connections for
        # thousands of requests, a non-pooling one opens one per request.
        assert measured["requests"] > 200, (spec.name, measured)
        assert opened < measured["requests"] / 10, (spec.name, edge_next, opened, measured["requests"])
        checked.append(spec.name)
    assert "seed-fixed.yaml" in checked and "seed-as-advised.yaml" in checked


def test_scale_out_reaches_new_pods_only_without_pooling(tmp_path: Path) -> None:
    pooled = _variant(tmp_path, "seed-as-advised.yaml", "session_affinity: ClientIP", "session_affinity: None",
                      "pooled.yaml")
    unpooled = tmp_path / "unpooled.yaml"
    text = pooled.read_text()
    assert "upstream_keepalive: {idle_timeout: 10s}" in text
    unpooled.write_text(text.replace("upstream_keepalive: {idle_timeout: 10s}", "upstream_keepalive: {connections: 0}"))
    kept = _lab(pooled, "--scenario", "scale-out", "--duration", "4s")["measured"]
    fresh = _lab(unpooled, "--scenario", "scale-out", "--duration", "4s")["measured"]
    for run in (kept, fresh):
        assert run["scale_out"]["added"] == 4 and run["errors"] == {}
        assert len(run["per_pod"]) == 12
    fair = kept["scale_out"]["fair_share"]
    # Kong's pooled connections to the ClusterIP keep their pods: the added pods get only the
    # rare new connection. Without a pool every request is a new connection, chosen afresh.
    assert kept["scale_out"]["added_pods_requests"] < 0.25 * fair * kept["requests"], kept["scale_out"]
    assert fresh["scale_out"]["to_90_percent_s"] is not None and fresh["scale_out"]["to_90_percent_s"] < 1.5
    assert fresh["scale_out"]["added_pods_requests"] > 0.5 * fair * fresh["requests"] * 2 / 3


def _rollout_spec(tmp_path: Path, name: str, *, pre_stop: str | None, pool: bool) -> Path:
    # seed-as-advised with 3 pods and no ClientIP affinity: Kong pools connections to the
    # ClusterIP, kube-proxy's iptables rules pick a pod per connection.
    text = (EXAMPLES / "seed-as-advised.yaml").read_text()
    for old, new in (("session_affinity: ClientIP", "session_affinity: None"), ("replicas: 8", "replicas: 3")):
        assert old in text
        text = text.replace(old, new)
    if pre_stop is not None:
        text = text.replace("    app: {preset: uvicorn}\n", f"    app: {{preset: uvicorn}}\n    pre_stop_delay: {pre_stop}\n")
    if not pool:
        text = text.replace("    upstream_keepalive: {idle_timeout: 10s}\n", "    upstream_keepalive: {connections: 0}\n")
    out = tmp_path / f"{name}.yaml"
    out.write_text(text)
    return out


def _refused(rollout: dict[str, Any]) -> int:
    return sum(n for causes in rollout["upstream_errors"].values() for cause, n in causes.items()
               if "Connection refused" in cause)


def test_rollout_errors_depend_on_pre_stop_and_pooling(tmp_path: Path) -> None:
    # No preStop hook: each old pod stops listening as it is deleted, while kube-proxy's rules
    # still send new connections to it for minSyncPeriod (1s): Kong's connects are refused,
    # and with a single upstream (the ClusterIP) the POSTs fail with 502.
    bare = _lab(_rollout_spec(tmp_path, "bare", pre_stop=None, pool=True), "--scenario", "rollout",
                "--duration", "8s")["measured"]
    assert bare["errors"].get("status_502", 0) > 0, bare
    assert _refused(bare["rollout"]) > 0, bare["rollout"]
    assert bare["rollout"]["errors_before"] == {}
    # A 2s preStop sleep outlasts the 1s rule sync: no connect reaches a pod that stopped
    # listening. What is left are Kong's pooled connections, which conntrack keeps on the old
    # pod after the rules changed: the app closes the idle ones when it shuts down, and a POST
    # sent on one as it closes is reset (502): the preStop sleep cannot prevent that.
    waits = _lab(_rollout_spec(tmp_path, "waits", pre_stop="2s", pool=True), "--scenario", "rollout",
                 "--duration", "8s")["measured"]
    assert _refused(waits["rollout"]) == 0, waits["rollout"]
    assert set(waits["errors"]) <= {"status_502"}
    resets = sum(step["resets"] for step in waits["rollout"]["steps"])
    assert waits["errors"].get("status_502", 0) <= resets, waits
    # The same with no pooled connections to the ClusterIP: nothing to close, nothing lost.
    fresh = _lab(_rollout_spec(tmp_path, "fresh", pre_stop="2s", pool=False), "--scenario", "rollout",
                 "--duration", "8s")["measured"]
    assert fresh["errors"] == {}, fresh
    assert all(step["shutdown_closes"] == 0 for step in fresh["rollout"]["steps"])
    # Every old pod was replaced within the run, and the new ones took the traffic.
    steps = fresh["rollout"]["steps"]
    assert [s["pod"] for s in steps] == ["orders-0", "orders-1", "orders-2"]
    assert all(s["rules_at_s"] is not None and s["shutdown_at_s"] - s["deleted_at_s"] == 2 for s in steps)
    served = {p["pod"]: p["requests"] for p in fresh["per_pod"]}
    assert all(served[f"orders-v2-{i}"] > 0 for i in range(3)), served


def _kic_seed(tmp_path: Path, name: str, *, replicas: int, pre_stop: str | None) -> Path:
    # seed-fixed (Kong balances each request over the pod IPs) with Kong run by KIC, whose
    # endpoint propagation the plan puts at 8s (--proxy-sync-seconds 3 + worker_state_update_frequency
    # 5) instead of the 30s DNS TTL that seed-fixed's Kong on VMs waits, so the runs stay short.
    text = (EXAMPLES / "seed-fixed.yaml").read_text()
    for old, new in (("    location: outside\n    dns_resolver: [10.40.0.10]\n", "    mode: kic\n"),
                     ("replicas: 8", f"replicas: {replicas}"),
                     ("    pre_stop_delay: 35s\n", f"    pre_stop_delay: {pre_stop}\n" if pre_stop else "")):
        assert old in text
        text = text.replace(old, new)
    out = tmp_path / f"{name}.yaml"
    out.write_text(text)
    return out


def test_rollout_through_pod_ips_reports_errors_by_cause_and_leaves_nothing(tmp_path: Path) -> None:
    # No preStop hook: each old pod stops listening as it is deleted, while the Kong instances
    # keep it among their targets until the change reaches them (4s and 8s later): their
    # connects are refused.
    spec = _kic_seed(tmp_path, "bare", replicas=3, pre_stop=None)
    before = _host_state(NOT_YET)
    run = _Watched(str(spec), "--scenario", "rollout", "--duration", "12s", "--format", "json")
    code, err = run.finish()
    assert code == 0, err
    run.assert_left_nothing(before)
    data = json.loads(run.out)
    assert data["kube_proxy"]["dials"] == "pod endpoints"
    measured = data["measured"]
    rollout = measured["rollout"]
    assert rollout["errors_before"] == {}
    assert {"kong-1", "kong-2"} <= set(rollout["upstream_errors"]), rollout["upstream_errors"]
    assert _refused(rollout) > 0, rollout["upstream_errors"]
    assert measured["errors"], measured  # POSTs that met a refused or closing pod on every try
    assert measured["reloads"]["kong-1"] == measured["reloads"]["kong-2"] == 0
    steps = rollout["steps"]
    assert [s["pod"] for s in steps] == ["orders-0", "orders-1", "orders-2"]
    for step in steps:
        # kong-1 switched before kong-2, each after the change, and from then on no request
        # reached the old pod, none reached the new one before.
        kong1, kong2 = step["targets_at_s"]["kong-1"], step["targets_at_s"]["kong-2"]
        assert step["deleted_at_s"] < kong1 < kong2 == step["rules_at_s"], step
        assert step["old_requests_after_out"] == 0 and step["new_requests_before_in"] == 0, step
    served = {p["pod"]: p["requests"] for p in measured["per_pod"]}
    assert all(served[f"orders-v2-{i}"] > 0 for i in range(3)), served


def test_scale_out_through_pod_ips_moves_requests_without_a_reload_or_an_error(tmp_path: Path) -> None:
    data = _lab(_kic_seed(tmp_path, "scale", replicas=4, pre_stop=None), "--scenario", "scale-out",
                "--duration", "15s")
    measured = data["measured"]
    so = measured["scale_out"]
    assert so["added"] == 2 and measured["errors"] == {}, measured
    # The added pods entered the endpoints at 5s; kong-1 used them 4s later, kong-2 8s later.
    assert 3.5 < so["seen_at_s"]["kong-1"] < so["seen_at_s"]["kong-2"] < 9, so
    # Nothing reached them before the first Kong instance switched its step file; after the
    # last did, both instances sent them their share, and no nginx was reloaded.
    assert so["added_pods_requests_before_seen"] == 0, so
    assert so["added_pods_requests_after_all_saw"] > 0.5 * so["fair_share"] * measured["requests"] * 2 / 15, so
    assert set(measured["reloads"].values()) == {0}, measured["reloads"]


def test_scale_out_through_an_nginx_front_that_dials_pods_reloads_it(tmp_path: Path) -> None:
    from tests.lab.test_lab_setup import EDGE_PODS

    spec = tmp_path / "edge-pods.yaml"
    spec.write_text(EDGE_PODS)
    data = _lab(spec, "--scenario", "scale-out", "--duration", "4s")
    measured = data["measured"]
    so = measured["scale_out"]
    # nginx 1.22 resolves the headless name only at load: the lab reloads each edge instance.
    assert measured["reloads"] == {"edge-1": 1, "edge-2": 1}, measured["reloads"]
    assert so["added_pods_requests_before_seen"] == 0 and so["added_pods_requests_after_all_saw"] > 0, so
