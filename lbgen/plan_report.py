"""`lbgen plan` and `lbgen explain HOP.SETTING`: the resolved plan as text or JSON.

Each setting is shown with its value, origin and source, the rendered file and line that
set it, and the rules that read it (`Rule.reads`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from msgspec import Struct

from lbgen.model.types import Duration
from lbgen.plan.hops import HopPlan, Plan, Setting
from lbgen.rules._base import Rule


class Line(Struct, frozen=True):
    """Where a rendered file sets a value: `edge/conf.d/seed.conf:19`."""

    path: str
    number: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.number}"


def rendered_line(hop: HopPlan, setting: Setting, files: Mapping[str, str]) -> Line | None:
    """The first line of the hop's rendered files that sets `setting` (None: not written,
    so the product's own default applies, or the value is not a config line)."""
    if hop.tier_index is None or not setting.directive:
        return None
    paths = [setting.file] if setting.file else sorted(p for p in files if p.startswith(f"{hop.name}/"))
    for path in paths:
        lines = files.get(path, "").splitlines()
        start, end = 0, len(lines)
        if setting.anchor:
            start = next((i for i, line in enumerate(lines) if setting.anchor in line), len(lines))
            if setting.in_item and start < len(lines):
                start, end = _yaml_item(lines, start)
        for index in range(start, end):
            if setting.sets_it(lines[index]):
                return Line(path, index + 1, lines[index].strip())
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _yaml_item(lines: list[str], anchor: int) -> tuple[int, int]:
    """The line range of the block-style YAML list item holding line `anchor` (its keys are
    sorted, so the anchor `name:` need not come first)."""
    start = anchor
    while start > 0 and not lines[start].lstrip().startswith("- "):
        start -= 1
    depth = _indent(lines[start])
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > depth):
        end += 1
    return start, end


def _unwritten(setting: Setting) -> str:
    """Why no rendered line sets a value."""
    if setting.value.origin in ("product default", "not in this version"):
        return f"not written ({setting.directive} left at the product's default)"
    return f"no {setting.directive} line in the rendered files"


def readers(hop: HopPlan, setting: Setting, rules: Sequence[Rule]) -> list[Rule]:
    return [rule for rule in rules if rule.reads_setting(hop.kind, setting.key)]


def _value(value: object) -> Any:
    if isinstance(value, Duration):
        return str(value)
    if isinstance(value, tuple):
        return [_value(v) for v in value]
    return value


def _shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value) or "off"
    return str(value)


def _capabilities(hop: HopPlan) -> dict[str, bool]:
    return {
        "pools_upstream": hop.pools_upstream,
        "sends_proxy_protocol": hop.sends_proxy_protocol,
        "dials_pods": hop.dials_pods,
    }


def _setting_json(hop: HopPlan, setting: Setting, files: Mapping[str, str], rules: Sequence[Rule]) -> dict[str, Any]:
    line = rendered_line(hop, setting, files)
    resolved = setting.value
    return {
        "key": setting.key,
        "title": setting.title,
        "value": _value(resolved.value),
        "origin": resolved.origin,
        "source": resolved.source,
        "reasoning": resolved.reasoning,
        "directive": setting.directive,
        "rendered": None if line is None else {"file": line.path, "line": line.number, "text": line.text},
        "depends": setting.depends,
        "read_by": [rule.code for rule in readers(hop, setting, rules)],
    }


def plan_to_json(plan: Plan, files: Mapping[str, str], rules: Sequence[Rule]) -> str:
    hops = [
        {
            "name": hop.name,
            "kind": hop.kind,
            "protocol_out": hop.protocol_out,
            "client_address": hop.client_address,
            "capabilities": _capabilities(hop),
            "targets": [
                {"kind": t.kind, "name": t.name, "host": t.host, "port": t.port} for t in hop.targets
            ],
            "settings": [_setting_json(hop, s, files, rules) for s in hop.settings()],
        }
        for hop in plan.hops
    ]
    return json.dumps({"hops": hops}, indent=2, ensure_ascii=False) + "\n"


