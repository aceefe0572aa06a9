"""The traffic the path carries: the optional top-level `workload:` section.

Only the rules read it today (connection churn, LB412/LB413). It describes load at the
entry of the path, all services together, so that a later `lbgen simulate` can extend it
(clients, connections per client, duration, a per-service split) without renaming these.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from lbgen.model._base import StrictModel


class Workload(StrictModel):
    """Peak traffic entering the path, all services together (used by the connection-churn
    rules; `lbgen simulate` will add clients, connections per client and duration here)."""

    rate: float | None = Field(default=None, gt=0, le=10_000_000)
    """Requests per second at peak. Rules turn it into new connections per second where a
    hop cannot reuse connections."""
    concurrency: int | None = Field(default=None, ge=1, le=10_000_000)
    """Requests in flight at once at peak. Rules compare it with the idle pools that carry
    them."""

    @model_validator(mode="after")
    def _something_given(self) -> Workload:
        if self.rate is None and self.concurrency is None:
            raise ValueError("workload needs rate (requests/s) or concurrency (requests in flight)")
        return self


__all__ = ["Workload"]
