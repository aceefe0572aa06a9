"""Names shared by several renderers, so every hop refers to the same objects."""

from __future__ import annotations

from lbgen.model.service import Service
from lbgen.model.spec import Spec


def headless_name(service: Service) -> str:
    """The headless Service lbgen adds so a proxy can reach every pod by DNS (pod_endpoints)."""
    return f"{service.name}-pods"


def service_fqdn(spec: Spec, service: Service) -> str:
    """ClusterIP Service DNS name: one virtual IP, kube-proxy picks a pod per connection."""
    return f"{service.name}.{service.namespace}.svc.{spec.cluster.cluster_domain}"


def headless_fqdn(spec: Spec, service: Service) -> str:
    """Headless Service DNS name: resolves to one A record per ready pod."""
    return f"{headless_name(service)}.{service.namespace}.svc.{spec.cluster.cluster_domain}"


def backend_address(spec: Spec, service: Service, targets: str) -> tuple[str, int]:
    """Host and port the hop in front of Kubernetes connects to for `service`."""
    if targets == "pod_endpoints":
        return headless_fqdn(spec, service), service.kubernetes.target_port
    return service_fqdn(spec, service), service.kubernetes.port


def uses_headless_service(spec: Spec) -> bool:
    """Whether the hop in front of Kubernetes reaches pods through lbgen's headless Service.

    KIC resolves pod endpoints itself, so it needs none.
    """
    front = spec.tiers[-2] if len(spec.tiers) >= 2 else None
    if front is None:
        return False
    if front.kind == "kong":
        return front.backend_targets == "pod_endpoints" and front.mode == "db-less"
    if front.kind == "nginx_http":
        return front.backend_targets == "pod_endpoints"
    return False
