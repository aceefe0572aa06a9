"""Kubernetes manifests (Service, HorizontalPodAutoscaler, PodDisruptionBudget, Deployment or
lbgen's Deployment patch) and the kube-proxy ConfigMap → one `HopImport`.

A headless Service (`clusterIP: None`) with the same selector as a ClusterIP Service is the
pod-endpoint name of that service (lbgen renders it as `<name>-pods`); alone it is a service
of its own. Every object kind lbgen does not model is reported as `Skipped`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lbgen.errors import InputError, Problem, SourceLocation
from lbgen.importer.nginx import duration_text
from lbgen.importer.sources import Fragment, HopImport, Named, Origin, Skipped, Sourced, put
from lbgen.importer.yamlfiles import (
    YMap,
    YSeq,
    files_under,
    key_origin,
    key_position,
    load_documents,
    node_origin,
    read_text,
)
from lbgen.model.types import Duration

ShowPath = Callable[[str], str]

_SERVICE_SPEC_KEYS = {"ports", "selector", "type", "clusterIP", "clusterIPs", "sessionAffinity",
                      "sessionAffinityConfig", "internalTrafficPolicy", "trafficDistribution",
                      "publishNotReadyAddresses", "ipFamilies", "ipFamilyPolicy"}


@dataclass
class _Service:
    name: str
    namespace: str
    node: YMap
    file: str
    headless: bool
    selector: dict[str, str]
    fragment: Fragment = field(default_factory=dict)
    ports: list[tuple[int, int, Origin]] = field(default_factory=list)
    port_name: Named | None = None
    """The first port's name (kube-proxy's rules are commented `namespace/name:port-name`)."""


class _Reader:
    def __init__(self) -> None:
        self.skipped: list[Skipped] = []

    def skip(self, origin: Origin, item: str, reason: Any, detail: str) -> None:
        self.skipped.append(Skipped(origin, item, reason, detail))


def import_kubernetes(paths: list[str], kube_proxy: str | None, shown: ShowPath) -> HopImport:
    hop = HopImport(kind="kubernetes", tier={})
    reader = _Reader()
    services: list[_Service] = []
    extras: list[tuple[str, YMap, str]] = []  # (kind, object, file)
    for given in paths:
        for path in files_under(given):
            file = shown(path)
            hop.files.append(file)
            text = read_text(path, file, "Kubernetes manifest")
            for doc in load_documents(text, file, "Kubernetes manifest"):
                for obj in _objects(doc):
                    kind = str(obj.get("kind", ""))
                    if kind == "Service":
                        services.append(_service(reader, obj, file))
                    elif kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Deployment"):
                        extras.append((kind, obj, file))
                    elif kind == "ConfigMap" and _name(obj) == "kube-proxy":
                        _kube_proxy(reader, obj, file, hop.tier)
                    elif kind == "KubeProxyConfiguration":
                        _kube_proxy_config(reader, obj, file, hop.tier, 0, 0)
                    else:
                        reader.skip(node_origin(obj, file), f"{kind or 'object'} {_name(obj)}", "out-of-scope",
                                    f"{kind or 'this object'} is not part of lbgen's spec")
    if kube_proxy is not None:
        file = shown(kube_proxy)
        hop.files.append(file)
        text = read_text(kube_proxy, file, "kube-proxy ConfigMap")
        docs = load_documents(text, file, "kube-proxy ConfigMap")
        found = False
        for doc in docs:
            for obj in _objects(doc):
                if obj.get("kind") == "ConfigMap":
                    _kube_proxy(reader, obj, file, hop.tier)
                    found = True
                elif obj.get("kind") == "KubeProxyConfiguration":
                    _kube_proxy_config(reader, obj, file, hop.tier, 0, 0)
                    found = True
        if not found:
            raise InputError([Problem(SourceLocation(file, 1, 1),
                                      "no kube-proxy ConfigMap or KubeProxyConfiguration in the file",
                                      "pass `kubectl -n kube-system get configmap kube-proxy -o yaml`")])
    _merge_headless(services)
    for service in services:
        _link(service, hop)
    for kind, obj, file in extras:
        _extra(reader, kind, obj, file, services)
    hop.skipped = reader.skipped
    return hop


def _sub(obj: YMap, key: str) -> YMap:
    """obj[key] when it is a mapping, else an empty one (a manifest missing a section)."""
    value = obj.get(key)
    return value if isinstance(value, YMap) else YMap(obj.at)


def _objects(doc: Any) -> list[YMap]:
    if not isinstance(doc, YMap):
        return []
    if doc.get("kind") == "List" and isinstance(doc.get("items"), YSeq):
        return [item for item in doc["items"] if isinstance(item, YMap)]
    return [doc]


def _name(obj: YMap) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, YMap) else ""


def _namespace(obj: YMap) -> str:
    meta = obj.get("metadata")
    return str(meta.get("namespace", "default")) if isinstance(meta, YMap) else "default"


def _service(reader: _Reader, obj: YMap, file: str) -> _Service:
    spec = _sub(obj, "spec")
    meta = _sub(obj, "metadata")
    selector = spec.get("selector")
    headless = spec.get("clusterIP") == "None"
    service = _Service(_name(obj), _namespace(obj), obj, file, headless,
                       {str(k): str(v) for k, v in selector.items()} if isinstance(selector, YMap) else {})
    frag = service.fragment
    put(frag, "name", Sourced(service.name, key_origin(meta, "name", file)))
    put(frag, "namespace", Sourced(service.namespace, key_origin(meta, "namespace", file)
                                   if "namespace" in meta else node_origin(meta, file)))
    for key in spec:
        if key not in _SERVICE_SPEC_KEYS:
            reader.skip(key_position(spec, key, file), f"spec.{key}", "out-of-scope",
                        f"Service spec.{key} is not part of lbgen's spec")
    kind = spec.get("type", "ClusterIP")
    if kind != "ClusterIP":
        reader.skip(key_origin(spec, "type", file), f"type: {kind}", "unsupported",
                    "lbgen renders ClusterIP Services (the proxies in front reach them inside the cluster)")
    ports = spec.get("ports")
    if isinstance(ports, YSeq):
        for index, port in enumerate(ports):
            if not isinstance(port, YMap) or not isinstance(port.get("port"), int):
                continue
            target = port.get("targetPort", port["port"])
            if not isinstance(target, int):
                reader.skip(key_origin(port, "targetPort", file), f"targetPort: {target}", "unsupported",
                            "a named targetPort: lbgen needs the container port number")
                target = port["port"]
            service.ports.append((int(port["port"]), int(target), key_origin(port, "port", file)))
            if index == 0:
                service.port_name = Named("service-port", str(port.get("name", "")), node_origin(port, file))
            if index == 0 and (port.get("appProtocol") == "kubernetes.io/h2c"
                               or str(port.get("name", "")).startswith("grpc")):
                # HTTP/2 cleartext to the pods: what lbgen's `protocol: grpc` means (KEP-3726
                # appProtocol kubernetes.io/h2c; Istio-style port names grpc-*)
                key = "appProtocol" if "appProtocol" in port else "name"
                put(frag, "protocol", Sourced("grpc", key_origin(port, key, file)))
            if index == 0 and not headless:
                put(frag, "kubernetes.port", Sourced(int(port["port"]), key_origin(port, "port", file)))
                put(frag, "kubernetes.target_port", Sourced(int(target), key_origin(port, "targetPort", file)
                                                            if "targetPort" in port else key_origin(port, "port", file)))
            elif index > 0:
                reader.skip(node_origin(port, file), f"ports[{index}]", "unsupported",
                            "lbgen models one port per Service (the first)")
    if headless and service.ports:
        # alone, a headless Service's port is the pods' port
        _, target, origin = service.ports[0]
        put(frag, "kubernetes.target_port", Sourced(target, origin))
    if service.selector and isinstance(selector, YMap):
        put(frag, "kubernetes.selector", {str(k): Sourced(str(v), key_origin(selector, k, file)) for k, v in selector.items()})
    affinity = spec.get("sessionAffinity")
    if affinity is not None:
        put(frag, "kubernetes.session_affinity", Sourced(str(affinity), key_origin(spec, "sessionAffinity", file)))
    config = spec.get("sessionAffinityConfig")
    if isinstance(config, YMap) and isinstance(config.get("clientIP"), YMap):
        client = config["clientIP"]
        if "timeoutSeconds" in client:
            put(frag, "kubernetes.session_affinity_timeout",
                Sourced(client["timeoutSeconds"], key_origin(client, "timeoutSeconds", file)))
    for key, spec_key in (("internalTrafficPolicy", "internal_traffic_policy"),
                          ("trafficDistribution", "traffic_distribution")):
        if key in spec:
            put(frag, f"kubernetes.{spec_key}", Sourced(str(spec[key]), key_origin(spec, key, file)))
    labels = meta.get("labels")
    if isinstance(labels, YMap):
        kept = {str(k): Sourced(str(v), key_origin(labels, k, file)) for k, v in labels.items()
                if k != "app.kubernetes.io/managed-by"}
        if kept:
            put(frag, "kubernetes.labels", dict(kept))
    annotations = meta.get("annotations")
    if isinstance(annotations, YMap):
        for key in annotations:
            reader.skip(key_position(annotations, key, file), f"annotation {key}", "out-of-scope",
                        "Service annotations are not part of lbgen's spec")
    return service


def _merge_headless(services: list[_Service]) -> None:
    """A headless Service selecting the same pods as a ClusterIP one is its pod-endpoint name."""
    by_selector = {(s.namespace, tuple(sorted(s.selector.items()))): s for s in services
                   if not s.headless and s.selector}
    kept: list[_Service] = []
    for service in services:
        owner = by_selector.get((service.namespace, tuple(sorted(service.selector.items()))))
        if service.headless and owner is not None:
            owner.ports.extend((port, target, origin) for port, target, origin in service.ports)
            owner.fragment.setdefault("_headless", Sourced(service.name, _name_origin(service)))
            continue
        kept.append(service)
    services[:] = kept


def _name_origin(service: _Service) -> Origin:
    """Where a Service's `metadata.name` is (the line a user opens to find it)."""
    meta = service.node.get("metadata")
    return key_origin(meta, "name", service.file) if isinstance(meta, YMap) and "name" in meta \
        else node_origin(service.node, service.file)


