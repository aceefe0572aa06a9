"""The Kubernetes real-consumer checks: kubernetes-validate (1.36, strict) and the
KubeProxyConfiguration JSON Schema, on every example and on a spec that exercises every
field the renderer can emit; plus proof that both checks fail on bad input."""

from __future__ import annotations

import copy
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate.utils as kv_utils
import pytest
import yaml

import lbgen
from lbgen.render import kubernetes as k8s_render
from lbgen.verify import kubernetes as k8s_verify
from lbgen.verify._base import CheckResult
from tests.conftest import EXAMPLES, REPO

# A spec that makes the renderer emit every optional field: gRPC h2c port, ClientIP affinity,
# traffic policies, headless Service, HPA, PDB, and a kube-proxy config with every section.
EVERYTHING: dict[str, Any] = {
    "name": "everything",
    "tiers": [
        {"kind": "kong", "name": "gw", "version": "3.10",
         "instances": [{"name": "kong-1", "address": "10.0.0.10"}]},
        {"kind": "kubernetes", "name": "k8s", "version": "1.36", "platform": "self-managed",
         "kube_proxy": {
             "mode": "ipvs", "sync_period": "30s", "min_sync_period": "1s",
             "cluster_cidrs": ["10.244.0.0/16", "fd00:10:244::/56"],
             "ipvs": {"scheduler": "lc", "tcp_timeout": "15m", "tcp_fin_timeout": "2m",
                      "udp_timeout": "5m", "strict_arp": True},
             "conntrack": {"max_per_core": 32768, "min": 131072,
                           "tcp_established_timeout": "24h", "tcp_close_wait_timeout": "1h"},
         }},
    ],
    "services": [
        {"name": "greeter", "namespace": "rpc", "replicas": 4, "protocol": "grpc",
         "app": {"preset": "go"},
         "kubernetes": {"port": 50051, "target_port": 50051, "session_affinity": "ClientIP",
                        "session_affinity_timeout": 300, "internal_traffic_policy": "Local",
                        "traffic_distribution": "PreferSameZone",
                        "labels": {"team": "rpc"}, "selector": {"app.kubernetes.io/name": "greeter"}},
         "autoscaling": {"min_replicas": 2, "max_replicas": 8},
         "disruption_budget": {"max_unavailable": "25%"}},
        {"name": "orders", "namespace": "shop", "replicas": 3, "app": {"preset": "uvicorn"},
         "disruption_budget": {"min_available": 2}},
    ],
}


def kubernetes_results(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.name.startswith("kubernetes-validate")]


def kube_proxy_results(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.name.startswith("kube-proxy schema")]


def kubernetes_files(files: dict[str, str], spec: lbgen.Spec) -> set[str]:
    return {p for p in files if p.startswith(f"{spec.cluster.name}/") and p.endswith(".yaml")}


# --- every example, real consumers ---------------------------------------------------------------

@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_every_example_validates_strictly(example: Path, schemas_dir: Path) -> None:
    loaded = lbgen.load(example)
    files = lbgen.render(loaded)
    results = k8s_verify.verify(files, schemas_dir)
    checked = kubernetes_results(results)
    assert checked, "no Kubernetes manifest was checked"
    assert all(r.status == "passed" for r in checked), [r for r in checked if r.status != "passed"]
    # Every manifest file of the cluster was validated, not just some.
    assert kubernetes_files(files, loaded.spec) <= {r.name.rsplit(" ", 1)[1] for r in checked}
    proxy = kube_proxy_results(results)
    if k8s_render.renders_kube_proxy(loaded.spec.cluster):
        assert [r.status for r in proxy] == ["passed"]
    else:
        # GKE, or kube-proxy left alone: nothing to validate, and the report says why instead
        # of staying silent.
        assert [(r.status, r.name.rsplit(" ", 1)[1]) for r in proxy] == [
            ("skipped", f"{loaded.spec.cluster.name}/KUBE-PROXY.md")
        ]


def test_a_self_managed_example_exists() -> None:
    # The kube-proxy schema check above must run on at least one example.
    assert any(k8s_render.renders_kube_proxy(lbgen.load(e).spec.cluster) for e in EXAMPLES)


