"""The lab's pods process on loopback: which requests a closing connection counts as reset.

No namespace is needed: the pods listen on 127.0.0.1, and each case is a raw socket whose
timing puts its request before, inside or after the pod's close.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.runtime.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
IDLE_S = 0.5
DELAY_S = 0.6
REQUEST = b"POST / HTTP/1.1\r\nHost: pod\r\nContent-Length: 2\r\n\r\n{}"


def _answered(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    return data


def test_a_closing_pod_counts_every_request_that_meets_its_close(tmp_path: Path) -> None:
    cases = ("idle", "caller_closes", "inside_delay", "after_fin")
    ports = {case: free_port(("127.0.0.1",)) for case in cases}
    config = {"pods": [{"name": case, "address": "127.0.0.1", "port": port} for case, port in ports.items()],
              "idle_s": IDLE_S, "close_delay_s": DELAY_S, "service_s": 0, "ready": str(tmp_path / "ready"),
              "stats": str(tmp_path / "stats.json"), "max_run_s": 30, "control": None}
    (tmp_path / "config.json").write_text(json.dumps(config))
    proc = subprocess.Popen([sys.executable, "-m", "lbgen.lab.pods", str(tmp_path / "config.json")],
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        socks = {case: socket.create_connection(("127.0.0.1", port)) for case, port in ports.items()}
        for sock in socks.values():
            sock.sendall(REQUEST)
            assert _answered(sock).startswith(b"HTTP/1.1 200 OK")
        served = time.monotonic()
        # The idle timer fires at IDLE_S; for DELAY_S the pod reads nothing (its FIN on the way).
        time.sleep(max(0.0, IDLE_S + DELAY_S / 2 - (time.monotonic() - served)))
        socks["caller_closes"].close()
        socks["inside_delay"].sendall(REQUEST)
        # Past the delay the pod has sent its FIN; a request sent before the caller reads it
        # crosses the FIN, and the kernel of a closed socket would reset it uncounted.
        socks["after_fin"].settimeout(10)
        assert socks["after_fin"].recv(1) == b""  # the FIN arrived
        socks["after_fin"].sendall(REQUEST)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    for sock in socks.values():
        sock.close()
    stats: dict[str, Any] = {p["pod"]: p for p in json.loads((tmp_path / "stats.json").read_text())["pods"]}
    assert {case: (s["requests"], s["idle_closes"], s["resets"]) for case, s in stats.items()} == {
        "idle": (1, 1, 0),
        "caller_closes": (1, 1, 0),  # the caller's own close is not a reset
        "inside_delay": (1, 1, 1),
        "after_fin": (1, 1, 1),
    }
