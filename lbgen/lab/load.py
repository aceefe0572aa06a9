"""The lab's built-in load client (asyncio, HTTP/1.1 keep-alive).

Run as `python3 -m lbgen.lab.load CONFIG.json` inside the lab's namespace; prints one JSON
object. `steady`: `connections` keep-alive connections, spread over the first tier's
instances and bound to client addresses, each sending its next request when the last one
returns (or paced so that all together send `rate` per second). `idle-race`: all connections
send one POST at once, then wait a gap around the idle timeout under test, again and again
(`gaps_s`). `rollout`: as `steady`, with POSTs (nginx retries no POST it has sent). Every request has a timeout and the run stops at `duration_s` or `max_requests`.
Errors are classed: `status_5xx` by status, `reset` (the connection was reset or closed
before a whole answer), `timeout`, `connect`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REQUEST_TIMEOUT_S = 5.0
MAX_ERROR_TIMES = 20_000


class Tally:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.pods: Counter[str] = Counter()
        self.requests = 0
        self.error_times: list[tuple[float, str]] = []
        """(CLOCK_MONOTONIC, class) of each error, so a rollout's errors can be put on its steps."""

    def error(self, kind: str) -> None:
        self.errors[kind] += 1
        if len(self.error_times) < MAX_ERROR_TIMES:
            self.error_times.append((round(time.monotonic(), 3), kind))


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes,
                    tally: Tally) -> bool:
    """One request; True when the connection can carry the next one."""
    started = time.monotonic()
    tally.requests += 1
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, close, pod = 0, False, ""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value.strip())
            elif key == b"connection" and value.strip().lower() == b"close":
                close = True
            elif key == b"x-pod":
                pod = value.strip().decode()
        if length:
            await asyncio.wait_for(reader.readexactly(length), REQUEST_TIMEOUT_S)
    except TimeoutError:
        tally.error("timeout")
        return False
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, OSError):
        tally.error("reset")
        return False
    tally.latencies.append(time.monotonic() - started)
    tally.statuses[status] += 1
    if status >= 500:
        tally.error(f"status_{status}")
    if pod:
        tally.pods[pod] += 1
    return not close


async def _connect(target: tuple[str, int], source: str, tally: Tally) -> Any:
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(target[0], target[1], local_addr=(source, 0)), REQUEST_TIMEOUT_S)
    except (OSError, TimeoutError):
        tally.error("connect")
        return None


def _request(config: dict[str, Any], method: str) -> bytes:
    body = b'{"order": 1}' if method == "POST" else b""
    head = f"{method} {config['path']} HTTP/1.1\r\nHost: {config['host']}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def _steady_lane(index: int, config: dict[str, Any], tally: Tally, deadline: float) -> None:
    targets = config["targets"]
    target = tuple(targets[index % len(targets)])
    source = config["sources"][index % len(config["sources"])]
    request = _request(config, config.get("method", "GET"))
    interval = config["connections"] / config["rate"] if config.get("rate") else 0.0
    next_at = time.monotonic() + (interval * index / config["connections"] if interval else 0)
    conn = None
    while time.monotonic() < deadline and tally.requests < config["max_requests"]:
        if interval:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
        if conn is None:
            conn = await _connect(target, source, tally)
            if conn is None:
                await asyncio.sleep(0.05)
                continue
        if not await _exchange(conn[0], conn[1], request, tally):
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


async def _race(config: dict[str, Any], tally: Tally, deadline: float) -> list[dict[str, Any]]:
    targets, sources = config["targets"], config["sources"]
    request = _request(config, "POST")
    conns: list[Any] = [None] * config["connections"]
    rounds: list[dict[str, Any]] = []

    async def one(i: int) -> None:
        if conns[i] is None:
            conns[i] = await _connect(tuple(targets[i % len(targets)]), sources[i % len(sources)], tally)
            if conns[i] is None:
                return
        if not await _exchange(conns[i][0], conns[i][1], request, tally):
            conns[i][1].close()
            conns[i] = None

    gap_index = 0
    gap = 0.0
    while time.monotonic() < deadline and tally.requests < config["max_requests"]:
        before = sum(tally.errors.values())
        await asyncio.gather(*(one(i) for i in range(config["connections"])))
        rounds.append({"after_gap_s": round(gap, 3), "errors": sum(tally.errors.values()) - before})
        gap = config["gaps_s"][gap_index % len(config["gaps_s"])]
        gap_index += 1
        if time.monotonic() + gap >= deadline:
            break
        await asyncio.sleep(gap)
    for conn in conns:
        if conn is not None:
            conn[1].close()
    return rounds


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _main(config: dict[str, Any]) -> dict[str, Any]:
    tally = Tally()
    started = time.monotonic()
    deadline = started + config["duration_s"]
    rounds: list[dict[str, Any]] = []
    if config["scenario"] == "idle-race":
        rounds = await _race(config, tally, deadline)
    else:
        await asyncio.gather(*(_steady_lane(i, config, tally, deadline) for i in range(config["connections"])))
    p50, p99 = _percentile(tally.latencies, 0.5), _percentile(tally.latencies, 0.99)
    return {
        "client": "built-in asyncio",
        "elapsed_s": round(time.monotonic() - started, 3),
        "requests": tally.requests,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "errors": dict(sorted(tally.errors.items())),
        "latency_ms": {"p50": None if p50 is None else round(p50 * 1000, 3),
                       "p99": None if p99 is None else round(p99 * 1000, 3)},
        "pods_seen": dict(sorted(tally.pods.items())),
        "rounds": rounds,
        "error_times": tally.error_times if config["scenario"] == "rollout" else [],
    }


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[1]).read_text())
    print(json.dumps(asyncio.run(_main(config))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
