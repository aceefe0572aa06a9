"""`lbgen probe`: measure a live HTTP/1.1 server's keep-alive behaviour the way the rules need it.

Three things, each from what the server does on the wire rather than what it says:

- whether it keeps connections alive at all (a second request on the first connection is
  answered), or closes after every response (`Connection: close`, an HTTP/1.0 answer, a
  body delimited by the close, or a silent close before the second request);
- the idle timeout after which it closes a kept-alive connection. Connections left idle
  after a response see the server's FIN: the time from the end of the response to the close
  is the timeout, and the shortest of several connections, started staggered across a
  second, is reported, because servers that check idle connections on a periodic tick
  (gunicorn's gthread worker polls once a second) close some connections later than the
  setting. Other connections reuse their connection after a ladder of waits (max_idle/64 …
  max_idle/2), which brackets the timeout for a server that never sends a FIN and only
  refuses a late request;
- the number of requests it serves on one connection before it closes it (nginx's
  `keepalive_requests`), by sending up to `max_requests` requests back to back.

Bounded: at most `IDLE_CONNECTIONS + 1` connections, and the run ends `CLOSE_GRACE_S` after
the first idle close, or at `max_idle` (plus the stagger and one request timeout) when no
connection is closed. Only `http://`: the probe speaks plain HTTP/1.1 over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lbgen.errors import LbgenError

IDLE_CONNECTIONS = 10
"""Connections the idle measurement opens: PASSIVE of them only wait for the close, the others
reuse their connection after one rung of the wait ladder."""
PASSIVE = 4
STAGGER_S = 1.0
"""The idle connections' starts are spread over this long (at most a tenth of --max-idle), so
a server's once-a-second idle sweep is met at different phases."""
CLOSE_GRACE_S = 1.0
"""After the first idle close, how long the other idle connections get to see theirs."""
REQUEST_TIMEOUT_S = 10.0
"""How long one request may take to be answered before the probe gives up."""
MAX_BODY = 1 << 20
"""Response bodies are read and discarded; a larger one stops the probe (point it at a small
resource)."""
MAX_HEAD = 64 * 1024


class ProbeError(LbgenError):
    """The probe cannot start or the server does not speak HTTP/1.1 as expected. Exit code 2."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    url: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 80 else f"{host}:{self.port}"


def parse_url(url: str) -> Target:
    """The probe's target; ProbeError for anything but an http:// URL with a host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ProbeError(f"{url!r} is not a URL: {exc}") from None
    if parts.scheme == "https":
        raise ProbeError(
            f"{url}: https is not supported: the probe speaks plain HTTP/1.1 over TCP. Probe the "
            "app server's own http:// port (the innermost hop, behind any TLS terminator)"
        )
    if parts.scheme != "http" or not parts.hostname:
        raise ProbeError(f"{url!r}: give an http:// URL with a host, e.g. http://127.0.0.1:8000/")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.hostname, port or 80, path, url)


@dataclass
class Response:
    version: str
    status: int
    headers: dict[str, str]
    closes: str | None
    """Why this response ends the connection (None: the server keeps it)."""


class Closed(Exception):
    """The server closed (FIN or RST) before it answered."""


