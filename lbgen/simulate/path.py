"""The path as the simulator sees it, built from the resolved plan (no numpy here).

Every product value (pool sizes, idle timeouts, max requests, lifetimes, balancing
algorithms, targets, worker counts, kube-proxy mode, session affinity, app idle timeouts)
is read from `lbgen.plan.Plan` or the spec model; this module only translates them into
the few numbers the engine needs. Where the engine approximates a product's behaviour,
`Approximation` says so and the report lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lbgen import defaults
from lbgen.model.service import Service
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, NginxHttpTier, NginxStreamTier
from lbgen.model.types import Duration
from lbgen.model.workload import ScaleEvent
from lbgen.plan import topology
from lbgen.plan.budget import service_key
from lbgen.plan.hops import KongHop, KubernetesHop, NginxHttpHop, NginxStreamHop, Plan, WorkerAccept

Choice = Literal["round-robin", "random", "hash", "least-conn", "random-two", "kong-least-connections"]
"""How the engine picks among targets: in turn per worker, uniformly, by a key, by the fewest
requests in flight per worker (ties in turn), or the fewer of two random ones."""
HashKey = Literal["client", "peer", "request"]
"""What a hash reads: the end client's address, the previous hop's address, or a value
that differs per request ($request_uri and the like)."""
KubeMode = Literal["random", "round-robin", "source-hash"]


@dataclass(frozen=True)
class Chooser:
    choice: Choice
    hash_key: HashKey = "client"
    algorithm: str = ""
    """The product's name for it, for the report."""
    approximated: str = ""
    """Empty when the engine models the algorithm as the product runs it."""
    ring_slots: int = 0
    """hash: Kong's continuum of this many points (0: a rendezvous hash)."""
    random_start: bool = False
    """round-robin: each worker starts at a random target (Kong's wheel), not the first."""


@dataclass(frozen=True)
class ProxyHop:
    """An nginx http, nginx stream or Kong tier: its instances, workers and upstream reuse."""

    name: str
    kind: str
    instances: tuple[str, ...]
    workers: int
    reuse: Literal["pool", "per-request", "per-connection"]
    """pool: idle upstream connections kept per worker and reused (LIFO); per-request: a new
    upstream connection per request; per-connection: one upstream per downstream (stream)."""
    pool_size: int
    idle_s: float | None
    """Pooled connection closed after this idle time: the shortest of its own idle timeout
    and those of the hops behind it up to the next one that terminates the connection."""
    idle_why: str
    max_requests: int | None
    lifetime_s: float | None
    chooser: Chooser
    targets: int
    """Instances of the next hop; 0: the next hop is the Kubernetes Service."""
    per_request_pods: bool
    """Balances each request over pod endpoints itself (no kube-proxy choice)."""
    discovery_s: float | None = None
    """A new pod is seen by each instance within this time (the plan's endpoint propagation:
    the headless Service's DNS TTL, or KIC's sync, each instance at a random moment within it);
    None: at once."""
    discovery_how: str = ""
    """Where `discovery_s` comes from, in words (the plan's)."""
    sees_added_pods: bool = True
    """False: added pods never reach this hop during the run (nginx resolves a headless name
    only when it loads its configuration)."""
    accept: WorkerAccept = "reuseport"
    """How an instance's workers share the connections it accepts (the plan's)."""


@dataclass(frozen=True)
class ClusterHop:
    """kube-proxy (or its replacement) in front of the service's pods."""

    name: str
    mode: str
    """The plan's kube-proxy mode (`iptables`, `nftables`, `ipvs`, `none (eBPF)`)."""
    choice: KubeMode
    approximated: str
    affinity_s: float | None
    """sessionAffinity ClientIP timeout (None: no affinity)."""
    reached: Literal["cluster_ip", "pod_endpoints"]


@dataclass(frozen=True)
class SimPath:
    service: str
    """`namespace/name`."""
    replicas: int
    app_idle_s: float | None
    hops: tuple[ProxyHop, ...]
    cluster: ClusterHop
    events: tuple[tuple[float, int], ...]
    """(time in seconds, pods added), in time order."""


def _s(value: Duration | None) -> float | None:
    return None if value is None else value.ms / 1000


def _workers(tier: NginxHttpTier | NginxStreamTier | KongTier, cores: int) -> int:
    # Kong's nginx_worker_processes is `auto` by default (kong.conf.default) and the spec has
    # no field for it; nginx's worker_processes is the tier's.
    if isinstance(tier, KongTier) or tier.worker_processes == "auto":
        return cores
    return int(tier.worker_processes)


