"""Names that would collide in the output, derived names over the DNS label limit, and
routes listed twice in one service are refused at load, located (issue #7 items 2 and 5).

Before, colliding output paths ended in an AssertionError traceback and colliding objects
were written twice into one bundle; repeated routes were left for `nginx -t` to refuse.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import lbgen
from lbgen.cli import cli
from lbgen.io.loader import load_spec_text
from tests.conftest import REPO
from tests.test_input_errors import at, position, problems_of

SEED = (REPO / "examples" / "seed.yaml").read_text(encoding="utf-8")
KIC = (REPO / "examples" / "kic.yaml").read_text(encoding="utf-8")
SELF_MANAGED = (REPO / "examples" / "self-managed-nftables.yaml").read_text(encoding="utf-8")


def service(name: str, namespace: str = "shop", extra: str = "", path: str | None = None) -> str:
    return (
        f"  - name: {name}\n    namespace: {namespace}\n    replicas: 2\n"
        f"    app: {{preset: uvicorn}}\n    route: {{paths: [{path or '/' + name}]}}\n{extra}"
    )


def with_services(base: str, *services: str) -> str:
    head = base[: base.index("services:\n") + len("services:\n")]
    return head + "".join(services)


def test_kic_files_that_would_share_a_path_are_refused_at_the_second_service(
    tmp_path: Path,
) -> None:
    text = with_services(KIC, service("c", "a-b"), service("b-c", "a"))
    (problem,) = problems_of(text)
    assert problem.message == (
        "service a/b-c would be written to kong/kic/a-b-c.yaml, which already holds "
        "service a-b/c's file"
    ).replace("kong/", KIC.split("kind: kong\n    name: ")[1].split("\n")[0] + "/")
    assert at(problem) == position(text, "b-c\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["render", str(spec), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
    line, column = at(problem)
    assert f"{spec}:{line}:{column}: error: service a/b-c would be written to" in result.output


def test_a_service_named_kube_proxy_in_kube_system_is_refused_on_self_managed_clusters() -> None:
    text = with_services(SELF_MANAGED, service("kube-proxy", "kube-system"))
    (problem,) = problems_of(text)
    assert "service kube-system/kube-proxy would be written to" in problem.message
    assert "kube-proxy ConfigMap" in problem.message
    assert at(problem) == position(text, "kube-proxy\n")


def test_a_service_named_kube_proxy_in_kube_system_is_fine_on_gke() -> None:
    # GKE: lbgen writes KUBE-PROXY.md, not kube-system/kube-proxy.yaml.
    text = with_services(SEED, service("kube-proxy", "kube-system"))
    files = lbgen.render(load_spec_text(text))
    assert "gke/kube-system/kube-proxy.yaml" in files


def test_a_service_with_the_name_of_another_services_headless_service_is_refused() -> None:
    text = with_services(SEED, service("orders"), service("orders-pods"))
    (problem,) = problems_of(text)
    assert problem.message == (
        "the headless Service lbgen adds for service orders, shop/orders-pods, has the "
        "name of service orders-pods"
    )
    assert at(problem) == position(text, "orders\n")


def test_the_same_names_in_two_namespaces_do_not_collide() -> None:
    text = with_services(SEED, service("orders"), service("orders-pods", "other"))
    files = lbgen.render(load_spec_text(text))
    documents = list(yaml.safe_load_all(files["gke/shop/orders.yaml"]))
    assert [d["metadata"]["name"] for d in documents] == ["orders", "orders-pods"]


@pytest.mark.parametrize(
    ("field", "setting", "kind"),
    [
        ("autoscaling", "{min_replicas: 2, max_replicas: 4}", "HorizontalPodAutoscaler"),
        ("disruption_budget", "{max_unavailable: 1}", "PodDisruptionBudget"),
    ],
)
def test_two_services_sharing_a_deployment_cannot_both_get_an_hpa_or_pdb(
    field: str, setting: str, kind: str
) -> None:
    extra = f"    deployment: shop-api\n    {field}: {setting}\n"
    text = with_services(SEED, service("orders", extra=extra), service("carts", extra=extra))
    (problem,) = problems_of(text)
    assert problem.message == (
        f"{kind} shop/shop-api would be rendered for service orders and for service carts: "
        "both target Deployment shop-api"
    )
    assert at(problem) == position(text, setting, 2)


def test_two_services_sharing_a_deployment_cannot_both_patch_it() -> None:
    rollout = "    deployment: shop-api\n    readiness: {path: /healthz}\n"
    text = with_services(SEED, service("orders", extra=rollout), service("carts", extra=rollout))
    (problem,) = problems_of(text)
    assert problem.message == (
        "the Deployment patch of service carts and that of service orders both patch "
        "Deployment shop/shop-api (readiness, preStop, grace period)"
    )


def test_two_services_sharing_a_deployment_with_one_hpa_render() -> None:
    scaling = "    deployment: shop-api\n    autoscaling: {min_replicas: 2, max_replicas: 4}\n"
    text = with_services(SEED, service("orders", extra=scaling),
                         service("carts", extra="    deployment: shop-api\n"))
    files = lbgen.render(load_spec_text(text))
    kinds = [d["kind"] for path, content in files.items() if path.endswith(".yaml")
             for d in yaml.safe_load_all(content) if isinstance(d, dict) and "kind" in d]
    assert kinds.count("HorizontalPodAutoscaler") == 1


def test_a_service_name_whose_headless_name_exceeds_63_characters_is_refused() -> None:
    name = "s" + "x" * 59  # 60 characters: "-pods" makes 65
    text = with_services(SEED, service(name, path="/long"))
    (problem,) = problems_of(text)
    assert problem.message == (
        f"the headless Service lbgen adds for service {name} would be named {name}-pods "
        "(65 characters), over Kubernetes' 63-character limit for Service names"
    )
    assert problem.hint == "shorten the service name to at most 58 characters"
    assert at(problem) == position(text, name)


def test_58_characters_are_the_longest_service_name_with_a_headless_service() -> None:
    name = "s" + "x" * 57
    files = lbgen.render(load_spec_text(with_services(SEED, service(name, path="/long"))))
    documents = list(yaml.safe_load_all(files[f"gke/shop/{name}.yaml"]))
    assert [len(d["metadata"]["name"]) for d in documents] == [58, 63]


def test_without_a_headless_service_a_63_character_name_is_fine() -> None:
    name = "s" + "x" * 62
    text = with_services(SEED.replace("      trusted_ips: [10.10.0.0/24, 10.20.0.0/24]\n",
                                      "      trusted_ips: [10.10.0.0/24, 10.20.0.0/24]\n"
                                      "    backend_targets: cluster_ip\n"
                                      "    cluster_ip_routed: true\n"),
                         service(name, path="/long"))
    assert load_spec_text(text).spec.services[0].name == name


# --- item 5: a route listed twice in one service ----------------------------------------------


def test_a_path_listed_twice_in_one_service_is_refused_at_the_repeat(tmp_path: Path) -> None:
    text = with_services(SEED, service("orders", path="/x, /y, /x"))
    (problem,) = problems_of(text)
    assert problem.message == "service orders lists the path /x twice (also item 1 of route.paths)"
    assert problem.path == "services[0].route.paths[2]"
    assert at(problem) == position(text, "/x", 2)
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["validate", str(spec)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_hosts_that_differ_only_in_case_are_the_same_host() -> None:
    text = with_services(
        SEED,
        "  - name: orders\n    namespace: shop\n    replicas: 2\n    app: {preset: uvicorn}\n"
        "    route: {paths: [/orders], hosts: [Shop.Example.com, api.example.com, shop.example.COM]}\n",
    )
    (problem,) = problems_of(text)
    assert problem.message == (
        "service orders lists the host (compared without case) shop.example.com twice "
        "(also item 1 of route.hosts)"
    )
    assert at(problem) == position(text, "shop.example.COM")
