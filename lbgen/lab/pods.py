"""The lab's pods: small asyncio HTTP/1.1 servers, one per pod IP, in one process.

Run as `python3 -m lbgen.lab.pods CONFIG.json` inside the lab's namespace. Each pod keeps
connections alive like the spec's app server: it closes a connection after `idle_s` without
a request. Its answer names it (`X-Pod` header and JSON body). It counts the connections it
accepted and the requests it answered; on SIGTERM it writes the counts to `stats` and exits.

`close_delay_s` stands in for the network between a pod and its caller (the lab runs on one
machine's loopback, where a FIN arrives in microseconds, and this kernel has no netem): when
the idle timer fires the pod stops reading, and for `close_delay_s` a request that reaches it
is answered with a TCP reset, as on a real network where the caller sent it before the FIN
reached it. Then it sends its FIN, and a request that crossed the FIN is reset and counted
too (`_request_crosses_close`).

Rollout: the runner names, in the `control` file, when each old pod begins its shutdown (after
its preStop sleep) and when it is killed (terminationGracePeriodSeconds); see `Pod`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AFTER_FIN_S = 5.0
"""How long a half-closed connection waits for the caller's close (it closes on seeing the FIN)."""


@dataclass
class PodStats:
    name: str
    connections: int = 0
    requests: int = 0
    resets: int = 0
    """Connections reset because a request arrived after the idle timer fired."""
    idle_closes: int = 0
    shutdown_closes: int = 0
    """Idle kept-alive connections closed because the pod began shutting down (rollout)."""


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return head


async def _request_crosses_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                 delay_s: float) -> bool:
    """Whether a request reaches a connection the pod is closing: within `delay_s` (the FIN
    still on its way), or after the FIN left but before the caller saw it. A closed socket's
    kernel answers the latter with a reset the pod could not count, so the pod half-closes
    and reads on until the caller closes too; the caller sees the same reset either way."""
    try:
        return bool(await asyncio.wait_for(reader.read(1), delay_s))  # b"": the caller closed first
    except TimeoutError:
        pass
    writer.write_eof()
    try:
        return bool(await asyncio.wait_for(reader.read(1), AFTER_FIN_S))
    except TimeoutError:
        return False


class Pod:
    """One pod's listener, its open connections and whether it is shutting down."""

    def __init__(self, name: str) -> None:
        self.stats = PodStats(name)
        self.server: asyncio.Server | None = None
        self.shutdown = asyncio.Event()
        self.writers: set[asyncio.StreamWriter] = set()

    def begin_shutdown(self) -> None:
        """What uvicorn does on SIGTERM (uvicorn/server.py `Server.shutdown`, h11_impl.py
        `H11Protocol.shutdown`): stop accepting, close idle kept-alive connections, and answer
        the request in flight on each busy one with `Connection: close`, then close it."""
        if self.server is not None:
            self.server.close()
        self.shutdown.set()

    def kill(self) -> None:
        """terminationGracePeriodSeconds is over: SIGKILL, every connection reset."""
        self.begin_shutdown()
        for writer in list(self.writers):
            _reset(writer)


async def _serve(pod: Pod, idle_s: float | None, delay_s: float, service_s: float,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    stats = pod.stats
    stats.connections += 1
    pod.writers.add(writer)
    body = json.dumps({"pod": stats.name}).encode()
    try:
        while True:
            if pod.shutdown.is_set():
                head = None  # idle at shutdown: closed like an idle timeout
            else:
                request = asyncio.ensure_future(_read_request(reader))
                stop = asyncio.ensure_future(pod.shutdown.wait())
                await asyncio.wait({request, stop}, timeout=idle_s, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if request.done():
                    head = request.result()
                else:
                    request.cancel()
                    head = None
            if head is None:
                if pod.shutdown.is_set():
                    stats.shutdown_closes += 1
                else:
                    stats.idle_closes += 1
                if not await _request_crosses_close(reader, writer, delay_s):
                    writer.close()
                    return
                stats.resets += 1
                _reset(writer)
                return
            if service_s:
                await asyncio.sleep(service_s)
            stats.requests += 1
            closing = pod.shutdown.is_set()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pod: " + stats.name.encode()
                         + (b"\r\nConnection: close" if closing else b"")
                         + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
            if closing:
                writer.close()
                return
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
        writer.transport.abort()
    finally:
        pod.writers.discard(writer)


async def _rollout(pods: dict[str, Pod], control: Path, stop: asyncio.Event) -> None:
    """The runner writes the terminations (CLOCK_MONOTONIC times) to `control` once the load
    starts; each pod begins its shutdown at `shutdown_at` and is killed at `kill_at`."""
    loop = asyncio.get_running_loop()
    while not control.exists():
        if stop.is_set():
            return
        await asyncio.sleep(0.02)
    for item in json.loads(control.read_text()):
        pod = pods[item["pod"]]
        # asyncio's clock is time.monotonic(), the runner's too.
        loop.call_at(item["shutdown_at"], pod.begin_shutdown)
        loop.call_at(item["kill_at"], pod.kill)


async def _main(config: dict[str, Any]) -> None:
    idle = config["idle_s"]
    pods = [Pod(p["name"]) for p in config["pods"]]
    stats = [pod.stats for pod in pods]
    for spec, pod in zip(config["pods"], pods, strict=True):
        def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, pod: Pod = pod) -> Any:
            return _serve(pod, idle, config["close_delay_s"], config["service_s"], r, w)
        pod.server = await asyncio.start_server(handler, spec["address"], spec["port"], backlog=1024)
    Path(config["ready"]).write_text("ready\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    timeline: list[list[float]] = []

    async def sample() -> None:
        # Cumulative requests per pod, stamped with CLOCK_MONOTONIC (shared by every process),
        # so the runner can say when pods added mid-run got their share.
        while True:
            timeline.append([round(time.monotonic(), 3), *(s.requests for s in stats)])
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    rollout = asyncio.create_task(_rollout({p.stats.name: p for p in pods}, Path(config["control"]), stop)) \
        if config.get("control") else None
    await asyncio.wait_for(stop.wait(), config["max_run_s"])
    sampler.cancel()
    if rollout is not None:
        rollout.cancel()
    for pod in pods:
        if pod.server is not None:
            pod.server.close()
    Path(config["stats"]).write_text(json.dumps({"pods": [
        {"pod": s.name, "connections": s.connections, "requests": s.requests, "resets": s.resets,
         "idle_closes": s.idle_closes, "shutdown_closes": s.shutdown_closes} for s in stats
    ], "timeline": timeline}) + "\n")


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[1]).read_text())
    started = time.monotonic()
    try:
        asyncio.run(_main(config))
    except TimeoutError:
        print(f"pods: stopped after {time.monotonic() - started:.0f}s (max_run_s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
