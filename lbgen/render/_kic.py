"""Kong Ingress Controller wiring that lands on the Kubernetes Service (owned by the Kong renderer).

The Kubernetes renderer calls `service_annotations` so the Service manifest carries the
`konghq.com/*` annotations KIC reads; the Kong renderer emits the KongUpstreamPolicy they name.
"""

from __future__ import annotations

from lbgen.model.service import Service
from lbgen.model.spec import Spec


def service_annotations(spec: Spec, service: Service) -> dict[str, str]:
    """Annotations for `service`'s Kubernetes Service when Kong runs under KIC; else empty."""
    return {}
