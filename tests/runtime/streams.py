"""Long-lived streams for the runtime proof: a WebSocket echo + SSE stand-in and their clients.

`StreamStandIn` stands in for a Kong node or a pod. On one loopback address and port it
answers three kinds of request, and records the request head of each:
- `Upgrade: websocket` (RFC 6455 §4.2): `101 Switching Protocols` with the
  `Sec-WebSocket-Accept` of §4.2.2, then every text frame it receives is sent back;
- a path ending in `/events`: a server-sent event stream (text/event-stream, chunked), one
  event, then it waits until the test calls `release()` before the second event and the end,
  so a client that sees the first event before `release()` proves no hop buffered it;
- anything else: `200` with a small body (keep-alive, like the HTTP stand-in).

`websocket_exchange` is the client side of RFC 6455 over a plain socket (masked frames as §5.3
requires of clients).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
from dataclasses import dataclass, field

from tests.runtime.harness import SOCKET_TIMEOUT

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
OPCODE_TEXT = 0x1
OPCODE_CLOSE = 0x8


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2 item 5.4)."""
    digest = hashlib.sha1(key.encode() + WEBSOCKET_GUID).digest()  # the RFC names SHA-1
    return base64.b64encode(digest).decode()


@dataclass
class StreamRequest:
    path: str
    headers: dict[str, str]
    """Lower-cased names; the last value wins."""


@dataclass
class StreamConnection:
    requests: list[StreamRequest] = field(default_factory=list)


def _read_head(conn: socket.socket, buffer: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    return head


def _parse_head(head: bytes) -> StreamRequest:
    lines = head.decode("latin-1").split("\r\n")
    _, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return StreamRequest(path, headers)


def read_frame(conn: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """One WebSocket frame (opcode, payload); masked or not (RFC 6455 §5.2)."""

    def need(count: int) -> bytes:
        while len(buffer) < count:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed inside a WebSocket frame")
            buffer.extend(chunk)
        data = bytes(buffer[:count])
        del buffer[:count]
        return data

    first, second = need(2)
    opcode = first & 0x0F
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", need(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", need(8))
    mask = need(4) if second & 0x80 else b""
    payload = need(length)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, payload


def frame(opcode: int, payload: bytes, *, masked: bool) -> bytes:
    """One final WebSocket frame; clients mask (RFC 6455 §5.3), servers do not."""
    head = bytes([0x80 | opcode])
    mask_bit = 0x80 if masked else 0
    if len(payload) < 126:
        head += bytes([mask_bit | len(payload)])
    else:
        head += bytes([mask_bit | 126]) + struct.pack("!H", len(payload))
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class StreamStandIn:
    """WebSocket echo, SSE and plain HTTP on address:port (module docstring)."""

    def __init__(self, name: str, address: str, port: int) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.connections: list[StreamConnection] = []
        self.lock = threading.Lock()
        self._release = threading.Event()
        self._stop = threading.Event()
        self._sock = socket.create_server((address, port))
        self._sock.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def release(self) -> None:
        """Let every SSE stream send its second event and end."""
        self._release.set()

    @property
    def requests(self) -> list[StreamRequest]:
        with self.lock:
            return [r for c in self.connections for r in c.requests]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            seen = StreamConnection()
            with self.lock:
                self.connections.append(seen)
            thread = threading.Thread(target=self._serve, args=(conn, seen), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket, seen: StreamConnection) -> None:
        conn.settimeout(SOCKET_TIMEOUT)
        buffer = bytearray()
        with conn:
            try:
                while True:
                    head = _read_head(conn, buffer)
                    if head is None:
                        return
                    request = _parse_head(head)
                    with self.lock:
                        seen.requests.append(request)
                    if request.headers.get("upgrade", "").lower() == "websocket":
                        self._websocket(conn, buffer, request)
                        return
                    if request.path.endswith("/events"):
                        self._events(conn)
                        return
                    body = f'{{"served_by": "{self.name}"}}'.encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
            except (OSError, ConnectionError):
                return

    def _websocket(self, conn: socket.socket, buffer: bytearray, request: StreamRequest) -> None:
        key = request.headers["sec-websocket-key"]
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
        )
        while True:
            opcode, payload = read_frame(conn, buffer)
            if opcode == OPCODE_CLOSE:
                conn.sendall(frame(OPCODE_CLOSE, payload, masked=False))
                return
            conn.sendall(frame(opcode, f"{self.name}: ".encode() + payload, masked=False))

    def _events(self, conn: socket.socket) -> None:
        def chunk(data: bytes) -> bytes:
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunk(b"data: first\n\n")
        )
        self._release.wait(SOCKET_TIMEOUT)
        conn.sendall(chunk(b"data: second\n\n") + b"0\r\n\r\n")

    def close(self) -> None:
        self._release.set()
        self._stop.set()
        self._accepter.join(SOCKET_TIMEOUT)
        self._sock.close()
        for thread in self._threads:
            thread.join(SOCKET_TIMEOUT)
        assert not self._accepter.is_alive(), f"stand-in {self.name} did not stop"


@dataclass(frozen=True)
class WebSocketResult:
    status_line: str
    headers: dict[str, str]
    replies: list[str]


def websocket_exchange(
    entry: tuple[str, int], path: str, host: str, messages: list[str], *, source: str
) -> WebSocketResult:
    """Open a WebSocket through `entry`, send `messages`, read one reply each, close."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(entry, timeout=SOCKET_TIMEOUT, source_address=(source, 0)) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        buffer = bytearray()
        head = _read_head(conn, buffer)
        assert head is not None, "the connection closed before a handshake response"
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        replies = []
        if lines[0].split(" ")[1] == "101":
            assert headers.get("sec-websocket-accept") == accept_key(key), headers
            for message in messages:
                conn.sendall(frame(OPCODE_TEXT, message.encode(), masked=True))
                opcode, payload = read_frame(conn, buffer)
                assert opcode == OPCODE_TEXT, opcode
                replies.append(payload.decode())
            conn.sendall(frame(OPCODE_CLOSE, struct.pack("!H", 1000), masked=True))
            opcode, _ = read_frame(conn, buffer)
            assert opcode == OPCODE_CLOSE
        return WebSocketResult(lines[0], headers, replies)


def first_event_before_release(
    entry: tuple[str, int], path: str, host: str, stand_ins: list[StreamStandIn], *, source: str
) -> tuple[bool, bytes]:
    """GET an SSE stream; (first event arrived while the stand-ins still held the stream, body).

    Waits up to 2 s for the first event; then releases the stand-ins and reads to the end.
    """
    with socket.create_connection(entry, timeout=SOCKET_TIMEOUT, source_address=(source, 0)) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        received = bytearray()
        conn.settimeout(2.0)
        early = False
        try:
            while b"data: first" not in received:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
            early = b"data: first" in received
        except TimeoutError:
            early = False
        for stand_in in stand_ins:
            stand_in.release()
        conn.settimeout(SOCKET_TIMEOUT)
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
        return early, bytes(received)
