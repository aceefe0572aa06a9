"""Kong Ingress Controller wiring: Service annotations, KongUpstreamPolicy, Ingress.

The Kubernetes renderer calls `service_annotations` so the Service manifest carries the
`konghq.com/*` annotations KIC reads; the Kong renderer emits the KongUpstreamPolicy they
name and the Ingress that routes to the Service (`kic_documents`).

Annotation names and meanings: Kong/developer.konghq.com
app/kubernetes-ingress-controller/reference/annotations.md ("Service annotations").
KongUpstreamPolicy fields: the CRD `configuration.konghq.com_kongupstreampolicies.yaml`
(Kong/kubernetes-configuration v2.0.1), `spec.versions[v1beta1]`.
"""

from __future__ import annotations

from typing import Any

from lbgen.model.service import (
    KongHashOn,
    KongHealthchecks,
    Service,
)
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier
from lbgen.render._kong_health import camel_keys, healthchecks

KIC_INGRESS_CLASS = "kong"
"""KIC's default IngressClass (`--ingress-class`, default `kong`; annotations.md)."""


def route_response_buffering(service: Service) -> bool | None:
    """Route `response_buffering` to render; None leaves Kong's default (true).

    Kong buffers the whole upstream response by default; SSE needs it off so each event is
    sent on as it arrives (Kong/kong#6057, "feat(proxy) add route.request|response_buffering").
    """
    if service.kong.response_buffering is not None:
        return service.kong.response_buffering
    if "sse" in service.streaming:
        return False
    return None


def upstream_policy_name(service: Service) -> str:
    """Name of the KongUpstreamPolicy of `service` (same namespace as its Service)."""
    return f"{service.name}-upstream-policy"


def _kic_tier(spec: Spec) -> KongTier | None:
    kong = next((t for t in spec.tiers if isinstance(t, KongTier)), None)
    if kong is None or kong.mode != "kic":
        return None
    return kong


def service_annotations(spec: Spec, service: Service) -> dict[str, str]:
    """Annotations for `service`'s Kubernetes Service when Kong runs under KIC; else empty.

    Values are strings: Kubernetes annotations are string-valued, and KIC documents the
    quotes around "true" and numbers.
    """
    kong = _kic_tier(spec)
    if kong is None:
        return {}
    settings = service.kong
    # Attach the policy: KIC 3.0+ reads upstream settings only from a KongUpstreamPolicy
    # named by this annotation (annotations.md §konghq.com/upstream-policy).
    annotations = {"konghq.com/upstream-policy": upstream_policy_name(service)}
    if kong.backend_targets == "cluster_ip":
        # KIC's default sends traffic to pod IPs; this makes it target the Service IP and
        # leave the pod choice to kube-proxy (annotations.md §service-upstream).
        annotations["ingress.kubernetes.io/service-upstream"] = "true"
    if service.protocol == "grpc":
        # Kong must speak h2c (grpc) to the pods, not HTTP/1.1 (annotations.md §protocol).
        annotations["konghq.com/protocol"] = "grpc"
    if settings.retries is not None:
        annotations["konghq.com/retries"] = str(settings.retries)
    timeouts = settings.timeouts
    # KIC's timeout annotations are milliseconds, like the Kong Service fields.
    if timeouts.connect is not None:
        annotations["konghq.com/connect-timeout"] = str(timeouts.connect.ms)
    if timeouts.read is not None:
        annotations["konghq.com/read-timeout"] = str(timeouts.read.ms)
    if timeouts.send is not None:
        annotations["konghq.com/write-timeout"] = str(timeouts.send.ms)
    return dict(sorted(annotations.items()))


def kic_labels(spec: Spec) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": "lbgen", "app.kubernetes.io/part-of": spec.name}


# --- KongUpstreamPolicy ------------------------------------------------------------------

def _hash_input(
    kind: KongHashOn, header: str | None, cookie: str | None
) -> dict[str, str]:
    """A `hashOn`/`hashOnFallback` object: exactly one field set (CRD CEL rule)."""
    if kind == "header":
        assert header is not None  # model: hash_on header needs hash_on_header
        return {"header": header}
    if kind == "cookie":
        assert cookie is not None  # model: a cookie hash (or fallback) needs hash_on_cookie
        # The CRD requires cookiePath with cookie; "/" is Kong's hash_on_cookie_path default.
        return {"cookie": cookie, "cookiePath": "/"}
    return {"input": kind}


