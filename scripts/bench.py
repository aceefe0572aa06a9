#!/usr/bin/env python3
"""Print lbgen's performance figures against the targets of issues #2 and #3.

Run from the repository root: `python3 scripts/bench.py` (add `--quick` for 1 run each).
Figures are printed, never asserted: a timed unit test would be flaky on a shared machine.

1. Cold `lbgen render` of examples/seed.yaml vs `python -c "import pydantic, jinja2,
   ruamel.yaml, click; from pydantic import BaseModel"` in CPU time (user + system of the
   process; target: ≤ 1.5×), and cold `lbgen --version`, `rules` and `explain` against the
   same baseline; also the floor: importing render's modules and doing nothing. Medians of
   interleaved runs, so that load on a shared machine hits both.
2. Rendering a generated spec of 1,000 services × 8 pods (load + spec schema validation +
   rules + every tier) vs reading everything it wrote back with the fastest real parsers:
   `nginx -t` for nginx files, PyYAML's C loader for YAML (target: ≤ 3×).
3. 10,000 services vs 1,000 (target: ≤ 11×: linear).
4. All rules over the 1,000-service spec vs gixy-ng on an nginx.conf with 1,000 upstreams
   × 8 servers (target: rules faster).
5. `lbgen simulate` of examples/seed-as-advised.yaml and seed-fixed.yaml: 60 s at 5,000
   requests/s, 20 trials (target: < 3 s), and at 50,000 requests/s (target: ≤ 11× the time:
   linear in requests × trials). Wall and CPU time of the simulation in process, the two
   rates interleaved, medians (`--simulate-only` runs just this).
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def generated_spec(services: int, pods: int = 8) -> dict[str, Any]:
    """The seed path with `services` services of `pods` pods each."""
    presets = ["uvicorn", "gunicorn", "go", "tomcat", "spring-boot"]
    return {
        "name": "bench",
        "tiers": [
            {"kind": "nginx_http", "name": "edge", "version": "1.30.0",
             "instances": [{"name": f"edge-{i}", "address": f"10.10.0.{10 + i}"} for i in range(2)]},
            {"kind": "nginx_stream", "name": "l4", "version": "1.30.0", "load_module": True,
             "instances": [{"name": f"l4-{i}", "address": f"10.20.0.{10 + i}"} for i in range(2)],
             "listen_port": 8000},
            {"kind": "kong", "name": "gateway", "version": "3.10",
             "instances": [{"name": f"kong-{i}", "address": f"10.30.0.{10 + i}"} for i in range(2)],
             "real_ip": {"header": "X-Forwarded-For", "recursive": True,
                         "trusted_ips": ["10.10.0.0/24", "10.20.0.0/24"]}},
            {"kind": "kubernetes", "name": "cluster", "version": "1.33", "platform": "self-managed",
             "kube_proxy": {"mode": "nftables"}, "node_kernel": "6.1"},
        ],
        "services": [
            {"name": f"svc-{i:05d}", "namespace": f"ns-{i % 50:02d}", "replicas": pods,
             "app": {"preset": presets[i % len(presets)]},
             "route": {"paths": [f"/svc-{i:05d}"]},
             "kubernetes": {"port": 80, "target_port": 8080},
             "readiness": {"path": "/healthz"}}
            for i in range(services)
        ],
    }


IMPORTS_ONLY = (
    "import gc, os; gc.disable(); os.environ['PYDANTIC_DISABLE_PLUGINS'] = '__all__'; "
    "import lbgen.cli, lbgen.io.loader, lbgen.rules, lbgen.render, lbgen.report, lbgen.output"
)
"""The imports of `lbgen render`, as lbgen/__main__.py starts them (gc off, no plugins)."""


def timed(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


# Measure as installed software runs: with bytecode caches. (Some sandboxes export
# PYTHONDONTWRITEBYTECODE=1, which recompiles every lbgen module on every start.)
BENCH_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(cmd: list[str], **kwargs: Any) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=BENCH_ENV, **kwargs)


def cpu_time(cmd: list[str]) -> float:
    """User + system CPU seconds of one run of `cmd` (wall time depends on other load)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run(cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cold_starts(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Median CPU time per command; the commands run interleaved, `runs` rounds."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            samples[name].append(cpu_time(cmd))
    return {name: statistics.median(values) for name, values in samples.items()}


def write_spec(path: Path, services: int) -> None:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=False)
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(generated_spec(services), handle)


def render_in_process(spec_path: Path, out_dir: Path) -> dict[str, str]:
    import lbgen
    from lbgen.output import write_tree

    loaded = lbgen.load(spec_path)
    lbgen.validate(loaded)
    files = lbgen.render(loaded)
    write_tree(files, out_dir, replace_foreign=True)
    return files


def read_back(out_dir: Path, nginx: str | None) -> None:
    import yaml

    loader = yaml.CSafeLoader
    for path in sorted(out_dir.rglob("*.yaml")):
        list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader))
    if nginx:
        from lbgen.verify.nginx import verify

        files = {str(p.relative_to(out_dir)): p.read_text(encoding="utf-8")
                 for p in out_dir.rglob("*") if p.is_file() and p.suffix == ".conf"}
        results = verify(files, None)
        failed = [r for r in results if r.status == "failed"]
        if failed:
            raise SystemExit(f"nginx -t failed on benchmark output: {failed[0]}")


