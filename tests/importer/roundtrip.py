"""render → import → resolve: the helpers the round-trip tests share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lbgen.importer.run import ImportInputs, ImportResult, run_import
from lbgen.model.naming import renders_kube_proxy
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxHttpTier, NginxStreamTier
from lbgen.plan import resolve
from lbgen.render import render_spec


def write_rendered(spec: Spec, out: Path, name: str = "spec.yaml") -> None:
    for path, content in render_spec(spec, name).items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def assumptions(spec: Spec) -> list[str]:
    """What the rendered files cannot tell about `spec`, as --assume arguments."""
    out = [f"name={spec.name}"]
    if spec.keepalive_margin is not None:
        out.append(f"keepalive_margin={spec.keepalive_margin}")
    if spec.external_lb is not None:
        out.append(f"external_lb.kind={spec.external_lb.kind}")
        if spec.external_lb.backend_idle_timeout is not None:
            out.append(f"external_lb.backend_idle_timeout={spec.external_lb.backend_idle_timeout}")
    for tier in spec.tiers:
        scope = {"nginx_http": "edge", "nginx_stream": "l4", "kong": "kong", "kubernetes": "kubernetes"}[tier.kind]
        out.append(f"{scope}.name={tier.name}")
        out.append(f"{scope}.version={tier.version}")
        if not isinstance(tier, KubernetesTier) and spec.tiers[0] is tier:
            # the first tier's own addresses are in no file (the others' are their caller's servers)
            out.append(f"{scope}.instances={','.join(f'{i.name}={i.address}' for i in tier.instances)}")
        if isinstance(tier, KongTier):
            out.append(f"kong.location={tier.location}")
            if tier.cluster_ip_routed:
                out.append("kong.cluster_ip_routed=true")
        if isinstance(tier, KubernetesTier):
            out.append(f"platform={tier.platform}")
            if tier.kube_proxy is not None and not renders_kube_proxy(tier):
                # lbgen writes no kube-proxy ConfigMap then (GKE manages kube-proxy; LB708 without
                # mode and clusterCIDR): its settings are in no file
                out.extend(f"kubernetes.kube_proxy.{key}={value}"
                           for key, value in _flat(tier.kube_proxy.model_dump(mode="json", exclude_none=True)))
    for service in spec.services:
        key = f"service.{service.name}"
        out.append(f"{key}.replicas={service.replicas}")
        out.append(f"{key}.app.preset={service.app.preset}")
        for field in ("idle_timeout", "read_timeout", "version"):
            value = getattr(service.app, field)
            if value is not None:
                out.append(f"{key}.app.{field}={value}")
    return out


def _flat(data: dict[str, Any], prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.extend(_flat(value, f"{prefix}{key}."))
        elif value != []:
            out.append((f"{prefix}{key}", "[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else value))
    return out


def rendered_inputs(spec: Spec) -> ImportInputs:
    """The import inputs for `spec`'s rendered files, relative to the render directory, with
    what they cannot tell as --assume."""
    inputs = ImportInputs(assume=assumptions(spec))
    for tier in spec.tiers:
        if isinstance(tier, NginxHttpTier):
            inputs.nginx_http.append(f"{tier.name}/nginx.conf")
        elif isinstance(tier, NginxStreamTier):
            inputs.nginx_stream.append(f"{tier.name}/nginx.conf")
        elif isinstance(tier, KongTier):
            inputs.kong, inputs.kong_conf = f"{tier.name}/kong.yaml", f"{tier.name}/kong.conf"
        else:
            inputs.k8s.append(tier.name)
    return inputs


def import_rendered(spec: Spec, out: Path) -> ImportResult:
    cwd = Path.cwd()
    os.chdir(out)
    try:
        return run_import(rendered_inputs(spec))
    finally:
        os.chdir(cwd)


def effective(spec: Spec) -> list[dict[str, Any]]:
    """Every hop's effective values (not their origins), in path order."""
    hops = []
    for hop in resolve(spec).hops:
        settings = {s.key: _plain(s.value.value) for s in hop.settings()}
        if hop.kind == "nginx_http" and settings.get("upstream_keepalive.connections") == "0":
            # No pool: lbgen renders no keepalive_* lines, so the pool's other values (which
            # nothing uses) are in no file and cannot round-trip.
            settings = {k: v for k, v in settings.items()
                        if not k.startswith("upstream_keepalive.") or k.endswith(".connections")}
        hops.append({
            "kind": hop.kind,
            "protocol_out": hop.protocol_out,
            "pools_upstream": hop.pools_upstream,
            "sends_proxy_protocol": hop.sends_proxy_protocol,
            "dials_pods": hop.dials_pods,
            "targets": sorted((t.kind, t.host, t.port) for t in hop.targets),
            "settings": settings,
        })
    return hops


def _plain(value: object) -> object:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return str(value) if value is not None else None
