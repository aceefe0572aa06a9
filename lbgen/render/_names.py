"""Names shared by several renderers, so every hop refers to the same objects."""

from __future__ import annotations

from lbgen.model.naming import headless_name, uses_headless_service
from lbgen.model.service import Service
from lbgen.model.spec import Spec

__all__ = ["backend_address", "headless_fqdn", "headless_name", "service_fqdn",
           "uses_headless_service"]


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