async def _read_response(reader: asyncio.StreamReader, method: str) -> Response:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise Closed("closed before answering") from None
            raise ProbeError("the server closed the connection in the middle of a response head") from None
        except asyncio.LimitOverrunError:
            raise ProbeError(f"the response head is larger than {MAX_HEAD} bytes") from None
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not status_line[1].isdigit():
            raise ProbeError(f"not an HTTP response: {lines[0][:80]!r}")
        version, status = status_line[0], int(status_line[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if 100 <= status < 200:
            continue  # an interim response (100 Continue): the real one follows
        break
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    closes: str | None = None
    if "close" in tokens:
        closes = "it answered with Connection: close"
    elif version == "HTTP/1.0" and "keep-alive" not in tokens:
        closes = "it answered in HTTP/1.0 without Connection: keep-alive"
    if method == "HEAD" or status in (204, 304):
        return Response(version, status, headers, closes)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        await _read_chunked(reader)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"].split(",")[0])
        except ValueError:
            raise ProbeError(f"invalid Content-Length {headers['content-length']!r}") from None
        if length > MAX_BODY:
            raise ProbeError(f"the response body is {length} bytes; probe a smaller resource")
        try:
            await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise ProbeError("the server closed the connection in the middle of a response body") from None
    else:
        # No length: the body ends with the connection (RFC 9112 §6.3), so it cannot be reused.
        body = await reader.read(MAX_BODY + 1)
        while body and len(body) <= MAX_BODY:
            more = await reader.read(MAX_BODY + 1)
            if not more:
                break
            body += more
        closes = closes or "its response had no length, so the body ended with the connection"
    return Response(version, status, headers, closes)


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise ProbeError(f"invalid chunk size {size_line[:40]!r}") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return
        total += size
        if total > MAX_BODY:
            raise ProbeError("the chunked response body is over 1 MiB; probe a smaller resource")
        await reader.readexactly(size + 2)


class _Conn:
    def __init__(self, target: Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.target, self.reader, self.writer = target, reader, writer

    @classmethod
    async def open(cls, target: Target) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(target.host, target.port, limit=MAX_HEAD), REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                why = f"no answer within {REQUEST_TIMEOUT_S:g}s"
            elif isinstance(exc, socket.gaierror) or not exc.errno:
                why = exc.strerror or str(exc)  # the resolver's own words: "Name or service not known"
            else:  # asyncio's message repeats the address; the errno's text says what happened
                why = os.strerror(exc.errno)
            raise ProbeError(
                f"cannot connect to {target.host_header} ({why}): check that the server is running, "
                "that it listens on that address and port, and that nothing in between drops the "
                "connection"
            ) from None
        return cls(target, reader, writer)

    async def request(self) -> Response:
        message = (f"GET {self.target.path} HTTP/1.1\r\nHost: {self.target.host_header}\r\n"
                   "User-Agent: lbgen-probe\r\nAccept: */*\r\n\r\n")
        try:
            self.writer.write(message.encode("latin-1"))
            await self.writer.drain()
            return await asyncio.wait_for(_read_response(self.reader, "GET"), REQUEST_TIMEOUT_S)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise Closed("reset") from exc
        except TimeoutError:
            raise ProbeError(
                f"{self.target.url} did not answer within {REQUEST_TIMEOUT_S:g}s") from None

    async def wait_closed_by_server(self, timeout: float) -> bool:
        """Wait up to `timeout` for the server's FIN or RST; True when it came."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), timeout)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        if data:
            raise ProbeError("the server sent data on an idle connection (no request was pending)")
        return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass
class KeepAlive:
    honoured: bool
    evidence: str


@dataclass
class IdleTimeout:
    seconds: float | None
    """The assumable value: the shortest observed close; a lower bound when `kind` says so."""
    kind: str
    """measured: connections were closed after `seconds`; range: the server closed none but
    refused a late reuse (`seconds` is the longest wait still served); at-least: nothing closed
    within --max-idle; not-applicable: no keep-alive."""
    closes_s: list[float] = field(default_factory=list)
    """Idle time until the server closed, per connection that saw it, shortest first."""
    served_after_s: list[float] = field(default_factory=list)
    refused_after_s: list[float] = field(default_factory=list)
    advertised_s: float | None = None
    """`Keep-Alive: timeout=N` as the server announced it (nginx's second keepalive_timeout
    value); the measured close is what the rules use."""


@dataclass
class MaxRequests:
    limit: int | None
    """Requests one connection served before the server closed it; None: no limit seen."""
    sent: int
    evidence: str


@dataclass
class ProbeResult:
    url: str
    status: int
    server: str | None
    keepalive: KeepAlive
    idle_timeout: IdleTimeout
    max_requests: MaxRequests
    max_idle_s: float
    connections: int
    elapsed_s: float

    @property
    def assume(self) -> list[str]:
        """`--assume` values for `lbgen import` (the spec's app server has no field for a
        per-connection request limit, so only the idle timeout is assumable)."""
        if not self.keepalive.honoured:
            return ["app.idle_timeout=0s"]
        if self.idle_timeout.seconds is None:
            return []
        return [f"app.idle_timeout={_duration(self.idle_timeout.seconds)}"]


def _duration(seconds: float) -> str:
    """Down to a tenth of a second (with 10 ms of tolerance), never up: an assumed app timeout
    must not be longer than the server's (the rules compare it with the pools' idle timeouts)."""
    tenths = math.floor(seconds * 10 + 0.1)  # 10 ms of timer and scheduling jitter
    return f"{tenths // 10}s" if tenths % 10 == 0 else f"{tenths * 100}ms"


def _advertised(headers: dict[str, str]) -> float | None:
    for part in headers.get("keep-alive", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "timeout":
            with contextlib.suppress(ValueError):
                return float(value.strip())
    return None


async def _request_limit(conn: _Conn, max_requests: int, deadline: float) -> tuple[KeepAlive, MaxRequests]:
    """Requests back to back on the first connection (its first response kept it open): a
    second answer proves keep-alive, then the run goes on until the server closes or
    `max_requests` were served."""
    kept = KeepAlive(True, "a second request on the same connection was answered")
    served = 1
    try:
        while served < max_requests and time.monotonic() < deadline:
            try:
                response = await conn.request()
            except Closed:
                if served == 1:
                    why = "it closed the connection after the first response without saying so"
                    return KeepAlive(False, why), MaxRequests(1, 1, "every connection serves one request")
                return kept, MaxRequests(served, served + 1, f"it closed the connection after {served} "
                                         f"requests without saying so (request {served + 1} was not answered)")
            served += 1
            if response.closes:
                return kept, MaxRequests(served, served, f"response {served} said Connection: close")
    finally:
        conn.close()
    if served == 1:  # --max-requests 1: keep-alive is only as proven as the first response says
        kept = KeepAlive(True, "the first response kept the connection open (--max-requests 1 sent no second)")
    stopped = "" if served >= max_requests else " (stopped at the time limit)"
    return kept, MaxRequests(None, served, f"no limit within {served} requests on one connection{stopped}")


@dataclass
class _Idle:
    closes: list[float] = field(default_factory=list)
    served: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    first_close: asyncio.Event = field(default_factory=asyncio.Event)


async def _idle_connection(target: Target, start_after: float, reuse_after: float | None,
                           max_idle: float, seen: _Idle) -> None:
    await asyncio.sleep(start_after)
    conn = await _Conn.open(target)
    try:
        try:
            response = await conn.request()
        except Closed:
            raise ProbeError(f"{target.url} closed a new connection without answering") from None
        if response.closes:
            return  # the server changed its mind; the first connection's verdict stands
        idle_from = time.monotonic()
        wait = max_idle if reuse_after is None else reuse_after
        if await conn.wait_closed_by_server(wait):
            seen.closes.append(time.monotonic() - idle_from)
            seen.first_close.set()
            return
        if reuse_after is None:
            return
        try:
            await conn.request()
        except Closed:
            seen.refused.append(reuse_after)
        else:
            seen.served.append(reuse_after)
    finally:
        conn.close()


def _ladder(max_idle: float) -> list[float]:
    return [round(max_idle / 2**k, 3) for k in range(IDLE_CONNECTIONS - PASSIVE, 0, -1)]


async def _measure_idle(target: Target, max_idle: float) -> _Idle:
    seen = _Idle()
    stagger = min(STAGGER_S, max_idle / 10)
    plans: list[float | None] = [None] * PASSIVE + list(_ladder(max_idle))
    tasks = [asyncio.create_task(_idle_connection(
        target, stagger * i / IDLE_CONNECTIONS, reuse, max_idle, seen)) for i, reuse in enumerate(plans)]
    all_done = asyncio.gather(*tasks)
    try:
        closed = asyncio.create_task(seen.first_close.wait())
        either: set[asyncio.Future[Any]] = {all_done, closed}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not all_done.done():
            # The first close bounds the run: the other connections get CLOSE_GRACE_S to see theirs.
            await asyncio.wait({all_done}, timeout=CLOSE_GRACE_S)
        closed.cancel()
        if all_done.done():
            all_done.result()  # a ProbeError from any connection
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await all_done
    return seen


async def _probe(target: Target, max_idle: float, max_requests: int) -> ProbeResult:
    started = time.monotonic()
    deadline = started + max_idle + STAGGER_S + REQUEST_TIMEOUT_S
    conn = await _Conn.open(target)
    try:
        first = await conn.request()
    except Closed:
        conn.close()
        raise ProbeError(f"{target.url} accepted the connection and closed it without answering") from None
    except BaseException:
        conn.close()
        raise
    connections = 1
    if first.closes:
        conn.close()
        keepalive = KeepAlive(False, first.closes)
        requests = MaxRequests(1, 1, "every connection serves one request")
        idle = IdleTimeout(None, "not-applicable")
    else:
        # The request-limit run goes on on the first connection while the idle connections wait.
        (keepalive, requests), seen = await asyncio.gather(
            _request_limit(conn, max_requests, deadline), _measure_idle(target, max_idle))
        connections += IDLE_CONNECTIONS
        idle = _idle_verdict(seen, max_idle, _advertised(first.headers)) if keepalive.honoured \
            else IdleTimeout(None, "not-applicable")
    return ProbeResult(target.url, first.status, first.headers.get("server"), keepalive, idle, requests,
                       max_idle, connections, round(time.monotonic() - started, 2))


def _idle_verdict(seen: _Idle, max_idle: float, advertised: float | None) -> IdleTimeout:
    closes = sorted(round(c, 3) for c in seen.closes)
    served, refused = sorted(seen.served), sorted(seen.refused)
    if closes:
        return IdleTimeout(closes[0], "measured", closes, served, refused, advertised)
    if refused:
        below = [s for s in served if s < refused[0]]
        return IdleTimeout(below[-1] if below else 0.0, "range", [], served, refused, advertised)
    return IdleTimeout(max_idle, "at-least", [], served, refused, advertised)


def probe(url: str, *, max_idle_s: float = 120.0, max_requests: int = 1000) -> ProbeResult:
    """Probe `url`; ProbeError (exit 2) when it cannot be probed."""
    target = parse_url(url)
    return asyncio.run(_probe(target, max_idle_s, max_requests))


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def _idle_text(result: ProbeResult) -> list[str]:
    idle = result.idle_timeout
    if idle.kind == "not-applicable":
        return ["n/a (no keep-alive)"]
    if idle.kind == "measured":
        span = _fmt_s(idle.closes_s[0]) if len(idle.closes_s) == 1 else \
            f"{_fmt_s(idle.closes_s[0])}–{_fmt_s(idle.closes_s[-1])}"
        lines = [(f"{_fmt_s(idle.closes_s[0])}: the server closed {len(idle.closes_s)} idle "
                  f"connection(s) after {span}")]
    elif idle.kind == "range":
        lines = [(f"between {_fmt_s(idle.seconds or 0)} and {_fmt_s(idle.refused_after_s[0])}: the "
                  "server closed no idle connection but refused a request after "
                  f"{_fmt_s(idle.refused_after_s[0])} idle")]
    else:
        lines = [(f"longer than {_fmt_s(result.max_idle_s)}: no idle connection was closed within "
                  "--max-idle (raise it to measure longer timeouts)")]
    if idle.served_after_s:
        lines.append(f"(a request after {_fmt_s(idle.served_after_s[0])}–{_fmt_s(idle.served_after_s[-1])} "
                     f"idle was answered on {len(idle.served_after_s)} connection(s))")
    if idle.advertised_s is not None:
        lines.append(f"(it announces Keep-Alive: timeout={idle.advertised_s:g})")
    return lines


def to_text(result: ProbeResult) -> str:
    keep = result.keepalive
    head = f"lbgen probe {result.url}: HTTP {result.status}"
    if result.server:
        head += f", server: {result.server}"
    rows = [("keep-alive", [("honoured: " if keep.honoured else "not honoured: ") + keep.evidence]),
            ("idle timeout", _idle_text(result)),
            ("max requests", [(f"{result.max_requests.limit} per connection: " if result.max_requests.limit
                               else "") + result.max_requests.evidence]),
            ("probe", [f"{result.connections} connection(s), {result.elapsed_s:.1f}s"])]
    out = [head]
    for name, lines in rows:
        out.append(f"  {name:<13} {lines[0]}")
        out.extend(f"  {'':<13} {line}" for line in lines[1:])
    out.append("")
    assume = result.assume
    if assume:
        note = " (a lower bound)" if result.idle_timeout.kind in ("range", "at-least") else ""
        out.append(f"for lbgen import{note}:")
        out.extend(f"  --assume {value}" for value in assume)
    return "\n".join(out) + "\n"


def to_json(result: ProbeResult) -> str:
    data = asdict(result)
    data["assume"] = result.assume
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
