"""The human summary of a render: ``README.md`` at the output root.

It shows the path as a Mermaid flowchart, the keep-alive budget hop by hop (taken from
``ctx.budget``, never recomputed), the files of the render and a verification runbook whose
commands carry this topology's namespaces, Services, selectors, ports and addresses.

File list: a renderer cannot see the other renderers' output, so the list is derived from
the spec by the output layout every renderer follows (and, for Kubernetes and KIC, by the
renderers' own path functions). tests/render/test_summary.py checks the listing against
the real output of every example, so the two cannot drift apart silently.

Everything is computed here into a small typed view; the template only lays it out.
"""

from __future__ import annotations

import re
import shlex

from msgspec import Struct

from lbgen.errors import shown_source_name
from lbgen.model.naming import GKE_PLATFORMS, kic_file_path, kube_proxy_path, renders_kube_proxy
from lbgen.model.service import Service
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier, KubernetesTier, NginxHttpTier, NginxStreamTier, Tier
from lbgen.plan.budget import Budget
from lbgen.plan.topology import backend_address, headless_name, upstream_name, uses_headless_service
from lbgen.render import kubernetes as k8s
from lbgen.render._base import RenderContext, RenderedFile

README_PATH = "README.md"

# Above these counts the diagram and the per-service runbook show the first services only
# (a 1,000-service gateway would make both unreadable); the rest are listed in a table.
MAX_DIAGRAM_SERVICES = 12
MAX_RUNBOOK_SERVICES = 10

# Kong's default admin_listen is 127.0.0.1:8001 (kong.conf.default); lbgen does not change it.
KONG_ADMIN_URL = "http://127.0.0.1:8001"


# --- Markdown / Mermaid escaping -------------------------------------------------------------

def md_cell(text: str) -> str:
    """Text safe inside one GitHub-flavoured Markdown table cell."""
    text = re.sub(r"\s*\n\s*", " ", text.strip())
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    # `<` could open an HTML tag; `&` an entity.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label (`id["…"]`, `-->|"…"|`)."""
    return text.replace("&", "#amp;").replace('"', "#quot;").replace("\n", "<br/>")


def mermaid_id(*parts: str) -> str:
    # Names are RFC 1035 labels (`[a-z0-9-]`): mapping `-` to `_` and joining with `__`
    # keeps ids unique, and ids avoid the `-` that Mermaid can read as an edge.
    return "__".join(part.replace("-", "_") for part in parts)


# --- view ----------------------------------------------------------------------------------

class Node(Struct, frozen=True):
    id: str
    label: str


class Edge(Struct, frozen=True):
    source: str
    target: str
    label: str


class Subgraph(Struct, frozen=True):
    id: str
    label: str
    nodes: list[Node]


class Diagram(Struct, frozen=True):
    nodes: list[Node]
    cluster: Subgraph
    edges: list[Edge]


class BudgetLine(Struct, frozen=True):
    hop: str
    setting: str
    value: str
    origin: str
    note: str


class Command(Struct, frozen=True):
    """One runbook step: what it shows, the shell text, and what to look for."""

    title: str
    shell: str
    expect: str = ""


class ServiceRunbook(Struct, frozen=True):
    key: str
    commands: list[Command]
    objects: list[str] = []
    """What the audited files call this service's objects, and where (`lbgen audit`); empty
    for a render, whose objects are the ones it writes."""


class ServiceRow(Struct, frozen=True):
    namespace: str
    name: str
    selector: str
    target_port: int


class Section(Struct, frozen=True):
    title: str
    intro: str
    commands: list[Command]


class SummaryView(Struct, frozen=True):
    header: str
    title: str
    source_name: str
    path_line: str
    diagram: Diagram
    budget: list[BudgetLine]
    margin_note: str
    files: list[str]
    services: list[ServiceRunbook]
    other_services: list[ServiceRow]
    sections: list[Section]


# --- expected files ------------------------------------------------------------------------

def tier_paths(spec: Spec, tier: Tier) -> list[str]:
    """The files the renderer of `tier` writes (layout fixed in the project brief)."""
    if isinstance(tier, NginxHttpTier):
        return [f"{tier.name}/nginx.conf", f"{tier.name}/conf.d/{spec.name}.conf"]
    if isinstance(tier, NginxStreamTier):
        return [f"{tier.name}/nginx.conf", f"{tier.name}/stream.d/{spec.name}.conf"]
    if isinstance(tier, KongTier):
        if tier.mode == "kic":
            return [f"{tier.name}/kong.conf", *(kic_file_path(tier, s) for s in spec.services)]
        return [f"{tier.name}/kong.conf", f"{tier.name}/kong.yaml"]
    return k8s.output_paths(spec)


