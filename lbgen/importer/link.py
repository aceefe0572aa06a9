"""Order the imported hops into a path and build one spec-shaped fragment.

Tiers are linked by addresses: the servers of a caller's upstream are the next tier's
instances (their port must be one of its listeners); the tier in front of Kubernetes reaches
each Service by its cluster DNS name (`name.ns.svc.<domain>`, ClusterIP), the name of a
headless Service (pod IPs) or pod IPs (matched by the pods' port). What the files cannot
tell comes from `--assume`, or is a default that is marked as assumed.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import re
from dataclasses import dataclass, field

from lbgen import versions
from lbgen.importer.assume import Assumption
from lbgen.importer.sources import Fragment, HopImport, Named, Skipped, Sourced, get, put
from lbgen.model.types import Version

_DEFAULT_NAMES = {"nginx_http": "edge", "nginx_stream": "l4", "kong": "gateway", "kubernetes": "cluster"}
_ASSUME_SCOPE = {"nginx_http": "edge", "nginx_stream": "l4", "kong": "kong", "kubernetes": "kubernetes"}
_ORDER = ("nginx_http", "nginx_stream", "kong", "kubernetes")
# Kong's default proxy_listen (kong.conf.default): 0.0.0.0:8000, 0.0.0.0:8443 http2 ssl.
_KONG_DEFAULT_PORTS = (8000, 8443)
_SVC = re.compile(r"^(?P<name>[a-z0-9-]+)\.(?P<ns>[a-z0-9-]+)(?:\.svc(?:\.(?P<domain>[a-z0-9.-]+?))?)?\.?$")


@dataclass
class Linked:
    """The spec fragment and everything the import did not translate."""

    spec: Fragment
    skipped: list[Skipped] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    """How the tiers were linked, in words, for the report."""
    service_objects: dict[str, list[Named]] = field(default_factory=dict)
    """`namespace/name` of each spec service → the objects the files define for it (the
    front hop's Kong service and upstream or nginx upstream, the Kubernetes Service)."""
    tier_objects: dict[str, list[Named]] = field(default_factory=dict)
    """Tier name → the objects of that tier's files that carry traffic (nginx upstreams and
    the servers that proxy to them)."""
    tier_files: dict[str, list[str]] = field(default_factory=dict)
    """Tier name → the files read for it."""


@functools.lru_cache(maxsize=4096)
def _host_port(address: str) -> tuple[str, int | None]:
    # cached: a pure function of the text; the same few addresses serve every upstream
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port.isdigit() else None
    host, _, port = address.rpartition(":")
    if not host:
        return address, None
    return host, int(port) if port.isdigit() else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _assumed(value: object, note: str) -> Sourced[object]:
    return Sourced(value, None, assumed=True, note=note)


def _listen_ports(hop: HopImport) -> list[int]:
    ports = [p for p in (_host_port(s.value)[1] for s in hop.links.listens) if p is not None]
    if hop.kind == "kong" and not ports:
        return list(_KONG_DEFAULT_PORTS)
    return ports


def link(hops: list[HopImport], assumptions: list[Assumption]) -> Linked:
    hops = sorted(hops, key=lambda h: _ORDER.index(h.kind))
    if not hops or hops[-1].kind != "kubernetes":
        hops.append(HopImport(kind="kubernetes", tier={}))
    out = Linked(spec={})
    for hop in hops:
        out.skipped.extend(hop.skipped)
        put(hop.tier, "kind", Sourced(hop.kind, None))
        if "name" not in hop.tier:
            put(hop.tier, "name", Sourced(_DEFAULT_NAMES[hop.kind], None))
    _instances(hops, out)
    named: dict[int, list[Named]] = {}
    services = _services(hops, out, named)
    _apply(assumptions, hops, services, out)
    _defaults(hops, services)
    _pool_by_version(hops)
    for hop in hops:
        # each block once, in the order the hop forwards (a server proxies to many upstreams)
        blocks = {n: None for key in hop.links.forwards for n in hop.named.get(key, []) if n.kind in ("upstream", "server")}
        out.tier_objects[_tier_name(hop)] = list(blocks)
        out.tier_files[_tier_name(hop)] = list(hop.files)
    for service in services:
        name, namespace = get(service, "name"), get(service, "namespace")
        key = f"{getattr(namespace, 'value', 'default')}/{getattr(name, 'value', '')}"
        out.service_objects.setdefault(key, named.get(id(service), []))
    name = out.spec.get("name")
    if name is None:
        put(out.spec, "name", _assumed("imported", "default: set --assume name=…"))
    out.spec["tiers"] = [_clean(h.tier) for h in hops]
    out.spec["services"] = [_clean(s) for s in services]
    return out


def _clean(fragment: Fragment) -> Fragment:
    return {k: v for k, v in fragment.items() if not k.startswith("_")}


def _tier_name(hop: HopImport) -> str:
    name = hop.tier.get("name")
    return str(name.value) if isinstance(name, Sourced) else _DEFAULT_NAMES[hop.kind]


def _instances(hops: list[HopImport], out: Linked) -> None:
    """Each tier's instances are the servers its caller forwards to."""
    first = hops[0]
    if first.kind != "kubernetes":
        hosts: list[Sourced[str]] = []
        for listen in first.links.listens:
            host, _ = _host_port(listen.value)
            if host not in ("*", "0.0.0.0", "::", "") and host not in [h.value for h in hosts]:
                hosts.append(Sourced(host, listen.origin))
        name = _tier_name(first)
        if hosts:
            first.tier["instances"] = [{"name": Sourced(f"{name}-{i}", h.origin), "address": h}
                                       for i, h in enumerate(hosts, start=1)]
        else:
            scope = _ASSUME_SCOPE[first.kind]
            first.tier["instances"] = [{
                "name": _assumed(f"{name}-1", f"default: set --assume {scope}.instances=ADDRESS,…"),
                "address": _assumed(f"{name}-1.invalid", f"default: set --assume {scope}.instances=ADDRESS,…"),
            }]
    for caller, callee in itertools.pairwise(hops):
        if callee.kind == "kubernetes":
            break
        ports = _listen_ports(callee)
        seen: dict[str, Sourced[str]] = {}
        for key, targets in caller.links.forwards.items():
            for target in targets:
                host, port = _host_port(target.value)
                if port is not None and ports and port not in ports and target.origin is not None:
                    out.skipped.append(Skipped(
                        target.origin, target.value, "ambiguous",
                        f"{caller.kind} {_tier_name(caller)} forwards {key} to port {port}, which is not "
                        f"a listener of {callee.kind} {_tier_name(callee)} (ports {', '.join(map(str, ports))}); "
                        "the spec links them through the next tier's listener"))
                seen.setdefault(host, Sourced(host, target.origin))
        _entry_first(callee, [p for p in (_host_port(t.value)[1] for ts in caller.links.forwards.values()
                                         for t in ts) if p is not None])
        name = _tier_name(callee)
        if seen:
            callee.tier["instances"] = [{"name": Sourced(f"{name}-{i}", h.origin), "address": h}
                                        for i, h in enumerate(seen.values(), start=1)]
            out.links.append(f"{_tier_name(caller)} → {name}: {len(seen)} instance(s) from {caller.kind}'s upstream servers")
        else:
            scope = _ASSUME_SCOPE[callee.kind]
            callee.tier["instances"] = [{
                "name": _assumed(f"{name}-1", f"default: set --assume {scope}.instances=ADDRESS,…"),
                "address": _assumed(f"{name}-1.invalid", f"default: set --assume {scope}.instances=ADDRESS,…"),
            }]


def _entry_first(callee: HopImport, ports: list[int]) -> None:
    """Kong's proxy_listen entries the caller dials come first: among equally fitting entries
    lbgen's plan takes the first one, and the files say which one the caller uses."""
    entries = callee.tier.get("proxy_listen")
    if callee.kind != "kong" or not isinstance(entries, list):
        return

    def used(entry: object) -> bool:
        port = entry.get("port") if isinstance(entry, dict) else None
        return isinstance(port, Sourced) and port.value in ports

    entries.sort(key=lambda entry: not used(entry))


def _services(hops: list[HopImport], out: Linked, named: dict[int, list[Named]]) -> list[Fragment]:
    """The spec's services, each linked to its objects in `named` (by the fragment's id)."""
    cluster = hops[-1]
    front = hops[-2] if len(hops) >= 2 else None
    gateway = next((h for h in reversed(hops) if h.kind in ("kong", "nginx_http")), None)
    if front is None:
        alone = [(dict(f), cluster.named.get(key, [])) for key, f in cluster.services.items()]
        named.update((id(f), n) for f, n in alone)
        return [f for f, _ in alone]
    linked: dict[str, Fragment] = {}
    kinds: list[Sourced[str]] = []
    domains: list[Sourced[str]] = []
    extra: list[Fragment] = []
    for key, targets in front.links.forwards.items():
        owner, kind = None, ""
        for target in targets:
            found = _find_service(cluster, target, domains)
            if found is None:
                continue
            owner_key, kind = found
            if owner is not None and owner_key != owner and target.origin is not None:
                out.skipped.append(Skipped(target.origin, target.value, "ambiguous",
                                           f"{key} also targets {owner}; the import keeps the first Service"))
                continue
            owner = owner_key
            kinds.append(Sourced(kind, target.origin))
        local = front.services.get(key, {})
        if owner is None:
            if cluster.services and targets and targets[0].origin is not None:
                out.skipped.append(Skipped(targets[0].origin, f"{key} → {targets[0].value}", "ambiguous",
                                           "matches no imported Kubernetes Service (by name, headless name or pod port)"))
                continue
            extra.append(_service_from_front(key, targets, local))
            named[id(extra[-1])] = front.named.get(key, [])
            continue
        if owner in linked:
            if targets[0].origin is not None:
                out.skipped.append(Skipped(targets[0].origin, f"{key} → Service {owner}", "ambiguous",
                                           f"another route of {_tier_name(front)} already reaches Service {owner}; "
                                           "a spec service is one Kubernetes Service: the first is kept"))
            continue
        merged = dict(cluster.services[owner])
        if gateway is front or front.kind == "nginx_stream":
            _merge(merged, local)
        linked[owner] = merged
        named[id(merged)] = [*front.named.get(key, []), *cluster.named.get(owner, [])]
        out.links.append(f"{_tier_name(front)} {key} → Service {owner} ({kind})")
    for key, fragment in cluster.services.items():
        if key not in linked and front.links.forwards:
            origin = fragment.get("name")
            if isinstance(origin, Sourced) and origin.origin is not None:
                out.skipped.append(Skipped(origin.origin, f"Service {key}", "out-of-scope",
                                           f"no upstream of {_tier_name(front)} reaches this Service"))
        elif key not in linked:
            linked[key] = dict(fragment)
            named[id(linked[key])] = cluster.named.get(key, [])
    if kinds:
        first = kinds[0]
        backend = "cluster_ip" if first.value == "cluster_ip" else "pod_endpoints"
        if front.kind in ("kong", "nginx_http"):
            put(front.tier, "backend_targets", Sourced(backend, first.origin))
        for other in kinds[1:]:
            if ("cluster_ip" if other.value == "cluster_ip" else "pod_endpoints") != backend and other.origin is not None:
                out.skipped.append(Skipped(other.origin, f"target kind {other.value}", "ambiguous",
                                           f"a tier reaches all its Services one way; the import keeps {backend} "
                                           f"(from {first.origin})"))
    if domains:
        put(cluster.tier, "cluster_domain", domains[0])
    return [*linked.values(), *extra]


def _find_service(cluster: HopImport, target: Sourced[str], domains: list[Sourced[str]]) -> tuple[str, str] | None:
    host, port = _host_port(target.value)
    if _is_ip(host):
        # pod IPs: the Service whose pods listen on that port (unique)
        owners = {cluster.links.owners[a] for a, k in cluster.links.kinds.items()
                  if _host_port(a)[1] == port and k == "headless"}
        owners |= {key for key, f in cluster.services.items()
                   if _int(get(f, "kubernetes.target_port")) == port}
        return (owners.pop(), "pod IPs") if len(owners) == 1 else None
    match = _SVC.match(host)
    if match is None:
        return None
    if match.group("domain") and match.group("domain") != "cluster.local":
        domains.append(Sourced(match.group("domain"), target.origin))
    address = f"{match.group('name')}.{match.group('ns')}.svc:{port}"
    owner = cluster.links.owners.get(address)
    if owner is None:
        return None
    return owner, cluster.links.kinds.get(address, "cluster_ip")


def _int(value: object) -> int | None:
    return value.value if isinstance(value, Sourced) and isinstance(value.value, int) else None


def _merge(into: Fragment, other: Fragment) -> None:
    for key, value in other.items():
        if key.startswith("_"):
            continue
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            _merge(current, value)
        else:
            into[key] = value


def _service_from_front(key: str, targets: list[Sourced[str]], local: Fragment) -> Fragment:
    """A service known only from the proxy in front (no manifest given)."""
    entity = local.get("_entity")
    raw = str(entity.value) if isinstance(entity, Sourced) else key
    namespace, _, name = raw.rpartition(".") if "." in raw else ("default", "", raw)
    origin = entity.origin if isinstance(entity, Sourced) else (targets[0].origin if targets else None)
    dns = _SVC.match(_host_port(targets[0].value)[0]) if targets else None
    if dns is not None and ".svc" in dns.group(0):
        # the proxy dials a Service's cluster DNS name: that names the Service and its namespace
        name, namespace, origin = dns.group("name"), dns.group("ns"), targets[0].origin
    fragment: Fragment = {"name": Sourced(re.sub(r"[^a-z0-9-]", "-", name.lower()), origin),
                          "namespace": Sourced(re.sub(r"[^a-z0-9-]", "-", namespace.lower()) or "default", origin)}
    if targets:
        _, port = _host_port(targets[0].value)
        if port is not None:
            put(fragment, "kubernetes.target_port", Sourced(port, targets[0].origin))
    _merge(fragment, local)
    return fragment


def _defaults(hops: list[HopImport], services: list[Fragment]) -> None:
    """What no file says but the spec needs, as marked assumptions."""
    versions = {"nginx_http": "1.30.0", "nginx_stream": "1.30.0", "kong": "3.10", "kubernetes": "1.33"}
    for hop in hops:
        scope = _ASSUME_SCOPE[hop.kind]
        if "version" not in hop.tier:
            put(hop.tier, "version", _assumed(versions[hop.kind], f"default: set --assume {scope}.version=…"))
        if hop.kind == "kong" and "location" not in hop.tier:
            put(hop.tier, "location", _assumed("cluster", "default: set --assume kong.location=cluster|outside"))
        if hop.kind == "kubernetes" and "platform" not in hop.tier:
            mode = get(hop.tier, "kube_proxy")
            if mode is not None:
                put(hop.tier, "platform", _assumed("self-managed", "a kube-proxy configuration was given; "
                                                   "set --assume platform=gke|gke-dataplane-v2|self-managed"))
            else:
                put(hop.tier, "platform", _assumed("self-managed", "default: set --assume "
                                                   "platform=gke|gke-dataplane-v2|self-managed"))
    for service in services:
        app = service.get("app")
        if not isinstance(app, dict) or "preset" not in app:
            # an idle timeout given alone is a custom server's; nothing given: a guess to check
            given = get(service, "app.idle_timeout") is not None
            put(service, "app.preset", _assumed("custom", "default: a server with the assumed idle timeout; "
                                                "set --assume app.preset=… to name it" if given else
                                                "default: set --assume app.preset=… or app.idle_timeout=…"))
            if not given:
                put(service, "app.idle_timeout", _assumed("5s", "default: set --assume app.idle_timeout=… "
                                                          "(lbgen probe measures it)"))
        if "replicas" not in service:
            low = get(service, "autoscaling.min_replicas")
            if isinstance(low, Sourced):
                put(service, "replicas", Sourced(low.value, low.origin))
            else:
                put(service, "replicas", _assumed(2, "default: set --assume services.replicas=N"))


def _pool_by_version(hops: list[HopImport]) -> None:
    """An edge upstream without `keepalive` pools nothing before nginx 1.29.7 (which made
    `keepalive 32 local` the default); lbgen's default would pool, so say 0 explicitly."""
    for hop in hops:
        marker = hop.tier.pop("_no_pool", None)
        version = get(hop.tier, "version")
        if not isinstance(marker, Sourced) or not isinstance(version, Sourced):
            continue
        try:
            old = Version(str(version.value)) < versions.NGINX_KEEPALIVE_BY_DEFAULT.since
        except ValueError:
            continue
        if old and get(hop.tier, "upstream_keepalive.connections") is None:
            put(hop.tier, "upstream_keepalive.connections", marker)


def _apply(assumptions: list[Assumption], hops: list[HopImport], services: list[Fragment], out: Linked) -> None:
    for assumption in assumptions:
        note = f"--assume {assumption.text}"
        if assumption.scope == "spec":
            _put_assumed(out.spec, assumption.path, assumption.value, note, "spec")
            continue
        if assumption.scope in _ORDER:
            hop = next((h for h in hops if h.kind == assumption.scope), None)
            if hop is None:
                from lbgen.errors import InputError, Problem, SourceLocation

                raise InputError([Problem(SourceLocation("--assume", 1, 1),
                                          f"{assumption.text!r}: no {assumption.scope} tier was imported",
                                          "pass that tier's files, or drop the assumption")])
            _put_assumed(hop.tier, assumption.path, assumption.value, note, _tier_name(hop))
            continue
        wanted = assumption.scope.removeprefix("service:") if assumption.scope != "services" else None
        for service in services:
            name = get(service, "name")
            namespace = get(service, "namespace")
            full = f"{getattr(namespace, 'value', 'default')}/{getattr(name, 'value', '')}"
            if wanted is None or wanted in (getattr(name, "value", None), full):
                _put_assumed(service, assumption.path, assumption.value, note, "service")


def _put_assumed(fragment: Fragment, path: str, value: object, note: str, tier_name: str) -> None:
    if path.endswith("instances") and isinstance(value, str):
        entries: list[Sourced[object] | Fragment] = []
        for index, item in enumerate([v.strip() for v in value.split(",") if v.strip()], start=1):
            name, _, address = item.rpartition("=")
            entries.append({"name": Sourced(name or f"{tier_name}-{index}", None, assumed=True, note=note),
                            "address": Sourced(address, None, assumed=True, note=note)})
        put(fragment, path, entries)
        return
    put(fragment, path, Sourced(value, None, assumed=True, note=note))
