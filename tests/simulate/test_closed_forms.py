"""The engine against closed forms (issue #11 item 4), with fixed seeds.

Each case builds the simulator's path directly, so the expected distribution is exact;
tolerances are several standard errors wide, yet far narrower than what a wrong model
(a per-request choice where a per-connection one belongs, pods beyond the sources, …)
would produce.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lbgen.simulate.engine import Params, _lifo_connections, _rendezvous, _worker_of, run
from lbgen.simulate.path import Chooser, ClusterHop, ProxyHop, SimPath

ROUND_ROBIN = Chooser("round-robin")
IPTABLES = ClusterHop("cluster", "iptables", "random", "", None, "cluster_ip")


def _path(hops: tuple[ProxyHop, ...] = (), cluster: ClusterHop = IPTABLES, replicas: int = 8,
          events: tuple[tuple[float, int], ...] = ()) -> SimPath:
    return SimPath("ns/app", replicas, None, hops, cluster, events)


def _proxy(*, instances: int = 1, workers: int = 1, reuse: str = "pool", size: int = 32,
           chooser: Chooser = ROUND_ROBIN, per_request_pods: bool = False, kind: str = "nginx_http",
           idle_s: float | None = None, max_requests: int | None = None) -> ProxyHop:
    return ProxyHop("proxy", kind, tuple(f"10.0.0.{i + 1}" for i in range(instances)), workers,
                    reuse, size, idle_s, "", max_requests, None, chooser, 0, per_request_pods)  # type: ignore[arg-type]


def _expected_max_multinomial(k: int, n: int) -> float:
    """E[max] of Multinomial(k, uniform over n): sum over m of P(max > m), with P(max <= m)
    = k!/n^k * [x^k] (sum_{j<=m} x^j/j!)^n."""
    total = 0.0
    for m in range(k):
        poly = np.zeros(k + 1)
        poly[0] = 1.0
        piece = np.array([1 / math.factorial(j) if j <= m else 0.0 for j in range(k + 1)])
        for _ in range(n):
            poly = np.convolve(poly, piece)[: k + 1]
        total += 1 - poly[k] * math.factorial(k) / n**k
    return total


def test_long_lived_connections_over_pods_are_multinomial() -> None:
    # k client connections straight to the Service, each sending requests back to back:
    # iptables picks a pod per connection, so connections per pod ~ Multinomial(k, 1/n).
    k, n, trials = 24, 8, 400
    params = Params(k, 1, None, 2.0, 1.0, trials, seed=7)
    results = run(_path(replicas=n), params)
    counts = np.array([r.open_connections for r in results])  # busiest first, per trial
    assert counts.sum(axis=1).tolist() == [k] * trials
    maxima = counts[:, 0]
    expected = _expected_max_multinomial(k, n)
    assert abs(maxima.mean() - expected) < 4 * maxima.std() / math.sqrt(trials)
    # Mean and variance of one pod's count: the unsorted counts are lost, but the sum of
    # squares is not: E[sum c_i^2] = n (var + mean^2) = k(1 - 1/n) + k^2/n.
    squares = (counts**2).sum(axis=1)
    expected_squares = k * (1 - 1 / n) + k**2 / n
    assert abs(squares.mean() - expected_squares) < 4 * squares.std() / math.sqrt(trials)
    # Requests follow the connections: the request spread is as uneven as the connections'.
    assert np.median([r.max_mean for r in results]) == pytest.approx(expected / (k / n), rel=0.15)


def test_no_pooling_converges_to_uniform() -> None:
    # A new upstream connection per request: kube-proxy's choice is per request, so the
    # counts are Multinomial(N, 1/n) and the CV is about sqrt((n - 1) / N).
    n, rate, duration = 8, 2000.0, 30.0
    hop = _proxy(reuse="per-request", size=0)
    results = run(_path((hop,), replicas=n), Params(50, 1, rate, duration, 0.05, 20, seed=3))
    expected_cv = math.sqrt((n - 1) / (rate * duration))
    cvs = np.array([r.cv for r in results])
    assert 0.6 * expected_cv < np.median(cvs) < 1.4 * expected_cv
    assert max(r.max_mean for r in results) < 1.05  # 8 pods at 7500 each: sd 81, max ~ +3 sd
    # Each of those connections closes after its request: none is open at the end.
    assert all(r.open_connections.sum() == 0 for r in results)
    # The same traffic through a pool of long-lived connections is not uniform at all.
    pooled = run(_path((_proxy(size=32),), replicas=n), Params(50, 1, rate, duration, 0.05, 20, seed=3))
    assert np.median([r.cv for r in pooled]) > 10 * expected_cv


def test_client_ip_affinity_from_few_proxy_addresses_uses_at_most_that_many_pods() -> None:
    affinity = ClusterHop("cluster", "iptables", "random", "", 10800.0, "cluster_ip")
    hop = _proxy(instances=3, workers=2, size=0, reuse="per-request")
    results = run(_path((hop,), affinity), Params(50, 1, 1000.0, 10.0, 0.05, 50, seed=11))
    used = [r.pods_used for r in results]
    assert max(used) <= 3
    # 3 sources over 8 pods: all three distinct with probability 8*7*6/8^3 = 0.66.
    assert 0.45 < sum(u == 3 for u in used) / len(used) < 0.85
    # Without affinity the same per-request connections reach every pod.
    free = run(_path((hop,)), Params(50, 1, 1000.0, 10.0, 0.05, 5, seed=11))
    assert all(r.pods_used == 8 for r in free)


@pytest.mark.parametrize(("instances", "workers"), [(1, 1), (2, 4), (3, 2)])
def test_round_robin_per_worker_differs_by_at_most_one_request_per_worker(instances: int, workers: int) -> None:
    # nginx balances each request over the pods per worker, every worker in turn from the
    # first server: each worker's counts differ by at most 1, so the totals by at most the
    # number of workers.
    n = 7
    hop = _proxy(instances=instances, workers=workers, per_request_pods=True)
    for r in run(_path((hop,), replicas=n), Params(40, 1, 997.0, 3.0, 0.05, 5, seed=5)):
        counts = np.rint(r.shares * r.requests)
        assert counts.max() - counts.min() <= instances * workers
        assert counts.sum() == r.requests
    # With few requests per worker, the first servers get the surplus of every worker: the
    # spread grows with the workers, up to one request per worker.
    hop = _proxy(instances=1, workers=16, per_request_pods=True)
    spreads = [np.rint(r.shares * r.requests) for r in
               run(_path((hop,), replicas=n), Params(40, 1, 50.0, 1.0, 0.05, 20, seed=5))]
    assert max(c.max() - c.min() for c in spreads) > 1


def test_consistent_hashing_on_few_keys_spreads_like_balls_in_bins() -> None:
    # k clients hashed over n pods: each client on one pod; pods used has the closed-form
    # mean n (1 - (1 - 1/n)^k).
    k, n, trials = 3, 8, 300
    hop = _proxy(kind="kong", per_request_pods=True, chooser=Chooser("hash", "client"))
    results = run(_path((hop,), replicas=n), Params(k, 1, 300.0, 2.0, 0.05, trials, seed=13))
    used = np.array([r.pods_used for r in results])
    assert used.max() <= k
    expected = n * (1 - (1 - 1 / n) ** k)
    assert abs(used.mean() - expected) < 4 * used.std() / math.sqrt(trials)


def test_consistent_hashing_moves_only_keys_to_added_pods() -> None:
    rng = np.random.default_rng(1)
    keys = np.tile(np.arange(1000), 2)
    counts = np.repeat([8, 12], 1000)
    pods = _rendezvous(rng, keys, counts)
    before, after = pods[:1000], pods[1000:]
    moved = before != after
    assert np.all(after[moved] >= 8)  # a key moves only to a new pod
    assert 0.25 < moved.mean() < 0.42  # about 4/12 of the keys


def test_max_requests_recycles_pooled_connections_and_spreads_load() -> None:
    # One pooled connection per worker (rate x response time ~ 1e-5: never two in flight), never recycled:
    # all of a worker's requests reach one pod. max_requests 100 re-chooses every 100.
    frozen = run(_path((_proxy(workers=1),)), Params(10, 1, 100.0, 60.0, 1e-7, 10, seed=2))
    recycled = run(_path((_proxy(workers=1, max_requests=100),)), Params(10, 1, 100.0, 60.0, 1e-7, 10, seed=2))
    assert all(r.pods_used == 1 for r in frozen)
    assert all(r.open_connections.tolist() == [1] + [0] * 7 for r in frozen)
    assert all(r.pods_used == 8 for r in recycled)
    assert np.median([r.decider_connections for r in recycled]) == pytest.approx(60, abs=1)


def test_scale_event_pods_reach_their_share_only_when_choices_are_made() -> None:
    events = ((10.0, 4),)
    per_request = run(_path((_proxy(per_request_pods=True),), events=events),
                      Params(20, 1, 1000.0, 20.0, 0.05, 5, seed=4))
    assert all(r.fair_share_s[0][1] is not None and r.fair_share_s[0][1] <= 1.0 for r in per_request)
    assert all(r.pods_used == 12 for r in per_request)
    frozen = run(_path((_proxy(),), events=events), Params(20, 1, 1000.0, 20.0, 0.05, 5, seed=4))
    assert all(r.fair_share_s[0] == (None, None) for r in frozen)


def test_same_seed_same_result_other_seed_other_result() -> None:
    path = _path((_proxy(instances=2, workers=2),))
    one = run(path, Params(50, 1, 500.0, 5.0, 0.05, 3, seed=9))
    two = run(path, Params(50, 1, 500.0, 5.0, 0.05, 3, seed=9))
    other = run(path, Params(50, 1, 500.0, 5.0, 0.05, 3, seed=10))
    assert [r.shares.tolist() for r in one] == [r.shares.tolist() for r in two]
    assert [r.shares.tolist() for r in one] != [r.shares.tolist() for r in other]


def test_closed_loop_callers_keep_their_pooled_connections() -> None:
    # k client connections sending back to back through one pooled worker to the ClusterIP:
    # each request finds the connection its caller just released on top of the LIFO stack,
    # so exactly k connections carry everything, and the pods follow Multinomial(k, 1/n).
    k, n, trials = 6, 8, 300
    results = run(_path((_proxy(workers=1),), replicas=n), Params(k, 1, None, 3.0, 0.01, trials, seed=21))
    assert all(r.decider_connections == k for r in results)
    assert all(r.open_connections.sum() == k for r in results)
    used = np.array([r.pods_used for r in results])
    expected = n * (1 - (1 - 1 / n) ** k)
    assert abs(used.mean() - expected) < 4 * used.std() / math.sqrt(trials)
    # The k connections carry equal loads: max/mean is that of the connections per pod.
    maxima = np.array([r.open_connections[0] for r in results])
    assert np.allclose([r.max_mean for r in results], maxima / (k / n), rtol=0.02)


def _spread(chooser: Chooser, sigma: float, trials: int = 30) -> tuple[float, float]:
    """Median CV and largest max - min of the requests per pod over the trials."""
    hop = _proxy(kind="kong", workers=2, per_request_pods=True, chooser=chooser)
    params = Params(10, 1, None, 3.0, 0.01, trials, seed=8, response_sigma=sigma)
    results = run(_path((hop,), replicas=8), params)
    counts = [np.rint(r.shares * r.requests) for r in results]
    return float(np.median([r.cv for r in results])), float(max(c.max() - c.min() for c in counts))


def test_least_conn_follows_requests_in_flight() -> None:
    least_conn, random = Chooser("least-conn"), Chooser("random")
    # Alike response times: least_conn keeps every server's requests in flight within one
    # of each other, so the counts stay within a few requests per worker, as round-robin's
    # (at most one per worker) and unlike a random choice (sd sqrt(3000 / 8) = 19 per pod).
    assert _spread(least_conn, 0.0)[1] <= 4
    assert _spread(random, 0.0)[1] > 40
    # Spread-out response times make the choice follow which server finished first: more
    # uneven than round-robin, far more even than a random choice.
    jittered = _spread(least_conn, 0.3)[0]
    assert jittered > 3 * _spread(ROUND_ROBIN, 0.3)[0]
    assert jittered < 0.5 * _spread(random, 0.3)[0]
    # Two random choices, the fewer in flight: between least_conn and a random choice.
    two = _spread(Chooser("random-two"), 0.3)[0]
    assert jittered < two < _spread(random, 0.3)[0]


def test_multiplexing_clients_pin_one_connection_each() -> None:
    # 4 clients keep 8 requests each in flight straight to the ClusterIP. HTTP/1.1: 32
    # connections, each its pod; h2/gRPC: 4 connections, so at most 4 pods get anything.
    h1 = run(_path(), Params(4, 8, None, 2.0, 0.01, 100, seed=3))
    h2 = run(_path(), Params(4, 8, None, 2.0, 0.01, 100, seed=3, multiplexed=True))
    assert all(r.decider_connections == 32 for r in h1)
    assert all(r.decider_connections == 4 and r.pods_used <= 4 for r in h2)
    expected = 8 * (1 - (1 - 1 / 8) ** 4)
    used = np.array([r.pods_used for r in h2])
    assert abs(used.mean() - expected) < 4 * used.std() / math.sqrt(len(used))
    assert np.median([r.pods_used for r in h1]) == 8


def test_client_ip_affinity_keys_on_the_source_addresses_not_the_clients() -> None:
    # 50 clients behind a NAT with 3 addresses, no keep-alive, straight to the Service:
    # affinity sees 3 sources, so at most 3 pods; one address per client reaches all 8.
    affinity = ClusterHop("cluster", "iptables", "random", "", 10800.0, "cluster_ip")
    natted = run(_path(cluster=affinity), Params(50, 1, 500.0, 5.0, 0.01, 40, seed=6, keepalive=False, sources=3))
    assert max(r.pods_used for r in natted) <= 3
    assert sum(r.pods_used == 3 for r in natted) / len(natted) > 0.4  # 8*7*6/8^3 = 0.66
    direct = run(_path(cluster=affinity), Params(50, 1, 500.0, 5.0, 0.01, 5, seed=6, keepalive=False))
    assert all(r.pods_used == 8 for r in direct)


def test_kong_least_connections_follows_its_heap() -> None:
    from lbgen.simulate.engine import _fewest_in_flight

    # One request at a time over 4 targets: every pick finds all at 0 in flight, so Kong
    # takes its heap's top. Worked by hand from binaryheap.lua's sifts: pick 0, it sinks
    # to the last leaf past 1 and 3; then 1 (sinks past 3 and 0), then 3 ...: the cycle
    # is 0, 1, 3 and target 2, never at the top, gets nothing (nginx's least_conn, with
    # its round-robin among the tied, takes all four in turn).
    n = 12
    start = np.arange(n, dtype=np.float64)
    done = start + 0.5
    group = np.zeros(n, dtype=np.int64)
    counts = np.full(n, 4, dtype=np.int64)
    rng = np.random.default_rng(0)
    kong = _fewest_in_flight(rng, "kong-least-connections", group, start, done, counts)
    assert kong.tolist() == [0, 1, 3] * 4
    nginx = _fewest_in_flight(rng, "least-conn", group, start, done, counts)
    assert sorted(nginx[:4].tolist()) == [0, 1, 2, 3] and nginx.tolist() == nginx[:4].tolist() * 3
    # Under load the heap still keeps the in-flight counts within one of each other.
    many = 4000
    start = np.sort(rng.uniform(0, 10, many))
    done = start + 0.05
    picks = _fewest_in_flight(rng, "kong-least-connections", np.zeros(many, np.int64), start, done,
                              np.full(many, 4, np.int64))
    assert np.bincount(picks, minlength=4).min() > 0


def test_kong_consistent_hashing_continuum() -> None:
    from lbgen.simulate.engine import _continuum, _rendezvous

    rng = np.random.default_rng(2)
    # Many keys over 8 targets with 160 points each on 10000: a target's share is its arcs'
    # length, Beta(160, 1120)-like: relative sd sqrt(0.875 / (0.125 * 1281)) = 0.074.
    keys = np.arange(200_000)
    cvs = []
    for _ in range(40):
        shares = np.bincount(_continuum(rng, keys, np.full(len(keys), 8), 10_000), minlength=8) / len(keys)
        cvs.append(shares.std() / shares.mean())
    assert 0.05 < np.median(cvs) < 0.095
    flat = np.bincount(_rendezvous(rng, keys, np.full(len(keys), 8)), minlength=8) / len(keys)
    assert flat.std() / flat.mean() < 0.02  # a rendezvous hash has no arcs to be uneven
    # Adding 4 targets: a key moves only to a new target, about 4/12 of them do.
    keys = np.tile(np.arange(5000), 2)
    counts = np.repeat([8, 12], 5000)
    pods = _continuum(rng, keys, counts, 10_000)
    before, after = pods[:5000], pods[5000:]
    moved = before != after
    assert np.all(after[moved] >= 8)
    assert 0.25 < moved.mean() < 0.42


def _stack_followed_step_by_step(key: np.ndarray, start: np.ndarray, done: np.ndarray) -> list[int]:
    """The reference for `_lifo_connections`: every key's idle connections as a list used as a
    stack, the events taken one by one in time order (a release before a start at the same
    moment); returns, per item, the item that opened its connection."""
    events = sorted([(float(done[i]), 0, i) for i in range(len(key))] + [(float(start[i]), 1, i) for i in range(len(key))])
    idle: dict[int, list[int]] = {}
    opener: list[int] = [-1] * len(key)
    for _, is_start, i in events:
        stack = idle.setdefault(int(key[i]), [])
        if is_start:
            opener[i] = stack.pop() if stack else i
        else:
            stack.append(opener[i])
    return opener


@pytest.mark.parametrize("seed", range(12))
def test_lifo_connections_follow_the_stack_exactly(seed: int) -> None:
    # Random starts and durations, a few keys; every other case rounds the times to a grid so
    # that releases and starts coincide, as a closed loop's back-to-back requests do.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    start = np.sort(rng.uniform(0, 1.0, n))
    done = start + rng.exponential(0.02 * (1 + seed % 3), n)
    if seed % 2:
        start = np.round(start, 2)
        done = np.round(np.maximum(done, start + 0.01), 2)
        order = np.argsort(start, kind="stable")
        start, done = start[order], done[order]
    key = rng.integers(0, 1 + seed % 4, n)
    got = _lifo_connections(key, start, done)
    opener = _stack_followed_step_by_step(key, start, done)
    # The same connections: items share an id exactly when they share an opener.
    assert len(set(got.tolist())) == len(set(opener))
    assert len(set(zip(got.tolist(), opener, strict=True))) == len(set(opener))


def test_nginx_workers_take_connections_in_turn_then_in_runs_of_sixteen() -> None:
    # ngx_reorder_accept_events (nginx 1.21.6+): a worker re-adds the shared listening socket
    # after its first accept and after every 16th, so with 3 workers the 0th-2nd connections go
    # to workers 0, 1, 2 and then 16 each in turn; before 1.21.6 the first worker takes them all.
    rng = np.random.default_rng(0)
    n = 60
    inst = np.zeros(n, dtype=np.int64)  # connection ids in the order they open
    rotating = dataclasses.replace(_proxy(workers=3), accept="rotating")
    assert _worker_of(rng, rotating, np.arange(n), inst, n).tolist() == [0, 1, 2] + [0] * 16 + [1] * 16 + [2] * 16 + [0] * 9
    first = dataclasses.replace(_proxy(workers=3), accept="first")
    assert _worker_of(rng, first, np.arange(n), inst, n).tolist() == [0] * n
    # Two instances count their own connections (here alternating between them).
    inst = np.arange(n) % 2
    assert _worker_of(rng, rotating, np.arange(n), inst, n)[inst == 1].tolist()[:5] == [0, 1, 2, 0, 0]


def test_one_accepting_worker_balances_like_one_worker() -> None:
    # Round-robin per worker over 7 pods: with every connection on the first worker (nginx
    # before 1.21.6, no reuseport) the per-pod counts differ by at most 1, where 16 workers
    # each starting at the first pod leave a larger spread (the test above).
    hop = dataclasses.replace(_proxy(instances=1, workers=16, per_request_pods=True), accept="first")
    for r in run(_path((hop,), replicas=7), Params(40, 1, 50.0, 1.0, 0.05, 20, seed=5)):
        counts = np.rint(r.shares * r.requests)
        assert counts.max() - counts.min() <= 1


def test_closed_loop_callers_keep_their_connections_over_many_chunks() -> None:
    # 400,000 requests on 4 long-lived connections: the connections are numbered chunk by
    # chunk (engine.CHUNK items each) and most chunks open none; still exactly 4 connections.
    from lbgen.simulate.engine import CHUNK

    results = run(_path((_proxy(workers=1),)), Params(4, 1, None, 100.0, 0.001, 2, seed=1))
    assert all(r.requests > 4 * CHUNK for r in results)
    assert all(r.decider_connections == 4 and r.open_connections.sum() == 4 for r in results)