def _nginx_chooser(tier: NginxHttpTier | NginxStreamTier) -> Chooser:
    algorithm = tier.balancing.algorithm
    if algorithm == "random":
        return Chooser("random", algorithm=algorithm)
    if algorithm == "ip_hash":
        return Chooser("hash", "peer", algorithm, "ip_hash reads the first three octets of the address; "
                       "modelled as a uniform hash of the client's address")
    if algorithm == "hash":
        key = tier.balancing.hash_key or ""
        reads: HashKey = "peer" if "remote_addr" in key else "request"
        return Chooser("hash", reads, f"hash {key}", "modelled as a uniform hash (rendezvous) of the key")
    if algorithm == "round-robin":
        return Chooser("round-robin", algorithm=algorithm)
    if algorithm == "least_conn":
        return Chooser("least-conn", algorithm=algorithm, approximated=_SEQUENTIAL_NOTE.format(
            name="least_conn", fallback="round-robin per worker"))
    if algorithm == "random-two":
        return Chooser("random-two", algorithm="random two least_conn", approximated=_SEQUENTIAL_NOTE.format(
            name="random two least_conn", fallback="a uniform random choice"))
    return Chooser("least-conn", algorithm=algorithm, approximated=(
        f"{algorithm} (nginx Plus: fewest connections weighted by response time) modelled as least_conn, "
        "the servers' response times being alike; " + _SEQUENTIAL_NOTE.format(
            name="least_conn", fallback="round-robin per worker")))


_SEQUENTIAL_NOTE = ("{name} follows the requests in flight per worker request by request up to "
                    "20,000 choices per trial and hop; above that it is modelled as {fallback}")


def _kong_chooser(spec: Spec, service: Service, stand_in: bool) -> Chooser:
    algorithm = service.kong.algorithm
    if stand_in:
        return _kong_stand_in_chooser(algorithm, service.kong.hash_on)
    if algorithm == "round-robin":
        return Chooser("round-robin", algorithm=algorithm, random_start=True, approximated=(
            "Kong's round-robin wheel modelled as turns per worker from a random start"))
    if algorithm in ("consistent-hashing", "sticky-sessions"):
        on = service.kong.hash_on
        seen = topology.gateway_client(spec)
        reads: HashKey = "client"
        if on == "ip" and seen is not None and not seen.is_end_user:
            reads = "peer"
        slots = service.kong.slots or defaults.KONG_UPSTREAM_SLOTS.value
        if algorithm == "sticky-sessions":
            return Chooser("hash", reads, f"{algorithm} ({on})",
                           "sticky-sessions modelled as a uniform consistent hash (rendezvous) with one key per client")
        # Kong's continuum has at least 1000 points (consistent_hashing.lua, MIN_CONTINUUM_SIZE).
        return Chooser("hash", reads, f"{algorithm} ({on})", ring_slots=max(1000, slots))
    if algorithm == "least-connections":
        return Chooser("kong-least-connections", algorithm=algorithm, approximated=_SEQUENTIAL_NOTE.format(
            name="Kong's least-connections", fallback="round-robin per worker"))
    return Chooser("round-robin", algorithm=algorithm, random_start=True, approximated=(
        f"{algorithm} modelled as round-robin per worker (equal pods and response times)"))


def _kong_stand_in_chooser(algorithm: str, hash_on: str) -> Chooser:
    """What `lbgen lab`'s stand-in for Kong runs: nginx, with the equivalents
    lbgen.lab.setup configures (least_conn, round-robin, `hash $remote_addr consistent`)."""
    if algorithm == "least-connections":
        return Chooser("least-conn", algorithm="least_conn (Kong stand-in)", approximated=_SEQUENTIAL_NOTE.format(
            name="least_conn", fallback="round-robin per worker"))
    if algorithm == "consistent-hashing" and hash_on in ("ip", "none"):
        return Chooser("hash", "peer", "hash $remote_addr consistent (Kong stand-in)",
                       "modelled as a uniform consistent hash (rendezvous) of the key")
    return Chooser("round-robin", algorithm="round-robin (Kong stand-in)")


def _front_idle(spec: Spec, plan: Plan, index: int, own: float | None) -> tuple[float | None, str]:
    """The idle time after which a pooled connection from tier `index` closes: its own idle
    timeout or that of a hop behind it that closes the same connection first."""
    closers: list[tuple[float, str]] = []
    if own is not None:
        closers.append((own, f"{spec.tiers[index].name}'s upstream idle timeout"))
    for hop in plan.hops[plan.hops.index(plan.hop_of(spec.tiers[index])) + 1:]:
        if isinstance(hop, NginxStreamHop):
            closers.append((hop.proxy_timeout.value.ms / 1000, f"{hop.name}'s proxy_timeout"))
            continue
        if isinstance(hop, NginxHttpHop | KongHop):
            closers.append((hop.client_keepalive.value.ms / 1000, f"{hop.name}'s client keep-alive timeout"))
        break
    if not closers:
        return None, "no idle timeout"
    value, why = min(closers)
    return value, why


