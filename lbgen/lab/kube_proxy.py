"""The Service as kube-proxy writes it, for the lab's namespace.

iptables mode follows pkg/proxy/iptables/proxier.go (kubernetes v1.33): chains
`KUBE-SERVICES` → `KUBE-SVC-<hash>` → `KUBE-SEP-<hash>`, where `<hash>` is the first 16
characters of base32(sha256(servicePortName + protocol [+ endpoint])); endpoint i of n is
chosen by `-m statistic --mode random --probability 1/(n-i)` printed with `%0.10f` (the last
endpoint has no statistic match), and `sessionAffinity: ClientIP` adds, before them, one
`-m recent --name KUBE-SEP-… --rcheck --seconds T --reap` jump per endpoint, and a
`-m recent --name KUBE-SEP-… --set` on each endpoint's DNAT rule.

nftables mode follows pkg/proxy/nftables/proxier.go: a `services` chain dispatching on
`ip daddr . meta l4proto . th dport` through the `service-ips` map, a `service-<hash8>-…`
chain per service port choosing an endpoint with `numgen random mod N vmap`, and one
`endpoint-<hash8>-…` chain per endpoint with its `dnat to`. ClientIP affinity uses one
`affinity-<hash8>-…` set per endpoint with the affinity timeout.

What the lab leaves out (no traffic leaves a node here): the masquerade marks
(`KUBE-MARK-MASQ`, `KUBE-POSTROUTING`), node ports, health-check and firewall chains. The
chains are hooked into `nat OUTPUT` only, because every caller runs in the same namespace
(kube-proxy also hooks PREROUTING for traffic from other machines).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceRules:
    name: str
    """`namespace/name:port-name` as kube-proxy's servicePortName (port name `http`)."""
    cluster_ip: str
    port: int
    endpoints: tuple[tuple[str, int], ...]
    affinity_s: int | None


def _hash(text: str, length: int) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:length]


def _nft_name(text: str) -> str:
    # kube-proxy's names hold `/` and `:` (`service-HASH-ns/name/tcp/port`); nft 1.0.6 (Debian 12)
    # rejects them in names, so the lab spells them with `-`.
    return re.sub(r"[^A-Za-z0-9_]", "-", text)


def svc_chain(service: ServiceRules) -> str:
    return "KUBE-SVC-" + _hash(service.name + "tcp", 16)


def sep_chain(service: ServiceRules, endpoint: tuple[str, int]) -> str:
    return "KUBE-SEP-" + _hash(service.name + "tcp" + f"{endpoint[0]}:{endpoint[1]}", 16)


def iptables_restore(services: tuple[ServiceRules, ...], *, hook: bool = True) -> str:
    """The `nat` table for `iptables-restore --noflush` (applied inside the lab's namespace only).

    Every chain it declares is flushed and rewritten, as kube-proxy's own resync does; `hook`
    adds the OUTPUT jump (once: OUTPUT itself is not rewritten)."""
    chains = ["KUBE-SERVICES"]
    rules = ['-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'] if hook else []
    for service in services:
        svc = svc_chain(service)
        chains.append(svc)
        rules.append(
            f'-A KUBE-SERVICES -d {service.cluster_ip}/32 -p tcp -m comment --comment '
            f'"{service.name} cluster IP" -m tcp --dport {service.port} -j {svc}'
        )
        seps = [sep_chain(service, endpoint) for endpoint in service.endpoints]
        chains.extend(seps)
        if service.affinity_s is not None:
            for endpoint, sep in zip(service.endpoints, seps, strict=True):
                rules.append(
                    f'-A {svc} -m comment --comment "{service.name} -> {endpoint[0]}:{endpoint[1]}" '
                    f"-m recent --name {sep} --mask 255.255.255.255 --rsource --rcheck "
                    f"--seconds {service.affinity_s} --reap -j {sep}"
                )
        n = len(service.endpoints)
        for i, (endpoint, sep) in enumerate(zip(service.endpoints, seps, strict=True)):
            comment = f'-m comment --comment "{service.name} -> {endpoint[0]}:{endpoint[1]}"'
            chance = "" if i == n - 1 else f" -m statistic --mode random --probability {1.0 / (n - i):0.10f}"
            rules.append(f"-A {svc} {comment}{chance} -j {sep}")
        for endpoint, sep in zip(service.endpoints, seps, strict=True):
            recent = (
                f" -m recent --name {sep} --mask 255.255.255.255 --rsource --set"
                if service.affinity_s is not None else ""
            )
            rules.append(
                f'-A {sep} -p tcp -m comment --comment "{service.name}"{recent} '
                f"-m tcp -j DNAT --to-destination {endpoint[0]}:{endpoint[1]}"
            )
    head = ["*nat"] + [f":{chain} - [0:0]" for chain in chains]
    return "\n".join(head + rules + ["COMMIT", ""])


def nft_ruleset(services: tuple[ServiceRules, ...]) -> str:
    """The `ip kube-proxy` table for `nft -f` (applied inside the lab's namespace only)."""
    lines = ["table ip kube-proxy {"]
    elements: list[str] = []
    chains: list[str] = []
    sets: list[str] = []
    for service in services:
        base = f"{_hash(service.name + 'tcp', 8)}-{_nft_name(service.name)}-tcp"
        svc = f"service-{base}"
        elements.append(f"{service.cluster_ip} . tcp . {service.port} : goto {svc}")
        endpoints = [
            ((f"endpoint-{_hash(service.name + 'tcp' + f'{ip}:{port}', 8)}-"
             f"{_nft_name(service.name)}-tcp--{_nft_name(ip)}-{port}"), ip, port)
            for ip, port in service.endpoints
        ]
        body = []
        if service.affinity_s is not None:
            for chain, _, _ in endpoints:
                affinity = chain.replace("endpoint-", "affinity-", 1)
                sets.append(f'\tset {affinity} {{ type ipv4_addr; flags dynamic,timeout; '
                            f"timeout {service.affinity_s}s; }}")
                body.append(f"\t\tip saddr @{affinity} goto {chain}")
        verdicts = ", ".join(f"{i} : goto {chain}" for i, (chain, _, _) in enumerate(endpoints))
        body.append(f"\t\tnumgen random mod {len(endpoints)} vmap {{ {verdicts} }}")
        chains.append(f"\tchain {svc} {{\n" + "\n".join(body) + "\n\t}")
        for chain, ip, port in endpoints:
            update = ""
            if service.affinity_s is not None:
                update = f"\t\tupdate @{chain.replace('endpoint-', 'affinity-', 1)} {{ ip saddr }}\n"
            chains.append(f"\tchain {chain} {{\n{update}\t\tmeta l4proto tcp dnat to {ip}:{port}\n\t}}")
    lines.append("\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n"
                 f"\t\telements = {{ {', '.join(elements)} }}\n\t}}")
    lines.extend(sets)
    lines.append("\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n"
                 "\t\tjump services\n\t}")
    lines.append("\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t}")
    lines.extend(chains)
    lines.append("}")
    return "\n".join(lines) + "\n"
