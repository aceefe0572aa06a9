"""The vectorised simulation: connection-level events, per-request work as numpy array ops.

One trial draws the requests of the run (arrival times, client connection), then walks the
path hop by hop. At each hop every request gets the upstream connection it travels on and
the next hop's instance (or pod) it reaches:

- Every connection a proxy instance accepts goes to one of its workers as the kernel and
  nginx hand it over (`_worker_of`: a uniform choice with `reuseport`, else the workers in
  turn, as nginx 1.21.6+ does on a shared socket).
- nginx http and Kong pick a target per request (per worker: each worker balances on its
  own, as nginx does without a shared zone), then reuse an idle pooled connection to it.
  A worker's pooled connections form a LIFO stack. Closed loop: the stack is followed exactly
  (`_lifo_connections`). Open loop: the request that finds `j` requests in flight in its
  worker uses the `j`-th connection (`j` drawn from the Poisson occupancy of an M/G/inf
  queue with the worker's rate x response time). A connection is replaced after
  `max_requests` requests, after its lifetime, or when idle longer than the shortest idle
  timeout that closes it (its own, or a hop behind it). Stack depths the idle cache cannot
  keep (more than `keepalive` idle above the usual occupancy) open a connection per request.
- nginx stream opens one upstream connection per client connection and picks its target then.
- kube-proxy picks a pod per new connection to the ClusterIP (iptables, nftables: uniform;
  IPVS rr: in turn per node); sessionAffinity ClientIP keeps a source address on its pod
  while its connections come closer together than the affinity timeout.
- Scale events add pods at time t: every kube-proxy choice made after t sees them; a proxy
  that resolves a headless Service sees them once its cached DNS answer expires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lbgen.simulate.path import Chooser, ClusterHop, ProxyHop, SimPath

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Params:
    clients: int
    connections_per_client: int
    rate: float | None
    """Requests per second (open loop); None: closed loop."""
    duration_s: float
    response_time_s: float
    trials: int
    seed: int
    keepalive: bool = True
    bin_s: float = 1.0
    """Width of the time bins that measure how fast a new pod gets its share."""
    response_sigma: float = 0.0
    """Spread of the response times: lognormal with median `response_time_s` and this sigma
    (0: every request takes exactly `response_time_s`). Fewest-connections balancers read
    the requests in flight, which only the spread makes differ from round-robin."""
    multiplexed: bool = False
    """h2/grpc clients: each client's requests (its `connections_per_client` concurrent
    streams) share one connection."""
    sources: int | None = None
    """Distinct client source addresses (clients share them in turn); None: one per client."""


SEQUENTIAL_LIMIT = 20_000
"""Choices per trial and hop up to which a fewest-connections balancer is simulated request
by request (a Python step each); above it, it is modelled as its tie-break (round-robin, or
two random choices), which the spread of response times alone makes it depart from."""


@dataclass
class Trial:
    shares: FloatArray
    """Share of the window's requests per pod, busiest first."""
    open_connections: FloatArray
    """Connections open to each pod at the end, most first."""
    max_mean: float
    min_mean: float
    cv: float
    pods_used: int
    decider_connections: int
    """Connections on which the deciding hop chose a pod during the run."""
    requests: int
    fair_share_s: list[tuple[float | None, float | None]] = field(default_factory=list)
    """Per scale event: seconds until the added pods reach 50 % and 90 % of their fair share."""


_IOTA: list[IntArray] = [np.arange(0, dtype=np.int64)]
CHUNK = 1 << 16
"""Items per pass where a computation goes in chunks: the temporaries of a chunk (8 bytes an
item) stay in the CPU cache, so the cost per item does not grow once a trial's arrays
outgrow it (10x the requests cost 15x the time before)."""


def _iota(n: int) -> IntArray:
    """0..n-1, read-only, from one cached array: a fresh large array costs its page faults
    on every trial, which made the cost grow faster than the request count."""
    if len(_IOTA[0]) < n:
        cached = np.arange(max(n, 2 * len(_IOTA[0])), dtype=np.int64)
        cached.flags.writeable = False
        _IOTA[0] = cached
    return _IOTA[0][:n]


def _pods_at(path: SimPath, times: FloatArray) -> IntArray:
    """Ready pods at each time (scale events add pods)."""
    counts = np.cumsum([path.replicas] + [add for _, add in path.events])
    epoch = np.searchsorted(np.array([at for at, _ in path.events], dtype=np.float64), times, side="right")
    return np.asarray(counts[epoch], dtype=np.int64)


def _small(values: IntArray) -> npt.NDArray[np.signedinteger]:
    """The same integers in the smallest dtype: numpy's stable sort is a radix sort for
    16-bit and smaller integers (linear in the count)."""
    top = int(values.max()) if len(values) else 0
    return values.astype(np.int16 if top < 2**15 else np.int32 if top < 2**31 else np.int64)