def _link(service: _Service, hop: HopImport) -> None:
    key = f"{service.namespace}/{service.name}"
    hop.services[key] = service.fragment
    names = [service.name]
    headless = service.fragment.get("_headless")
    named = hop.named[key] = [Named("headless-service" if service.headless else "service", service.name,
                                    _name_origin(service))]
    if isinstance(headless, Sourced) and headless.origin is not None:
        named.append(Named("headless-service", str(headless.value), headless.origin))
    if service.port_name is not None:
        named.append(service.port_name)
    kinds = {service.name: "headless" if service.headless else "cluster_ip"}
    if isinstance(headless, Sourced):
        names.append(str(headless.value))
        kinds[str(headless.value)] = "headless"
    for port, target, origin in service.ports:
        for name in names:
            # a headless name resolves to pod IPs: clients dial the pods' port
            wanted = target if kinds[name] == "headless" else port
            if kinds[name] == "headless" or name == service.name:
                address = f"{name}.{service.namespace}.svc:{wanted}"
                hop.links.listens.append(Sourced(address, origin))
                hop.links.owners[address] = key
                hop.links.kinds[address] = kinds[name]


def _extra(reader: _Reader, kind: str, obj: YMap, file: str, services: list[_Service]) -> None:
    spec = _sub(obj, "spec")
    namespace = _namespace(obj)
    if kind == "Deployment":
        target = _for_pods(services, namespace, _template_labels(spec), _name(obj))
    else:
        ref = spec.get("scaleTargetRef") if kind == "HorizontalPodAutoscaler" else None
        workload = str(ref.get("name", "")) if isinstance(ref, YMap) else _name(obj)
        selector = spec.get("selector")
        labels = selector.get("matchLabels") if isinstance(selector, YMap) else None
        target = _for_pods(services, namespace, dict(labels) if isinstance(labels, YMap) else {}, workload)
    if target is None:
        reader.skip(node_origin(obj, file), f"{kind} {namespace}/{_name(obj)}", "ambiguous",
                    "no imported Service selects this workload's pods")
        return
    frag = target.fragment
    if kind == "HorizontalPodAutoscaler":
        for key, spec_key in (("minReplicas", "min_replicas"), ("maxReplicas", "max_replicas")):
            if isinstance(spec.get(key), int):
                put(frag, f"autoscaling.{spec_key}", Sourced(spec[key], key_origin(spec, key, file)))
        ref = spec.get("scaleTargetRef")
        if isinstance(ref, YMap) and ref.get("name") and ref.get("name") != target.name:
            put(frag, "deployment", Sourced(str(ref["name"]), key_origin(ref, "name", file)))
        for metric in spec.get("metrics") or []:
            resource = metric.get("resource") if isinstance(metric, YMap) else None
            goal = resource.get("target") if isinstance(resource, YMap) else None
            if isinstance(resource, YMap) and resource.get("name") == "cpu" and isinstance(goal, YMap) \
                    and isinstance(goal.get("averageUtilization"), int):
                put(frag, "autoscaling.target_cpu_utilization",
                    Sourced(goal["averageUtilization"], key_origin(goal, "averageUtilization", file)))
            else:
                reader.skip(node_origin(metric, file), "HPA metric", "unsupported",
                            "lbgen models CPU utilisation targets only")
    elif kind == "PodDisruptionBudget":
        for key, spec_key in (("maxUnavailable", "max_unavailable"), ("minAvailable", "min_available")):
            if key in spec:
                put(frag, f"disruption_budget.{spec_key}", Sourced(spec[key], key_origin(spec, key, file)))
    else:
        _deployment(reader, obj, spec, file, target)