def expected_paths(spec: Spec) -> list[str]:
    paths = [README_PATH]
    for tier in spec.tiers:
        paths += tier_paths(spec, tier)
    return sorted(paths)


# --- diagram -------------------------------------------------------------------------------

def _listen_ports(ports: list[int]) -> str:
    return ", ".join(f":{port}" for port in sorted(set(ports)))


def _tier_node(tier: Tier) -> Node:
    if isinstance(tier, NginxHttpTier):
        product = f"nginx {tier.version} · L7"
        ports = _listen_ports([listener.port for listener in tier.listen])
    elif isinstance(tier, NginxStreamTier):
        product = f"nginx {tier.version} stream · L4"
        ports = _listen_ports([tier.listen_port])
    elif isinstance(tier, KongTier):
        product = f"Kong {tier.edition} {tier.version} · {tier.mode}"
        ports = _listen_ports([listener.port for listener in tier.proxy_listen])
    else:  # pragma: no cover - the Kubernetes tier is drawn as a subgraph
        raise TypeError(tier)
    count = len(tier.instances)
    instances = f"{count} instance{'s' if count != 1 else ''}"
    return Node(mermaid_id("tier", tier.name), f"{tier.name} · {product}<br/>{instances} · listen {ports}")


def _app_protocols(services: list[Service]) -> str:
    protocols = sorted({_service_protocol(s) for s in services})
    return " + ".join(protocols)


def _service_protocol(service: Service) -> str:
    return "gRPC (h2c)" if service.protocol == "grpc" else "HTTP/1.1"


def _pool_label(connections: int | None) -> str:
    if connections:
        return f"pooled: up to {connections} idle connections kept"
    return "not pooled: a new connection per request"


def _datapath(cluster: KubernetesTier) -> str:
    """How the Service's virtual IP picks a pod: always once per new connection."""
    if cluster.platform == "gke-dataplane-v2":
        return "eBPF (Dataplane V2): one pod per new connection"
    mode = _known_mode(cluster)
    if mode is None:
        return "kube-proxy: one pod per new connection"
    if mode == "ipvs":
        settings = cluster.kube_proxy
        scheduler = (settings.ipvs.scheduler if settings and settings.ipvs else None) or "rr"
        return f"kube-proxy IPVS ({scheduler}): one pod per new connection"
    return f"kube-proxy {mode}: random pod per new connection"


def _known_mode(cluster: KubernetesTier) -> str | None:
    """kube-proxy's mode as far as the spec says: GKE's legacy datapath is iptables; a
    self-managed cluster's mode is unknown unless the spec gives it."""
    if cluster.platform == "gke":
        return "iptables"
    return k8s.declared_kube_proxy_mode(cluster)


def _platform_label(cluster: KubernetesTier) -> str:
    if cluster.platform == "gke":
        return "GKE (kube-proxy iptables)"
    if cluster.platform == "gke-dataplane-v2":
        return "GKE Dataplane V2"
    mode = _known_mode(cluster)
    return f"self-managed (kube-proxy {mode or 'mode not given'})"


def _pods_label(service: Service) -> str:
    selector = ",".join(f"{k}={v}" for k, v in service.selector.items())
    label = f"{service.replicas} pods · {selector}<br/>{service.app.preset} · :{service.kubernetes.target_port}"
    if service.autoscaling is not None:
        label += f"<br/>HPA {service.autoscaling.min_replicas}–{service.autoscaling.max_replicas}"
    return label


def _front_edge_label(spec: Spec, budget: Budget, front: Tier, service: Service) -> str:
    """Label of the edge from the tier in front of Kubernetes to one Service."""
    if isinstance(front, NginxStreamTier):
        return _stream_label(front)
    if isinstance(front, KongTier):
        pool = budget.kong_upstream.connections.value if budget.kong_upstream else None
    else:
        pool = budget.edge_upstream.connections.value if budget.edge_upstream else None
    label = f"{_service_protocol(service)} · {_pool_label(pool)}"
    if isinstance(front, KongTier) and front.mode == "kic" and front.backend_targets == "pod_endpoints":
        return label + " · per request across pod IPs (KIC targets)"
    if uses_headless_service(spec):
        return label + " · per request across pod IPs (DNS)"
    return label