def _pods_seen(rng: np.random.Generator, path: SimPath, hop: ProxyHop, t: FloatArray, inst: IntArray) -> IntArray:
    """Pods a hop that resolves the pods itself knows of at each request: an added pod is
    seen by each instance once its cached answer expires (uniform within the TTL)."""
    if not hop.sees_added_pods:
        return np.full(len(t), path.replicas, dtype=np.int64)
    if hop.discovery_s is None or not path.events:
        return _pods_at(path, t)
    counts = np.full(len(t), path.replicas, dtype=np.int64)
    for at, add in path.events:
        seen = at + rng.uniform(0.0, hop.discovery_s, len(hop.instances))
        counts += add * (t >= seen[inst])
    return counts


def _firsts_lasts(ids: IntArray, count: int) -> tuple[IntArray, IntArray]:
    """Index of the first and last request of each id below `count` (requests are in time
    order; an id without requests gets -1)."""
    index = _iota(len(ids))
    firsts = np.full(count, len(ids), dtype=np.int64)
    np.minimum.at(firsts, ids, index)
    lasts = np.full(count, -1, dtype=np.int64)
    np.maximum.at(lasts, ids, index)
    firsts[firsts == len(ids)] = -1
    return firsts, lasts


def _dense(ids: IntArray) -> tuple[IntArray, int]:
    """Renumber ids 0..k-1 (in the order of their values), without sorting."""
    present = np.bincount(ids) > 0
    remap = np.cumsum(present) - 1
    return np.asarray(remap[ids], dtype=np.int64), int(present.sum())


def _rank_in_group(group: IntArray) -> IntArray:
    """Position of each item among the items of its group; items are in time order. A
    stable sort of the groups (a radix sort: they are small integers) puts each group's items
    in time order after the items of the groups before it."""
    if not len(group):
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(_small(group), kind="stable")
    starts = np.cumsum(np.bincount(group)) - np.bincount(group)
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = _iota(len(group))
    return np.asarray(rank - starts[group], dtype=np.int64)


def _in_time_order(firsts: IntArray, n: int) -> IntArray:
    """The first-request indices sorted (each connection once, in the order it opened),
    without a comparison sort: they are distinct indices below `n`."""
    mark = np.zeros(n, dtype=bool)
    mark[firsts] = True
    return np.flatnonzero(mark)


def _rendezvous(rng: np.random.Generator, keys: IntArray, counts: IntArray) -> IntArray:
    """Consistent hashing: each key goes to the target with its highest random score among
    the targets present, so adding targets moves only the keys the new ones win."""
    dense, n_keys = _dense(keys)
    most = int(counts.max()) if len(counts) else 1
    scores = rng.random((n_keys, most))
    out = np.empty(len(keys), dtype=np.int64)
    for n in np.unique(counts):
        mask = counts == n
        out[mask] = np.argmax(scores[dense[mask], :n], axis=1)
    return out


class _KongHeap:
    """The min-heap of Kong's least-connections balancer (Tieske/binaryheap.lua `minUnique`,
    which kong/runloop/balancer/least_connections.lua uses): value (in flight + 1) / weight,
    `bubbleUp` stops at a parent <= the value, `sinkDown` swaps with a strictly smaller child
    (the left one on a tie), `update` does both from the element's position."""

    def __init__(self, conns: list[int]) -> None:
        self.value: list[int] = []
        self.payload: list[int] = []
        self.where: dict[int, int] = {}
        for target, count in enumerate(conns):  # afterHostUpdate: targets in order
            self.where[target] = len(self.value)
            self.value.append(count + 1)
            self.payload.append(target)
            self._up(len(self.value) - 1)

    def _swap(self, a: int, b: int) -> None:
        pa, pb = self.payload[a], self.payload[b]
        self.where[pa], self.where[pb] = b, a
        self.payload[a], self.payload[b] = pb, pa
        self.value[a], self.value[b] = self.value[b], self.value[a]

    def _up(self, pos: int) -> None:
        while pos > 0:
            parent = (pos - 1) // 2
            if self.value[parent] <= self.value[pos]:
                break
            self._swap(parent, pos)
            pos = parent

    def _down(self, pos: int) -> None:
        last = len(self.value)
        while True:
            least = pos
            for child in (2 * pos + 1, 2 * pos + 2):
                if child < last and self.value[child] < self.value[least]:
                    least = child
            if least == pos:
                return
            self._swap(pos, least)
            pos = least

    def update(self, target: int, value: int) -> None:
        pos = self.where[target]
        self.value[pos] = value
        if pos > 0:
            self._up(pos)
        if pos < len(self.value) - 1:
            self._down(pos)

    def top(self) -> int:
        return self.payload[0]


