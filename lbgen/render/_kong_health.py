"""Kong Upstream health checks as data, shared by the DB-less and the KIC renderers.

Field names are Kong's (snake_case, as in the Admin API and kong.yaml); the
KongUpstreamPolicy CRD uses the same fields in camelCase (`camel_keys`).
"""

from __future__ import annotations

from typing import Any

from lbgen.model.service import KongActiveHealthcheck, KongHealthchecks, KongPassiveHealthcheck


def _with_statuses(fields: dict[str, Any], statuses: list[int] | None) -> dict[str, Any]:
    if statuses is not None:
        fields["http_statuses"] = list(statuses)
    return fields


def active_check(active: KongActiveHealthcheck) -> dict[str, Any]:
    check: dict[str, Any] = {
        "concurrency": active.concurrency,
        "healthy": _with_statuses(
            {"interval": active.healthy.interval, "successes": active.healthy.successes},
            active.healthy.http_statuses,
        ),
        # Whole seconds: decK types timeout/interval as integers and rejects 1.5.
        "timeout": active.timeout,
        "type": active.type,
        "unhealthy": _with_statuses(
            {
                "http_failures": active.unhealthy.http_failures,
                "interval": active.unhealthy.interval,
                "tcp_failures": active.unhealthy.tcp_failures,
                "timeouts": active.unhealthy.timeouts,
            },
            active.unhealthy.http_statuses,
        ),
    }
    if active.type != "tcp":
        check["http_path"] = active.http_path
    return check


def passive_check(passive: KongPassiveHealthcheck) -> dict[str, Any]:
    # No `interval`: passive checks have none (and the CRD's CEL rules forbid it there).
    return {
        "healthy": _with_statuses(
            {"successes": passive.healthy.successes}, passive.healthy.http_statuses
        ),
        "type": passive.type,
        "unhealthy": _with_statuses(
            {
                "http_failures": passive.unhealthy.http_failures,
                "tcp_failures": passive.unhealthy.tcp_failures,
                "timeouts": passive.unhealthy.timeouts,
            },
            passive.unhealthy.http_statuses,
        ),
    }


def healthchecks(checks: KongHealthchecks, threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {"threshold": threshold}
    if checks.active is not None:
        out["active"] = active_check(checks.active)
    if checks.passive is not None:
        out["passive"] = passive_check(checks.passive)
    return out


def camel_keys(value: Any) -> Any:
    """`http_statuses` → `httpStatuses`, recursively (the CRD's spelling of Kong's fields)."""
    if isinstance(value, dict):
        return {
            key.split("_")[0] + "".join(part.title() for part in key.split("_")[1:]): camel_keys(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [camel_keys(item) for item in value]
    return value