def _service_node(spec: Spec, service: Service, node_id: str) -> Node:
    k8s_settings = service.kubernetes
    if uses_headless_service(spec):
        return Node(
            node_id,
            f"Service {service.namespace}/{headless_name(service)} (headless)<br/>"
            f"DNS: one address per ready pod · :{k8s_settings.target_port}",
        )
    return Node(
        node_id,
        f"Service {service.namespace}/{service.name}<br/>"
        f"ClusterIP :{k8s_settings.port} → :{k8s_settings.target_port}",
    )


def _service_to_pods_label(spec: Spec, front: Tier | None) -> str:
    if isinstance(front, KongTier) and front.mode == "kic" and front.backend_targets == "pod_endpoints":
        return "KIC copies EndpointSlices into Kong targets (no kube-proxy)"
    if uses_headless_service(spec):
        return "pod IPs, connected directly (no kube-proxy)"
    return _datapath(spec.cluster)


def build_diagram(spec: Spec, budget: Budget) -> Diagram:
    nodes: list[Node] = []
    edges: list[Edge] = []
    front_tiers = [t for t in spec.tiers if not isinstance(t, KubernetesTier)]
    previous_id: str | None = None
    previous_label = ""
    if spec.external_lb is not None:
        lb = Node("external_lb", f"external LB · {spec.external_lb.kind}")
        nodes.append(lb)
        previous_id = lb.id
        previous_label = "HTTP · pooled by the load balancer"
    for tier in front_tiers:
        node = _tier_node(tier)
        nodes.append(node)
        if previous_id is not None:
            edges.append(Edge(previous_id, node.id, previous_label))
        previous_id = node.id
        previous_label = _outbound_label(spec, budget, tier)

    cluster = spec.cluster
    shown = spec.services[:MAX_DIAGRAM_SERVICES]
    cluster_nodes: list[Node] = []
    front = spec.previous_tier(cluster)
    for service in shown:
        svc_id = mermaid_id("svc", service.namespace, service.name)
        pods_id = mermaid_id("pods", service.namespace, service.name)
        cluster_nodes += [_service_node(spec, service, svc_id), Node(pods_id, _pods_label(service))]
        if front is not None:
            edges.append(Edge(mermaid_id("tier", front.name), svc_id,
                              _front_edge_label(spec, budget, front, service)))
        edges.append(Edge(svc_id, pods_id, _service_to_pods_label(spec, front)))
    hidden = len(spec.services) - len(shown)
    if hidden > 0:
        more = Node("more_services", f"… and {hidden} more services (see the runbook table)")
        cluster_nodes.append(more)
        if front is not None:
            edges.append(Edge(mermaid_id("tier", front.name), more.id, "same as above"))
    subgraph = Subgraph(
        mermaid_id("cluster", cluster.name),
        f"{cluster.name} · {_platform_label(cluster)} · Kubernetes {cluster.version}",
        cluster_nodes,
    )
    escaped_edges = [Edge(e.source, e.target, mermaid_text(e.label)) for e in edges]
    return Diagram(
        [Node(n.id, mermaid_text(n.label)) for n in nodes],
        Subgraph(subgraph.id, mermaid_text(subgraph.label),
                 [Node(n.id, mermaid_text(n.label)) for n in subgraph.nodes]),
        escaped_edges,
    )


def _stream_label(tier: NginxStreamTier) -> str:
    label = "TCP · L4: one upstream connection per client connection"
    return label + (" · PROXY protocol" if tier.send_proxy_protocol else "")


def _outbound_label(spec: Spec, budget: Budget, tier: Tier) -> str:
    """Label of the edge from a front tier to the next front tier."""
    if isinstance(tier, NginxStreamTier):
        return _stream_label(tier)
    pool = budget.edge_upstream.connections.value if budget.edge_upstream else None
    return f"{_app_protocols(spec.services)} · {_pool_label(pool)}"


# --- runbook ---------------------------------------------------------------------------------
#
# One builder of runbook steps for two callers: a render (the README names lbgen's own
# objects: `<name>-pods`, `<name>.<ns>.lbgen.internal`, the rendered snippet) and `lbgen
# audit` (the audited files' own objects: the manifests' Services and port names, kong.yaml's
# upstreams, the nginx upstreams and the file:line where each is defined). The steps read
# every name from `RunbookNames`; `rendered_names` gives lbgen's.


