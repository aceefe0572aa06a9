"""The ranges the products accept, so that an out-of-range spec value is a located input
error instead of a config the product refuses (or silently wraps).

Each limit names where it comes from. Model fields use them through the bounded types of
lbgen.model.types and `Field(le=…)`.
"""

from __future__ import annotations

MAX_OUTPUT_CHARS = 64 * 1024 * 1024
"""The most text one render may produce (all files). The loader's limits (values, route
entries) keep real specs far below; this is the backstop against any other expansion."""

INT32_MAX = 2**31 - 1
"""Kubernetes int32 fields (replicas, probe settings, HPA replicas, PDB int-or-string,
kube-proxy conntrack maxPerCore/min): Kubernetes API conventions, "Primitive types"
(`int32` in the OpenAPI of core/v1, autoscaling/v2, policy/v1)."""

NGINX_MAX_MSEC = 2**31 - 1
"""Longest time an nginx directive takes, in milliseconds, on every build: ngx_parse_time()
(src/core/ngx_parse.c) refuses more than NGX_MAX_INT_T_VALUE, 2^31-1 where ngx_int_t is 32
bits (64-bit builds accept more). About 24 days 20 h."""

NGINX_MAX_NUMBER = 2**31 - 1
"""Largest count an nginx directive or `server` parameter takes on every build (keepalive
_requests, max_fails, *_next_upstream_tries): ngx_atoi() (src/core/ngx_string.c) refuses more
than NGX_MAX_INT_T_VALUE, 2^31-1 on 32-bit builds."""

NGINX_MAX_WORKER_PROCESSES = 1024
"""NGX_MAX_PROCESSES (src/os/unix/ngx_process.h): the master's process table has 1024 slots,
so more workers cannot be spawned. At least 1: with 0 nobody accepts connections."""

KONG_TIMEOUT_MS = (1, 2**31 - 2)
"""Kong Service `connect_timeout`/`read_timeout`/`write_timeout`: integer milliseconds
between 1 and 2^31-2 (kong/db/schema/typedefs.lua `timeout`, used by entities/services.lua;
the same range in ../shared/schemas/kong/kong-entity-constraints.ee-3.10.json)."""

KONG_HEALTHCHECK_CONCURRENCY_MAX = 2**31
"""Kong Upstream `healthchecks.active.concurrency`: between 1 and 2^31 (kong/db/schema/
entities/upstreams.lua; kong-entity-constraints.ee-3.10.json)."""

HTTP_STATUS_RANGE = (100, 999)
"""Kong Upstream `healthchecks.*.http_statuses` items: integers 100–999 (upstreams.lua
`http_statuses`; kong-entity-constraints.ee-3.10.json)."""

GO_DURATION_MAX_MS = (2**63 - 1) // 1_000_000
"""Go's time.Duration is int64 nanoseconds (about 292 years): the limit of every
Kubernetes duration lbgen writes (kube-proxy's metav1.Duration fields) and far beyond any
other product's, so it bounds every duration of a spec."""

KUBE_PROXY_DEFAULT_SYNC_PERIOD_MS = 30_000
"""kube-proxy `iptables/ipvs/nftables.syncPeriod` default 30s (pkg/proxy/apis/config/
v1alpha1/defaults.go); validation.go requires minSyncPeriod ≤ syncPeriod and syncPeriod > 0."""

DNS_SUBDOMAIN_MAX = 253
"""A DNS name such as `cluster.local`: labels of 1–63 characters, at most 253 in all
(RFC 1123 §2.1; Kubernetes `IsDNS1123Subdomain`)."""