def _template_labels(spec: YMap) -> dict[str, str]:
    template = spec.get("template")
    meta = template.get("metadata") if isinstance(template, YMap) else None
    labels = meta.get("labels") if isinstance(meta, YMap) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, YMap) else {}


def _for_pods(services: list[_Service], namespace: str, labels: dict[str, str], workload: str) -> _Service | None:
    matches = [s for s in services if s.namespace == namespace and s.selector and labels
               and all(labels.get(k) == v for k, v in s.selector.items())]
    if not matches:
        # lbgen's Deployment patch carries no labels; the Deployment and the Service share a name
        matches = [s for s in services if s.namespace == namespace and s.name == workload]
    return matches[0] if len(matches) == 1 else None


def _deployment(reader: _Reader, obj: YMap, spec: YMap, file: str, target: _Service) -> None:
    frag = target.fragment
    if _name(obj) != target.name:
        put(frag, "deployment", Sourced(_name(obj), key_origin(obj["metadata"], "name", file)))
    if isinstance(spec.get("replicas"), int):
        put(frag, "replicas", Sourced(spec["replicas"], key_origin(spec, "replicas", file)))
    template = spec.get("template")
    pod = template.get("spec") if isinstance(template, YMap) else None
    if not isinstance(pod, YMap):
        return
    if isinstance(pod.get("terminationGracePeriodSeconds"), int):
        put(frag, "termination_grace_period",
            Sourced(duration_text(Duration(pod["terminationGracePeriodSeconds"] * 1000)),
                    key_origin(pod, "terminationGracePeriodSeconds", file)))
    containers = pod.get("containers")
    if not isinstance(containers, YSeq) or not containers:
        return
    container = containers[0]
    if len(containers) > 1:
        reader.skip(node_origin(containers[1], file), "containers[1:]", "ambiguous",
                    "the first container is taken as the app server")
    if not isinstance(container, YMap):
        return
    name = str(container.get("name", ""))
    if name and name != _frag_value(frag, "deployment", target.name):
        put(frag, "container", Sourced(name, key_origin(container, "name", file)))
    lifecycle = container.get("lifecycle")
    stop = lifecycle.get("preStop") if isinstance(lifecycle, YMap) else None
    if isinstance(stop, YMap):
        sleep = stop.get("sleep")
        command = stop.get("exec", {}).get("command") if isinstance(stop.get("exec"), YMap) else None
        if isinstance(sleep, YMap) and isinstance(sleep.get("seconds"), int):
            put(frag, "pre_stop_delay", Sourced(duration_text(Duration(sleep["seconds"] * 1000)),
                                                key_origin(sleep, "seconds", file)))
        elif isinstance(command, list) and len(command) == 2 and command[0] == "sleep" and str(command[1]).isdigit():
            put(frag, "pre_stop_delay", Sourced(duration_text(Duration(int(command[1]) * 1000)),
                                                key_origin(command, 1, file)))
        else:
            reader.skip(node_origin(stop, file), "preStop", "unsupported", "only a preStop sleep is modelled")
    probe = container.get("readinessProbe")
    if isinstance(probe, YMap):
        http = probe.get("httpGet")
        if isinstance(http, YMap):
            if "path" in http:
                put(frag, "readiness.path", Sourced(str(http["path"]), key_origin(http, "path", file)))
            if isinstance(http.get("port"), int) and http["port"] != _frag_value(frag, "kubernetes.target_port", None):
                put(frag, "readiness.port", Sourced(http["port"], key_origin(http, "port", file)))
        elif isinstance(probe.get("grpc"), YMap):
            put(frag, "readiness", {})
        else:
            reader.skip(node_origin(probe, file), "readinessProbe", "unsupported",
                        "lbgen models httpGet and grpc readiness probes")
        for key, spec_key in (("periodSeconds", "period_seconds"), ("timeoutSeconds", "timeout_seconds"),
                              ("failureThreshold", "failure_threshold")):
            if isinstance(probe.get(key), int):
                put(frag, f"readiness.{spec_key}", Sourced(probe[key], key_origin(probe, key, file)))