def test_every_renderable_field_validates_strictly(schemas_dir: Path) -> None:
    files = lbgen.render(lbgen.load(copy.deepcopy(EVERYTHING)))
    results = k8s_verify.verify(files, schemas_dir)
    assert sorted((r.name, r.status) for r in results) == [
        ("kube-proxy schema (KubeProxyConfiguration v1alpha1) k8s/kube-system/kube-proxy.yaml", "passed"),
        ("kubernetes-validate 1.36 (strict) k8s/kube-system/kube-proxy.yaml", "passed"),
        ("kubernetes-validate 1.36 (strict) k8s/rpc/greeter.yaml", "passed"),
        ("kubernetes-validate 1.36 (strict) k8s/shop/orders.yaml", "passed"),
    ], results
    greeter = next(r for r in results if r.name.endswith("k8s/rpc/greeter.yaml"))
    # The detail names the documents that went through the validator.
    assert greeter.detail == (
        "Service/greeter, Service/greeter-pods, HorizontalPodAutoscaler/greeter, "
        "PodDisruptionBudget/greeter"
    )


# --- the validators can fail ----------------------------------------------------------------------

# The label lbgen puts on every object: without it, a document fails as foreign.
LBGEN = {"app.kubernetes.io/managed-by": "lbgen"}


def _service_file(spec_patch: dict[str, Any]) -> dict[str, str]:
    doc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "orders", "namespace": "shop", "labels": LBGEN},
           "spec": {"selector": {"app": "orders"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8000}], **spec_patch}}
    return {"k8s/shop/orders.yaml": yaml.safe_dump_all([doc])}


def test_a_valid_hand_written_service_passes() -> None:
    # Baseline for the negative cases below: only their one defect makes them fail.
    results = k8s_verify.verify(_service_file({}), None)
    assert [r.status for r in results] == ["passed"]


def test_unknown_field_fails_in_strict_mode() -> None:
    results = k8s_verify.verify(_service_file({"sessionAfinity": "None"}), None)
    assert [r.status for r in results] == ["failed"]
    assert "sessionAfinity" in results[0].detail and "Service/orders" in results[0].detail


def test_wrong_type_fails() -> None:
    results = k8s_verify.verify(_service_file({"ports": [{"port": "eighty"}]}), None)
    assert [r.status for r in results] == ["failed"]
    assert "spec.ports.0.port" in results[0].detail


def test_removed_api_version_of_a_builtin_kind_fails() -> None:
    # policy/v1beta1 PodDisruptionBudget is not served by Kubernetes 1.36 (removed in 1.25):
    # it must fail, not be passed over like a custom resource.
    doc = {"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
           "metadata": {"name": "x", "labels": LBGEN}, "spec": {"maxUnavailable": 1}}
    results = k8s_verify.verify({"a.yaml": yaml.safe_dump(doc)}, None)
    assert [r.status for r in results] == ["failed", "failed"]
    assert "is not a kind lbgen renders" in results[0].detail
    assert "Couldn't find schema" in results[1].detail


def test_hpa_with_a_wrong_type_fails() -> None:
    doc = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "x", "labels": LBGEN},
           "spec": {"maxReplicas": "ten",
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}}}
    results = k8s_verify.verify({"a.yaml": yaml.safe_dump(doc)}, None)
    assert [r.status for r in results] == ["failed"]
    assert "spec.maxReplicas" in results[0].detail


def test_crds_are_left_to_the_kong_verifier() -> None:
    # kubernetes-validate has no schema for KongUpstreamPolicy; that is not a failure here.
    policy = {"apiVersion": "configuration.konghq.com/v1beta1", "kind": "KongUpstreamPolicy",
              "metadata": {"name": "orders", "labels": LBGEN},
              "spec": {"algorithm": "round-robin"}}
    files = {"gw/kic/shop-orders.yaml": yaml.safe_dump(policy)}
    assert k8s_verify.verify(files, None) == []


def test_non_yaml_output_fails() -> None:
    results = k8s_verify.verify({"k8s/shop/orders.yaml": "a: [1,\n"}, None)
    assert [r.status for r in results] == ["failed"]