def _discovery(cluster: KubernetesHop, hop: NginxHttpHop | KongHop) -> tuple[float | None, str, bool]:
    """How a hop that balances over pod endpoints learns of added pods: `discovery_s`,
    `discovery_how`, `sees_added_pods`."""
    found = cluster.endpoint_propagation
    if found is None:  # the plan has none for nginx resolving a headless name: only at a reload
        return None, f"{hop.name} resolves the headless Service only when it loads its configuration", False
    return found.value.ms / 1000, found.how, True


def build_path(spec: Spec, plan: Plan, service: Service, *, cores: int,
               events: tuple[ScaleEvent, ...], kong_stand_in: bool = False) -> SimPath:
    """The simulator's path. `kong_stand_in`: Kong tiers balance as `lbgen lab`'s nginx stand-in
    for Kong does (so a lab run and its prediction model the same proxy)."""
    key = service_key(service)
    app_idle = _s(plan.budget.app_idle[key].value)
    hops: list[ProxyHop] = []
    cluster_plan = next(h for h in plan.hops if isinstance(h, KubernetesHop))
    for index, tier in enumerate(spec.tiers):
        hop = plan.hop_of(tier)
        if not isinstance(tier, NginxHttpTier | NginxStreamTier | KongTier):
            continue
        following = spec.next_tier(tier)
        to_cluster = following is not None and following.kind == "kubernetes"
        per_request_pods = to_cluster and hop.dials_pods
        targets = len(following.instances) if isinstance(following, NginxStreamTier | KongTier) else 0
        workers = _workers(tier, cores)
        if isinstance(hop, NginxStreamHop):
            assert isinstance(tier, NginxStreamTier)
            hops.append(ProxyHop(tier.name, "nginx_stream", tuple(i.address for i in tier.instances), workers,
                                 "per-connection", 0, None, "", None, None, _nginx_chooser(tier),
                                 targets, False, accept=hop.worker_accept))
            continue
        assert isinstance(hop, NginxHttpHop | KongHop)
        pool = hop.upstream
        size = pool.connections.value or 0
        idle, why = _front_idle(spec, plan, index, _s(pool.idle_timeout.value))
        if to_cluster and app_idle is not None and (idle is None or app_idle < idle):
            idle, why = app_idle, f"the app idle timeout of {service.name}"
        chooser = _kong_chooser(spec, service, kong_stand_in) if isinstance(tier, KongTier) else _nginx_chooser(tier)
        hops.append(ProxyHop(
            tier.name, tier.kind, tuple(i.address for i in tier.instances), workers,
            "pool" if size else "per-request", size, idle, why, pool.max_requests.value,
            _s(pool.max_lifetime.value), chooser, targets, per_request_pods,
            *_discovery(cluster_plan, hop) if per_request_pods else (None, "", True),
            accept=hop.worker_accept,
        ))
    mode = cluster_plan.kube_proxy_mode.value
    service_plan = next(s for s in cluster_plan.services if s.service == key)
    affinity = service_plan.session_affinity_timeout
    kube_tier = spec.tiers[-1]
    scheduler = "rr"
    if kube_tier.kind == "kubernetes" and kube_tier.kube_proxy is not None and kube_tier.kube_proxy.ipvs:
        scheduler = kube_tier.kube_proxy.ipvs.scheduler or "rr"
    if mode == "ipvs":
        choice: KubeMode = "source-hash" if scheduler == "sh" else "round-robin"
        approx = "" if scheduler == "rr" else (
            f"IPVS {scheduler} modelled as {'a uniform source hash' if scheduler == 'sh' else 'rr'} per node "
            "(one node per calling instance)")
        mode = f"ipvs {scheduler}"
    else:
        choice, approx = "random", (
            "Cilium's eBPF service load balancing modelled as a uniform random choice per connection"
            if mode.startswith("none") else "")
    cluster = ClusterHop(
        cluster_plan.name, mode, choice, approx,
        float(affinity.value) if affinity is not None else None,
        "pod_endpoints" if hops and hops[-1].per_request_pods else "cluster_ip",
    )
    mine = sorted((e.at.ms / 1000, e.add) for e in events if e.service == service.name)
    return SimPath(key, service.replicas, app_idle, tuple(hops), cluster, tuple(mine))


__all__ = ["Chooser", "ClusterHop", "ProxyHop", "SimPath", "build_path"]