def gixy_conf(path: Path, upstreams: int, servers: int) -> None:
    lines = ["events {}", "http {"]
    for u in range(upstreams):
        lines.append(f"  upstream u{u} {{")
        lines += [f"    server 10.{u // 250}.{u % 250}.{s + 1}:8080;" for s in range(servers)]
        lines.append("  }")
    lines.append("  server {")
    lines.append("    listen 80;")
    lines += [f"    location /u{u} {{ proxy_pass http://u{u}; }}" for u in range(upstreams)]
    lines += ["  }", "}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run per measurement")
    parser.add_argument("--simulate-only", action="store_true", help="only measurement 5")
    parser.add_argument("--pairs", type=int, default=3, help="interleaved pairs of simulate runs (measurement 5)")
    args = parser.parse_args()
    if args.simulate_only:
        simulate_figures(1 if args.quick else args.pairs)
        return
    runs = 1 if args.quick else 5
    gc.disable()  # as the `lbgen` command does (lbgen/__main__.py)
    python = sys.executable
    lbgen_cli = [python, "-m", "lbgen"]
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)

        # 1. Cold start (one untimed run first, so bytecode and template caches exist).
        render_seed = [*lbgen_cli, "render", str(REPO / "examples/seed.yaml"), "-o", str(tmp / "seed-out"),
                       "--force"]
        run(render_seed)
        cold = cold_starts({
            "baseline": [python, "-c", "import pydantic, jinja2, ruamel.yaml, click; from pydantic import BaseModel"],
            "render": render_seed,
            "--version": [*lbgen_cli, "--version"],
            "rules": [*lbgen_cli, "rules"],
            "explain": [*lbgen_cli, "explain", "LB101"],
            # What the render cannot go below without leaving the stack: importing lbgen's
            # modules (the 42 model classes, the rules, the renderers), nothing run.
            "imports": [python, "-c", IMPORTS_ONLY],
        }, 1 if args.quick else 9)
        baseline = cold["baseline"]
        print(f"1. cold render seed: {cold['render'] * 1000:.0f} ms CPU; imports baseline "
              f"{baseline * 1000:.0f} ms CPU; ratio {cold['render'] / baseline:.2f}x (target <= 1.5x)")
        print("   cold " + "; ".join(f"lbgen {name}: {cold[name] * 1000:.0f} ms ({cold[name] / baseline:.2f}x)"
                                     for name in ("--version", "rules", "explain")))
        print(f"   floor: importing lbgen's modules, nothing loaded, built or rendered: "
              f"{cold['imports'] * 1000:.0f} ms ({cold['imports'] / baseline:.2f}x)")

        # 2. and 3. Scale.
        figures = {}
        for services in (1_000, 10_000):
            spec_path = tmp / f"bench-{services}.yaml"
            write_spec(spec_path, services)
            out_dir = tmp / f"out-{services}"
            render_once = functools.partial(render_in_process, spec_path, out_dir)
            figures[services] = timed(render_once, 1 if services > 1000 else runs)
            if services == 1_000:
                reading = timed(functools.partial(read_back, out_dir, nginx), runs)
                print(f"2. render 1,000 services x 8 pods: {figures[services]:.2f} s; read back "
                      f"(PyYAML CSafeLoader + nginx -t{'' if nginx else ' SKIPPED: no nginx'}): "
                      f"{reading:.2f} s; ratio {figures[services] / reading:.2f}x (target <= 3x)")
        print(f"3. render 10,000 services: {figures[10_000]:.2f} s; ratio to 1,000: "
              f"{figures[10_000] / figures[1_000]:.2f}x (target <= 11x)")

        # 4. Rules vs gixy-ng.
        import lbgen

        loaded = lbgen.load(tmp / "bench-1000.yaml")
        rules_time = timed(lambda: lbgen.validate(loaded), runs)
        conf = tmp / "gixy" / "nginx.conf"
        conf.parent.mkdir()
        gixy_conf(conf, 1_000, 8)
        gixy = shutil.which("gixy")
        if gixy is None:
            print(f"4. rules over 1,000 services: {rules_time * 1000:.0f} ms; gixy-ng SKIPPED (not installed)")
        else:
            gixy_time = timed(lambda: subprocess.run([gixy, str(conf)], stdout=subprocess.DEVNULL,
                                                     stderr=subprocess.DEVNULL, check=False), 1)
            print(f"4. rules over 1,000 services: {rules_time * 1000:.0f} ms; gixy-ng on 1,000 upstreams x 8 "
                  f"servers: {gixy_time * 1000:.0f} ms; ratio {rules_time / gixy_time:.3f}x (target < 1x)")
        rules_10k = timed(lambda: lbgen.validate(lbgen.load(tmp / "bench-10000.yaml")), 1)
        rules_1k_load = timed(lambda: lbgen.validate(lbgen.load(tmp / "bench-1000.yaml")), 1)
        print(f"   load+rules 10,000 vs 1,000 services: {rules_10k:.2f} s vs {rules_1k_load:.2f} s; "
              f"ratio {rules_10k / rules_1k_load:.2f}x (target <= 11x)")
    simulate_figures(1 if args.quick else args.pairs)