def _kube_proxy_file(config: str) -> dict[str, str]:
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": LBGEN},
                 "data": {"config.conf": config}}
    return {"k8s/kube-system/kube-proxy.yaml": yaml.safe_dump(configmap)}


GOOD_KUBE_PROXY = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\n"


def test_kube_proxy_schema_passes_a_minimal_config(schemas_dir: Path) -> None:
    results = kube_proxy_results(k8s_verify.verify(_kube_proxy_file(GOOD_KUBE_PROXY), schemas_dir))
    assert [r.status for r in results] == ["passed"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        # An integer is not a metav1.Duration: kube-proxy fails to decode it.
        (GOOD_KUBE_PROXY + "iptables:\n  syncPeriod: 30\n", "iptables.syncPeriod"),
        # Removed/unknown fields are rejected (kube-proxy only warns, then ignores them).
        (GOOD_KUBE_PROXY + "conntrack:\n  max: 100\n", "conntrack"),
        ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: userspace\n",
         "mode"),
    ],
)
def test_kube_proxy_schema_rejects_bad_configs(config: str, message: str, schemas_dir: Path) -> None:
    results = kube_proxy_results(k8s_verify.verify(_kube_proxy_file(config), schemas_dir))
    assert [r.status for r in results] == ["failed"]
    assert f"config.conf {message}" in results[0].detail


def test_kube_proxy_check_is_skipped_without_schemas_and_says_how_to_run_it() -> None:
    results = kube_proxy_results(k8s_verify.verify(_kube_proxy_file(GOOD_KUBE_PROXY), None))
    assert [r.status for r in results] == ["skipped"]
    assert "--schemas" in results[0].detail


def test_kube_proxy_check_is_skipped_when_the_schema_file_is_missing(tmp_path: Path) -> None:
    results = kube_proxy_results(k8s_verify.verify(_kube_proxy_file(GOOD_KUBE_PROXY), tmp_path))
    assert [r.status for r in results] == ["skipped"]
    assert str(tmp_path / "kube-proxy" / "kubeproxyconfiguration-v1alpha1.json") in results[0].detail


def test_verify_leaves_kubernetes_validate_as_it_found_it() -> None:
    # Schema files are memoised only for the duration of a run.
    before = (kv_utils.schema_contents, kv_utils.all_versions)
    k8s_verify.verify(_service_file({}), None)
    assert (kv_utils.schema_contents, kv_utils.all_versions) == before


def test_kube_proxy_configmap_without_config_conf_fails(schemas_dir: Path) -> None:
    # The kubeadm DaemonSet runs --config=/var/lib/kube-proxy/config.conf: it must be there.
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": LBGEN},
                 "data": {"kubeconfig.conf": "x"}}
    files = {"k8s/kube-system/kube-proxy.yaml": yaml.safe_dump(configmap)}
    results = kube_proxy_results(k8s_verify.verify(files, schemas_dir))
    assert [r.status for r in results] == ["failed"]


def test_without_kubernetes_validate_the_check_is_skipped_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # kubernetes-validate (22 MB) is the optional extra lbgen[verify]; None in sys.modules
    # makes `import kubernetes_validate` raise ImportError, as when it is not installed.
    monkeypatch.setitem(sys.modules, "kubernetes_validate", None)
    monkeypatch.setitem(sys.modules, "kubernetes_validate.utils", None)

    results = k8s_verify.verify(_service_file({"sessionAfinity": "None"}), None)

    assert [(r.name, r.status) for r in results] == [
        ("kubernetes-validate 1.36 (strict) k8s/shop/orders.yaml", "skipped")
    ]
    assert "kubernetes-validate is not installed" in results[0].detail
    assert "pip install 'lbgen[verify]'" in results[0].detail


def test_kubernetes_validate_is_an_optional_extra_that_the_test_extra_includes() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    requirement = re.compile(r"^kubernetes-validate\b")
    assert not any(requirement.match(dep) for dep in project["dependencies"])
    for extra in ("verify", "test"):
        assert any(requirement.match(dep) for dep in project["optional-dependencies"][extra])
