"""Every number and duration has the range its product accepts (issue #7 item 3): a value
outside it is a located input error, and the largest value inside it renders and passes
the product's own check (nginx -t for nginx limits, Kong's constraint schema for Kong's)."""

from __future__ import annotations

from pathlib import Path

import pytest

import lbgen
from lbgen.io.loader import load_spec_text
from lbgen.verify import verify_files
from tests.conftest import REPO
from tests.test_input_errors import at, position, problems_of

SEED = (REPO / "examples" / "seed.yaml").read_text(encoding="utf-8")
SELF_MANAGED = (REPO / "examples" / "self-managed-nftables.yaml").read_text(encoding="utf-8")

EDGE = "    forwarded_headers: true\n"  # a line of the seed's nginx_http tier
L4 = "    connect_timeout: 3s\n"  # of its nginx_stream tier
SERVICE = "    readiness: {path: /healthz}\n"  # of its one service
CLUSTER = "    platform: gke\n"


def add(after: str, line: str, text: str = SEED) -> str:
    """`line` after `after`, or in place of the line that sets the same key there already."""
    assert text.count(after) == 1, after
    key = line.split(":", 1)[0] + ":"
    start = text.index(after)
    block_end = text.find("\n  - ", start)
    block = text[text.rfind("\n  - ", 0, start):block_end if block_end != -1 else len(text)]
    existing = [old for old in block.splitlines() if old.startswith(key)]
    if existing:
        return text.replace(existing[0] + "\n", line + "\n", 1)
    return text.replace(after, after + line + "\n")


OUT_OF_RANGE = [
    # (where, added line, the value as written, words of the message)
    (EDGE, "    worker_processes: 0", "0", "out of range"),
    (EDGE, "    worker_processes: 1025", "1025", "out of range"),
    (L4, "    worker_processes: -1", "-1", "out of range"),
    (EDGE, "    client_keepalive: {timeout: 2147483648ms}", "2147483648ms",
     "longer than nginx accepts"),
    (EDGE, "    upstream_keepalive: {idle_timeout: 25d}", "25d", "longer than nginx accepts"),
    (EDGE, "    upstream_keepalive: {max_requests: 2147483648}", "2147483648", "out of range"),
    (EDGE, "    client_keepalive: {max_requests: 2147483648}", "2147483648", "out of range"),
    (L4, "    proxy_timeout: 25d", "25d", "longer than nginx accepts"),
    (L4, "    next_upstream_tries: 2147483648", "2147483648", "out of range"),
    (SERVICE, "    kong: {timeouts: {read: 0}}", "0", "too short for a Kong Service timeout"),
    (SERVICE, "    kong: {timeouts: {connect: 2147483647ms}}", "2147483647ms",
     "longer than a Kong Service timeout accepts"),
    (SERVICE, "    kong: {healthchecks: {active: {concurrency: 2147483649}}}", "2147483649",
     "out of range"),
    (SERVICE, "    kong: {healthchecks: {passive: {healthy: {http_statuses: [200, 99]}}}}", "99",
     "out of range"),
    (SERVICE, "    kong: {healthchecks: {active: {unhealthy: {http_statuses: [1000]}}}}", "1000",
     "out of range"),
    (SERVICE, "    autoscaling: {min_replicas: 2, max_replicas: 2147483648}", "2147483648",
     "out of range"),
    (SERVICE, "    disruption_budget: {max_unavailable: '\u0662\u0665%'}", "'\u0662\u0665%'",
     "percentage from 0% to 100%"),
    (SERVICE, "    disruption_budget: {min_available: '101%'}", "'101%'",
     "percentage from 0% to 100%"),
    (SERVICE, "    disruption_budget: {min_available: 2147483648}", "2147483648",
     "counts from 0 to 2147483647"),
    (SERVICE, "    pre_stop_delay: 106752d", "106752d", "longer than any product accepts"),
    (CLUSTER, "    cluster_domain: a..local", "a..local", "an empty label"),
    (CLUSTER, "    cluster_domain: cluster.-local", "cluster.-local", "the label '-local'"),
    (CLUSTER, "    cluster_domain: " + "a" * 64 + ".local", "a" * 64, "the label"),
]


@pytest.mark.parametrize(("where", "line", "value", "words"), OUT_OF_RANGE,
                         ids=[case[1].strip() for case in OUT_OF_RANGE])
def test_an_out_of_range_value_is_a_located_input_error(
    where: str, line: str, value: str, words: str
) -> None:
    text = add(where, line)
    problems = problems_of(text)
    assert len(problems) == 1, problems
    assert words in problems[0].message, problems[0].message
    row, column = position(text, line.strip())
    assert at(problems[0]) == (row, column + line.strip().index(value)), problems[0].format()


def test_a_replica_count_beyond_int32_is_refused() -> None:
    text = SEED.replace("    replicas: 8\n", "    replicas: 2147483648\n")
    (problem,) = problems_of(text)
    assert "out of range" in problem.message and problem.hint == "use a value ≤ 2147483647"
    assert at(problem) == position(text, "2147483648")


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ("{mode: nftables, sync_period: 0s}", "sync_period must be longer than 0"),
        ("{mode: nftables, sync_period: 10s, min_sync_period: 11s}",
         "min_sync_period 11s is longer than sync_period 10s"),
        ("{mode: nftables, min_sync_period: 31s}",
         "min_sync_period 31s is longer than the default sync_period 30s"),
        ("{mode: nftables, conntrack: {max_per_core: 2147483648}}", "out of range"),
    ],
)
def test_kube_proxy_settings_out_of_kube_proxys_range_are_refused(settings: str, words: str) -> None:
    head, _, _ = SELF_MANAGED.partition("    kube_proxy:\n")
    services = SELF_MANAGED[SELF_MANAGED.index("services:\n"):]
    text = f"{head}    kube_proxy: {settings}\n{services}"
    problems = problems_of(text)
    assert any(words in p.message for p in problems), [p.message for p in problems]
    assert all(at(p)[0] == position(text, "    kube_proxy: ")[0] for p in problems)


def test_a_long_cluster_domain_of_valid_labels_is_accepted() -> None:
    domain = ".".join(["a" * 63, "b" * 63, "local"])
    spec = load_spec_text(add(CLUSTER, f"    cluster_domain: {domain}")).spec
    assert spec.cluster.cluster_domain == domain


def test_the_largest_values_in_range_render_and_pass_the_products_checks(
    nginx_bin: str, schemas_dir: Path
) -> None:
    text = add(EDGE, "    worker_processes: 1024\n    client_keepalive: {timeout: 2147483647ms}\n"
                     "    upstream_keepalive: {max_requests: 2147483647}\n"
                     "    retry: {conditions: [error], tries: 2147483647}")
    text = text.replace("    retry: {conditions: [error]}\n", "", 1)
    text = add(L4, "    proxy_timeout: 2147483647ms\n    next_upstream_tries: 2147483647", text)
    text = add(SERVICE, "    kong: {timeouts: {connect: 1ms, read: 2147483646ms, send: 2147483646ms}}\n"
                        "    disruption_budget: {max_unavailable: '100%'}", text)
    files = lbgen.render(load_spec_text(text))
    results = verify_files(files, schemas_dir)
    failed = [r for r in results if r.status == "failed"]
    assert not failed, failed
    assert any(r.status == "passed" and "nginx" in r.name for r in results)
    assert any(r.status == "passed" and "deck" in r.name for r in results)
