"""`lbgen audit`'s runbook: the render's runbook steps, naming the audited files' own objects.

A runbook is only useful if its commands find the objects that run: `kubectl get
endpointslices -l kubernetes.io/service-name=X` must name the manifest's Service, Kong's admin
API must be asked for the upstream kong.yaml defines (lbgen's own `<name>.<ns>.lbgen.internal`
does not exist there: 404), kube-proxy's iptables comments carry the manifest's port name. Each
location the runbook gives is checked by reading the audited file at that line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbgen.audit import AuditResult, audit
from lbgen.audit_runbook import audit_runbook
from lbgen.cli import cli
from lbgen.importer.run import ImportInputs
from lbgen.render.summary import Command, Runbook, path_runbook
from tests.importer.seed import SEED_ARGS, seed_inputs


def _seed() -> AuditResult:
    return audit(seed_inputs())


def _at(root: Path, where: str) -> str:
    """The text of an audited file from `file:line:column` on."""
    file, line, column = where.rsplit(":", 2)
    return (root / file).read_text(encoding="utf-8").splitlines()[int(line) - 1][int(column) - 1:]


def _steps(runbook: Runbook) -> list[Command]:
    return [c for s in runbook.services for c in s.commands] + [c for s in runbook.sections for c in s.commands]


def _step(runbook: Runbook, title: str) -> Command:
    return next(c for c in _steps(runbook) if c.title.startswith(title))


def test_the_runbook_names_the_manifests_and_kong_yamls_objects_at_their_lines(in_imported: Path) -> None:
    runbook = audit_runbook(_seed())
    (service,) = runbook.services
    assert service.key == "shop/orders"
    shown = dict(re.match(r"(.+?) `(.+)` \((.+)\)$", o).group(1, 3) for o in service.objects)  # type: ignore[union-attr]
    # every object is named as the file names it, at the line that defines it
    assert _at(in_imported, shown["Kong upstream"]).startswith("name: orders.upstream")
    assert _at(in_imported, shown["Kong service"]).startswith("name: orders")
    assert _at(in_imported, shown["Service"]) == "orders"  # metadata.name
    assert _at(in_imported, shown["Service port"]).startswith("name: http")
    # the EndpointSlices of the manifest's Service; replicas as the Deployment says, and where
    endpoints = _step(runbook, "Endpoints of `orders`")
    assert "-n shop -l kubernetes.io/service-name=orders " in endpoints.shell
    assert endpoints.expect.startswith("8 ready endpoints (replicas: k8s/orders.yaml:22:13) on port 8000")
    assert _at(in_imported, "k8s/orders.yaml:22:13") == "8"
    # Kong's admin API is asked for kong.yaml's upstream, not for the one lbgen would render
    health = _step(runbook, "Kong's view of the pods")
    assert "/upstreams/orders.upstream/health" in health.shell
    assert "lbgen.internal" not in json.dumps([c.shell for c in _steps(runbook)])
    assert "10.30.0.11 10.30.0.12" in health.shell  # the L4 upstream's servers are Kong's nodes
    # kube-proxy's iptables comment is `namespace/name:port-name`, the port name the manifest gives
    assert "grep -F shop/orders:http" in _step(runbook, "The random-choice rules").shell


def test_the_nginx_steps_compare_with_the_audited_files_and_name_their_upstreams(in_imported: Path) -> None:
    result = _seed()
    sections = {s.title: s for s in audit_runbook(result).sections}
    edge, l4 = sections["nginx on `edge`"], sections["nginx on `l4`"]
    assert "compare it with `edge/nginx.conf`" in edge.intro
    assert "compare it with `l4/nginx.conf`" in l4.intro
    assert "for host in 10.10.0.11 10.10.0.12;" in edge.commands[0].shell  # --assume edge.instances
    where = dict(re.findall(r"nginx (?:upstream|server) `([^`]+)` \(([^)]+)\)", edge.commands[0].expect))
    assert _at(in_imported, where["l4_pool"]).startswith("upstream l4_pool {")
    assert _at(in_imported, where["listen 80"]).startswith("server {")
    stream = dict(re.findall(r"nginx (?:upstream|server) `([^`]+)` \(([^)]+)\)", l4.commands[0].expect))
    assert _at(in_imported, stream["kong_nodes"]).startswith("upstream kong_nodes {")
    # the findings of that tier's files are named, since they hold only for what an instance loaded
    lb102 = next(f for f in result.report.findings if f.code == "LB102")
    assert f"LB102 at {lb102.location}" in edge.intro
    assert "LB102" not in l4.intro  # located in edge/nginx.conf, related in l4: said once, where it is


def test_the_steps_are_the_renders_steps_and_rendered_output_steps_are_left_out(in_imported: Path) -> None:
    result = _seed()
    audited = audit_runbook(result)
    rendered = path_runbook(result.imported.loaded.spec)
    # one source of steps: the same steps, in the same order, for the same path
    def titles(commands: list[Command]) -> list[str]:
        return [re.sub(r" \(\S+:\d+:\d+\)|: upstream .*", "", c.title) for c in commands]

    assert titles(audited.services[0].commands) == titles(rendered.services[0].commands)
    assert [c.shell for c in audited.services[0].commands][:-1] == [c.shell for c in rendered.services[0].commands][:-1]
    # nothing was rendered: no steps that apply rendered files
    titles = {s.title for s in audited.sections}
    assert "Deploying this output" in {s.title for s in rendered.sections}
    assert not titles & {"Deploying this output", "Applying kube-proxy's configuration", "Rollout safety"}


def _write(root: Path, name: str, text: str) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return name


_DEPLOYMENT = """\
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: api:1}]}
"""


def test_a_headless_service_and_an_unnamed_port_are_named_as_the_manifest_has_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "kong.yaml", """\
_format_version: "3.0"
services:
  - name: api-svc
    host: api-direct.web.svc.cluster.local
    port: 8080
    routes: [{name: api, paths: [/api]}]
