"""The rollout-safety Deployment patch: readiness, preStop and grace period rendered as a
strategic-merge patch that `kubectl patch` and Kustomize apply to the user's Deployment.

Sources: kubernetes.io pod-lifecycle #pod-termination (terminationGracePeriodSeconds, preStop),
container-lifecycle-hooks (the `sleep` action; feature gate PodLifecycleSleepAction beta and on
by default from 1.30, GA 1.34 — KEP-3960), liveness-readiness-startup-probes (grpc probes).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from lbgen.errors import InputError
from lbgen.io.loader import load_spec_text
from lbgen.render import kubernetes as k8s
from lbgen.verify import kubernetes as verify_k8s
from tests.render.test_kubernetes import make_spec, rendered

PATCH = "k8s/patches/shop/orders.deployment.yaml"
ROLLOUT = {"readiness": {"path": "/ready"}, "pre_stop_delay": "1500ms",
           "termination_grace_period": "95s"}


def patch_of(files: dict[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(files[PATCH])
    return doc


def container(patch: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = patch["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_no_patch_without_rollout_settings() -> None:
    files = rendered(make_spec())
    assert not [p for p in files if "/patches/" in p]


def test_patch_renders_probe_sleep_and_whole_seconds_rounded_up() -> None:
    files = rendered(make_spec(service=ROLLOUT))
    assert set(k8s.output_paths(make_spec(service=ROLLOUT))) == set(files)
    patch = patch_of(files)
    assert (patch["apiVersion"], patch["kind"]) == ("apps/v1", "Deployment")
    assert patch["metadata"] == {"name": "orders", "namespace": "shop"}
    pod = patch["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 95
    app = container(patch)
    assert app["name"] == "orders"
    # 1500ms must not become a 1s sleep: shorter than asked is the unsafe direction.
    assert app["lifecycle"] == {"preStop": {"sleep": {"seconds": 2}}}
    assert app["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": 8000},
        "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3,
    }
    # The patch must not claim fields lbgen does not own (a selector would make kubectl patch
    # fail on an immutable field; an image would roll every Deployment to one image).
    assert "selector" not in patch["spec"] and "image" not in app


def test_cluster_without_sleep_action_gets_an_exec_sleep_and_a_warning() -> None:
    files = rendered(make_spec(service=ROLLOUT, cluster={"version": "1.29"}))
    assert container(patch_of(files))["lifecycle"] == {
        "preStop": {"exec": {"command": ["sleep", "2"]}}
    }
    assert "the image must contain" in files[PATCH]


def test_sleep_action_from_1_30() -> None:
    files = rendered(make_spec(service=ROLLOUT, cluster={"version": "1.30"}))
    assert "sleep" in container(patch_of(files))["lifecycle"]["preStop"]


def test_container_name_and_workload_from_the_spec() -> None:
    files = rendered(make_spec(service={**ROLLOUT, "deployment": "orders-api", "container": "app"}))
    patch = patch_of(files)
    assert patch["metadata"]["name"] == "orders-api"
    assert container(patch)["name"] == "app"
    assert "patch deployment orders-api" in files[PATCH]


def test_grace_period_alone_renders_no_container() -> None:
    patch = patch_of(rendered(make_spec(service={"termination_grace_period": "45s"})))
    assert patch["spec"]["template"]["spec"] == {"terminationGracePeriodSeconds": 45}


def test_grpc_services_get_a_grpc_probe() -> None:
    spec = make_spec(service={"protocol": "grpc", "readiness": {"period_seconds": 5}})
    probe = container(patch_of(rendered(spec)))["readinessProbe"]
    assert probe["grpc"] == {"port": 8000} and "httpGet" not in probe


def test_a_grpc_probe_path_is_a_located_error() -> None:
    text = """\
name: shop
tiers:
  - {kind: kong, name: gw, instances: [{name: k1, address: 10.0.0.1}]}
  - {kind: kubernetes, name: k8s, platform: gke}
services:
  - {name: orders, protocol: grpc, replicas: 2, app: {preset: go}, readiness: {path: /x}}
