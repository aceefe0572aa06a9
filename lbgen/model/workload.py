"""The traffic the path carries: the optional top-level `workload:` section.

The connection-churn rules (LB412/LB413) read `rate` and `concurrency`; `lbgen simulate`
reads all of it (its command-line flags override each field). It describes load at the
entry of the path.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from lbgen.model._base import StrictModel
from lbgen.model.types import Duration

_EVENT = re.compile(r"^scale (?P<service>[a-z0-9]([-a-z0-9]*[a-z0-9])?) \+(?P<add>[0-9]{1,4}) at (?P<at>\S+)$")


class ScaleEvent(StrictModel):
    """Pods added to a service at a moment of the simulated run (an HPA scale-out)."""

    service: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    """The service's `name`."""
    add: int = Field(ge=1, le=1000)
    """Pods added (ready at once)."""
    at: Duration
    """When, from the start of the run."""

    @classmethod
    def parse(cls, text: str) -> ScaleEvent:
        """`scale orders +4 at 30s`, the form `lbgen simulate --event` takes."""
        match = _EVENT.match(text.strip())
        if match is None:
            raise ValueError(f"event {text!r} is not of the form 'scale SERVICE +N at TIME' (e.g. 'scale orders +4 at 30s')")
        return cls(service=match["service"], add=int(match["add"]), at=Duration.parse(match["at"]))


class Workload(StrictModel):
    """Peak traffic entering the path: what the connection-churn rules and `lbgen simulate`
    assume the clients do."""

    rate: float | None = Field(default=None, gt=0, le=10_000_000)
    """Requests per second at peak. Rules turn it into new connections per second where a
    hop cannot reuse connections."""
    concurrency: int | None = Field(default=None, ge=1, le=10_000_000)
    """Requests in flight at once at peak. Rules compare it with the idle pools that carry
    them; `lbgen simulate` derives the response time from it (concurrency / rate)."""
    clients: int | None = Field(default=None, ge=1, le=100_000)
    """Distinct client machines (source addresses) sending the traffic (simulate: 50 unless set)."""
    connections_per_client: int | None = Field(default=None, ge=1, le=10_000)
    """Connections each client keeps open to the first tier (simulate: 1 unless set)."""
    keepalive: bool = True
    """Clients reuse their connections; `false`: one connection per request."""
    duration: Duration | None = None
    """Simulated time (simulate: 60s unless set)."""
    response_time: Duration | None = None
    """Time a request stays in flight (the median); unset: concurrency / rate, or 50ms without
    concurrency."""
    response_time_p99: Duration | None = None
    """99th percentile of the response times (simulate: lognormal around `response_time`).
    Fewest-connections balancers (`least_conn`, `random two`, Kong's `least-connections`)
    react to it; unset: every request takes `response_time`."""
    protocol: Literal["h1", "h2", "grpc"] | None = None
    """What the clients speak to the first tier. `h2` and `grpc` multiplex: each client opens
    one connection and sends all its concurrent requests on it (`connections_per_client` is
    then the requests each client keeps in flight). Unset: `grpc` for a `protocol: grpc`
    service, else `h1`."""
    source_addresses: int | None = Field(default=None, ge=1, le=100_000)
    """Distinct source addresses the clients' connections come from (clients behind a NAT
    gateway or a forward proxy share one); what `sessionAffinity: ClientIP`, `ip_hash` and
    hashes on the client address see where clients connect directly. Unset: one per client."""
    cores: int | None = Field(default=None, ge=1, le=1024)
    """CPU cores of each proxy instance: the worker count of `worker_processes: auto` and of
    Kong's `nginx_worker_processes auto` (simulate: 2 unless set)."""
    events: list[ScaleEvent] = Field(default_factory=list, max_length=100)
    """Scale events during the run, e.g. `{service: orders, add: 4, at: 30s}` (simulate's
    `--event 'scale orders +4 at 30s'` adds to them)."""

    @model_validator(mode="after")
    def _something_given(self) -> Workload:
        if self.rate is None and self.concurrency is None:
            raise ValueError("workload needs rate (requests/s) or concurrency (requests in flight)")
        return self


__all__ = ["ScaleEvent", "Workload"]
