"""`lbgen audit`'s runbook and JSON output (called by lbgen.cli).

The audited path's runbook comes from the render's runbook builder (lbgen.render.summary),
given the names the audited files use; lbgen.audit itself never imports a renderer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lbgen.errors import SourceLocation, shown_source_name

if TYPE_CHECKING:
    from lbgen.audit import AuditResult
    from lbgen.importer.sources import Named, Origin, Sourced
    from lbgen.render.summary import Command, Runbook, RunbookNames

MAX_LISTED = 10
_KINDS = {"upstream": "nginx upstream", "server": "nginx server", "kong-service": "Kong service",
          "kong-upstream": "Kong upstream", "target": "Kong target", "service": "Service",
          "headless-service": "headless Service", "service-port": "Service port"}


def audited_names(result: AuditResult) -> RunbookNames:
    """What the audited files call each object of the imported path, and where each is."""
    from lbgen.render.summary import ObjectRef, RunbookNames, ServiceNames, TierNames

    imported = result.imported
    spec = imported.loaded.spec
    origins = imported.origins

    def ref(named: Named) -> ObjectRef:
        # names and paths come from the audited files: shown as lbgen shows file names, so an
        # unprintable character cannot reach the terminal
        return ObjectRef(shown_source_name(named.name), _where(named.origin))

    def shown(named: Named) -> str:
        return ref(named).shown(_KINDS[named.kind])

    services: dict[str, ServiceNames] = {}
    for index, service in enumerate(spec.services):
        key = f"{service.namespace}/{service.name}"
        objects = imported.service_objects.get(key, [])
        slices = [ref(n) for n in objects if n.kind in ("service", "headless-service")]
        shown_objects = [shown(n) for n in objects]
        if not slices:
            # the Service's name, namespace and selector are then lbgen's defaults, not the cluster's
            slices = [ObjectRef(service.name, "derived, no manifest audited")]
            shown_objects.append("no Kubernetes manifest audited: the namespace, Service name and selector below "
                                 "are derived (pass the manifests with --k8s)")
        port = next((n for n in objects if n.kind == "service-port"), None)
        upstream = next((n for n in objects if n.kind == "kong-upstream"), None)
        target = next((n for n in objects if n.kind == "target"), None)
        replicas = origins.get(f"services[{index}].replicas")
        services[key] = ServiceNames(
            endpoint_services=slices,
            port_name=port.name if port is not None else "",
            kong_upstream=ref(upstream) if upstream is not None else None,
            front_target=ref(target) if target is not None else None,
            replicas_origin=_origin_text(replicas),
            objects=shown_objects,
        )
    tiers: dict[str, TierNames] = {}
    for index, tier in enumerate(spec.tiers):
        if tier.kind not in ("nginx_http", "nginx_stream"):
            continue
        address = origins.get(f"tiers[{index}].instances[0].address")
        note = ""
        if address is not None and address.assumed and address.note.startswith("default"):
            note = (f"The files do not say where `{tier.name}` runs: its addresses below are placeholders "
                    f"({address.note.removeprefix('default: ')}).")
        files = imported.tier_files.get(tier.name, [])
        located = [f"{f.code} at {_where(f.location)}" for f in result.report.findings if f.location.file in files]
        if located:
            note += (" " if note else "") + f"The findings in these files ({', '.join(located)}) hold for an " \
                "instance only if what it loaded matches them."
        tiers[tier.name] = TierNames([shown_source_name(f) for f in files], [shown(n) for n in imported.tier_objects.get(tier.name, [])], note)
    mode = origins.get(f"tiers[{len(spec.tiers) - 1}].kube_proxy.mode")
    return RunbookNames(services, tiers, kube_proxy=_where(mode.origin) if mode is not None and mode.origin else None,
                        audited=True)


def _where(origin: Origin | SourceLocation) -> str:
    return f"{shown_source_name(origin.file)}:{origin.line}:{origin.column}"


def _origin_text(value: Sourced[object] | None) -> str:
    if value is None:
        return ""
    if value.origin is not None:
        return _where(value.origin)
    return f"assumed, {value.note}" if value.note else "assumed"


def audit_runbook(result: AuditResult) -> Runbook:
    from lbgen.render.summary import path_runbook

    return path_runbook(result.imported.loaded.spec, audited_names(result))


def runbook_to_data(runbook: Runbook) -> dict[str, Any]:
    """The runbook as JSON data (`lbgen audit --format json`'s `runbook`)."""
    def steps(commands: list[Command]) -> list[dict[str, str]]:
        return [{"title": c.title, "shell": c.shell, "expect": c.expect} for c in commands]

    return {
        "services": [{"service": s.key, "objects": list(s.objects), "steps": steps(s.commands)}
                     for s in runbook.services],
        "other_services": list(runbook.other_services),
        "sections": [{"title": s.title, "intro": s.intro, "steps": steps(s.commands)} for s in runbook.sections],
    }


def runbook_to_text(runbook: Runbook) -> str:
    """The runbook for a terminal: each step's title, its shell text indented, what to expect."""
    out = [("runbook for the audited path (commands name the audited files' objects; run them where "
            "the path runs):\n")]

    def steps(commands: list[Command]) -> None:
        for command in commands:
            out.append(f"  {command.title}:\n")
            out.extend(f"    {line}\n" for line in command.shell.splitlines())
            if command.expect:
                out.append(f"    expect: {command.expect}\n")

    for service in runbook.services:
        out.append(f"\nservice {service.key}" + (f": {', '.join(service.objects)}" if service.objects else "") + "\n")
        steps(service.commands)
    others = runbook.other_services
    if others:
        listed = ", ".join(others[:MAX_LISTED]) + (f" and {len(others) - MAX_LISTED} more (--format json "
                                                  "lists them all)" if len(others) > MAX_LISTED else "")
        out.append(f"\nthe same steps apply to the other {len(others)} service(s), with their names: {listed}\n")
    for section in runbook.sections:
        out.append(f"\n{section.title}\n  {section.intro}\n")
        steps(section.commands)
    return "".join(out)


def audit_json(result: AuditResult) -> str:
    """`lbgen audit --format json`: `validate`'s JSON report (findings, skipped, suppressed)
    and the audited path's `runbook` (runbook_to_data)."""
    import json

    from lbgen.report import _dumps, report_to_json

    data = json.loads(report_to_json(result.report))
    data["runbook"] = runbook_to_data(audit_runbook(result))
    return _dumps(data)  # the report's own JSON writer (it escapes what a terminal would misread)
