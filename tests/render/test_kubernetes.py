"""Kubernetes renderer decisions, each with the reason the output is right.

Sources: kubernetes/website `docs/reference/networking/virtual-ips.md` (sessionAffinity,
traffic policies, trafficDistribution), the core/v1 ServicePort API doc (appProtocol
`kubernetes.io/h2c`), `kube-proxy-config.v1alpha1.md`, kubeadm's kube-proxy addon
(`cmd/kubeadm/app/phases/addons/proxy/manifests.go`, `componentconfigs/kubeproxy.go`), the GKE
DatapathProvider API reference and the GKE Dataplane V2 concept page.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from lbgen.errors import InputError
from lbgen.io.loader import load_spec_data
from lbgen.model.spec import Spec
from lbgen.plan.hops import resolve
from lbgen.render import kubernetes as k8s
from lbgen.render import render_spec
from lbgen.render._base import RenderContext
from lbgen.render._env import jinja_env

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
        {"kind": "kubernetes", "name": "k8s", "version": "1.33", "platform": "self-managed"},
    ],
    "services": [
        {
            "name": "orders",
            "namespace": "shop",
            "replicas": 3,
            "app": {"preset": "uvicorn"},
            "kubernetes": {"port": 80, "target_port": 8000},
        }
    ],
}


def make_spec(
    *,
    front: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    service: dict[str, Any] | None = None,
    tiers: list[dict[str, Any]] | None = None,
) -> Spec:
    data = copy.deepcopy(BASE)
    if tiers is not None:
        data["tiers"] = tiers
    data["tiers"][0].update(front or {})
    data["tiers"][-1].update(cluster or {})
    data["services"][0].update(service or {})
    return load_spec_data(data).spec


def ctx_for(spec: Spec) -> RenderContext:
    return RenderContext(spec=spec, plan=resolve(spec), source_name="t.yaml", env=jinja_env())


def rendered(spec: Spec) -> dict[str, str]:
    return {f.path: f.content for f in k8s.render(ctx_for(spec))}


def bundle(spec: Spec) -> list[dict[str, Any]]:
    """The parsed documents of the (single) service bundle."""
    text = rendered(spec)["k8s/shop/orders.yaml"]
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def kinds(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(doc["kind"], doc["metadata"]["name"]) for doc in docs]


# What a whole-file replacement of kube-proxy's config.conf must state (LB708).
MANAGED_KUBE_PROXY: dict[str, Any] = {"kube_proxy": {"mode": "iptables", "cluster_cidrs": []}}


def kube_proxy_settings(**settings: Any) -> dict[str, Any]:
    return {"kube_proxy": {**MANAGED_KUBE_PROXY["kube_proxy"], **settings}}


def kube_proxy_config(spec: Spec) -> dict[str, Any]:
    configmap = yaml.safe_load(rendered(spec)["k8s/kube-system/kube-proxy.yaml"])
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["config.conf"])
    return config


# --- paths and headers -------------------------------------------------------------------------

def test_one_bundle_per_service_under_cluster_and_namespace() -> None:
    # Layout contract shared with the summary and the CLI: <cluster>/<namespace>/<service>.yaml.
    spec = make_spec(cluster=MANAGED_KUBE_PROXY)
    files = rendered(spec)
    assert set(files) == {"k8s/shop/orders.yaml", "k8s/kube-system/kube-proxy.yaml"}
    assert set(files) == set(k8s.output_paths(spec))


def test_self_managed_without_kube_proxy_settings_gets_no_configmap() -> None:
    # Nothing asks lbgen to change kube-proxy: a full config.conf would silently revert an
    # ipvs/nftables cluster to iptables and drop its clusterCIDR (issue #8 item 7).
    spec = make_spec()
    files = rendered(spec)
    assert set(files) == {"k8s/shop/orders.yaml", "k8s/KUBE-PROXY.md"} == set(k8s.output_paths(spec))
    note = files["k8s/KUBE-PROXY.md"]
    assert "The spec gives no `kubernetes.kube_proxy` settings" in note
    assert "kubectl diff -f k8s/kube-system/kube-proxy.yaml" in note


@pytest.mark.parametrize(
    ("settings", "missing"),
    [({"ipvs": {"tcp_timeout": "1h"}}, "`mode` and `cluster_cidrs`"),
     ({"mode": "ipvs"}, "`cluster_cidrs`"),
     ({"cluster_cidrs": ["10.244.0.0/16"]}, "`mode`")],
)
def test_incomplete_kube_proxy_settings_render_no_partial_file(
    settings: dict[str, Any], missing: str
) -> None:
    files = rendered(make_spec(cluster={"kube_proxy": settings}))
    assert "k8s/kube-system/kube-proxy.yaml" not in files
    assert f"but not {missing}." in files["k8s/KUBE-PROXY.md"]


def test_every_file_starts_with_the_generated_by_header() -> None:
    # Users must see at a glance that editing the file by hand is pointless.
    for platform in ("self-managed", "gke"):
        for content in rendered(make_spec(cluster={"platform": platform})).values():
            first = content.splitlines()[0]
            assert first in (
                "# generated by lbgen from t.yaml — do not edit",
                "<!-- generated by lbgen from t.yaml — do not edit -->",
            )


# --- the Service -------------------------------------------------------------------------------

def test_service_is_cluster_ip_with_selector_and_ports_from_the_spec() -> None:
    spec = make_spec(service={"kubernetes": {"port": 8080, "target_port": 9000,
                                             "selector": {"app.kubernetes.io/name": "orders-api"}}})
    service = bundle(spec)[0]
    assert service["apiVersion"] == "v1" and service["kind"] == "Service"
    assert service["metadata"]["namespace"] == "shop"
    assert service["spec"]["type"] == "ClusterIP"
    # An explicit selector replaces the default `app: <name>`, or the Service would select nothing.
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "orders-api"}
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 9000}
    ]


def test_default_selector_is_app_service_name() -> None:
    assert bundle(make_spec())[0]["spec"]["selector"] == {"app": "orders"}


def test_grpc_port_declares_h2c_app_protocol() -> None:
    # gRPC to the pods is HTTP/2 prior knowledge over cleartext; `kubernetes.io/h2c` is the
    # standard appProtocol for that (core/v1 ServicePort doc, KEP-3726), and implementations
    # such as Gateway API controllers key HTTP/2 upstreams on it.
    port = bundle(make_spec(service={"protocol": "grpc"}))[0]["spec"]["ports"][0]
    assert port["name"] == "grpc"
    assert port["appProtocol"] == "kubernetes.io/h2c"


def test_http_port_has_no_app_protocol() -> None:
    # Plain HTTP/1.1 needs no hint; an h2c hint would make HTTP/2-aware proxies speak h2c.
    port = bundle(make_spec())[0]["spec"]["ports"][0]
    assert "appProtocol" not in port


def test_session_affinity_none_has_no_affinity_config() -> None:
    # sessionAffinityConfig only means something with ClientIP (virtual-ips.md).
    spec = bundle(make_spec())[0]["spec"]
    assert spec["sessionAffinity"] == "None"
    assert "sessionAffinityConfig" not in spec


def test_client_ip_affinity_renders_the_kubernetes_default_timeout_when_unset() -> None:
    # Kubernetes defaults timeoutSeconds to 10800 (3h); writing it makes the stickiness
    # window visible in review instead of implicit.
    spec = bundle(make_spec(service={"kubernetes": {"session_affinity": "ClientIP"}}))[0]["spec"]
    assert spec["sessionAffinity"] == "ClientIP"
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_client_ip_affinity_timeout_as_set() -> None:
    spec = bundle(make_spec(service={"kubernetes": {
        "session_affinity": "ClientIP", "session_affinity_timeout": 600}}))[0]["spec"]
    assert spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 600


def test_internal_traffic_policy_only_when_set() -> None:
    # Unset keeps Kubernetes' default (Cluster) without pinning it in the manifest.
    assert "internalTrafficPolicy" not in bundle(make_spec())[0]["spec"]
    spec = bundle(make_spec(service={"kubernetes": {"internal_traffic_policy": "Local"}}))[0]["spec"]
    assert spec["internalTrafficPolicy"] == "Local"


@pytest.mark.parametrize(
    ("value", "version", "rendered_value"),
    [
        ("PreferClose", "1.32", None),  # beta before 1.33
        ("PreferClose", "1.33", "PreferClose"),  # GA 1.33 (KEP-4444)
        ("PreferSameZone", "1.34", None),  # beta before 1.35
        ("PreferSameZone", "1.35", "PreferSameZone"),  # GA 1.35 (KEP-3015)
        ("PreferSameNode", "1.34", None),
        ("PreferSameNode", "1.36", "PreferSameNode"),
    ],
)
def test_traffic_distribution_only_where_the_value_is_ga(
    value: str, version: str, rendered_value: str | None
) -> None:
    # An API server older than the value's GA release rejects it (or needs a feature gate):
    # lbgen refuses the spec with a located error instead of dropping the field silently
    # (issue #8 item 11); the refusal itself is tested in tests/test_kong_location.py.
    if rendered_value is None:
        with pytest.raises(InputError) as caught:
            make_spec(cluster={"version": version},
                      service={"kubernetes": {"traffic_distribution": value}})
        assert "services[0].kubernetes.traffic_distribution" in caught.value.problems[0].format()
        return
    spec = make_spec(cluster={"version": version},
                     service={"kubernetes": {"traffic_distribution": value}})
    assert bundle(spec)[0]["spec"]["trafficDistribution"] == rendered_value


def test_labels_carry_managed_by_and_user_labels_and_managed_by_wins() -> None:
    # managed-by tells kubectl users (and tools pruning by label) who owns the object; a user
    # label must not be able to claim it for another tool.
    spec = make_spec(service={"kubernetes": {"labels": {
        "team": "checkout", "app.kubernetes.io/managed-by": "helm"}}})
    for doc in bundle(spec):
        assert doc["metadata"]["labels"] == {"team": "checkout", "app.kubernetes.io/managed-by": "lbgen"}


def test_annotations_come_from_the_kic_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    # The KIC helper owns `konghq.com/*` annotations; the Service must carry exactly them.
    monkeypatch.setattr(k8s, "service_annotations",
                        lambda spec, service: {"konghq.com/upstream-policy": f"{service.name}-p"})
    service = bundle(make_spec())[0]
    assert service["metadata"]["annotations"] == {"konghq.com/upstream-policy": "orders-p"}


def test_no_annotations_key_when_the_helper_returns_none() -> None:
    # DB-less Kong: KIC annotations would be noise on the Service.
    assert "annotations" not in bundle(make_spec())[0]["metadata"]


def test_kic_service_gets_the_upstream_policy_annotation() -> None:
    spec = make_spec(front={"mode": "kic"})
    annotations = bundle(spec)[0]["metadata"]["annotations"]
    # Without it KIC ignores the KongUpstreamPolicy the Kong renderer emits.
    assert annotations["konghq.com/upstream-policy"] == "orders-upstream-policy"


# --- the headless Service -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("front", "headless"),
    [
        # Kong DB-less resolves the headless name to one address per pod and balances per
        # request across them (its default backend_targets).
        ({"mode": "db-less", "backend_targets": "pod_endpoints"}, True),
        # Through the ClusterIP nothing resolves the headless name: no object to maintain.
        ({"mode": "db-less", "backend_targets": "cluster_ip"}, False),
        # KIC reads EndpointSlices itself; a headless Service would be unused.
        ({"mode": "kic", "backend_targets": "pod_endpoints"}, False),
        ({"mode": "kic", "backend_targets": "cluster_ip"}, False),
    ],
)
def test_headless_service_only_when_a_non_kic_proxy_targets_pod_endpoints(
    front: dict[str, Any], headless: bool
) -> None:
    names = [name for kind, name in kinds(bundle(make_spec(front=front)))]
    assert ("orders-pods" in names) is headless


def test_nginx_edge_straight_to_pods_gets_a_headless_service() -> None:
    tiers: list[dict[str, Any]] = [
        {"kind": "nginx_http", "name": "edge", "instances": [{"name": "e1", "address": "10.0.0.1"}],
         "backend_targets": "pod_endpoints"},
        {"kind": "kubernetes", "name": "k8s", "platform": "self-managed"},
    ]
    assert ("Service", "orders-pods") in kinds(bundle(make_spec(tiers=tiers)))


def test_nginx_stream_in_front_gets_no_headless_service() -> None:
    # An L4 proxy forwards connections to one address; it has no per-request choice to feed.
    tiers: list[dict[str, Any]] = [
        {"kind": "nginx_stream", "name": "l4", "instances": [{"name": "l1", "address": "10.0.0.1"}]},
        {"kind": "kubernetes", "name": "k8s", "platform": "self-managed"},
    ]
    assert kinds(bundle(make_spec(tiers=tiers))) == [("Service", "orders")]


def test_headless_service_shape() -> None:
    spec = make_spec(service={
        "protocol": "grpc",
        "kubernetes": {"port": 80, "target_port": 8000, "session_affinity": "ClientIP",
                       "traffic_distribution": "PreferClose"},
    })
    headless = bundle(spec)[1]
    assert headless["metadata"]["name"] == "orders-pods"
    body = headless["spec"]
    # clusterIP None = DNS returns the pod IPs themselves (headless).
    assert body["clusterIP"] == "None"
    # Not-ready pods must leave DNS, or the proxy keeps sending requests to them.
    assert body["publishNotReadyAddresses"] is False
    # No virtual IP translates ports, so the advertised port is the container port.
    assert body["ports"] == [{"name": "grpc", "port": 8000, "protocol": "TCP", "targetPort": 8000,
                              "appProtocol": "kubernetes.io/h2c"}]
    assert body["selector"] == {"app": "orders"}
    # kube-proxy does not handle headless Services: affinity/distribution would be dead fields.
    assert "sessionAffinity" not in body and "trafficDistribution" not in body


# --- HPA and PDB ---------------------------------------------------------------------------------

def test_no_hpa_or_pdb_unless_set() -> None:
    assert [kind for kind, _ in kinds(bundle(make_spec()))] == ["Service", "Service"]


def test_hpa_scales_the_deployment_on_cpu_utilisation() -> None:
    spec = make_spec(service={"deployment": "orders-web",
                              "autoscaling": {"min_replicas": 2, "max_replicas": 10,
                                              "target_cpu_utilization": 60}})
    hpa = next(d for d in bundle(spec) if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["name"] == "orders-web"
    # The HPA must target the workload, whose name may differ from the Service's.
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "orders-web"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]


@pytest.mark.parametrize(
    ("budget", "field", "value"),
    [({"max_unavailable": "25%"}, "maxUnavailable", "25%"), ({"min_available": 2}, "minAvailable", 2)],
)
def test_pdb_selects_the_service_pods_with_exactly_one_bound(
    budget: dict[str, Any], field: str, value: int | str
) -> None:
    spec = make_spec(service={"disruption_budget": budget,
                              "kubernetes": {"selector": {"app": "orders", "tier": "web"}}})
    pdb = next(d for d in bundle(spec) if d["kind"] == "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    # Same pods as the Service: a PDB over other pods protects nothing that serves traffic.
    assert pdb["spec"]["selector"] == {"matchLabels": {"app": "orders", "tier": "web"}}
    assert {k: v for k, v in pdb["spec"].items() if k != "selector"} == {field: value}


def test_documents_in_a_stable_order() -> None:
    spec = make_spec(service={"autoscaling": {"min_replicas": 2, "max_replicas": 4},
                              "disruption_budget": {"max_unavailable": 1}})
    assert kinds(bundle(spec)) == [
        ("Service", "orders"), ("Service", "orders-pods"),
        ("HorizontalPodAutoscaler", "orders"), ("PodDisruptionBudget", "orders"),
    ]


# --- kube-proxy --------------------------------------------------------------------------------

@pytest.mark.parametrize("platform", ["gke", "gke-dataplane-v2"])
def test_gke_gets_a_note_and_no_configmap(platform: str) -> None:
    # GKE exposes no kube-proxy configuration (DatapathProvider: legacy iptables kube-proxy or
    # Dataplane V2), so a ConfigMap would mislead users into editing something GKE owns.
    files = rendered(make_spec(cluster={"platform": platform}))
    assert "k8s/KUBE-PROXY.md" in files
    assert not any(path.startswith("k8s/kube-system/") for path in files)
    note = files["k8s/KUBE-PROXY.md"]
    assert "reference/rest/v1/DatapathProvider" in note
    assert "container-native-load-balancing" in note


def test_gke_dataplane_v2_note_says_there_is_no_kube_proxy() -> None:
    note = rendered(make_spec(cluster={"platform": "gke-dataplane-v2"}))["k8s/KUBE-PROXY.md"]
    assert "**no kube-proxy at all**" in note
    assert "concepts/dataplane-v2" in note
    assert "kubectl -n kube-system get daemonset anetd" in note


def test_gke_legacy_note_explains_the_iptables_choice() -> None:
    note = rendered(make_spec(cluster={"platform": "gke"}))["k8s/KUBE-PROXY.md"]
    assert "iptables" in note and "pkg/proxy/iptables/proxier.go" in note
    assert "no kube-proxy at all" not in note


def test_gke_note_tells_cluster_ip_users_to_target_pod_endpoints() -> None:
    # The actionable fix on GKE is per-request balancing in the tier in front.
    cluster_ip = rendered(make_spec(front={"backend_targets": "cluster_ip"},
                                    cluster={"platform": "gke"}))["k8s/KUBE-PROXY.md"]
    assert "`gw` connects to each Service's ClusterIP" in cluster_ip
    assert "Set `backend_targets: pod_endpoints`" in cluster_ip
    pods = rendered(make_spec(cluster={"platform": "gke"}))["k8s/KUBE-PROXY.md"]
    assert "already per-request balancing" in pods
    assert "Set `backend_targets: pod_endpoints`" not in pods


def test_self_managed_configmap_is_kubeadms_kube_proxy_configmap() -> None:
    configmap = yaml.safe_load(rendered(make_spec(cluster=MANAGED_KUBE_PROXY))["k8s/kube-system/kube-proxy.yaml"])
    assert (configmap["apiVersion"], configmap["kind"]) == ("v1", "ConfigMap")
    # kubeadm's DaemonSet mounts this ConfigMap and runs --config=/var/lib/kube-proxy/config.conf.
    assert configmap["metadata"]["name"] == "kube-proxy"
    assert configmap["metadata"]["namespace"] == "kube-system"
    assert configmap["metadata"]["labels"]["app"] == "kube-proxy"
    assert list(configmap["data"]) == ["config.conf"]


def test_kube_proxy_config_states_the_mode_and_kubeadms_kubeconfig() -> None:
    config = kube_proxy_config(make_spec(cluster=MANAGED_KUBE_PROXY))
    assert config["apiVersion"] == "kubeproxy.config.k8s.io/v1alpha1"
    assert config["kind"] == "KubeProxyConfiguration"
    assert config["mode"] == "iptables"
    # Without the kubeconfig kube-proxy would use the in-cluster config, i.e. the `kubernetes`
    # ClusterIP it has not programmed yet (kubeadm componentconfigs/kubeproxy.go).
    assert config["clientConnection"] == {"kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf"}
    assert "clusterCIDR" not in config


def test_config_conf_is_itself_marked_generated() -> None:
    # It is what lands in /var/lib/kube-proxy/config.conf on every node.
    configmap = yaml.safe_load(rendered(make_spec(cluster=MANAGED_KUBE_PROXY))["k8s/kube-system/kube-proxy.yaml"])
    assert configmap["data"]["config.conf"].startswith("# generated by lbgen from t.yaml")


@pytest.mark.parametrize("mode", ["iptables", "ipvs", "nftables"])
def test_sync_periods_go_to_the_active_modes_section_as_go_durations(mode: str) -> None:
    spec = make_spec(cluster=kube_proxy_settings(mode=mode, sync_period="1m30s",
                                                 min_sync_period="500ms"))
    config = kube_proxy_config(spec)
    assert config["mode"] == mode
    # metav1.Duration decodes Go duration strings; an integer fails to decode in kube-proxy.
    assert config[mode] == {"syncPeriod": "90s", "minSyncPeriod": "500ms"}
    assert not {"iptables", "ipvs", "nftables"} - {mode} & set(config)


def test_ipvs_and_conntrack_settings() -> None:
    spec = make_spec(cluster=kube_proxy_settings(
        mode="ipvs",
        ipvs={"scheduler": "lc", "tcp_timeout": "15m", "tcp_fin_timeout": "2m",
              "udp_timeout": "5m", "strict_arp": True},
        conntrack={"max_per_core": 0, "min": 131072, "tcp_established_timeout": "1h",
                   "tcp_close_wait_timeout": "30s"},
    ))
    config = kube_proxy_config(spec)
    assert config["ipvs"] == {"scheduler": "lc", "tcpTimeout": "900s", "tcpFinTimeout": "120s",
                              "udpTimeout": "300s", "strictARP": True}
    # maxPerCore 0 means "leave the kernel's limit" and must survive as 0, not be dropped.
    assert config["conntrack"] == {"maxPerCore": 0, "min": 131072,
                                   "tcpEstablishedTimeout": "3600s", "tcpCloseWaitTimeout": "30s"}


def test_cluster_cidrs_become_one_dual_stack_cluster_cidr() -> None:
    spec = make_spec(cluster=kube_proxy_settings(cluster_cidrs=["10.244.0.0/16", "fd00:10:244::/56"]))
    assert kube_proxy_config(spec)["clusterCIDR"] == "10.244.0.0/16,fd00:10:244::/56"
    header = rendered(spec)["k8s/kube-system/kube-proxy.yaml"]
    assert "No clusterCIDR" not in header


def test_an_explicitly_empty_cluster_cidr_is_said_and_the_file_says_to_diff_first() -> None:
    text = rendered(make_spec(cluster=MANAGED_KUBE_PROXY))["k8s/kube-system/kube-proxy.yaml"]
    assert "clusterCIDR" not in kube_proxy_config(make_spec(cluster=MANAGED_KUBE_PROXY))
    assert "# No clusterCIDR (kubernetes.kube_proxy.cluster_cidrs: [])" in text
    assert "#   kubectl diff -f k8s/kube-system/kube-proxy.yaml" in text
    assert "# kubectl -n kube-system rollout restart daemonset kube-proxy" in text


# --- whole render ---------------------------------------------------------------------------------

def test_render_is_deterministic_and_in_spec_order_of_services() -> None:
    data = copy.deepcopy(BASE)
    data["services"].append({**data["services"][0], "name": "billing"})
    data["tiers"][-1].update(MANAGED_KUBE_PROXY)
    spec = load_spec_data(data).spec
    first = render_spec(spec, "t.yaml")
    assert first == render_spec(spec, "t.yaml")
    paths = [f.path for f in k8s.render(ctx_for(spec))]
    assert paths == ["k8s/shop/orders.yaml", "k8s/shop/billing.yaml", "k8s/kube-system/kube-proxy.yaml"]