class ObjectRef(Struct, frozen=True):
    """An object of the path as the runbook names it, and where it is defined (`file:line:col`;
    empty for an object lbgen renders)."""

    name: str
    where: str = ""

    def shown(self, kind: str) -> str:
        return f"{kind} `{self.name}`" + (f" ({self.where})" if self.where else "")


class ServiceNames(Struct, frozen=True):
    """What the runbook calls one service's objects."""

    endpoint_services: list[ObjectRef]
    """The Kubernetes Services whose EndpointSlices list the pods (ClusterIP, then headless)."""
    port_name: str
    """The Service port's name: kube-proxy's iptables comments say `namespace/name:port-name`."""
    kong_upstream: ObjectRef | None
    """The Kong upstream the admin API reports target health for; None: the Kong service's host
    is resolved by DNS, with no upstream (and no health endpoint)."""
    front_target: ObjectRef | None
    """The `host:port` the tier in front of the cluster dials for this service."""
    replicas_origin: str = ""
    """Where the replica count came from (`k8s/orders.yaml:22:13`, `assumed …`); empty: the spec."""
    objects: list[str] = []


class TierNames(Struct, frozen=True):
    """What the runbook compares one nginx tier's loaded configuration with."""

    config: list[str]
    """The files to compare `nginx -T` with."""
    objects: list[str] = []
    """The blocks the rules read, as shown (nginx upstream `l4_pool` (edge/nginx.conf:18:5)); empty
    for a render."""
    note: str = ""


class RunbookNames(Struct, frozen=True):
    services: dict[str, ServiceNames]
    """By `namespace/name` of the spec's service."""
    tiers: dict[str, TierNames]
    """By tier name (nginx tiers)."""
    kube_proxy: str | None = None
    """Where kube-proxy's mode was read (`lbgen audit --kube-proxy`); None: lbgen's own
    rendered ConfigMap, or none."""
    audited: bool = False


class Runbook(Struct, frozen=True):
    """The verification steps of a path: per service (the first MAX_RUNBOOK_SERVICES), then
    per node and per tier."""

    services: list[ServiceRunbook]
    other_services: list[str]
    sections: list[Section]


def _rendered_service_names(spec: Spec, service: Service) -> ServiceNames:
    kong = next((t for t in spec.tiers if isinstance(t, KongTier)), None)
    front = spec.previous_tier(spec.cluster)
    targets = front.backend_targets if isinstance(front, KongTier | NginxHttpTier) else "cluster_ip"
    slices = [ObjectRef(service.name)]
    if uses_headless_service(spec):
        slices.append(ObjectRef(headless_name(service)))
    host, port = backend_address(spec, service, targets)
    return ServiceNames(
        endpoint_services=slices,
        port_name=service.protocol,  # lbgen names the Service port after the protocol
        kong_upstream=ObjectRef(upstream_name(service)) if kong is not None and kong.mode == "db-less" else None,
        front_target=ObjectRef(f"{host}:{port}"),
    )


def _rendered_tier_names(spec: Spec, tier: NginxHttpTier | NginxStreamTier) -> TierNames:
    if isinstance(tier, NginxHttpTier):
        return TierNames([f"{tier.name}/conf.d/{spec.name}.conf"])
    return TierNames([f"{tier.name}/stream.d/{spec.name}.conf"])


def rendered_names(spec: Spec) -> RunbookNames:
    """lbgen's own names for the objects it renders."""
    return RunbookNames(
        {f"{s.namespace}/{s.name}": _rendered_service_names(spec, s) for s in spec.services},
        {t.name: _rendered_tier_names(spec, t) for t in spec.tiers if isinstance(t, NginxHttpTier | NginxStreamTier)},
    )


def _service_names(spec: Spec, service: Service, names: RunbookNames | None) -> ServiceNames:
    found = names.services.get(f"{service.namespace}/{service.name}") if names is not None else None
    return found if found is not None else _rendered_service_names(spec, service)


def _q(value: str) -> str:
    return shlex.quote(value)


def _selector(service: Service) -> str:
    return ",".join(f"{k}={v}" for k, v in service.selector.items())


