"""A tiny authoritative DNS server on loopback for the runtime proof of `server … resolve`.

Answers A queries (RFC 1035 §4.1) for the names in `records`, which the test may change
while nginx runs; AAAA and other types get an empty NOERROR answer, unknown names NXDOMAIN.
Each answer carries `ttl`. Only what nginx's resolver sends is handled: one question per
query, no EDNS, no compression in the question.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading

TYPE_A = 1
CLASS_IN = 1
RCODE_NXDOMAIN = 3


def parse_question(query: bytes) -> tuple[int, str, int, int]:
    """(id, name, qtype, offset after the question) of a one-question query."""
    ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        raise ValueError(f"expected one question, got {qdcount}")
    labels = []
    offset = 12
    while query[offset]:
        length = query[offset]
        labels.append(query[offset + 1 : offset + 1 + length].decode("ascii").lower())
        offset += 1 + length
    offset += 1
    qtype, _qclass = struct.unpack("!HH", query[offset : offset + 4])
    return ident, ".".join(labels), qtype, offset + 4


def build_answer(query: bytes, addresses: list[str] | None, ttl: int) -> bytes:
    ident, _name, qtype, end = parse_question(query)
    flags = struct.unpack("!H", query[2:4])[0]
    rd = flags & 0x0100
    answers = []
    if addresses is not None and qtype == TYPE_A:
        for address in addresses:
            rdata = ipaddress.IPv4Address(address).packed
            # Name: pointer to the question's name at offset 12 (RFC 1035 §4.1.4).
            answers.append(struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, ttl, 4) + rdata)
    rcode = RCODE_NXDOMAIN if addresses is None else 0
    header = struct.pack("!HHHHHH", ident, 0x8000 | 0x0400 | rd | rcode, 1, len(answers), 0, 0)
    return header + query[12:end] + b"".join(answers)


class DnsStandIn:
    """UDP DNS server on address:port (kernel-chosen port when 0)."""

    def __init__(self, address: str, records: dict[str, list[str]], *, ttl: int = 1) -> None:
        self.records = {name.lower(): list(ips) for name, ips in records.items()}
        self.ttl = ttl
        self.queries: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((address, 0))
        self._sock.settimeout(0.05)
        self.address, self.port = self._sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def set(self, name: str, addresses: list[str]) -> None:
        with self.lock:
            self.records[name.lower()] = list(addresses)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self._sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                _, name, qtype, _ = parse_question(query)
            except (ValueError, IndexError, struct.error):
                continue  # not a query this stand-in understands: no answer
            with self.lock:
                self.queries.append((name, qtype))
                addresses = self.records.get(name)
            self._sock.sendto(build_answer(query, addresses, self.ttl), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def query_a(server: tuple[str, int], name: str) -> tuple[int, list[str]]:
    """(rcode, addresses) of one A query: the client the self-test uses."""
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + question
    query += struct.pack("!HH", TYPE_A, CLASS_IN)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query, server)
        answer, _ = sock.recvfrom(512)
    ident, flags, _qd, ancount = struct.unpack("!HHHH", answer[:8])
    assert ident == 0x1234
    offset = 12 + len(question) + 4
    addresses = []
    for _ in range(ancount):
        _ptr, rtype, _cls, _ttl, length = struct.unpack("!HHHIH", answer[offset : offset + 12])
        offset += 12
        if rtype == TYPE_A:
            addresses.append(str(ipaddress.IPv4Address(answer[offset : offset + length])))
        offset += length
    return flags & 0x000F, addresses