"""
    with pytest.raises(InputError) as caught:
        load_spec_text(text, "s.yaml")
    assert "readiness.path" in caught.value.problems[0].format()


# --- real consumers ---------------------------------------------------------------------------

def _base_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "orders", "namespace": "shop"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "orders"}},
            "template": {
                "metadata": {"labels": {"app": "orders"}},
                "spec": {"containers": [
                    {"name": "orders", "image": "example/orders:1"},
                    {"name": "sidecar", "image": "example/sidecar:1"},
                ]},
            },
        },
    }


def test_patch_merged_into_a_deployment_passes_strict_validation() -> None:
    patch = patch_of(rendered(make_spec(service=ROLLOUT)))
    merged = verify_k8s.merged_deployment(patch)
    kubernetes_validate.validate(merged, "1.36", strict=True)
    assert merged["spec"]["template"]["spec"]["containers"][0]["lifecycle"]


def test_verify_fails_a_patch_the_api_server_would_reject() -> None:
    files = rendered(make_spec(service=ROLLOUT))
    broken = files[PATCH].replace("periodSeconds", "periodSecs")
    results = verify_k8s.verify({PATCH: broken}, None)
    assert [r.status for r in results] == ["failed"]
    assert "periodSecs" in results[0].detail
    assert [r.status for r in verify_k8s.verify({PATCH: files[PATCH]}, None)] == ["passed"]


def test_strategic_merge_keeps_other_containers_and_fields() -> None:
    patch = patch_of(rendered(make_spec(service=ROLLOUT)))
    merged = verify_k8s.strategic_merge(_base_deployment(), patch)
    containers = merged["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["orders", "sidecar"]
    assert containers[0]["image"] == "example/orders:1" and "lifecycle" in containers[0]
    assert "lifecycle" not in containers[1]
    assert merged["spec"]["replicas"] == 3


KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
def test_kubectl_patch_and_kustomize_apply_the_patch(tmp_path: Path) -> None:
    assert KUBECTL is not None
    patch_text = rendered(make_spec(service=ROLLOUT))[PATCH]
    (tmp_path / "deployment.yaml").write_text(yaml.safe_dump(_base_deployment()))
    (tmp_path / "patch.yaml").write_text(patch_text)
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [deployment.yaml]\npatches: [{path: patch.yaml}]\n"
    )
    patched = subprocess.run(
        [KUBECTL, "patch", "--local", "-f", str(tmp_path / "deployment.yaml"), "--type",
         "strategic", "--patch-file", str(tmp_path / "patch.yaml"), "-o", "yaml"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    kustomized = subprocess.run(
        [KUBECTL, "kustomize", str(tmp_path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    python_merge = verify_k8s.strategic_merge(_base_deployment(), yaml.safe_load(patch_text))
    for output in (patched, kustomized):
        doc = yaml.safe_load(output)
        kubernetes_validate.validate(doc, "1.36", strict=True)
        # The verifier's merge is what kubectl does for these fields.
        assert doc["spec"]["template"] == python_merge["spec"]["template"]


KIC_SPEC = """\
name: shop
tiers:
  - {kind: kong, name: gw, mode: kic, kic: KIC, instances: [{name: k1, address: 10.0.0.1}]}
  - {kind: kubernetes, name: k8s, platform: gke}
services:
  - {name: orders, replicas: 2, app: {preset: go}}
"""


@pytest.mark.parametrize("kic", ["{drain_support: true}", "{version: '3.4', drain_support: true}"])
def test_drain_support_needs_a_kic_that_has_the_flag(kic: str) -> None:
    with pytest.raises(InputError) as caught:
        load_spec_text(KIC_SPEC.replace("KIC", kic), "s.yaml")
    text = caught.value.problems[0].format()
    assert "s.yaml:3:" in text and "--enable-drain-support" in text


def test_drain_support_on_kic_3_5_loads() -> None:
    spec = load_spec_text(KIC_SPEC.replace("KIC", "{version: '3.5', drain_support: true}"), "s.yaml").spec
    assert spec.kong is not None and spec.kong.kic is not None and spec.kong.kic.drain_support


def test_kic_settings_on_db_less_kong_are_refused() -> None:
    with pytest.raises(InputError):
        load_spec_text(KIC_SPEC.replace("mode: kic, kic: KIC", "kic: {version: '3.5'}"), "s.yaml")