def _fewest_in_flight(rng: np.random.Generator, how: str, group: IntArray, start: FloatArray,
                      done: FloatArray, counts: IntArray) -> IntArray:
    """Fewest-in-flight balancing per worker, item by item.

    `least-conn`, nginx `least_conn` (ngx_http_upstream_least_conn_module.c): the server with
    the fewest requests in flight in this worker (`peer->conns`, no shared zone); several
    tied: smooth weighted round-robin among the tied ones only (each tied server's current
    weight grows by its weight, the highest wins and loses the total). `random-two`, nginx
    `random two least_conn` (ngx_http_upstream_random_module.c, get_random2_peer): two
    different servers drawn at random, the one with fewer in flight; on a tie the second
    drawn. `kong-least-connections`: the top of Kong's heap (`_KongHeap`), rebuilt in target
    order when the targets change (afterHostUpdate)."""
    import heapq

    out = np.empty(len(group), dtype=np.int64)
    first = rng.random(len(group))
    second = rng.random(len(group))
    for g in np.unique(group):
        index = np.flatnonzero(group == g)
        size = int(counts[index].max())
        conns = [0] * size
        weight = [0] * size
        busy: list[tuple[float, int]] = []
        heap: _KongHeap | None = None
        present = 0
        for i, at, end, n, r1, r2 in zip(index.tolist(), start[index].tolist(), done[index].tolist(),
                                          counts[index].tolist(), first[index].tolist(), second[index].tolist(),
                                          strict=True):
            while busy and busy[0][0] <= at:
                released = heapq.heappop(busy)[1]
                conns[released] -= 1
                if heap is not None and released < present:
                    heap.update(released, conns[released] + 1)
            if how == "kong-least-connections":
                if heap is None or n != present:
                    heap, present = _KongHeap(conns[:n]), n
                best = heap.top()
                heap.update(best, conns[best] + 2)
            elif how == "random-two" and n > 1:
                a = int(r1 * n)
                b = int(r2 * (n - 1))
                b += b >= a
                best = a if conns[a] < conns[b] else b
            else:
                low = min(conns[:n])
                tied = [j for j in range(n) if conns[j] == low]
                best = tied[0]
                if len(tied) > 1:
                    for j in tied:
                        weight[j] += 1
                        if weight[j] > weight[best]:
                            best = j
                    weight[best] -= len(tied)
            conns[best] += 1
            heapq.heappush(busy, (end, best))
            out[i] = best
    return out


def _continuum(rng: np.random.Generator, keys: IntArray, counts: IntArray, slots: int) -> IntArray:
    """Kong's consistent-hashing (kong/runloop/balancer/consistent_hashing.lua): a continuum
    of `slots` points, each target claiming KONG_HASH_POINTS of them in target order (a point
    already taken is skipped and one more drawn); a key hashes to a point and takes the target
    there or the first one below it, wrapping around. The hash positions are drawn at random
    per trial (xxhash32 of addresses the simulation does not know); a target keeps its points
    when others are added, so only keys that land on the new ones' points move."""
    from lbgen.defaults import KONG_HASH_POINTS

    points = KONG_HASH_POINTS.value
    most = int(counts.max()) if len(counts) else 1
    candidates = rng.integers(0, slots, (most, 3 * points))
    dense, n_keys = _dense(keys)
    key_point = rng.integers(0, slots, n_keys)
    out = np.empty(len(keys), dtype=np.int64)
    owner = np.full(slots, -1, dtype=np.int64)
    built = 0
    for n in np.unique(counts):
        for target in range(built, int(n)):
            free = candidates[target][owner[candidates[target]] < 0]
            _, first_seen = np.unique(free, return_index=True)
            owner[free[np.sort(first_seen)][:points]] = target
        built = int(n)
        taken = np.flatnonzero(owner >= 0)
        # The first taken point at or below each point, wrapping to the highest one.
        below = np.maximum.accumulate(np.where(owner >= 0, np.arange(slots), -1))
        below[below < 0] = taken[-1]
        mask = counts == n
        out[mask] = owner[below[key_point[dense[mask]]]]
    return out


def _choose(rng: np.random.Generator, chooser: Chooser, group: IntArray,
            keys: dict[str, IntArray], counts: IntArray,
            start: FloatArray | None = None, done: FloatArray | None = None) -> IntArray:
    """The target of each item (items in time order; `counts`: targets present for each;
    `start`/`done`: when each item begins and ends, for the fewest-in-flight choices)."""
    if chooser.choice in ("least-conn", "random-two", "kong-least-connections"):
        if start is not None and done is not None and len(group) <= SEQUENTIAL_LIMIT:
            return _fewest_in_flight(rng, chooser.choice, group, start, done, counts)
        if chooser.choice == "random-two":
            return np.minimum((rng.random(len(group)) * counts).astype(np.int64), counts - 1)
    if chooser.choice == "random":
        return np.minimum((rng.random(len(group)) * counts).astype(np.int64), counts - 1)
    if chooser.choice == "hash":
        if chooser.ring_slots:
            return _continuum(rng, keys[chooser.hash_key], counts, chooser.ring_slots)
        return _rendezvous(rng, keys[chooser.hash_key], counts)
    rank = _rank_in_group(group)
    # nginx's smooth weighted round-robin starts every worker at the first server; Kong's
    # wheel starts at a random position.
    first = rng.integers(0, 1 << 30, int(group.max()) + 1) if chooser.random_start else np.zeros(
        int(group.max()) + 1, dtype=np.int64)
    return np.asarray((rank + first[group]) % counts, dtype=np.int64)