def _frag_value(frag: Fragment, path: str, default: object) -> object:
    node: object = frag
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node.value if isinstance(node, Sourced) else default


# --- kube-proxy --------------------------------------------------------------------------


def _kube_proxy(reader: _Reader, obj: YMap, file: str, tier: Fragment) -> None:
    data = obj.get("data")
    if not isinstance(data, YMap) or "config.conf" not in data:
        reader.skip(node_origin(obj, file), "ConfigMap kube-proxy", "unsupported",
                    "the ConfigMap has no data.config.conf (kubeadm's layout)")
        return
    text = str(data["config.conf"])
    line, _ = data.values_at["config.conf"]
    # a block scalar's content starts on the line after `config.conf: |`
    docs = load_documents(text, file, "kube-proxy config.conf")
    indent = data.keys_at["config.conf"][1] + 2
    for doc in docs:
        if isinstance(doc, YMap):
            _kube_proxy_config(reader, doc, file, tier, int(line) + 1, indent)


def _kube_proxy_config(reader: _Reader, conf: YMap, file: str, tier: Fragment, line0: int, col0: int) -> None:
    def at(node: Any, key: str, of_key: bool = False) -> Origin:
        origin = key_position(node, key, file) if of_key else key_origin(node, key, file)
        return Origin(file, origin.line + line0, origin.column + col0)

    known = {"apiVersion", "kind", "clientConnection", "clusterCIDR", "mode", "ipvs", "iptables", "nftables",
             "conntrack"}
    for key in conf:
        if key not in known:
            reader.skip(at(conf, key, True), f"config.conf {key}", "out-of-scope",
                        f"kube-proxy {key} is not part of lbgen's spec")
    mode = conf.get("mode") or "iptables"
    if conf.get("mode"):
        put(tier, "kube_proxy.mode", Sourced(str(conf["mode"]), at(conf, "mode")))
    cidr = conf.get("clusterCIDR")
    if isinstance(cidr, str):
        put(tier, "kube_proxy.cluster_cidrs",
            Sourced([c.strip() for c in cidr.split(",") if c.strip()], at(conf, "clusterCIDR")))
    section = conf.get(mode)
    if isinstance(section, YMap):
        for key, spec_key in (("syncPeriod", "sync_period"), ("minSyncPeriod", "min_sync_period")):
            if key in section:
                put(tier, f"kube_proxy.{spec_key}", Sourced(_go(section[key]), at(section, key)))
        if mode == "ipvs":
            for key, spec_key in (("scheduler", "scheduler"), ("tcpTimeout", "tcp_timeout"),
                                  ("tcpFinTimeout", "tcp_fin_timeout"), ("udpTimeout", "udp_timeout"),
                                  ("strictARP", "strict_arp")):
                if key in section and section[key] not in ("", None):
                    value = section[key] if key in ("scheduler", "strictARP") else _go(section[key])
                    put(tier, f"kube_proxy.ipvs.{spec_key}", Sourced(value, at(section, key)))
    conntrack = conf.get("conntrack")
    if isinstance(conntrack, YMap):
        for key, spec_key in (("maxPerCore", "max_per_core"), ("min", "min"),
                              ("tcpEstablishedTimeout", "tcp_established_timeout"),
                              ("tcpCloseWaitTimeout", "tcp_close_wait_timeout")):
            if key in conntrack and conntrack[key] is not None:
                value = conntrack[key] if key in ("maxPerCore", "min") else _go(conntrack[key])
                put(tier, f"kube_proxy.conntrack.{spec_key}", Sourced(value, at(conntrack, key)))


def _go(value: object) -> object:
    """A Go duration (`30s`, `1h0m0s`, `86400s`) as a spec duration string."""
    text = str(value)
    total = 0
    parts = re.findall(r"([0-9.]+)(h|ms|m|s)", text)
    if not parts:
        return text
    for number, unit in parts:
        total += round(float(number) * {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}[unit])
    return duration_text(Duration(total))
