"""A small spec cannot expand into a huge config (issue #7 item 4).

Hosts that route to the same services share one nginx `server` block (one `server_name`
list), so the edge's config grows with hosts + paths, not hosts × paths; what still
expands (KIC: an Ingress rule per host, each with every path) is bounded by
MAX_ROUTE_ENTRIES; the values of a spec by MAX_NODES; the whole output by MAX_OUTPUT_CHARS.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import crossplane
import pytest
from click.testing import CliRunner

import lbgen
from lbgen.cli import cli
from lbgen.errors import InputError
from lbgen.io import loader
from lbgen.io.loader import MAX_NODES, load_spec_text
from lbgen.model.naming import MAX_ROUTE_ENTRIES
from lbgen.verify import nginx as nginx_verify


def edge_spec(services: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "amp",
        "tiers": [
            {"kind": "nginx_http", "name": "edge",
             "instances": [{"name": "e1", "address": "10.0.0.1"}]},
            {"kind": "kubernetes", "name": "k8s", "platform": "gke"},
        ],
        "services": services,
    }


def service(name: str, hosts: list[str], paths: list[str]) -> dict[str, Any]:
    return {"name": name, "replicas": 2, "app": {"preset": "go"},
            "route": {"hosts": hosts, "paths": paths}}


def _server_blocks(conf: str, tmp_path: Path) -> list[list[dict[str, Any]]]:
    path = tmp_path / "snippet.conf"
    path.write_text(conf, encoding="utf-8")
    parsed = crossplane.parse(str(path), single=True, check_ctx=False, comments=False)
    assert parsed["status"] == "ok", parsed["errors"]
    return [d["block"] for d in parsed["config"][0]["parsed"] if d["directive"] == "server"]


def _names_and_locations(block: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    names = [a for d in block if d["directive"] == "server_name" for a in d["args"]]
    locations = [" ".join(d["args"]) for d in block if d["directive"] == "location"]
    return names, locations


def test_hosts_routed_alike_share_one_server_block(tmp_path: Path) -> None:
    spec = edge_spec([
        service("api", ["b.example.com", "a.example.com", "c.example.com"], ["/x", "/y"]),
        service("web", ["c.example.com", "d.example.com"], ["/web"]),
    ])
    files = lbgen.render(lbgen.load(spec))
    blocks = [_names_and_locations(b) for b in _server_blocks(files["edge/conf.d/amp.conf"], tmp_path)]
    assert blocks == [
        ([], ["/"]),  # the catch-all: no service without hosts, so only the 404
        (["a.example.com", "b.example.com"], ["/x", "/y", "/"]),
        (["c.example.com"], ["/x", "/y", "/web", "/"]),
        (["d.example.com"], ["/web", "/"]),
    ]


def test_hosts_times_paths_render_linearly_and_pass_nginx(tmp_path: Path, nginx_bin: str) -> None:
    # 300 × 300: before, 90,000 locations (60 MB, 6 s); the 1,000 × 1,000 took 70 s,
    # 4.3 GB and wrote 720 MB. Now both stay linear (1,000 × 1,000: 0.7 MB in 0.5 s).
    hosts = [f"h{i}.example.com" for i in range(300)]
    paths = [f"/p{i}" for i in range(300)]
    started = time.process_time()
    files = lbgen.render(lbgen.load(edge_spec([service("api", hosts, paths)])))
    elapsed = time.process_time() - started
    conf = files["edge/conf.d/amp.conf"]
    blocks = [_names_and_locations(b) for b in _server_blocks(conf, tmp_path)]
    assert [len(names) for names, _ in blocks] == [0, 300]
    assert [len(locations) for _, locations in blocks] == [1, 301]
    assert len(conf) < 300_000
    assert elapsed < 10
    results = nginx_verify.verify(files, None)
    assert [r.status for r in results] == ["passed"], results


def test_kic_routes_beyond_the_limit_are_a_located_error() -> None:
    hosts = ", ".join(f"h{i}.example.com" for i in range(400))
    paths = ", ".join(f"/p{i}" for i in range(300))
    text = (
        "name: amp\ntiers:\n"
        "  - {kind: kong, name: gw, mode: kic, instances: [{name: k1, address: 10.0.0.1}]}\n"
        "  - {kind: kubernetes, name: k8s, platform: gke}\nservices:\n"
        "  - {name: small, replicas: 1, app: {preset: go}}\n"
        "  - name: api\n    replicas: 2\n    app: {preset: go}\n"
        f"    route: {{hosts: [{hosts}], paths: [{paths}]}}\n"
    )
    with pytest.raises(InputError) as caught:
        load_spec_text(text, "spec.yaml")
    (problem,) = caught.value.problems
    assert problem.message == (
        "the routes expand to 120001 entries in tier gw's config (every host gets an Ingress "
        f"rule with every path; service api: 120000), over lbgen's limit of {MAX_ROUTE_ENTRIES}"
    )
    assert (problem.location.line, problem.location.column) == (10, 12)
    assert problem.path == "services[1].route"


def test_the_same_routes_through_an_nginx_gateway_are_fine() -> None:
    hosts = [f"h{i}.example.com" for i in range(400)]
    paths = [f"/p{i}" for i in range(300)]
    loaded = lbgen.load(edge_spec([service("api", hosts, paths)]))
    assert len(loaded.spec.services[0].route.hosts) == 400


def test_too_many_values_are_refused_at_the_value_that_exceeds_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loader, "MAX_NODES", 1000)
    text = "name: x\nvalues:\n" + "- 0\n" * 2000
    with pytest.raises(InputError) as caught:
        load_spec_text(text, "spec.yaml")
    (problem,) = caught.value.problems
    assert problem.message.startswith("the spec has more than 1000 values")
    # The mapping, `name`, its value, `values` and its list are 5 nodes; the 1001st node is
    # item 996, on line 3 + 995.
    assert (problem.location.line, problem.location.column) == (3 + 995, 3)


@pytest.mark.slow
def test_a_spec_of_600_000_values_is_refused_while_it_is_read() -> None:
    # 600,000 values in 2.4 MB, well under the 16 MB input cap: before, the loader let
    # through up to 2,000,000 (1.9 M scalars took 36 s and 2 GB to validate).
    text = "name: x\nvalues:\n" + "- 0\n" * 600_000
    with pytest.raises(InputError) as caught:
        load_spec_text(text, "spec.yaml")
    (problem,) = caught.value.problems
    assert problem.message.startswith(f"the spec has more than {MAX_NODES} values")
    assert MAX_NODES == 500_000


def test_output_beyond_the_cap_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # lbgen.render is also the name of a function: patch the module itself.
    monkeypatch.setattr(importlib.import_module("lbgen.render"), "MAX_OUTPUT_CHARS", 10_000)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: amp\ntiers:\n"
        "  - {kind: nginx_http, name: edge, instances: [{name: e1, address: 10.0.0.1}]}\n"
        "  - {kind: kubernetes, name: k8s, platform: gke}\nservices:\n"
        + "".join(f"  - {{name: s{i}, replicas: 1, app: {{preset: go}}}}\n" for i in range(40)),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["render", str(spec), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "more than 10000 characters (lbgen's output limit)" in result.output
    assert not out.exists()