def simulate_figures(runs: int) -> None:
    """5. The simulation alone (spec loaded and resolved once): wall and CPU seconds, medians.

    The two rates run interleaved (5,000, 50,000, 5,000, ...), so that a change in the
    machine's load during the measurement (other processes on a shared machine) weighs on
    both sides of the ratio alike; each rate's first run is a warm-up and not counted."""
    import lbgen
    from lbgen import simulate as sim
    from lbgen.plan import resolve
    from lbgen.simulate.engine import keep_freed_memory

    keep_freed_memory()  # as `lbgen simulate` does

    def once(loaded: Any, plan: Any, rate: float) -> tuple[float, float]:
        settings = sim.Settings(50, 1, rate, 60.0, 0.05, 2, 20, 0, True, ())
        wall, cpu = time.perf_counter(), time.process_time()
        sim.simulate(loaded.spec, plan, loaded.spec.services[0], settings)
        return time.perf_counter() - wall, time.process_time() - cpu

    for example in ("seed-as-advised.yaml", "seed-fixed.yaml"):
        loaded = lbgen.load(REPO / "examples" / example)
        plan = resolve(loaded.spec)
        once(loaded, plan, 5_000)
        once(loaded, plan, 50_000)
        base: list[tuple[float, float]] = []
        tenfold: list[tuple[float, float]] = []
        for _ in range(runs):
            base.append(once(loaded, plan, 5_000))
            tenfold.append(once(loaded, plan, 50_000))
        wall = statistics.median(w for w, _ in base)
        cpu = statistics.median(c for _, c in base)
        wall10 = statistics.median(w for w, _ in tenfold)
        cpu10 = statistics.median(c for _, c in tenfold)
        ratios = sorted(c10 / c for (_, c), (_, c10) in zip(base, tenfold, strict=True))
        print(f"5. simulate {example}, 60 s at 5,000 req/s x 20 trials: {wall:.2f} s wall, {cpu:.2f} s CPU "
              f"(target < 3 s); at 50,000 req/s: {wall10:.2f} s wall, {cpu10:.2f} s CPU; ratio of medians "
              f"{cpu10 / cpu:.2f}x CPU, pairwise {ratios[0]:.2f}-{ratios[-1]:.2f}x (target <= 11x); "
              f"{runs} interleaved pairs")


if __name__ == "__main__":
    main()