""")
    _write(tmp_path, "k8s/api.yaml", """\
apiVersion: v1
kind: Service
metadata: {name: api, namespace: web}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: api-direct, namespace: web}
spec:
  clusterIP: None
  selector: {app: api}
  ports: [{port: 8080}]
""" + _DEPLOYMENT)
    result = audit(ImportInputs([], [], "kong.yaml", None, ["k8s"], None, ["app.preset=uvicorn", "platform=gke"]))
    runbook = audit_runbook(result)
    titles = [c.title for c in runbook.services[0].commands]
    # the ClusterIP Service and the manifest's headless one (not lbgen's `api-pods`)
    assert titles[:2] == ["Endpoints of `api` (k8s/api.yaml:3:18)", "Endpoints of `api-direct` (k8s/api.yaml:10:18)"]
    assert _at(tmp_path, "k8s/api.yaml:10:18").startswith("api-direct,")
    assert "api-pods" not in json.dumps([c.shell for c in _steps(runbook)])
    # a Kong service whose host is the Service name has no Kong upstream: no health endpoint
    assert not any(t.startswith("Kong's view") for t in titles)
    # an unnamed port: kube-proxy's comment is `web/api` alone (grep -F matches it as a prefix)
    assert _step(runbook, "The random-choice rules").shell.endswith("grep -F web/api")


def test_kube_proxys_mode_is_quoted_from_the_audited_configmap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "k8s/api.yaml", """\
apiVersion: v1
kind: Service
metadata: {name: api, namespace: web}
spec:
  selector: {app: api}
  ports: [{name: web, port: 80, targetPort: 8080}]
""" + _DEPLOYMENT)
    _write(tmp_path, "kube-proxy.yaml", """\
apiVersion: v1
kind: ConfigMap
metadata: {name: kube-proxy, namespace: kube-system}
data:
  config.conf: |
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    kind: KubeProxyConfiguration
    mode: iptables
""")
    result = audit(ImportInputs([], [], None, None, ["k8s"], "kube-proxy.yaml", ["app.preset=uvicorn"]))
    runbook = audit_runbook(result)
    configured = _step(runbook, "kube-proxy's configured mode")
    assert configured.expect == "`mode: iptables`, as in kube-proxy.yaml:8:11."
    assert _at(tmp_path, "kube-proxy.yaml:8:11") == "iptables"
    assert "grep -F web/api:web" in _step(runbook, "The random-choice rules").shell


def test_cli_prints_the_runbook_with_runbook_and_json_always_carries_it(in_imported: Path) -> None:
    runner = CliRunner()
    plain = runner.invoke(cli, ["audit", *SEED_ARGS])
    assert "runbook for the audited path" not in plain.output
    text = runner.invoke(cli, ["audit", *SEED_ARGS, "--runbook"])
    assert text.exit_code == 1  # the findings still decide the exit status
    findings, _, runbook = text.output.partition("runbook for the audited path")
    assert "LB102" in findings and runbook
    assert "service shop/orders: Kong service `orders` (gateway/kong.yaml:4:5)" in runbook
    assert "ssh \"$host\" curl -s http://127.0.0.1:8001/upstreams/orders.upstream/health" in runbook
    data = json.loads(runner.invoke(cli, ["audit", *SEED_ARGS, "--format", "json"]).output)
    assert set(data) == {"findings", "skipped", "suppressed", "runbook"}
    (service,) = data["runbook"]["services"]
    assert service["service"] == "shop/orders"
    assert {"title", "shell", "expect"} == set(service["steps"][0])
    assert [s["title"] for s in data["runbook"]["sections"]] == ["Connections on a node", "nginx on `edge`", "nginx on `l4`"]


def test_runbook_with_sarif_is_a_usage_error_and_sarif_is_unchanged(in_imported: Path) -> None:
    runner = CliRunner()
    refused = runner.invoke(cli, ["audit", *SEED_ARGS, "--format", "sarif", "--runbook"])
    assert refused.exit_code == 2
    assert "--runbook is for --format text" in refused.output
    sarif = json.loads(runner.invoke(cli, ["audit", *SEED_ARGS, "--format", "sarif"]).output)
    assert "runbook" not in json.dumps(sarif)


def test_without_manifests_the_kong_targets_dns_name_names_the_service_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "kong.yaml", """\
_format_version: "3.0"
services:
  - name: orders-api
    host: orders.upstream
    routes: [{name: orders, paths: [/orders]}]
upstreams:
  - name: orders.upstream
    targets: [{target: "orders.shop.svc.cluster.local:80"}]
""")
    result = audit(ImportInputs([], [], "kong.yaml", None, [], None, ["app.preset=uvicorn"]))
    (service,) = audit_runbook(result).services
    # the Service Kong dials is orders in namespace shop (its DNS name), not `default`
    assert service.key == "shop/orders"
    assert "-n shop -l kubernetes.io/service-name=orders " in service.commands[0].shell
    # and the runbook says those names were derived, not read from a manifest
    assert any(o.startswith("no Kubernetes manifest audited") for o in service.objects)
    assert service.commands[0].title == "Endpoints of `orders` (derived, no manifest audited)"
