"""What a lab run sets up, computed from the spec, its plan and its rendered files (pure).

One private network namespace holds the whole path. Every instance address of the spec is
assigned to the namespace's loopback, so the rendered configs keep their addresses; pods get
pod IPs (10.244.0.0/24) and each Service a ClusterIP (10.96.0.0/24) there. `--dry-run`
prints this plan; `runner` executes it.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from lbgen.lab.kube_proxy import ServiceRules, iptables_restore, nft_ruleset
from lbgen.model.service import Service
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxHttpTier, NginxStreamTier
from lbgen.nginx_harness import (
    NginxBuild,
    bind_listens,
    harness_http,
    has_stream_block,
    load_stream_module,
    serve_argv,
    tier_files,
)
from lbgen.plan import Plan, topology
from lbgen.plan.budget import service_key
from lbgen.plan.hops import KongHop, KubernetesHop
from lbgen.versions import NGINX_UPSTREAM_RESOLVE_SINCE

POD_NET = ipaddress.ip_network("10.244.0.0/24")
CLUSTER_IP_NET = ipaddress.ip_network("10.96.0.0/24")
CLIENT_NET = ipaddress.ip_network("10.9.0.0/24")
CLIENT_SOURCES = 20
MAX_PODS = 250
K8S_TERMINATION_GRACE_S = 30.0
"""terminationGracePeriodSeconds default (core/v1 PodSpec: "Defaults to 30 seconds")."""
KUBE_PROXY_MIN_SYNC_S = 1.0
"""kube-proxy --iptables-min-sync-period / --nftables-min-sync-period default 1s (kube-proxy
command-line reference), the rate limit of its rule syncs: the longest an endpoint change waits."""
CLOSE_DELAY_S = 0.25
"""The pods' stand-in for the FIN in flight (see lbgen.lab.pods)."""


@dataclass(frozen=True)
class Address:
    role: str
    name: str
    address: str


@dataclass(frozen=True)
class Process:
    name: str
    role: str
    """What it stands for: `edge-1 (nginx_http, real nginx)`, `kong-1 (kong, stand-in)`."""
    argv: tuple[str, ...]
    files: dict[str, str]
    """Relative path in the run directory → text (nginx.conf and includes, pod config)."""
    listens: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class LabSetup:
    namespace: str
    service: str
    addresses: tuple[Address, ...]
    processes: tuple[Process, ...]
    kube_proxy_mode: str
    rules: str
    """iptables-restore input or an nft ruleset ("" when the front dials pods directly)."""
    hosts: tuple[tuple[str, tuple[str, ...]], ...]
    """Names the rendered configs resolve, for /etc/hosts inside the namespace."""
    entry: tuple[tuple[str, int], ...]
    """Where the clients connect: the first tier's instances."""
    sources: tuple[str, ...]
    route_path: str
    host: str
    app_idle_s: float | None
    pods: tuple[tuple[str, str, int], ...]
    rewrites: tuple[str, ...]
    stand_ins: tuple[str, ...]
    dials: str
    """`cluster_ip` or `pod endpoints`: how the hop in front of the cluster reaches pods."""
    notes: tuple[str, ...] = field(default=())
    counters: str = ""
    """iptables-restore input of the filter table: one counting rule per hop for the TCP SYNs
    sent to it (new connections; after kube-proxy's DNAT, so pods count their own)."""
    added: int = 0
    """Pods (the last ones of `pods`) that enter the Service mid-run (scale-out)."""
    scale_rules: str = ""
    """The Service's rules with the added pods, applied mid-run."""
    rollout_rules: tuple[str, ...] = ()
    """rollout: the Service's rules after step k (old pods k+1… and new pods …k), applied
    `sync_s` after pod k is deleted; empty for the other scenarios."""
    rollout_pods: tuple[tuple[str, str], ...] = ()
    """rollout: (old pod, the new pod that replaces it), in order."""
    pre_stop_s: float = 0.0
    """The spec's pre_stop_delay (0: no preStop hook, the app is told to stop at once)."""
    grace_s: float = 30.0
    """terminationGracePeriodSeconds: the spec's, or Kubernetes' default 30 (core/v1 PodSpec)."""
    sync_s: float = 1.0
    """How long after a pod is deleted its endpoint leaves the Service's rules: kube-proxy's
    minSyncPeriod (the spec's, or the default 1s, kube-proxy --iptables-min-sync-period); when
    the front dials pods, the longest of `switch_delays`."""
    target_groups: tuple[TargetGroup, ...] = ()
    """rollout and scale-out when the front dials pods: the endpoint sets it goes through, in
    order (the first one from the start)."""
    switch: str = ""
    """How an endpoint change reaches the front: `step file` (Kong stand-in, no reload) or
    `reload` (nginx, which resolves the headless name only when it loads its config)."""
    switch_delays: tuple[tuple[str, float], ...] = ()
    """Per front instance: seconds from an endpoint change until it uses the new set."""
    propagation: str = ""
    """Where `switch_delays` come from (the plan's endpoint propagation, in words)."""
    run_root: str = ""
    """The run directory (each process has its own directory in it, named after it)."""