def plan_to_text(plan: Plan, files: Mapping[str, str], rules: Sequence[Rule]) -> str:
    out: list[str] = []
    for number, hop in enumerate(plan.hops, 1):
        flags = [name.replace("_", " ") for name, on in _capabilities(hop).items() if on]
        out.append(f"{number}. {hop.name} ({hop.kind}) → speaks {hop.protocol_out}"
                   + (f"; {', '.join(flags)}" if flags else ""))
        out.append(f"   client address: {hop.client_address}")
        if hop.targets:
            shown = ", ".join(
                f"{t.host}:{t.port}" if t.port else t.host for t in hop.targets[:4]
            ) + (f", … {len(hop.targets) - 4} more" if len(hop.targets) > 4 else "")
            out.append(f"   targets: {shown}")
        for setting in hop.settings():
            out.extend(_setting_lines(hop, setting, files, rules, indent="   "))
        out.append("")
    return "\n".join(out)


def _setting_lines(
    hop: HopPlan, setting: Setting, files: Mapping[str, str], rules: Sequence[Rule], *, indent: str
) -> list[str]:
    resolved = setting.value
    lines = [f"{indent}{setting.key} = {_shown(resolved.value)}  [{resolved.origin}]  {setting.title}"]
    if resolved.source:
        lines.append(f"{indent}    source: {resolved.source}")
    if resolved.reasoning:
        lines.append(f"{indent}    why: {resolved.reasoning}")
    line = rendered_line(hop, setting, files)
    if line is not None:
        lines.append(f"{indent}    rendered: {line}  {line.text}")
    elif setting.directive and hop.tier_index is not None:
        lines.append(f"{indent}    rendered: {_unwritten(setting)}")
    read_by = readers(hop, setting, rules)
    if read_by:
        lines.append(f"{indent}    read by: {', '.join(rule.code for rule in read_by)}")
    return lines


class UnknownSettingError(LookupError):
    """`lbgen explain HOP.SETTING` named no hop or no setting of that hop."""


def find_setting(plan: Plan, ref: str) -> tuple[HopPlan, Setting]:
    """`gateway.upstream_keepalive.idle_timeout` → (the gateway hop, that setting)."""
    for hop in plan.hops:
        prefix = f"{hop.name}."
        if ref.startswith(prefix):
            key = ref[len(prefix):]
            setting = hop.setting(key)
            if setting is None:
                known = ", ".join(s.key for s in hop.settings())
                raise UnknownSettingError(f"hop {hop.name} has no setting {key!r}; it has: {known}")
            return hop, setting
    names = ", ".join(hop.name for hop in plan.hops)
    raise UnknownSettingError(f"no hop named in {ref!r}; the hops are: {names}")


def explain_setting(
    hop: HopPlan, setting: Setting, files: Mapping[str, str], rules: Sequence[Rule]
) -> str:
    """Which value it is, where it comes from, and what depends on it."""
    resolved = setting.value
    out = [
        f"{hop.name}.{setting.key}: {setting.title} of {hop.name} ({hop.kind})",
        f"  value: {_shown(resolved.value)}",
        f"  origin: {resolved.origin}" + (
            " (the spec sets it)" if resolved.origin == "set" else ""
        ),
    ]
    if resolved.source:
        out.append(f"  source: {resolved.source}")
    if resolved.reasoning:
        out.append(f"  why: {resolved.reasoning}")
    if setting.directive:
        out.append(f"  product setting: {setting.directive}")
    line = rendered_line(hop, setting, files)
    if line is not None:
        out.append(f"  rendered: {line}: {line.text}")
    elif setting.directive and hop.tier_index is not None:
        out.append(f"  rendered: {_unwritten(setting)}")
    if setting.depends:
        out.append(f"  depends on it: {setting.depends}")
    read_by = readers(hop, setting, rules)
    if read_by:
        out.append("  rules that read it:")
        out += [f"    {rule.code} {rule.name}: {rule.summary}" for rule in read_by]
    return "\n".join(out) + "\n"


__all__ = [
    "Line",
    "UnknownSettingError",
    "explain_setting",
    "find_setting",
    "plan_to_json",
    "plan_to_text",
    "readers",
    "rendered_line",
]