def _threshold(healthchecks: KongHealthchecks) -> int:
    threshold = healthchecks.threshold
    # Whole numbers only under KIC: the spec refuses others (the CRD types it as integer).
    return int(threshold)


def upstream_policy(spec: Spec, service: Service) -> dict[str, Any]:
    """The KongUpstreamPolicy (configuration.konghq.com/v1beta1) for `service`."""
    settings = service.kong
    policy_spec: dict[str, Any] = {"algorithm": settings.algorithm}
    if settings.algorithm == "sticky-sessions":
        assert settings.sticky_sessions_cookie is not None  # model pairs them
        # The CRD requires hashOn.input none with stickySessions (CEL rule).
        policy_spec["hashOn"] = {"input": "none"}
        policy_spec["stickySessions"] = {
            "cookie": settings.sticky_sessions_cookie,
            "cookiePath": "/",
        }
    elif settings.hash_on != "none":
        policy_spec["hashOn"] = _hash_input(
            settings.hash_on, settings.hash_on_header, settings.hash_on_cookie
        )
        if settings.hash_fallback != "none":
            policy_spec["hashOnFallback"] = _hash_input(
                settings.hash_fallback, settings.hash_fallback_header, settings.hash_on_cookie
            )
    if settings.slots is not None:
        policy_spec["slots"] = settings.slots
    if settings.healthchecks is not None:
        policy_spec["healthchecks"] = camel_keys(
            healthchecks(settings.healthchecks, _threshold(settings.healthchecks))
        )
    return {
        "apiVersion": "configuration.konghq.com/v1beta1",
        "kind": "KongUpstreamPolicy",
        "metadata": {
            "name": upstream_policy_name(service),
            "namespace": service.namespace,
            "labels": kic_labels(spec),
        },
        "spec": policy_spec,
    }


# --- Ingress -----------------------------------------------------------------------------

def ingress(spec: Spec, service: Service) -> dict[str, Any]:
    """The networking.k8s.io/v1 Ingress that makes KIC create the Kong Route for `service`."""
    annotations: dict[str, str] = {}
    if service.protocol == "grpc":
        # No strip-path: Kong refuses it on grpc routes (lbgen.render.kong checks the spec).
        # gRPC routes match only protocols grpc/grpcs (annotations.md §konghq.com/protocols).
        annotations["konghq.com/protocols"] = "grpc,grpcs"
    else:
        # Explicit: the spec's default (false) must not depend on the controller's default.
        annotations["konghq.com/strip-path"] = "true" if service.route.strip_path else "false"
    buffering = route_response_buffering(service)
    if buffering is not None:
        # The Route's response_buffering (annotations.md §konghq.com/response-buffering).
        annotations["konghq.com/response-buffering"] = "true" if buffering else "false"
    # ImplementationSpecific: KIC passes a path without the `/~` regex prefix to Kong as a
    # plain prefix, the same matching as the DB-less Route (kubernetes-sigs/ingress2gateway
    # pkg/i2gw/providers/kong/README.md); `Prefix` would match whole path segments only.
    def paths() -> list[dict[str, Any]]:
        # A fresh list per rule: a shared object would be dumped as a YAML alias.
        return [
            {
                "path": path,
                "pathType": "ImplementationSpecific",
                "backend": {
                    "service": {
                        "name": service.name,
                        "port": {"number": service.kubernetes.port},
                    }
                },
            }
            for path in sorted(service.paths)
        ]

    hosts: list[str | None] = [*sorted(service.route.hosts)] or [None]
    rules: list[dict[str, Any]] = []
    for host in hosts:
        rule: dict[str, Any] = {"http": {"paths": paths()}}
        if host is not None:
            rule["host"] = host
        rules.append(rule)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": service.name,
            "namespace": service.namespace,
            "labels": kic_labels(spec),
            "annotations": annotations,
        },
        "spec": {"ingressClassName": KIC_INGRESS_CLASS, "rules": rules},
    }


def kic_documents(spec: Spec, service: Service) -> list[dict[str, Any]]:
    """The per-service KIC bundle: KongUpstreamPolicy first (the Service names it)."""
    return [upstream_policy(spec, service), ingress(spec, service)]