def _reads_in_flight(chooser: Chooser, items: int) -> bool:
    """Whether `_choose` needs each item's start and end (a fewest-in-flight choice it
    follows item by item)."""
    return chooser.choice in ("least-conn", "random-two", "kong-least-connections") and items <= SEQUENTIAL_LIMIT


def _hash_key(chooser: Chooser, client: IntArray, peer: IntArray, at: IntArray | None,
              items: int) -> dict[str, IntArray]:
    """The hash input a hashing choice reads for its `items` (`at`: the requests they are),
    and only that one: each is an array as long as the items."""
    if chooser.choice != "hash":
        return {}
    if chooser.hash_key == "request":
        return {"request": _iota(items)}
    source = client if chooser.hash_key == "client" else peer
    return {chooser.hash_key: source if at is None else source[at]}


def _occupancy_draw(rng: np.random.Generator, occupancy: FloatArray, key: IntArray) -> IntArray:
    """Poisson(occupancy[key]) for every item, by inverse transform with a guide table (Chen
    and Asau): each key's cumulative distribution over its mean +- 8 sd, and for each of twice
    as many equal slices of [0, 1) the first depth whose CDF exceeds the slice's start; a
    uniform draw starts there and steps on while the CDF does not exceed it, under two steps
    on average whatever the shape. numpy's Poisson sampler cost about 160 ns a draw, a third
    of a trial; this is a few gathers per draw."""
    lam = np.asarray(occupancy, dtype=np.float64)
    spread = 8 * np.sqrt(lam)
    low = np.maximum(0, np.floor(lam - spread)).astype(np.int64)  # far below: probability < 1e-15
    lengths = (np.ceil(lam + spread) + 10).astype(np.int64) - low
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    owner = np.repeat(np.arange(len(lam)), lengths)
    k = np.arange(int(lengths.sum())) - starts[owner] + low[owner]
    # log pmf(k) = k log lam - lam - log k!, from math.lgamma per key start, then by steps.
    first = np.array([kk * math.log(lm) - lm - math.lgamma(kk + 1) if lm > 0 else (0.0 if kk == 0 else -np.inf)
                      for kk, lm in zip(low.tolist(), lam.tolist(), strict=True)])
    safe = np.maximum(lam, 1e-300)[owner]
    step = np.where(k == low[owner], first[owner], np.log(safe) - np.log(np.maximum(k, 1)))
    log_pmf = np.cumsum(step)
    log_pmf -= np.repeat(log_pmf[starts] - step[starts], lengths)  # restart the sum at each key
    pmf = np.exp(log_pmf)
    cdf = np.cumsum(pmf)
    cdf -= np.repeat(cdf[starts] - pmf[starts], lengths)
    cdf[starts + lengths - 1] = 2.0  # past every draw: the walk ends in its own table
    bins = 2 * lengths
    bin_starts = np.concatenate(([0], np.cumsum(bins)[:-1]))
    bin_owner = np.repeat(np.arange(len(lam)), bins)
    slices = (np.arange(int(bins.sum())) - bin_starts[bin_owner]) / bins[bin_owner]
    guide = np.searchsorted(owner + np.minimum(cdf, 1.0), bin_owner + slices, side="right")
    depth = np.empty(len(key), dtype=np.int64)
    for lo in range(0, len(key), CHUNK):  # chunks whose temporaries stay in the CPU cache
        part = key[lo:lo + CHUNK]
        u = rng.random(len(part))
        at = guide[bin_starts[part] + (u * bins[part]).astype(np.int64)]
        walk = np.flatnonzero(cdf[at] <= u)
        while len(walk):
            at[walk] += 1
            walk = walk[cdf[at[walk]] <= u[walk]]
        depth[lo:lo + CHUNK] = at - starts[part] + low[part]
    return depth


