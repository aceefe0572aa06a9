"""Names a spec gives to what lbgen renders: output paths, derived Kubernetes object names,
routes.

They live with the model (not the renderers) because the loader refuses a spec whose
names would collide: two files at one path, two objects of one kind and name in one
namespace, a derived name beyond Kubernetes' 63-character limit, or one route listed twice.
The renderers use the same functions, so what is checked is what is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from lbgen.model.service import Service
from lbgen.model.spec import Spec, SpecProblem
from lbgen.model.tiers import KongTier, KubernetesTier

GKE_PLATFORMS = ("gke", "gke-dataplane-v2")

DNS_LABEL_MAX = 63
"""Service names are RFC 1035 labels of at most 63 characters (Kubernetes API conventions,
"DNS Label Names"; `validation.IsDNS1035Label` in apimachinery)."""

HEADLESS_SUFFIX = "-pods"


def headless_name(service: Service) -> str:
    """The headless Service lbgen adds so a proxy can reach every pod by DNS (pod_endpoints)."""
    return f"{service.name}{HEADLESS_SUFFIX}"


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


def host_groups(services: Sequence[Service]) -> list[tuple[tuple[str, ...], list[Service]]]:
    """Hosts grouped by the services that route them: (sorted hosts, those services).

    The nginx edge renders one `server` block per group, with all its hosts in one
    `server_name`, so its size grows with hosts + paths, not hosts × paths. Groups are
    ordered by their first host; services keep their spec order.
    """
    by_host: dict[str, list[int]] = {}
    for index, service in enumerate(services):
        for host in service.route.hosts:
            listed = by_host.setdefault(host, [])
            if not listed or listed[-1] != index:
                listed.append(index)
    groups: dict[tuple[int, ...], list[str]] = {}
    for host, indices in by_host.items():
        groups.setdefault(tuple(indices), []).append(host)
    return sorted(
        ((tuple(sorted(hosts)), [services[i] for i in indices]) for indices, hosts in groups.items()),
        key=lambda group: group[0][0],
    )


def service_bundle_path(spec: Spec, service: Service) -> str:
    return f"{spec.cluster.name}/{service.namespace}/{service.name}.yaml"


def rollout_patch_path(spec: Spec, service: Service) -> str:
    """The Deployment patch, kept out of the service's directory so that `kubectl apply -f`
    on that directory never applies a partial Deployment."""
    return f"{spec.cluster.name}/patches/{service.namespace}/{service.name}.deployment.yaml"


def renders_kube_proxy(cluster: KubernetesTier) -> bool:
    """Whether lbgen writes kube-proxy's ConfigMap: only on self-managed clusters, only when
    asked (kube_proxy given), and only when it states what a whole-file replacement must not
    lose (mode and clusterCIDR; LB708 reports the gap)."""
    settings = cluster.kube_proxy
    return (
        cluster.platform == "self-managed"
        and settings is not None
        and settings.mode is not None
        and "cluster_cidrs" in settings.model_fields_set
    )


def kube_proxy_path(spec: Spec) -> str:
    """The ConfigMap when lbgen renders one, else a note saying why there is none."""
    if renders_kube_proxy(spec.cluster):
        return f"{spec.cluster.name}/kube-system/kube-proxy.yaml"
    return f"{spec.cluster.name}/KUBE-PROXY.md"


def kic_file_path(kong: KongTier, service: Service) -> str:
    return f"{kong.name}/kic/{service.namespace}-{service.name}.yaml"


def name_problems(spec: Spec) -> list[SpecProblem]:
    """Every collision of output paths or Kubernetes objects, every derived name over the
    DNS label limit, every route listed twice and routes that expand beyond
    MAX_ROUTE_ENTRIES, located at the service (and field) that causes it."""
    return [*_path_collisions(spec), *_object_collisions(spec), *_long_derived_names(spec),
            *_repeated_routes(spec), *_too_many_route_entries(spec)]


MAX_ROUTE_ENTRIES = 100_000
"""Route entries (an nginx `location`, a KIC Ingress path, a Kong route's host or path) the
gateway's output may hold. Far above real path specs, it keeps a spec of a few kilobytes
from expanding into hundreds of megabytes of configuration (hosts × paths)."""


def route_entries(spec: Spec) -> list[int]:
    """Per service, how many route entries the gateway's rendered config holds for it."""
    gateway = spec.gateway
    if isinstance(gateway, KongTier):
        if gateway.mode == "kic":
            # One Ingress rule per host, each with every path.
            return [max(1, len(s.route.hosts)) * len(s.paths) for s in spec.services]
        return [len(s.route.hosts) + len(s.paths) for s in spec.services]  # one Kong route
    if gateway is None or spec.next_tier(gateway) is not spec.cluster:
        return [0 for _ in spec.services]  # the edge forwards everything to the next tier
    # nginx: the catch-all server holds the hostless services; each host group a server.
    servers = {id(s): 0 if s.route.hosts else 1 for s in spec.services}
    for _, services in host_groups(spec.services):
        for service in services:
            servers[id(service)] += 1
    return [servers[id(s)] * len(s.paths) for s in spec.services]


def _too_many_route_entries(spec: Spec) -> Iterator[SpecProblem]:
    entries = route_entries(spec)
    total = sum(entries)
    if total <= MAX_ROUTE_ENTRIES:
        return
    largest = max(range(len(entries)), key=entries.__getitem__)
    service = spec.services[largest]
    gateway = spec.gateway
    assert gateway is not None  # without a gateway there are no route entries
    how = ("every host gets an Ingress rule with every path"
           if isinstance(gateway, KongTier) and gateway.mode == "kic" else "hosts and paths")
    yield SpecProblem(
        ("services", largest, "route"),
        f"the routes expand to {total} entries in tier {gateway.name}'s config ({how}; "
        f"service {service.name}: {entries[largest]}), over lbgen's limit of "
        f"{MAX_ROUTE_ENTRIES}",
        "route fewer host and path combinations (a shorter path prefix covers more), or "
        "split the services across several specs",
    )


def _repeated_routes(spec: Spec) -> Iterator[SpecProblem]:
    """A path or host listed twice in one service (hosts are compared case-insensitively:
    the model lower-cases them, as DNS does): nginx refuses the duplicate `location` or
    `server_name`, Kong and Ingress would carry the same route twice."""
    for index, service in enumerate(spec.services):
        for field, values in (("paths", service.route.paths), ("hosts", service.route.hosts)):
            first: dict[str, int] = {}
            for position, value in enumerate(values):
                earlier = first.setdefault(value, position)
                if earlier != position:
                    what = "path" if field == "paths" else "host (compared without case)"
                    yield SpecProblem(
                        ("services", index, "route", field, position),
                        f"service {service.name} lists the {what} {value} twice "
                        f"(also item {earlier + 1} of route.{field})",
                        "remove the repeated entry",
                    )


def _path_collisions(spec: Spec) -> Iterator[SpecProblem]:
    owners: dict[str, str] = {kube_proxy_path(spec): "lbgen's kube-proxy ConfigMap"}
    kong = spec.kong
    for index, service in enumerate(spec.services):
        paths = [service_bundle_path(spec, service)]
        if kong is not None and kong.mode == "kic":
            paths.append(kic_file_path(kong, service))
        me = f"service {service.namespace}/{service.name}"
        for path in paths:
            other = owners.setdefault(path, me)
            if other != me:
                yield SpecProblem(
                    ("services", index, "name"),
                    f"{me} would be written to {path}, which already holds {other}'s file",
                    "rename the service or move it to another namespace",
                )


def _object_collisions(spec: Spec) -> Iterator[SpecProblem]:
    # (kind, namespace, name) → who owns it. Services first: a service's own name is the
    # one users see, so the derived name is the one reported as colliding.
    owners: dict[tuple[str, str, str], str] = {}
    for service in spec.services:
        owners[("Service", service.namespace, service.name)] = f"service {service.name}"
    headless = uses_headless_service(spec)
    for index, service in enumerate(spec.services if headless else ()):
        key = ("Service", service.namespace, headless_name(service))
        if key in owners:
            yield SpecProblem(
                ("services", index, "name"),
                f"the headless Service lbgen adds for service {service.name}, "
                f"{service.namespace}/{headless_name(service)}, has the name of "
                f"{owners[key]}",
                f"rename one of them: lbgen names the headless Service <service>{HEADLESS_SUFFIX}",
            )
        owners.setdefault(key, f"the headless Service of {service.name}")
    for kind, field in (("HorizontalPodAutoscaler", "autoscaling"),
                        ("PodDisruptionBudget", "disruption_budget")):
        for index, service in enumerate(spec.services):
            if getattr(service, field) is None:
                continue
            key = (kind, service.namespace, service.workload)
            me = f"service {service.name}"
            other = owners.setdefault(key, me)
            if other != me:
                yield SpecProblem(
                    ("services", index, field),
                    f"{kind} {service.namespace}/{service.workload} would be rendered for "
                    f"{other} and for {me}: both target Deployment {service.workload}",
                    f"set {field} on one of the services that share the Deployment only",
                )
    patched: dict[tuple[str, str], str] = {}
    for index, service in enumerate(spec.services):
        if not service.has_rollout_settings:
            continue
        me = f"service {service.name}"
        other = patched.setdefault((service.namespace, service.workload), me)
        if other != me:
            yield SpecProblem(
                ("services", index, "name"),
                f"the Deployment patch of {me} and that of {other} both patch Deployment "
                f"{service.namespace}/{service.workload} (readiness, preStop, grace period)",
                "set readiness, pre_stop_delay and termination_grace_period on one of the "
                "services that share the Deployment only",
            )


def _long_derived_names(spec: Spec) -> Iterator[SpecProblem]:
    if not uses_headless_service(spec):
        return
    longest = DNS_LABEL_MAX - len(HEADLESS_SUFFIX)
    for index, service in enumerate(spec.services):
        derived = headless_name(service)
        if len(derived) > DNS_LABEL_MAX:
            yield SpecProblem(
                ("services", index, "name"),
                f"the headless Service lbgen adds for service {service.name} would be named "
                f"{derived} ({len(derived)} characters), over Kubernetes' {DNS_LABEL_MAX}-character "
                "limit for Service names",
                f"shorten the service name to at most {longest} characters",
            )
