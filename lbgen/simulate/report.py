"""Text and JSON output of `lbgen simulate` (one spec, or two side by side)."""

from __future__ import annotations

import json

from lbgen.simulate import Band, Result, result_json

BAR = 30
SCHEMA = "lbgen-simulate/1"


def _pct(band: Band) -> str:
    return f"{band.median * 100:5.1f}% [{band.p5 * 100:.1f}-{band.p95 * 100:.1f}]"


def _num(band: Band, digits: int = 2) -> str:
    return f"{band.median:.{digits}f} [{band.p5:.{digits}f}-{band.p95:.{digits}f}]"


def _bar(share: float, top: float) -> str:
    return "█" * max(0, round(share / top * BAR)) if top > 0 else ""


def _head(r: Result) -> str:
    s = r.settings
    load = "closed loop" if s.rate is None else f"{s.rate:g} req/s"
    return (f"{r.spec}: {r.service}, {r.pods} pods; {load} for {s.duration_s:g}s from {s.clients} clients x "
            f"{s.connections_per_client} connection(s); {s.trials} trials, seed {s.seed}")


def _summary_lines(r: Result) -> list[str]:
    return [
        f"max/mean {_num(r.max_mean)}   min/mean {_num(r.min_mean)}   CV {_num(r.cv)}",
        f"pods used {_num(r.pods_used, 0)} of {r.pods}",
    ]


def _event_lines(r: Result) -> list[str]:
    out = []
    for e in r.events:
        def reach(band: Band | None, share: float) -> str:
            if band is None:
                return "never within the run"
            tail = "" if share == 1 else f" ({share * 100:.0f}% of trials)"
            return f"{band.median:g}s [{band.p5:g}-{band.p95:g}]{tail}"
        out.append(f"scale {e.service} +{e.add} at {e.at_s:g}s: 50% of fair share after {reach(e.to_50, e.reached_50)}, "
                   f"90% after {reach(e.to_90, e.reached_90)}")
    return out


def to_text(r: Result) -> str:
    top = max(b.median for b in r.shares) or 1.0
    lines = [_head(r), "share of requests per pod, busiest first: median [5-95 % over trials]; open connections"]
    if r.window_s[0] > 0:
        lines[-1] += f" (from {r.window_s[0]:g}s, after the last scale event)"
    for i, (share, opened) in enumerate(zip(r.shares, r.open_connections, strict=True)):
        lines.append(f"  pod {i + 1:>3} {_bar(share.median, top):<{BAR}} {_pct(share):<22} conns {opened.median:g}")
    lines += ["  " + line for line in _summary_lines(r)]
    lines += ["  " + line for line in _event_lines(r)]
    lines.append("why:")
    lines += [f"  - {line}" for line in r.why]
    lines += [f"  - {f['code']} ({f['name']}) at {f['path']}" for f in r.rules]
    if r.approximations:
        lines.append("approximated:")
        lines += [f"  - {a}" for a in r.approximations]
    return "\n".join(lines) + "\n"


def compare_text(a: Result, b: Result) -> str:
    top = max(x.median for x in (*a.shares, *b.shares)) or 1.0
    width = BAR + 24
    lines = [f"A  {_head(a)}", f"B  {_head(b)}", "share of requests per pod, busiest first: median [5-95 %]",
             f"  {'':8} {'A ' + a.spec:<{width}} {'B ' + b.spec}"]
    for i in range(max(a.pods, b.pods)):
        cells = []
        for r in (a, b):
            if i < r.pods:
                share = r.shares[i]
                cells.append(f"{_bar(share.median, top):<{BAR}} {_pct(share):<22}")
            else:
                cells.append(" " * width)
        lines.append(f"  pod {i + 1:>3} {cells[0]:<{width}} {cells[1]}".rstrip())
    rows = (("max/mean", a.max_mean, b.max_mean, 2), ("min/mean", a.min_mean, b.min_mean, 2),
            ("CV", a.cv, b.cv, 2), ("pods used", a.pods_used, b.pods_used, 0))
    for label, x, y, digits in rows:
        lines.append(f"  {label:<9}    {_num(x, digits):<{width}} {_num(y, digits)}")
    for tag, r in (("A", a), ("B", b)):
        for line in _event_lines(r):
            lines.append(f"  {tag}: {line}")
    for tag, r in (("A", a), ("B", b)):
        lines.append(f"why ({tag} {r.spec}):")
        lines += [f"  - {line}" for line in r.why]
        lines += [f"  - {f['code']} ({f['name']}) at {f['path']}" for f in r.rules]
    approximations = sorted({*a.approximations, *b.approximations})
    if approximations:
        lines.append("approximated:")
        lines += [f"  - {x}" for x in approximations]
    return "\n".join(lines) + "\n"


def to_json(results: list[Result]) -> str:
    return json.dumps({"schema": SCHEMA, "results": [result_json(r) for r in results]}, indent=2,
                      sort_keys=True) + "\n"


__all__ = ["SCHEMA", "compare_text", "to_json", "to_text"]
