"""The whole path: an optional external load balancer, the tiers, the services."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from msgspec import Struct
from pydantic import Field, model_validator

from lbgen import versions
from lbgen.defaults import kong_h2c_shares_http1
from lbgen.model._base import StrictModel
from lbgen.model.service import Service
from lbgen.model.tiers import (
    TIER_ORDER,
    KongTier,
    KubernetesTier,
    NginxHttpTier,
    NginxStreamTier,
    Tier,
)
from lbgen.model.types import Duration, Name, is_ip_address
from lbgen.model.workload import Workload
from lbgen.versions import K8S_GRPC_PROBE_SINCE, TRAFFIC_DISTRIBUTION_SINCE, kong_bundle


class ExternalLoadBalancer(StrictModel):
    """A cloud load balancer in front of the first tier (not rendered; used by the rules)."""

    kind: Literal["gcp-application", "aws-alb", "other"]
    backend_idle_timeout: Duration | None = None
    """How long the LB keeps an idle connection to the first tier. Unset: the product
    default (GCP application LB: 600s, fixed; AWS ALB: 60s)."""


class SpecProblem(Struct, frozen=True):
    """A cross-field error found after validation, with the model path it is about (the
    loader turns it into a located error)."""

    path: tuple[str | int, ...]
    message: str
    hint: str


class Spec(StrictModel):
    """A load-balancing path from the edge inward, and the services behind it."""

    spec_version: Literal[1] = 1
    name: Name
    """Name of the path; used in file headers and resource labels."""
    external_lb: ExternalLoadBalancer | None = None
    tiers: list[Tier] = Field(min_length=1)
    """Tiers in traffic order, edge first; Kubernetes last."""
    services: list[Service] = Field(min_length=1)
    keepalive_margin: Duration | None = None
    """How much earlier a caller closes idle connections than its callee. Unset: 10% of
    the caller's timeout in whole seconds, at least 1s (a derived caller: 10% of its callee's)."""
    workload: Workload | None = None
    """Expected peak traffic (`rate` requests/s, `concurrency` in flight). Optional; rules
    that size connection churn use it."""

    @model_validator(mode="after")
    def _tiers_in_order(self) -> Spec:
        kinds = [t.kind for t in self.tiers]
        if kinds[-1] != "kubernetes":
            raise ValueError("the last tier must be kind: kubernetes (where the pods run)")
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"each tier kind may appear once; got {kinds}")
        if kinds != sorted(kinds, key=TIER_ORDER.index):
            raise ValueError(
                f"tiers must run from the edge inward in the order {list(TIER_ORDER)}; got {kinds}"
            )
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique; got {names}")
        seen: set[tuple[str, str]] = set()
        for service in self.services:
            key = (service.namespace, service.name)
            if key in seen:
                raise ValueError(f"service {service.namespace}/{service.name} is listed twice")
            seen.add(key)
        routes: dict[tuple[str, str], str] = {}
        for service in self.services:
            for host in service.route.hosts or [""]:
                for path in service.paths:
                    other = routes.setdefault((host, path), service.name)
                    if other != service.name:
                        raise ValueError(
                            f"services {other} and {service.name} both route {host}{path}: "
                            "each host + path prefix must lead to one service"
                        )
        if len(self.tiers) >= 2 and self.tiers[-2].kind == "nginx_stream" and len(self.services) > 1:
            raise ValueError(
                "an nginx_stream tier directly in front of Kubernetes forwards one port to one "
                "Service; with several services put an nginx_http or kong tier behind it"
            )
        kong = self.kong
        if kong is not None:
            for service in self.services:
                checks = service.kong.healthchecks
                if kong.mode == "kic" and checks is not None and not float(checks.threshold).is_integer():
                    raise ValueError(
                        f"service {service.name}: KongUpstreamPolicy takes a whole-number "
                        f"healthchecks.threshold, not {checks.threshold}"
                    )
                algorithm = service.kong.algorithm
                if algorithm == "latency" and not versions.KONG_LATENCY.reached(kong.version):
                    raise ValueError(
                        f"service {service.name}: Kong's latency algorithm needs Kong ≥ 3.2 "
                        f"(tier {kong.name} says {kong.version})"
                    )
                if algorithm == "sticky-sessions" and (
                    kong.edition != "enterprise" or not versions.KONG_STICKY_SESSIONS.reached(kong.version)
                ):
                    raise ValueError(
                        f"service {service.name}: sticky-sessions needs Kong Enterprise ≥ 3.11 "
                        f"(tier {kong.name} is {kong.edition} {kong.version})"
                    )
        return self

    # --- refusals located below the spec root ----------------------------------------------

    def problems(self) -> list[SpecProblem]:
        """Every error found after validation, each located at the model path it is about:
        names (`lbgen.model.naming.name_problems`), placement (`placement_problems`) and
        combinations lbgen cannot render (`refusals`). The loader's one post-validation
        hook: it turns them into located input errors."""
        from lbgen.model.naming import name_problems  # naming reads the Spec type

        return [*name_problems(self), *self.placement_problems(), *self.refusals()]

    def refusals(self) -> list[SpecProblem]:
        """Cross-tier combinations lbgen cannot render correctly. (A pydantic validator of the
        whole spec can only point at its root.)"""
        found: list[SpecProblem] = []
        kong = self.kong
        if kong is not None:
            found += self._kong_h2c_refusals(kong)
        l4 = self.l4
        if l4 is not None and l4.grpc_listen_port is not None:
            grpc = any(service.protocol == "grpc" for service in self.services)
            if not isinstance(self.next_tier(l4), KongTier) or not grpc:
                found.append(SpecProblem(
                    ("tiers", self.tier_index(l4), "grpc_listen_port"),
                    (f"grpc_listen_port on {l4.name} would render a listener nothing uses: it "
                    "relays gRPC services to a Kong tier right behind it"),
                    "remove grpc_listen_port, or add the gRPC service / Kong tier it is for",
                ))
        found += self._idle_resolver_refusals()
        return found

    def _idle_resolver_refusals(self) -> list[SpecProblem]:
        """`resolver` renders only in upstream groups that dial a DNS name (and feeds LB310,
        which is about names): on a tier whose next hop is instances given as IP addresses it
        would say nothing. A tier in front of Kubernetes always dials a Service name."""
        found: list[SpecProblem] = []
        for tier in (self.edge, self.l4):
            callee = None if tier is None else self.next_tier(tier)
            if tier is None or tier.resolver is None or not isinstance(
                callee, NginxStreamTier | KongTier
            ):
                continue
            if any(not is_ip_address(instance.address) for instance in callee.instances):
                continue
            found.append(SpecProblem(
                ("tiers", self.tier_index(tier), "resolver"),
                (f"resolver on {tier.name} would render nothing: {tier.name} dials only the IP "
                 f"addresses of {callee.name}'s instances, and nginx uses a resolver only for "
                 "the DNS names in an upstream block"),
                ("remove resolver; it applies when the tier dials names: next-hop instance "
                 "addresses given as host names, or Kubernetes Service names when the tier is "
                 "right in front of the cluster"),
            ))
        return found

    def _kong_h2c_refusals(self, kong: KongTier) -> list[SpecProblem]:
        """Before Kong 3.6 a cleartext `http2` listener speaks HTTP/2 only: HTTP/1.1 from the
        tier in front needs a listener of its own (or TLS, where ALPN picks the protocol)."""
        if kong_h2c_shares_http1(kong.version):
            return []
        caller = self.previous_tier(kong)
        grpc = any(service.protocol == "grpc" for service in self.services)
        http1 = any(service.protocol != "grpc" for service in self.services)
        if not http1 or self.edge is None or not isinstance(caller, NginxHttpTier | NginxStreamTier):
            # No edge of lbgen's speaks HTTP/1.1 to Kong: clients do, directly or through an
            # L4 tier, in whatever protocol they choose (LB707 reports that case).
            return []
        relayed = isinstance(caller, NginxStreamTier)
        sends_pp = isinstance(caller, NginxStreamTier) and caller.send_proxy_protocol
        entries = [entry for entry in kong.proxy_listen if entry.proxy_protocol == sends_pp]
        # An edge has an upstream per kind of traffic; an L4 tier relays both to one entry
        # unless it has a listener of its own for gRPC.
        both = relayed and grpc and not (
            isinstance(caller, NginxStreamTier) and caller.grpc_listen_port is not None
        )
        if not entries or any(
            kong.listener_serves(entry, grpc=both, http1=True) for entry in entries
        ):
            return []
        if both and not any(entry.http2 for entry in entries):
            return []  # no http2 entry at all: gRPC's own finding (LB601)
        bundle = kong_bundle(kong.version)
        ports = ", ".join(str(entry.port) for entry in entries if entry.http2 and not entry.tls)
        index = self.tier_index(kong)
        if both:
            message = (
                f"Kong {kong.version} bundles OpenResty {bundle.openresty} (nginx {bundle.nginx}), "
                f"where a cleartext http2 listener speaks HTTP/2 only; the {caller.kind} tier "
                f"{caller.name} relays both HTTP/1.1 and gRPC to one Kong port and no "
                "proxy_listen entry can carry both (cleartext h2c and HTTP/1.1 share a listener "
                "only from nginx 1.25.1, Kong 3.6)"
            )
            hint = (
                f"set grpc_listen_port on {caller.name} (a second L4 listener that forwards gRPC "
                "to Kong's h2c listener while listen_port forwards HTTP/1.1 to a plain one; "
                "Kong then needs both, e.g. {port: 8000} and {port: 8001, http2: true}), give "
                "Kong a TLS listener with http2 ({port: 8443, tls: true, http2: true}: ALPN "
                "picks HTTP/1.1 or h2 per connection), or use Kong ≥ 3.6"
            )
        else:
            message = (
                f"Kong {kong.version} bundles OpenResty {bundle.openresty} (nginx {bundle.nginx}), "
                f"where a cleartext http2 listener (port {ports}) speaks HTTP/2 only, so "
                f"{caller.name}'s HTTP/1.1 requests would get no response there; Kong has no "
                "other listener for them"
            )
            hint = (
                "add a cleartext proxy_listen entry without http2 for HTTP/1.1 (e.g. {port: "
                "8000}; lbgen sends gRPC to the http2 one), or use Kong ≥ 3.6"
            )
        return [SpecProblem(("tiers", index, "proxy_listen"), message, hint)]

    # --- cross-field checks that need a precise location ------------------------------------

    def placement_problems(self) -> list[SpecProblem]:
        """Settings that cannot work where the spec says things run (Kong outside the
        cluster, a Service field the cluster's Kubernetes version does not accept)."""
        problems: list[SpecProblem] = []
        kong = self.kong
        if kong is not None and kong.location == "outside":
            index = self.tier_index(kong)
            if kong.mode == "kic":
                problems.append(SpecProblem(
                    ("tiers", index, "location"),
                    f"{kong.name}: lbgen models the Kong Ingress Controller with Kong running in "
                    "the cluster (KIC reads pod endpoints and configures Kong from inside)",
                    "use location: cluster with mode: kic, or mode: db-less for Kong on VMs",
                ))
            elif kong.backend_targets == "cluster_ip" and not kong.cluster_ip_routed:
                problems.append(SpecProblem(
                    ("tiers", index, "backend_targets"),
                    f"{kong.name} runs outside the cluster and targets each Service's ClusterIP, "
                    "which is only reachable from inside the cluster (kube-proxy programs it on "
                    "the nodes): Kong's connections would go nowhere",
                    "use backend_targets: pod_endpoints (pod IPs routable from Kong's hosts: a "
                    "VPC-native cluster on GKE), or set cluster_ip_routed: true if you route the "
                    "Service CIDR from Kong's hosts to the nodes",
                ))
            if kong.mode != "kic" and not kong.dns_resolver:
                problems.append(SpecProblem(
                    ("tiers", index, "dns_resolver"),
                    f"{kong.name} runs outside the cluster but its upstream targets are cluster "
                    f"names (*.svc.{self.cluster.cluster_domain}), which the hosts' resolv.conf "
                    "does not answer: Kong would return 503 \"name resolution failed\"",
                    "set dns_resolver to nameservers that answer the cluster's names from Kong's "
                    "hosts (e.g. the cluster DNS exposed on an internal load balancer), "
                    "rendered as kong.conf dns_resolver",
                ))
        for index, service in enumerate(self.services):
            if (
                service.protocol == "grpc"
                and service.readiness is not None
                and self.cluster.version < K8S_GRPC_PROBE_SINCE.since
            ):
                problems.append(SpecProblem(
                    ("services", index, "readiness"),
                    f"service {service.name}: a gRPC service gets a grpc readiness probe, which "
                    f"Kubernetes has on by default from {K8S_GRPC_PROBE_SINCE.since}; cluster "
                    f"{self.cluster.name} runs {self.cluster.version}",
                    "drop readiness (and probe the pods your own way), or set the cluster's "
                    f"version to {K8S_GRPC_PROBE_SINCE.since} or later once it runs it",
                ))
            wanted = service.kubernetes.traffic_distribution
            if wanted is None:
                continue
            since = TRAFFIC_DISTRIBUTION_SINCE[wanted].since
            if self.cluster.version < since:
                problems.append(SpecProblem(
                    ("services", index, "kubernetes", "traffic_distribution"),
                    f"service {service.name}: trafficDistribution {wanted} is GA from Kubernetes "
                    f"{since}, but cluster {self.cluster.name} runs {self.cluster.version}: the "
                    "API server would reject it or ignore it behind a feature gate",
                    f"drop traffic_distribution, or set the cluster's version to {since} or later "
                    "once it runs it",
                ))
        return problems

    # --- typed access to tiers -------------------------------------------------------------

    @property
    def edge(self) -> NginxHttpTier | None:
        return next((t for t in self.tiers if isinstance(t, NginxHttpTier)), None)

    @property
    def l4(self) -> NginxStreamTier | None:
        return next((t for t in self.tiers if isinstance(t, NginxStreamTier)), None)

    @property
    def kong(self) -> KongTier | None:
        return next((t for t in self.tiers if isinstance(t, KongTier)), None)

    @property
    def cluster(self) -> KubernetesTier:
        last = self.tiers[-1]
        assert isinstance(last, KubernetesTier)  # guaranteed by _tiers_in_order
        return last

    def tier_index(self, tier: Tier) -> int:
        return next(i for i, t in enumerate(self.tiers) if t is tier)

    def next_tier(self, tier: Tier) -> Tier | None:
        """The tier this tier sends traffic to."""
        index = self.tier_index(tier)
        return self.tiers[index + 1] if index + 1 < len(self.tiers) else None

    def previous_tier(self, tier: Tier) -> Tier | None:
        index = self.tier_index(tier)
        return self.tiers[index - 1] if index > 0 else None

    def adjacent_tiers(self) -> Iterator[tuple[Tier, Tier]]:
        """(caller, callee) pairs from the edge inward."""
        yield from zip(self.tiers, self.tiers[1:], strict=False)

    @property
    def gateway(self) -> NginxHttpTier | KongTier | None:
        """The innermost L7 tier: the one that routes requests to services."""
        return self.kong or self.edge