@dataclass(frozen=True)
class TargetGroup:
    """One set of pod endpoints a pod-dialing front tier goes through during a run."""

    name: str
    """`step0` … (rollout: the set after step k is `step{k+1}`), or `before`/`after` (scale-out)."""
    upstream: str
    """The Kong stand-in's upstream block for this set."""
    pods: tuple[str, ...]
    step_file: str
    """The file (in each front instance's run directory) whose existence selects this set in
    the Kong stand-in; "" for the first set, used while no step file exists."""
    hosts: str
    """The namespace's /etc/hosts with the headless Service resolving to this set (the nginx
    front re-reads it at its reload)."""


class LabError(ValueError):
    """The spec cannot run in the lab (said why)."""


def hosts_file(hosts: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """/etc/hosts for the namespace (`ip netns exec` binds /etc/netns/<namespace>/hosts)."""
    return "\n".join(["127.0.0.1 localhost"] + [f"{ip} {name}" for name, ips in hosts for ip in ips]) + "\n"


def _ip(address: str, what: str) -> str:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise LabError(f"{what}: {address!r} is not an IPv4 address; the lab maps instance addresses "
                       "onto its namespace and needs IPv4 literals") from None
    return address


def _seconds(value: object) -> float | None:
    ms = getattr(value, "ms", None)
    return None if ms is None else ms / 1000


def _nginx_tier(tier: NginxHttpTier | NginxStreamTier, address: str, files: dict[str, str],
                build: NginxBuild, run_dir: Path, rewrites: list[str]) -> dict[str, str]:
    """The tier's rendered files, made runnable for one instance in `run_dir`."""
    out: dict[str, str] = {}
    adapted: list[str] = []
    for rel, text in sorted(tier_files(files, PurePosixPath(tier.name)).items()):
        if not str(rel).endswith(".conf"):
            continue
        new = bind_listens(text, address)
        if new != text:
            rewrites.append(f"{tier.name}/{rel}: `listen PORT` → `listen <instance address>:PORT` "
                            f"({address} for {tier.instances[0].name}, and so on)")
        if rel == PurePosixPath("nginx.conf"):
            if has_stream_block(new):
                declared = tier.stream_build if isinstance(tier, NginxStreamTier) else None
                new, reason = load_stream_module(new, build, adapted, declared)
                if reason is not None:
                    raise LabError(reason)
            new = harness_http(new, run_dir)
            # Each instance's connections leave from its own address, as from its own machine
            # (kube-proxy's ClientIP affinity and hash balancing key on it).
            new = re.sub(r"^(\s*(?:http|stream)\s*\{)", rf"\1\n    proxy_bind {address};", new, count=1,
                         flags=re.MULTILINE)
        out[str(rel)] = new
    rewrites.extend(f"{tier.name}: {line}" for line in adapted)
    return out


_KONG_ALGORITHMS = {"round-robin": "", "least-connections": "least_conn;"}


def find_kong() -> str | None:
    """A `kong` binary on PATH. The lab does not run real Kong yet (that needs Kong's prefix,
    its nginx templates and the DB-less declarative config loaded into it), so a found binary
    only changes what the stand-in's label says: it never claims Kong is absent when it is not."""
    return shutil.which("kong")


def _why_stand_in(tier: KongTier) -> str:
    kong = find_kong()
    if kong is None:
        return f"Kong {tier.version} is not installed (no kong binary on PATH)"
    return (f"a kong binary is installed ({kong}) but the lab does not run real Kong yet, "
            f"so Kong {tier.version} is stood in for")


def _kong_stand_in(hop: KongHop, spec: Spec, tier: KongTier, service: Service, address: str,
                   groups: tuple[tuple[str, tuple[tuple[str, int], ...], str], ...], run_dir: Path,
                   notes: list[str]) -> str:
    """An nginx http proxy configured from the plan's Kong values (Kong itself is not installed).

    `groups`: (upstream name, targets, step file) of each target set the run goes through.
    Real Kong changes its targets without a reload (KIC's admin-API sync or the re-resolve of
    a hostname target when its DNS TTL runs out updates the balancer: Kong's load-balancing
    reference, targets.lua) and segments its idle pools by ip/port/SNI (kong.conf.default
    `upstream_keepalive_pool_size`), so a removed target's idle connections are just not used
    again. An nginx reload would add errors Kong does not have (old workers close
    idle client connections), so the stand-in never reloads: it has one upstream block per
    set, and each request picks the last set whose step file exists (only `set` inside `if`;
    `proxy_pass` with a variable that names a defined upstream block uses it, no resolver:
    ngx_http_proxy_module #proxy_pass). Each block has its own idle pool: a new set opens fresh
    connections to the pods that stay, where Kong would reuse their pools."""
    plan = next(s for s in hop.services if s.service == service.name)
    _, listener = topology.gateway_entry_listener(spec, tier)
    algorithm = plan.balancing.value
    if algorithm in _KONG_ALGORITHMS:
        balance = _KONG_ALGORITHMS[algorithm]
    elif algorithm == "consistent-hashing" and plan.hash_on.value in ("ip", "none"):
        balance = "hash $remote_addr consistent;"
    else:
        balance = ""
        notes.append(f"Kong algorithm {algorithm} (hash_on {plan.hash_on.value}) has no nginx equivalent here: "
                     "the stand-in balances round-robin")
    pool = hop.upstream
    keepalive = ""
    if pool.connections.value:
        keepalive = f"        keepalive {pool.connections.value};\n"
        idle = _seconds(pool.idle_timeout.value)
        if idle is not None:
            keepalive += f"        keepalive_timeout {idle:g}s;\n"
        if pool.max_requests.value:
            keepalive += f"        keepalive_requests {pool.max_requests.value};\n"
    upstreams = "".join(
        f"    upstream {name} {{\n" + (f"        {balance}\n" if balance else "")
        + "".join(f"        server {host}:{port} max_fails=0;\n" for host, port in backends) + keepalive + "    }\n"
        for name, backends, _ in groups)
    if len(groups) == 1:
        target = f"http://{groups[0][0]}"
        choose = ""
    else:
        target = "http://$lab_targets"
        choose = f"            set $lab_targets {groups[0][0]};\n" + "".join(
            f"            if (-f {run_dir / step_file}) {{ set $lab_targets {name}; }}\n"
            for name, _, step_file in groups[1:])
    client_ka = _seconds(hop.client_keepalive.value)
    proxy_protocol = " proxy_protocol" if listener.proxy_protocol else ""
    # As Kong's own listeners: one socket per worker, so the kernel spreads connections.
    reuseport = " reuseport" if hop.worker_accept == "reuseport" else ""
    return (
        f"# STAND-IN for Kong ({_why_stand_in(tier)}): nginx http configured from lbgen's plan of\n"
        f"# {tier.name}: pool, idle timeout, max requests, algorithm, retries, timeouts, targets.\n"
        # Kong's nginx_worker_processes defaults to auto (kong/templates/kong_defaults.lua).
        "worker_processes auto;\nevents {\n}\nhttp {\n"
        f"    access_log {run_dir}/access.log;\n"
        + "".join(f"    {m}_temp_path {run_dir}/temp/{m};\n" for m in ("client_body", "proxy", "fastcgi",
                                                                          "uwsgi", "scgi"))
        + upstreams
        + "    server {\n"
        f"        listen {address}:{listener.port}{proxy_protocol}{reuseport};\n"
        f"        keepalive_timeout {client_ka:g}s;\n"
        "        location / {\n"
        + choose
        + f"            proxy_pass {target};\n"
        "            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n"
        f"            proxy_bind {address};\n"
        f"            proxy_connect_timeout {_seconds(plan.connect_timeout.value):g}s;\n"
        f"            proxy_read_timeout {_seconds(plan.read_timeout.value):g}s;\n"
        f"            proxy_send_timeout {_seconds(plan.send_timeout.value):g}s;\n"
        "            proxy_next_upstream error timeout;\n"
        f"            proxy_next_upstream_tries {plan.retries.value + 1};\n"
        "        }\n    }\n}\n"
    )


def build(spec: Spec, plan: Plan, files: dict[str, str], service: Service, nginx: NginxBuild,
          run_root: Path, *, namespace: str, add: int = 0, rollout: bool = False) -> LabSetup:
    """Everything one run creates, in order; raises LabError when the spec cannot run here.

    `add` pods (scale-out) run from the start but enter the Service only when `scale_rules`
    are applied mid-run. `rollout`: as many new pods run from the start; step by step each
    enters the Service's rules as one old pod leaves them (`rollout_rules`)."""
    rewrites: list[str] = []
    notes: list[str] = []
    stand_ins: list[str] = []
    addresses: list[Address] = []
    processes: list[Process] = []
    if service.protocol == "grpc":
        raise LabError(f"service {service.name} speaks gRPC; the lab's client speaks HTTP/1.1 only "
                       "(choose another service with --service)")
    new = service.replicas if rollout else 0
    if service.replicas + add + new > MAX_PODS:
        raise LabError(f"service {service.name} has {service.replicas} replicas; the lab runs at most {MAX_PODS} "
                       f"pods ({POD_NET})")
    cluster = next((t for t in spec.tiers if isinstance(t, KubernetesTier)), None)
    if cluster is None:
        raise LabError("the lab needs a kubernetes tier (the pods it measures)")
    k8s_hop = plan.hop_of(cluster)
    assert isinstance(k8s_hop, KubernetesHop)
    svc_plan = next(s for s in k8s_hop.services if s.service == service_key(service))
    names = [f"{service.name}-{i}" for i in range(service.replicas + add)]
    names += [f"{service.name}-v2-{i}" for i in range(new)]  # the new ReplicaSet's pods
    pods = tuple((name, str(POD_NET.network_address + 1 + i), service.kubernetes.target_port)
                 for i, name in enumerate(names))
    cluster_ip = str(CLUSTER_IP_NET.network_address + 10)
    sources = tuple(str(CLIENT_NET.network_address + 1 + i) for i in range(CLIENT_SOURCES))
    addresses += [Address("client source", f"client-{i + 1}", a) for i, a in enumerate(sources)]
    front = topology.front_of_cluster(spec)
    dials_pods = front is not None and topology.dials_pods(spec)
    hosts: list[tuple[str, tuple[str, ...]]] = []
    if front is not None:
        hosts.append((topology.service_fqdn(spec, service), (cluster_ip,)))
        hosts.append((topology.headless_fqdn(spec, service), tuple(p[1] for p in pods[:service.replicas])))
    # The endpoint sets the run goes through: the first from the start, then one per change.
    # rollout: after step k the old pods not yet deleted and the new pods that are ready.
    sets: list[tuple[tuple[str, str, int], ...]] = []
    if add:
        sets = [pods[:service.replicas], pods]
    elif new:
        sets = [pods[:service.replicas]] + [pods[k + 1:service.replicas] + pods[service.replicas:service.replicas + k + 1]
                                            for k in range(new)]
    groups: tuple[TargetGroup, ...] = ()
    switch, propagation = "", ""
    switch_delays: tuple[tuple[str, float], ...] = ()
    if dials_pods and sets:
        assert front is not None
        groups, switch, switch_delays, propagation = _endpoint_changes(
            spec, service, front, k8s_hop, sets, hosts, ["before", "after"] if add else None)
    pod_backends = tuple((ip, port) for _, ip, port in pods[:service.replicas])
    entry: list[tuple[str, int]] = []
    for index, tier in enumerate(spec.tiers):
        if isinstance(tier, KubernetesTier):
            continue
        for instance in tier.instances:
            address = _ip(instance.address, f"{tier.name}.{instance.name}")
            addresses.append(Address(f"{tier.name} ({tier.kind})", instance.name, address))
            run_dir = run_root / instance.name
            if isinstance(tier, NginxHttpTier | NginxStreamTier):
                texts = _nginx_tier(tier, address, files, nginx, run_dir,
                                    rewrites if instance is tier.instances[0] else [])
                ports = tuple(int(p) for text in texts.values()
                              for p in re.findall(rf"^\s*listen\s+{re.escape(address)}:(\d+)", text, re.MULTILINE))
                processes.append(Process(instance.name, f"{instance.name} ({tier.kind}, real nginx "
                                         f"{nginx.version}, rendered config)", serve_argv(nginx, run_dir),
                                         texts, tuple((address, p) for p in ports)))
            else:
                hop = plan.hop_of(tier)
                assert isinstance(hop, KongHop)
                if front is not tier:
                    raise LabError("the lab runs Kong only as the tier in front of the cluster")
                kong_groups = tuple((g.upstream, tuple((ip, port) for name, ip, port in pods if name in g.pods),
                                     g.step_file) for g in groups) if groups else (
                    (service.name, pod_backends if dials_pods else ((cluster_ip, service.kubernetes.port),), ""),)
                text = _kong_stand_in(hop, spec, tier, service, address, kong_groups, run_dir, notes)
                _, listener = topology.gateway_entry_listener(spec, tier)
                processes.append(Process(instance.name, f"{instance.name} (kong, STAND-IN: nginx http proxy "
                                         "configured from the plan's Kong values)", serve_argv(nginx, run_dir),
                                         {"nginx.conf": text}, ((address, listener.port),)))
                if instance is tier.instances[0]:
                    stand_ins.append(
                        f"{tier.name}: {_why_stand_in(tier)}; each instance is an nginx http "
                        "proxy with the plan's pool size, idle timeout, max requests, client keep-alive, "
                        "timeouts, retries (proxy_next_upstream_tries = retries + 1), algorithm and targets; "
                        "unlike Kong, nginx keeps one idle pool per worker for all targets, not one per target"
                        + (" (pod IPs: Kong resolves the headless Service to them)" if dials_pods
                           else f" (the ClusterIP {cluster_ip})")
                        + ("; endpoint changes reach it without a reload, as they reach Kong: one upstream "
                           "block per target set of the run, each request takes the last set whose step file "
                           "exists; unlike Kong's pools keyed by ip:port, each block has its own idle pool, so "
                           "a new set opens fresh connections to the pods that stay" if groups else ""))
            if index == 0:
                entry.extend(processes[-1].listens)
    for name, ip, _ in pods:
        addresses.append(Address(f"pod of {service_key(service)}", name, ip))
    if not dials_pods:
        addresses.append(Address(f"ClusterIP of {service_key(service)}", service.name, cluster_ip))
    mode = k8s_hop.kube_proxy_mode.value
    use_nft = mode == "nftables"
    rules = scale_rules = ""
    rollout_rules: tuple[str, ...] = ()
    if not dials_pods:
        if mode not in ("iptables", "nftables"):
            notes.append(f"kube-proxy mode {mode} is not reproduced; the lab writes iptables-mode rules")
        affinity = svc_plan.session_affinity_timeout.value if svc_plan.session_affinity_timeout else None
        rules_in = (ServiceRules(f"{service_key(service)}:http", cluster_ip, service.kubernetes.port,
                                 pod_backends, affinity),)
        rules = nft_ruleset(rules_in) if use_nft else iptables_restore(rules_in)
        if add:
            after = (ServiceRules(rules_in[0].name, cluster_ip, service.kubernetes.port,
                                  tuple((ip, port) for _, ip, port in pods), affinity),)
            scale_rules = ("delete table ip kube-proxy\n" + nft_ruleset(after) if use_nft
                           else iptables_restore(after, hook=False))
        steps = []
        for kept in sets[1:] if new else ():
            after = (ServiceRules(rules_in[0].name, cluster_ip, service.kubernetes.port,
                                  tuple((ip, port) for _, ip, port in kept), affinity),)
            steps.append("delete table ip kube-proxy\n" + nft_ruleset(after) if use_nft
                         else iptables_restore(after, hook=False))
        rollout_rules = tuple(steps)
    pods_config = run_root / "pods"
    extra = f" + {add} (scale-out)" if add else f" + {new} (rollout)" if new else ""
    processes.append(Process("pods", f"{service.replicas}{extra} pods of {service_key(service)} (asyncio HTTP servers, "
                             f"app idle timeout {_seconds(svc_plan.app_idle_timeout.value)}s)",
                             (sys.executable, "-m", "lbgen.lab.pods", f"{pods_config}/config.json"), {},
                             tuple((ip, port) for _, ip, port in pods)))
    if not entry:
        raise LabError("the spec has no tier in front of the cluster for clients to reach")
    if switch == "reload" and any(re.search(r"^\s*server\s[^;]*\bresolve\b", text, re.MULTILINE)
                                  for p in processes if front is not None and p.name in {i.name for i in front.instances}
                                  for text in p.files.values()):
        raise LabError(f"{front.name if front else ''} re-resolves the headless Service while it runs "
                       "(`server … resolve`); the lab has no DNS server whose answers it could change, "
                       "so it measures rollout and scale-out through such a tier only when it resolves at load")
    path = service.paths[0] if service.paths else "/"
    counters = _counters(spec, processes, pods)
    kube_proxy = cluster.kube_proxy
    if rollout:
        notes.append("rollout: the new pods listen from the start, so with or without a readiness probe each "
                     "is ready when it enters the Service; the app's own start-up time is not modelled")
    if len(spec.services) > 1:
        notes.append(f"only {service_key(service)} runs (its pods, and the stand-in's routes go to it); "
                     "pick another with --service")
    return LabSetup(
        namespace=namespace, service=service_key(service), addresses=tuple(addresses),
        processes=tuple(processes), kube_proxy_mode="nftables" if use_nft else "iptables",
        rules=rules, hosts=tuple(hosts), entry=tuple(entry), sources=sources,
        route_path=path, host=(service.route.hosts[0] if getattr(service.route, "hosts", None) else "lab.local"),
        app_idle_s=_seconds(svc_plan.app_idle_timeout.value), pods=pods, rewrites=tuple(rewrites),
        stand_ins=tuple(stand_ins), dials="pod endpoints" if dials_pods else "cluster_ip", notes=tuple(notes),
        counters=counters, added=add, scale_rules=scale_rules, rollout_rules=rollout_rules,
        rollout_pods=tuple((pods[k][0], pods[service.replicas + k][0]) for k in range(new)),
        pre_stop_s=_seconds(service.pre_stop_delay) or 0.0,
        grace_s=_seconds(service.termination_grace_period) or K8S_TERMINATION_GRACE_S,
        sync_s=max(d for _, d in switch_delays) if switch_delays else (
            _seconds(kube_proxy.min_sync_period if kube_proxy is not None else None) or KUBE_PROXY_MIN_SYNC_S),
        target_groups=groups, switch=switch, switch_delays=switch_delays, propagation=propagation,
        run_root=str(run_root),
    )


def _endpoint_changes(spec: Spec, service: Service, front: topology.FrontTier, k8s_hop: KubernetesHop,
                      sets: list[tuple[tuple[str, str, int], ...]],
                      hosts: list[tuple[str, tuple[str, ...]]], names: list[str] | None,
                      ) -> tuple[tuple[TargetGroup, ...], str, tuple[tuple[str, float], ...], str]:
    """How the endpoint changes of a rollout or scale-out reach a front tier that dials pods:
    the target groups, `step file` or `reload`, each instance's delay and where it comes from."""
    headless = topology.headless_fqdn(spec, service)
    groups = []
    for k, members in enumerate(sets):
        name = names[k] if names else f"step{k}"
        mapped = tuple((host, tuple(ip for _, ip, _ in members)) if host == headless else (host, ips)
                       for host, ips in hosts)
        groups.append(TargetGroup(name, f"{service.name}-{name}", tuple(pod for pod, _, _ in members),
                                  f"targets-{name}" if k else "", hosts_file(mapped)))
    instances = front.instances
    found = k8s_hop.endpoint_propagation
    if isinstance(front, KongTier):
        if found is None:
            raise LabError(f"lbgen has no estimate of how fast endpoint changes reach {front.name}, "
                           "so the lab cannot time them")
        total = found.value.ms / 1000
        # Each instance notices on its own (its DNS cache expires, or its workers pick up what
        # KIC pushed, at their own time): spread evenly over the plan's window, the last one at
        # its full length, the bound LB305 compares preStop with.
        delays = tuple((i.name, round(total * (n + 1) / len(instances), 3)) for n, i in enumerate(instances))
        return tuple(groups), "step file", delays, f"the plan's endpoint propagation: {found.how}"
    gate = NGINX_UPSTREAM_RESOLVE_SINCE
    how = (f"nginx resolves {headless} only when it loads its configuration (`server … resolve` needs "
           f"nginx {gate.since}, {gate.source}), so a changed endpoint set reaches {front.name} only at a "
           "reload, and lbgen's plan has no delay for it; the lab rewrites /etc/hosts and reloads each "
           "instance the moment the endpoints change (the best case: something reloads nginx on every change)")
    return tuple(groups), "reload", tuple((i.name, 0.0) for i in instances), how


COUNTER_CHAIN = "LAB-CONNS"


def _counters(spec: Spec, processes: list[Process], pods: tuple[tuple[str, str, int], ...]) -> str:
    by_tier: list[tuple[str, list[tuple[str, int]]]] = []
    for tier in spec.tiers:
        names = {i.name for i in getattr(tier, "instances", ())}
        listens = [listen for p in processes if p.name in names for listen in p.listens]
        if listens:
            by_tier.append((tier.name, listens))
    by_tier.append(("pods", [(ip, port) for _, ip, port in pods]))
    rules = [f"-A OUTPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j {COUNTER_CHAIN}"]
    for name, listens in by_tier:
        rules += [f'-A {COUNTER_CHAIN} -d {a}/32 -p tcp -m tcp --dport {port} -m comment --comment "{name}" -j RETURN'
                  for a, port in listens]
    return "\n".join(["*filter", f":{COUNTER_CHAIN} - [0:0]", *rules, "COMMIT", ""])


def describe(setup: LabSetup) -> str:
    """The plan as `--dry-run` prints it."""
    lines = [f"namespace: {setup.namespace} (private network namespace; nothing on the host changes)",
             "", "addresses (inside the namespace, on its loopback):"]
    clients = [a for a in setup.addresses if a.role == "client source"]
    if clients:
        lines.append(f"  {clients[0].address}-{clients[-1].address.rsplit('.', 1)[1]}  "
                     f"{len(clients)} client source addresses (the load client binds them in turn)")
    for a in setup.addresses:
        if a.role == "client source":
            continue
        lines.append(f"  {a.address:<13} {a.name:<12} {a.role}")
    lines += ["", "processes (each run by `ip netns exec`):"]
    for p in setup.processes:
        lines.append(f"  {p.role}")
        lines.append(f"    {shlex.join(p.argv)}")
    if setup.stand_ins:
        lines += ["", "stand-ins:"] + [f"  {s}" for s in setup.stand_ins]
    lines += ["", "rewrites of the rendered configs (to run here; nothing else changes):"]
    lines += [f"  {r}" for r in setup.rewrites] or ["  none"]
    lines.append("  nginx -g: daemon off, pid/error_log in the run directory, user root; access_log and "
                 "temp paths into the run directory; proxy_bind <instance address> in http {}/stream {}")
    if setup.hosts:
        lines += ["", "names (/etc/hosts inside the namespace):"]
        lines += [f"  {name} → {', '.join(ips)}" for name, ips in setup.hosts]
    lines += ["", f"Service: {setup.service}, reached by {setup.dials}"]
    lines += ["", "connection counters (filter table, inside the namespace):"]
    lines += [f"  {line}" for line in setup.counters.splitlines()]
    if setup.rules:
        lines.append(f"kube-proxy rules ({setup.kube_proxy_mode} mode, inside the namespace):")
        lines += [f"  {line}" for line in setup.rules.splitlines()]
        if setup.scale_rules:
            lines.append(f"mid-run (scale-out, +{setup.added} pods):")
            lines += [f"  {line}" for line in setup.scale_rules.splitlines()]
    else:
        lines.append("no kube-proxy rules: the hop in front of the cluster dials pod IPs")
    if setup.target_groups:
        lines += _describe_switch(setup)
    if setup.rollout_pods:
        pre_stop = f"sleeps {setup.pre_stop_s:g}s in preStop" if setup.pre_stop_s else "has no preStop hook"
        reach = (f"both changes reach the rules {setup.sync_s:g}s later (kube-proxy minSyncPeriod)" if setup.rules
                 else f"both changes reach the front tier's instances as above (the last {setup.sync_s:g}s later)")
        lines.append(f"rollout, one pod at a time: each old pod is deleted as its replacement is ready; "
                     f"{reach}; the old pod {pre_stop}, then shuts down (stops "
                     f"accepting, closes idle connections, answers in-flight requests with Connection: "
                     f"close) and is killed at {setup.grace_s:g}s (terminationGracePeriodSeconds):")
        olds, news = [o for o, _ in setup.rollout_pods], [n for _, n in setup.rollout_pods]
        for k, (old, new) in enumerate(setup.rollout_pods):
            group = f" (target set {setup.target_groups[k + 1].name})" if setup.target_groups else ""
            lines.append(f"  {old} → {new}: then the Service's endpoints are "
                         + ", ".join(olds[k + 1:] + news[:k + 1]) + group)
    lines += [f"note: {n}" for n in setup.notes]
    return "\n".join(lines) + "\n"


def _describe_switch(setup: LabSetup) -> list[str]:
    how = ("without a reload (Kong's balancer changes its targets in place): each stand-in instance picks, per "
           "request, the last target set whose step file exists; the runner creates the file when the change "
           "would reach that instance" if setup.switch == "step file"
           else "by a reload of each instance (nginx -s reload: SIGHUP to its master) after /etc/hosts inside "
           "the namespace maps the headless Service to the new set")
    lines = [f"endpoint changes reach the front tier {how}; {setup.propagation}:"]
    lines += [f"  {name}: {delay:g}s after each change" for name, delay in setup.switch_delays]
    lines.append("target sets:")
    for group in setup.target_groups:
        if not group.step_file:
            when = "from the start"
        elif setup.switch == "step file":
            names = ",".join(name for name, _ in setup.switch_delays)
            when = f"once {setup.run_root}/{{{names}}}/{group.step_file} exists (each instance reads its own)"
        else:
            when = "after the reload"
        upstream = f"upstream {group.upstream}: " if setup.switch == "step file" else ""
        lines.append(f"  {group.name} ({upstream}{', '.join(group.pods)}): {when}")
    return lines