def service_runbook(spec: Spec, service: Service, runbook_names: RunbookNames | None = None) -> ServiceRunbook:
    names = _service_names(spec, service, runbook_names)
    ns = _q(service.namespace)
    selector = _q(_selector(service))
    port = service.kubernetes.target_port
    replicas = (
        f"{service.replicas} ready endpoints"
        if service.autoscaling is None
        else f"{service.autoscaling.min_replicas} to {service.autoscaling.max_replicas} ready "
        "endpoints (HPA)"
    )
    if names.replicas_origin:
        replicas += f" (replicas: {names.replicas_origin})"
    commands = [
        Command(
            f"Endpoints of `{ref.name}`" + (f" ({ref.where})" if ref.where else ""),
            f"kubectl get endpointslices -n {ns} -l kubernetes.io/service-name={_q(ref.name)} -o wide",
            f"{replicas} on port {port}; a pod missing here receives no traffic at all.",
        )
        for ref in names.endpoint_services
    ]
    commands.append(
        Command(
            "CPU and memory per pod",
            f"kubectl top pod -n {ns} -l {selector}",
            "similar figures on every pod; one hot pod with cold siblings is the symptom lbgen "
            "is about (pinned connections), not a capacity problem.",
        )
    )
    if service.protocol == "http":
        commands.append(
            Command(
                "Requests per pod in the last 10 minutes (from the app's access log)",
                f"kubectl logs -n {ns} -l {selector} --prefix --since=10m --tail=-1 \\\n"
                "  | grep -E '\"[A-Z]+ [^ ]+ HTTP/[0-9.]+\"' | cut -d' ' -f1 | sort | uniq -c",
                "counts within a few percent of each other. `--tail=-1` matters: with `-l`, "
                "kubectl shows only 10 lines per pod by default. Needs an access log on stdout "
                "(uvicorn: on by default; gunicorn: `--access-logfile -`).",
            )
        )
    else:
        commands.append(
            Command(
                "Requests per pod in the last 10 minutes",
                f"kubectl logs -n {ns} -l {selector} --prefix --since=10m --tail=-1 | cut -d' ' -f1 | sort | uniq -c",
                "gRPC servers log no request line by default: filter the output on whatever line "
                "your server logs per call before counting.",
            )
        )
    commands.append(
        Command(
            f"Established connections per pod on port {port}",
            f"for pod in $(kubectl get pod -n {ns} -l {selector} -o name); do\n"
            f"  printf '%s ' \"$pod\"\n"
            f"  kubectl exec -n {ns} \"$pod\" -- ss -Htn state established '( sport = :{port} )' | wc -l\n"
            "done",
            "similar counts on every pod; a few pods holding most connections means pooled "
            "connections are pinned to them. Minimal images have no `ss`: run it from an "
            "ephemeral container, which shares the pod's network namespace: "
            f"`kubectl debug -n {service.namespace} -it POD --image=nicolaka/netshoot -- "
            "ss -tn state established`.",
        )
    )
    kong = next((t for t in spec.tiers if isinstance(t, KongTier)), None)
    if kong is not None and kong.mode == "db-less" and names.kong_upstream is not None:
        hosts = " ".join(_q(i.address) for i in kong.instances)
        upstream = names.kong_upstream
        commands.append(
            Command(
                "Kong's view of the pods (DB-less admin API, on each Kong node)"
                + (f": upstream `{upstream.name}` ({upstream.where})" if upstream.where else ""),
                f"for host in {hosts}; do\n"
                f"  ssh \"$host\" curl -s {KONG_ADMIN_URL}/upstreams/{_q(upstream.name)}/health\n"
                "done",
                "every target HEALTHY; with pod endpoints, one address per ready pod under "
                "`data[].data.addresses`.",
            )
        )
    return ServiceRunbook(f"{service.namespace}/{service.name}", commands, names.objects)