def _lifo_connections(key: IntArray, start: FloatArray, done: FloatArray) -> IntArray:
    """The pooled connection each item (in start order) travels on when every key keeps its
    idle connections as a LIFO stack and nothing closes them (closed loop: no caller waits idle):
    an item takes the connection released last at its key, or opens one when none is idle.

    Exact, without a loop over the items: per key, a release pushes onto the idle stack and a
    start pops from it, so a start that finds `h` idle connections takes the one the latest
    release to height `h` before it pushed (bracket matching by height); each connection is then
    the item that opened it, followed along those matches. A release at the same moment as a
    start comes first (a caller's next request reuses what its last one released). Times go to
    whole nanoseconds so that such ties are exact. Returns dense connection ids."""
    n = len(key)
    if not n:
        return np.zeros(0, dtype=np.int64)
    start_ns = np.rint(start * 1e9).astype(np.int64)
    done_ns = np.maximum(np.rint(done * 1e9).astype(np.int64), start_ns + 1)
    span = 2 * (int(done_ns.max()) + 1)
    item = np.concatenate((_iota(n), _iota(n)))
    is_start = np.concatenate((np.ones(n, dtype=bool), np.zeros(n, dtype=bool)))
    keys = np.concatenate((key, key))
    stamp = np.concatenate((2 * start_ns + 1, 2 * done_ns))  # a release before a start at the same ns
    if int(key.max()) < (2**62) // span:
        order = np.argsort(keys * span + stamp, kind="stable")
    else:
        order = np.lexsort((stamp, keys))
    item, is_start, keys = item[order], is_start[order], keys[order]
    step = np.where(is_start, 1, -1)
    in_flight = np.cumsum(step)  # each key's starts and releases cancel: no reset between keys
    top = int(in_flight.max()) + 1
    # Connections open so far = the most ever in flight at the key (nothing closes them).
    opened = np.maximum.accumulate(in_flight + keys * top) - keys * top
    first_of_key = np.ones(2 * n, dtype=bool)
    first_of_key[1:] = keys[1:] != keys[:-1]
    opened_before = np.where(first_of_key, 0, np.roll(opened, 1))
    idle_before = opened_before - (in_flight - step)
    level = np.where(is_start, idle_before, idle_before + 1)
    new = is_start & (idle_before == 0)
    matched = ~new
    # Within a key and a height, pushes and pops alternate in time: a pop's match is the event
    # just before it in that group.
    m_index = np.flatnonzero(matched)
    group_order = m_index[np.argsort(keys[m_index] * (top + 1) + level[m_index], kind="stable")]
    previous = np.empty(len(group_order), dtype=np.int64)
    previous[1:] = group_order[:-1]
    previous[0] = -1
    pops = is_start[group_order]
    parent = _iota(n).copy()
    parent[item[group_order[pops]]] = item[previous[pops]]
    while True:  # follow the matches to the item that opened each connection
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            break
        parent = jumped
    return _dense(parent)[0]