def _conntrack_section(spec: Spec, names: RunbookNames | None = None) -> Section:
    cluster = spec.cluster
    ports = sorted({s.kubernetes.target_port for s in spec.services})
    port = ports[0]
    if cluster.platform == "gke-dataplane-v2":
        return Section(
            "Connections on a node",
            "Dataplane V2 translates Service addresses in eBPF, without kube-proxy and without "
            "netfilter's conntrack table, so `conntrack -L` shows nothing useful here. Use the "
            "per-pod `ss` counts above.",
            [Command("Confirm the datapath", "kubectl -n kube-system get daemonset anetd")],
        )
    known = _known_mode(cluster)
    mode = known or "whatever mode it runs"
    front = spec.previous_tier(cluster)
    direct = uses_headless_service(spec) or (
        isinstance(front, KongTier) and front.mode == "kic" and front.backend_targets == "pod_endpoints"
    )
    how = (
        f"`{front.name}` connects to pod IPs directly, so kube-proxy ({mode}) only handles "
        "clients that use the ClusterIP; conntrack still records every connection a pod's "
        "node sees"
        if direct and front is not None
        else f"kube-proxy ({mode}) picks a pod when a connection opens and conntrack keeps "
        "the connection there"
    )
    intro = (
        f"{how}; these commands show where the open connections went. Run them on "
        "a node (ssh, or `kubectl debug node/NODE -it --profile=sysadmin --image=IMAGE` with "
        "an image that has conntrack-tools). Filtering on the reply source port catches "
        "connections that reached a pod through the ClusterIP (whose original destination "
        "port is the Service port) as well as direct ones."
    )
    commands = [
        Command(
            "kube-proxy's mode, as it runs",
            "curl -s http://127.0.0.1:10249/proxyMode",
            f"`{known}`." if known else "the mode your cluster runs "
            + ("(the audited files do not say)." if names is not None and names.audited else "(the spec does not say)."),
        ),
        Command(
            f"Established connections per pod IP, port {port}",
            f"sudo conntrack -L -p tcp --state ESTABLISHED --reply-port-src {port} 2>/dev/null \\\n"
            f"  | grep -oE 'src=[^ ]+ dst=[^ ]+ sport={port} ' | cut -d' ' -f1 | sort | uniq -c",
            "roughly even counts across pod IPs.",
        ),
    ]
    if mode == "ipvs":
        service = spec.services[0]
        commands.append(
            Command(
                "IPVS's own counters for the Service",
                f"sudo ipvsadm -Ln --stats -t \"$(kubectl get svc -n {_q(service.namespace)} "
                f"{_q(service.name)} -o jsonpath='{{.spec.clusterIP}}'):{service.kubernetes.port}\"",
                "connections and packets per real server (pod).",
            )
        )
    if mode == "iptables":
        service = spec.services[0]
        port_name = _service_names(spec, service, names).port_name
        # kube-proxy's comment is the ServicePortName: `namespace/name:port-name`, or
        # `namespace/name` for an unnamed port (k8s.io/kubernetes pkg/proxy/types.go String)
        comment = f"{service.namespace}/{service.name}" + (f":{port_name}" if port_name else "")
        commands.append(
            Command(
                "The random-choice rules for the Service",
                f"sudo iptables-save -t nat | grep -F {_q(comment)}",
                "one KUBE-SEP rule per ready pod, chosen with probability 1/n, 1/(n-1), … "
                "(uniform per connection).",
            )
        )
    if cluster.platform == "self-managed":
        commands.insert(
            0,
            Command(
                "kube-proxy's configured mode",
                "kubectl -n kube-system get configmap kube-proxy -o jsonpath='{.data.config\\.conf}' | grep -E '^mode:'",
                _configured_mode(spec, mode, names),
            ),
        )
    if len(ports) > 1:
        intro += f" The services listen on ports {', '.join(map(str, ports))}: repeat per port."
    return Section("Connections on a node", intro, commands)


def _configured_mode(spec: Spec, mode: str, names: RunbookNames | None) -> str:
    if names is not None and names.audited:
        if names.kube_proxy:
            return f"`mode: {mode}`, as in {names.kube_proxy}."
        return ("the mode kube-proxy was configured with (no kube-proxy ConfigMap was audited: "
                "pass it with --kube-proxy).")
    if renders_kube_proxy(spec.cluster):
        return f"`mode: {mode}`, as rendered in `{kube_proxy_path(spec)}`."
    return f"the mode kube-proxy was configured with (lbgen leaves it alone: see `{kube_proxy_path(spec)}`)."


def _nginx_section(spec: Spec, tier: NginxHttpTier | NginxStreamTier, names: RunbookNames | None = None) -> Section:
    hosts = " ".join(_q(i.address) for i in tier.instances)
    if isinstance(tier, NginxHttpTier):
        pattern = "upstream|server |keepalive|proxy_next_upstream|least_conn|hash"
    else:
        pattern = "upstream|server |proxy_timeout|proxy_protocol|least_conn|hash"
    tier_names = (names.tiers.get(tier.name) if names is not None else None) or _rendered_tier_names(spec, tier)
    files = ", ".join(f"`{file}`" for file in tier_names.config)
    expect = (
        f"{_and(tier_names.objects)} as in the audited files; a difference means this instance "
        "runs another configuration than the one audited."
        if tier_names.objects else ""
    )
    return Section(
        f"nginx on `{tier.name}`",
        f"`nginx -T` prints the configuration each instance actually loaded; compare it with "
        f"{files}." + (f" {tier_names.note}" if tier_names.note else ""),
        [
            Command(
                "Loaded upstreams and keep-alive settings",
                f"for host in {hosts}; do\n"
                f"  echo \"== $host\"; ssh \"$host\" sudo nginx -T 2>/dev/null | grep -nE {_q(pattern)}\n"
                "done",
                expect,
            )
        ],
    )


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _kube_proxy_section(spec: Spec) -> Section | None:
    cluster = spec.cluster
    if not renders_kube_proxy(cluster):
        return None
    path = kube_proxy_path(spec)
    return Section(
        "Applying kube-proxy's configuration",
        f"`{path}` replaces kube-proxy's whole `config.conf`: every field it does not set "
        "takes kube-proxy's default. Keep a copy of the live file and look at the difference "
        "before applying; a line the diff removes is a live setting the rendered file drops "
        "(add it to `kubernetes.kube_proxy` or keep your file).",
        [
            Command(
                "Keep the live configuration",
                "kubectl -n kube-system get configmap kube-proxy -o jsonpath='{.data.config\\.conf}' "
                "> kube-proxy-config.conf.live",
            ),
            Command(
                "What applying would change",
                f"kubectl diff -f {path}",
                "only the settings you meant to change (exit status 1 means differences).",
            ),
            Command(
                "Apply, then restart kube-proxy so it reads the file",
                f"kubectl apply -f {path}\n"
                "kubectl -n kube-system rollout restart daemonset kube-proxy\n"
                "kubectl -n kube-system rollout status daemonset kube-proxy",
            ),
        ],
    )


GKE_ALIAS_IPS = "https://cloud.google.com/kubernetes-engine/docs/concepts/alias-ips"


def _resolver_address(entry: str) -> str:
    """The address of a kong.conf dns_resolver entry (`ip`, `ip:port`, `[ipv6]:port`)."""
    if entry.startswith("["):
        return entry[1:entry.index("]")]
    return entry.split(":")[0] if entry.count(":") == 1 else entry


def _kong_outside_section(spec: Spec, names: RunbookNames | None = None) -> Section | None:
    kong = next((t for t in spec.tiers if isinstance(t, KongTier)), None)
    if kong is None or kong.location != "outside":
        return None
    service = spec.services[0]
    host, port = backend_address(spec, service, kong.backend_targets)
    target = _service_names(spec, service, names).front_target
    if target is not None:
        host, _, port_text = target.name.rpartition(":")
        port = int(port_text) if port_text.isdigit() else port
    resolver = _resolver_address(kong.dns_resolver[0])
    first = _q(kong.instances[0].address)
    if kong.backend_targets == "pod_endpoints":
        reach = (
            "Kong connects to pod IPs, so they must be routable from Kong's hosts"
            + (
                f": on GKE that is a VPC-native cluster, whose pod IPs are routable in its VPC "
                f"and in peered VPCs ({GKE_ALIAS_IPS}); keep Kong's VMs there and let the "
                "firewall admit them to the pods' target ports."
                if spec.cluster.platform in GKE_PLATFORMS
                else ": route the cluster's pod CIDR from Kong's network to the nodes "
                "(or run Kong on the pod network), and let the firewall admit Kong's hosts."
            )
        )
    else:
        reach = (
            "Kong connects to ClusterIPs, which the spec says are routed from Kong's hosts "
            "(`cluster_ip_routed`)."
        )
    return Section(
        f"`{kong.name}` runs outside the cluster",
        f"{reach} Kong resolves the cluster's Service names through `dns_resolver` "
        f"({', '.join(kong.dns_resolver)}) instead of the hosts' resolv.conf. Check both from "
        "a Kong host:",
        [
            Command(
                "The cluster name resolves through Kong's resolver",
                f"ssh {first} dig +short @{_q(resolver)} {_q(host)}",
                "one address per ready pod." if kong.backend_targets == "pod_endpoints"
                else "the Service's ClusterIP.",
            ),
            Command(
                "Kong's host reaches that address",
                f"ssh {first} 'for ip in $(dig +short @{resolver} {host}); do "
                f"nc -vz -w 2 \"$ip\" {port}; done'",
                "`succeeded` (or `open`) for every address.",
            ),
        ],
    )