def _pool(rng: np.random.Generator, hop: ProxyHop, p: Params, t: FloatArray, done: FloatArray,
          group: IntArray, target: IntArray, n_targets: int) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """The pooled upstream connection of each request (dense ids), and whether the request
    found room in the pool (False: its connection closes after it)."""
    n = len(t)
    pool_key = group * n_targets + target
    if p.rate is None:
        # Closed loop: every caller sends its next request the moment the last one returns,
        # so the stack is followed exactly; the idle cache's size is not applied (the
        # connections a key opens are the most it ever has in flight).
        slot = _lifo_connections(pool_key, t, done)
        pooled = np.ones(n, dtype=bool)
    else:
        occupancy = np.bincount(pool_key, minlength=int(pool_key.max()) + 1) / p.duration_s * p.response_time_s
        depth = _occupancy_draw(rng, occupancy, pool_key)
        # The idle cache holds `keepalive` connections per worker, shared by its targets: a
        # depth more than that above the occupancy's usual low (5 % quantile, normal
        # approximation) finds no cached connection and is closed after one request.
        per_target = max(1, hop.pool_size // max(1, min(n_targets, hop.pool_size)))
        low = np.maximum(0.0, occupancy - 1.645 * np.sqrt(occupancy))
        pooled = depth < (np.floor(low) + per_target)[pool_key]
        slot = pool_key * (int(depth.max()) + 1) + depth
    up = np.empty(n, dtype=np.int64)
    count = _connections(hop, t, slot, np.flatnonzero(pooled) if not pooled.all() else None, up)
    loose = np.flatnonzero(~pooled)
    up[loose] = count + _iota(len(loose))
    return up, pooled


def _connections(hop: ProxyHop, t: FloatArray, key: IntArray, index: IntArray | None, up: IntArray) -> int:
    """Number the pooled connections: the items (`index`, or all) in time order, each on the
    connection of its stack position `key`, which is replaced when idle longer than the hop's
    idle time, after `max_requests` requests or after its lifetime. Writes the ids into `up`
    and returns how many there are.

    The items go in chunks of CHUNK (sorted by key within the chunk, in the CPU cache), each
    key's open connection carried from one chunk to the next: the same connections as one
    sort over the whole trial, without its random accesses over arrays larger than the
    cache (10x the requests cost 13x the time)."""
    keys = int(key.max()) + 1 if len(key) else 0
    last_t = np.full(keys, -np.inf)
    current = np.full(keys, -1, dtype=np.int64)
    served = np.zeros(keys, dtype=np.int64)
    opened_at = np.zeros(keys, dtype=np.float64)
    total = len(key) if index is None else len(index)
    next_id = 0
    for lo in range(0, total, CHUNK):
        items = _iota(min(total, lo + CHUNK))[lo:] if index is None else index[lo:lo + CHUNK]
        order = np.argsort(_small(key[items]), kind="stable")
        items = items[order]
        ks, ts = key[items], t[items]
        m = len(items)
        local = _iota(m)
        run_head = np.ones(m, dtype=bool)
        run_head[1:] = ks[1:] != ks[:-1]
        run_start = np.maximum.accumulate(np.where(run_head, local, 0))
        before = np.empty(m)
        before[1:] = ts[:-1]
        before[run_head] = last_t[ks[run_head]]
        new = run_head & (current[ks] < 0)
        if hop.idle_s is not None:
            new |= (ts - before) > hop.idle_s
        if hop.max_requests is not None or hop.lifetime_s is not None:
            head = np.maximum.accumulate(np.where(new, local, -1))
            carried = head < run_start  # still on the connection open before this chunk
            position = np.where(carried, served[ks] + local - run_start, local - head)
            started = np.where(carried, opened_at[ks], ts[np.maximum(head, 0)])
            recycle = np.zeros(m, dtype=bool)
            if hop.max_requests is not None:
                recycle |= (position % hop.max_requests == 0) & (position > 0)
            if hop.lifetime_s is not None:
                age = np.floor((ts - started) / hop.lifetime_s)
                previous_age = np.empty(m)
                previous_age[1:] = age[:-1]
                previous_age[run_head] = np.floor((before[run_head] - started[run_head]) / hop.lifetime_s)
                recycle |= (age != previous_age) & ~new
            new |= recycle
        head = np.maximum.accumulate(np.where(new, local, -1))
        carried = head < run_start
        # Ids in the order the connections open (the workers of the next hop take them so).
        opening = np.argsort(items[new], kind="stable")
        rank = np.zeros(max(1, len(opening)), dtype=np.int64)  # a chunk may open none
        rank[opening] = _iota(len(opening))
        ids = np.where(carried, current[ks], next_id + rank[np.maximum(np.cumsum(new) - 1, 0)])
        up[items] = ids
        next_id += int(np.count_nonzero(new))
        # Each key's state after its last item in this chunk.
        tail = np.flatnonzero(np.append(run_head[1:], True))
        tk = ks[tail]
        last_t[tk] = ts[tail]
        current[tk] = ids[tail]
        served[tk] = np.where(carried[tail], served[tk] + tail - run_start[tail], tail - head[tail]) + 1
        opened_at[tk] = np.where(carried[tail], opened_at[tk], ts[np.maximum(head[tail], 0)])
    return next_id


def _cluster(rng: np.random.Generator, cluster: ClusterHop, path: SimPath, start: FloatArray,
             source: IntArray) -> IntArray:
    """The pod kube-proxy picks for each new connection to the ClusterIP (connections in
    the order they open)."""
    n = len(start)
    head_mask = np.ones(n, dtype=bool)
    segment = _iota(n)
    if cluster.affinity_s is not None:
        order = np.argsort(_small(source), kind="stable")
        s_src, s_start = source[order], start[order]
        heads = np.ones(n, dtype=bool)
        heads[1:] = (s_src[1:] != s_src[:-1]) | ((s_start[1:] - s_start[:-1]) > cluster.affinity_s)
        head_of = np.maximum.accumulate(np.where(heads, _iota(n), 0))
        segment = np.empty(n, dtype=np.int64)
        segment[order] = order[head_of]
        head_mask = segment == _iota(n)
    heads_index = np.flatnonzero(head_mask)
    counts = _pods_at(path, start[heads_index])
    pod = np.empty(n, dtype=np.int64)
    if cluster.choice == "random":
        chosen = np.minimum((rng.random(len(heads_index)) * counts).astype(np.int64), counts - 1)
    elif cluster.choice == "source-hash":
        chosen = _rendezvous(rng, source[heads_index], counts)
    else:  # IPVS rr: one scheduler per node, here one node per calling instance
        chosen = np.asarray(_rank_in_group(source[heads_index]) % counts, dtype=np.int64)
    pod[heads_index] = chosen
    pod = pod[segment]
    return pod


def _response_times(rng: np.random.Generator, p: Params, shape: int | tuple[int, int]) -> FloatArray:
    if not p.response_sigma:
        return np.full(shape, p.response_time_s)
    return np.asarray(p.response_time_s * np.exp(p.response_sigma * rng.standard_normal(shape)), dtype=np.float64)


def _requests(rng: np.random.Generator, p: Params) -> tuple[FloatArray, IntArray, IntArray, FloatArray]:
    """Arrival times (sorted), client connection, client and response time of every request."""
    connections = p.clients * p.connections_per_client
    if p.rate is None:
        # Closed loop: every client connection sends its next request when the last returns.
        if p.response_sigma:
            per = max(1, int(p.duration_s / (p.response_time_s * np.exp(-3 * p.response_sigma)))) + 1
            taken = _response_times(rng, p, (connections, per))
            offsets = rng.uniform(0, p.response_time_s, connections)
            t = (offsets[:, None] + np.cumsum(taken, axis=1) - taken).ravel()
            rt = taken.ravel()
        else:
            per = max(1, int(p.duration_s / p.response_time_s))
            offsets = rng.uniform(0, p.response_time_s, connections)
            t = (offsets[:, None] + p.response_time_s * np.arange(per)[None, :]).ravel()
            rt = np.full(len(t), p.response_time_s)
        conn = np.repeat(np.arange(connections, dtype=np.int64), per)
        keep = t < p.duration_s
        t, conn, rt = t[keep], conn[keep], rt[keep]
        order = np.argsort(t, kind="stable")
        t, conn, rt = t[order], conn[order], rt[order]
        return t, (conn % p.clients if p.multiplexed else conn), conn % p.clients, rt
    n = max(1, round(p.rate * p.duration_s))
    # Sorted uniform arrival times without a sort: normalised sums of exponential gaps are
    # distributed as the order statistics of n uniform draws.
    gaps = rng.standard_exponential(n + 1)
    t = np.cumsum(gaps)[:n] * (p.duration_s / gaps.sum())
    rt = _response_times(rng, p, n)
    if p.keepalive:
        conn = rng.integers(0, connections, n)
        return t, (conn % p.clients if p.multiplexed else conn), conn % p.clients, rt
    client = rng.integers(0, p.clients, n)
    return t, _iota(n), client, rt


REORDER_EVERY = 16
"""nginx (1.21.6+) re-adds its shared listening socket to a worker's epoll set after every
16th connection that worker accepts, and after the first (ngx_reorder_accept_events in
src/event/ngx_event_accept.c: `c->requests++ % 16`)."""


def _worker_of(rng: np.random.Generator, hop: ProxyHop, conn: IntArray, inst: IntArray, n_conn: int) -> IntArray:
    """The worker of each of the `n_conn` connections (ids in the order they open; `conn` and
    `inst`: each request's connection and the instance it reaches).

    `reuseport`: every worker has its own listening socket and the kernel hashes each
    connection's addresses onto one, a uniform choice. Otherwise the workers share one socket
    in EPOLLEXCLUSIVE mode (nginx 1.11.3+ without accept_mutex), and Linux wakes the worker
    that added it to its epoll set first: `first`, every connection on that worker (nginx
    before 1.21.6); `rotating`, that worker takes one connection and moves to the back of
    the queue, each in turn, then runs of 16 in turn (1.21.6+). An idle first worker is
    assumed: a busy one passes the connection on, which spreads a burst further."""
    if hop.workers == 1 or hop.accept == "first":
        return np.zeros(n_conn, dtype=np.int64)
    if hop.accept == "reuseport":
        return rng.integers(0, hop.workers, n_conn)
    instance = np.empty(n_conn, dtype=np.int64)
    instance[conn] = inst  # a connection's requests all reach one instance
    k = _rank_in_group(instance)  # the k-th connection its instance accepts
    return np.asarray(np.where(k < hop.workers, k, (k - hop.workers) // REORDER_EVERY % hop.workers), dtype=np.int64)


def run_trial(path: SimPath, p: Params, rng: np.random.Generator) -> Trial:
    t, conn, client, rt = _requests(rng, p)
    n = len(t)
    if p.sources is not None and p.sources < p.clients:
        client = client % p.sources  # clients behind a NAT or proxy share its addresses
    peer = client  # the source address the first hop sees
    first = path.hops[0] if path.hops else None
    # Client connections spread over the first tier's instances in turn (DNS round-robin
    # records, the lab's clients); the ids of a hop's connections are in the order they open
    # (the clients' are interchangeable), which decides their workers (`_worker_of`).
    inst = conn % len(first.instances) if first else np.zeros(n, np.int64)
    pod: IntArray | None = None
    # Requests whose connection closes after them (clients without keep-alive, a hop that
    # does not pool, a stack depth the idle cache cannot keep): never open at the end.
    one_shot = np.full(n, not p.keepalive and p.rate is not None)
    decider = 0
    open_pods: IntArray = np.zeros(0, dtype=np.int64)
    conn, n_conn = _dense(conn)
    for hop in path.hops:
        group = inst * hop.workers + _worker_of(rng, hop, conn, inst, n_conn)[conn]
        if hop.reuse == "per-connection":
            firsts, lasts = _firsts_lasts(conn, n_conn)
            opened = _in_time_order(firsts, n)
            target_c = np.empty(n_conn, dtype=np.int64)
            # A stream session is in flight from its first request to the end of its last.
            in_flight = (t[opened], (t[lasts] + rt[lasts])[conn[opened]]) if _reads_in_flight(hop.chooser, n_conn) \
                else (None, None)
            target_c[conn[opened]] = _choose(
                rng, hop.chooser, group[opened],
                _hash_key(hop.chooser, client, peer, opened, n_conn),
                np.full(n_conn, max(hop.targets, 1)), *in_flight)
            up = conn
            target = target_c[conn]
        else:
            counts = _pods_seen(rng, path, hop, t, inst) if hop.per_request_pods else np.full(n, max(hop.targets, 1))
            target = _choose(rng, hop.chooser, group,
                             _hash_key(hop.chooser, client, peer, None, n), counts,
                             *((t, t + rt) if _reads_in_flight(hop.chooser, n) else (None, None)))
            if hop.reuse == "per-request":
                up = _iota(n)
                one_shot = np.ones(n, dtype=bool)
            else:
                n_targets = int(counts.max())
                up, pooled = _pool(rng, hop, p, t, t + rt, group, target, n_targets)
                one_shot = ~pooled
        if hop.per_request_pods:
            pod = target
            up, n_up = _dense(up)
            firsts, lasts = _firsts_lasts(up, n_up)
            decider = n
            alive = t[lasts] >= p.duration_s - (hop.idle_s if hop.idle_s is not None else p.duration_s)
            open_pods = pod[firsts][alive & ~one_shot[firsts]]
            break
        peer = inst  # the next hop sees this hop's instance address
        inst = target
        conn = up  # dense ids: every hop numbers its upstream connections 0..n-1
        n_conn = int(conn.max()) + 1 if n else 0
    if pod is None:
        firsts, lasts = _firsts_lasts(conn, n_conn)
        opened = _in_time_order(firsts, n)
        pod_c = np.empty(n_conn, dtype=np.int64)
        pod_c[conn[opened]] = _cluster(rng, path.cluster, path, t[opened], peer[opened])
        pod = pod_c[conn]
        decider = n_conn
        last_hop = path.hops[-1] if path.hops else None
        idle = last_hop.idle_s if last_hop is not None and last_hop.reuse == "pool" else None
        alive = t[lasts] >= p.duration_s - (idle if idle is not None else p.duration_s)
        open_pods = pod_c[alive & ~one_shot[firsts]]
    return _measure(path, p, t, pod, open_pods, decider)


def _measure(path: SimPath, p: Params, t: FloatArray, pod: IntArray, open_pods: IntArray,
             decider: int) -> Trial:
    final = path.replicas + sum(add for _, add in path.events)
    window_start = max([0.0] + [at for at, _ in path.events if at < p.duration_s])
    in_window = t >= window_start
    counts = np.bincount(pod[in_window], minlength=final).astype(np.float64)
    total = counts.sum()
    mean = total / final if final else 0.0
    shares = np.sort(counts / total)[::-1] if total else np.zeros(final)
    opened = np.sort(np.bincount(open_pods, minlength=final).astype(np.float64))[::-1]
    trial = Trial(
        shares=shares, open_connections=opened,
        max_mean=float(counts.max() / mean) if mean else 0.0,
        min_mean=float(counts.min() / mean) if mean else 0.0,
        cv=float(counts.std() / mean) if mean else 0.0,
        pods_used=int(np.count_nonzero(counts)), decider_connections=decider, requests=len(t),
    )
    before = path.replicas
    for at, add in path.events:
        if at >= p.duration_s:
            trial.fair_share_s.append((None, None))
            before += add
            continue
        fair = add / (before + add)
        edges = np.arange(at, p.duration_s + p.bin_s / 2, p.bin_s)
        late = t >= at
        bins = np.minimum(((t[late] - at) // p.bin_s).astype(np.int64), len(edges) - 2)
        all_in_bin = np.bincount(bins, minlength=len(edges) - 1)
        new = (pod[late] >= before) & (pod[late] < before + add)
        new_in_bin = np.bincount(bins[new], minlength=len(edges) - 1)
        share = np.divide(new_in_bin, all_in_bin, out=np.zeros(len(all_in_bin)), where=all_in_bin > 0)
        reached: list[float | None] = []
        for level in (0.5, 0.9):
            hit = np.flatnonzero(share >= level * fair)
            reached.append(float((hit[0] + 1) * p.bin_s) if len(hit) else None)
        trial.fair_share_s.append((reached[0], reached[1]))
        before += add
    return trial


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the
    system (no trimming, no per-array mmap). A trial frees and allocates arrays of the same
    sizes again; handing them back made every trial pay page faults and zeroing again, which
    grew faster than the request count (10x the rate: 12.5x the time instead of 9x).
    Process-wide, so only the `lbgen simulate` command and the benchmark call it; a no-op
    where the C library is not glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None) if libc is not None else None
        if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
            return
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc malloc.h
        mallopt(m_trim_threshold, 1 << 30)
        mallopt(m_mmap_threshold, 32 << 20)  # the largest value glibc accepts on 64-bit
    except OSError:
        return


def run(path: SimPath, p: Params) -> list[Trial]:
    """`p.trials` independent trials, reproducible from `p.seed`."""
    seeds = np.random.SeedSequence(p.seed).spawn(p.trials)
    return [run_trial(path, p, np.random.default_rng(s)) for s in seeds]


__all__ = ["Params", "Trial", "keep_freed_memory", "run", "run_trial"]