def _deploy_section(spec: Spec) -> Section:
    from lbgen.rollout import deploy_steps

    return Section(
        "Deploying this output",
        "Apply hop by hop, innermost first, so that no caller is pointed at a hop that is not "
        "there yet. When a change moves idle timeouts, the order is what keeps every caller "
        "closing idle connections before its callee *during* the change: lower a callee's idle "
        "timeout only after its callers are below the new value, raise a caller's only after "
        "its callees are above it. `lbgen render NEW -o DIR --rollout-from OLD` prints the "
        "order for a concrete change.",
        [
            Command(f"`{step.unit}` — {step.what}", "\n".join(step.commands))
            for step in deploy_steps(spec)
        ],
    )


def _rollout_section(spec: Spec) -> Section | None:
    patched = [s for s in spec.services if s.has_rollout_settings][:MAX_RUNBOOK_SERVICES]
    if not patched:
        return None
    commands = [
        Command(
            f"Readiness, preStop and grace period of `{s.namespace}/{s.workload}`",
            f"{k8s.rollout_patch_command(spec, s)}\n"
            f"kubectl -n {s.namespace} rollout status deployment {s.workload}",
            "`deployment … patched`, then the rollout completes (the pod template changed).",
        )
        for s in patched
    ]
    return Section(
        "Rollout safety",
        "The `patches/` files are strategic-merge patches of your Deployments (the container "
        "is matched by name), not manifests: apply them with `kubectl patch` as below, or list "
        "them under `patches:` in a kustomization.yaml. Patching the pod template starts a "
        "rollout.",
        commands,
    )


def path_runbook(spec: Spec, names: RunbookNames | None = None) -> Runbook:
    """The runbook of `spec`'s path, naming objects as `names` does (lbgen's own by default).
    For an audit (`names.audited`) the steps that apply rendered output (kube-proxy's
    ConfigMap, rollout patches, deploying) are left out: nothing was rendered."""
    shown = spec.services[:MAX_RUNBOOK_SERVICES]
    audited = names is not None and names.audited
    optional = [_kong_outside_section(spec, names)]
    if not audited:
        optional += [_kube_proxy_section(spec), _rollout_section(spec)]
    sections = [_conntrack_section(spec, names), *(s for s in optional if s is not None)]
    if not audited:
        sections.append(_deploy_section(spec))
    sections += [_nginx_section(spec, t, names) for t in spec.tiers if isinstance(t, NginxHttpTier | NginxStreamTier)]
    return Runbook(
        services=[service_runbook(spec, s, names) for s in shown],
        other_services=[f"{s.namespace}/{s.name}" for s in spec.services[MAX_RUNBOOK_SERVICES:]],
        sections=sections,
    )


def build_view(ctx: RenderContext) -> SummaryView:
    spec = ctx.spec
    budget = ctx.budget
    others = spec.services[MAX_RUNBOOK_SERVICES:]
    runbook = path_runbook(spec)
    path_line = " → ".join(
        [*(["external LB"] if spec.external_lb else []), *(t.name for t in spec.tiers), "pods"]
    )
    return SummaryView(
        header=k8s.markdown_header(ctx),
        title=spec.name,
        source_name=shown_source_name(ctx.source_name, markdown=True),
        path_line=path_line,
        diagram=build_diagram(spec, budget),
        budget=[
            BudgetLine(md_cell(r.hop), md_cell(r.setting), md_cell(r.value), md_cell(r.origin), md_cell(r.note))
            for r in budget.rows
        ],
        margin_note=budget.margin_note,
        files=expected_paths(spec),
        services=runbook.services,
        other_services=[
            ServiceRow(s.namespace, s.name, md_cell(_selector(s)), s.kubernetes.target_port) for s in others
        ],
        sections=runbook.sections,
    )


def render(ctx: RenderContext) -> list[RenderedFile]:
    template = ctx.env.get_template("summary/README.md.j2")
    return [RenderedFile(README_PATH, template.render(view=build_view(ctx)))]
