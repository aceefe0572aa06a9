"""Settings shared by several tiers: instances, listeners, keep-alive, timeouts."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, model_validator

from lbgen.model._base import StrictModel
from lbgen.model.limits import NGINX_MAX_NUMBER
from lbgen.model.types import (
    Cidr,
    FilePath,
    HeaderName,
    Host,
    KongTimeout,
    Name,
    NginxDuration,
    Port,
)


class Instance(StrictModel):
    """One running copy of a tier (a VM, a pod, a node) that the previous hop connects to."""

    name: Name
    address: Host
    """IP address or DNS name the previous hop uses to reach this instance."""


class TlsFiles(StrictModel):
    certificate: FilePath
    certificate_key: FilePath


class Listener(StrictModel):
    """An L7 listening socket (nginx http `listen`, Kong `proxy_listen`)."""

    port: Port
    tls: bool = False
    """Terminate TLS on this port."""
    http2: bool = False
    """Accept HTTP/2 (h2 over TLS, or h2c in cleartext); required for gRPC clients."""
    proxy_protocol: bool = False
    """Every connection on this port must start with a PROXY protocol header."""


class UpstreamKeepalive(StrictModel):
    """The pool of idle connections a proxy keeps open towards its next hop."""

    connections: int | None = Field(default=None, ge=0, le=65535)
    """Idle connections cached (nginx: per worker; Kong: pool size). 0 disables the pool."""
    idle_timeout: NginxDuration | None = None
    """How long an idle pooled connection is kept. Unset: derived so that this hop closes
    idle connections before the next hop inward does."""
    max_requests: int | None = Field(default=None, ge=0, le=NGINX_MAX_NUMBER)
    """Requests served over one connection before it is closed (0 = unlimited in Kong)."""
    max_lifetime: NginxDuration | None = None
    """Maximum lifetime of one connection (nginx `keepalive_time`)."""


class NginxResolver(StrictModel):
    """DNS servers an nginx tier asks again while it runs, for the names it dials.

    Rendered in each upstream block that has a name (`zone`, `resolver`, `server … resolve`;
    open-source nginx ≥ 1.27.3). For pods behind a headless Service: the cluster DNS
    (kube-dns/CoreDNS Service IP) as reachable from where nginx runs.
    """

    addresses: list[str] = Field(min_length=1)
    """DNS servers as `IP` or `IP:port` (`[IPv6]:port`); port 53 when not given."""
    valid: NginxDuration | None = None
    """Cache answers this long instead of their TTL (`valid=`). Unset: the answer's TTL."""

    @model_validator(mode="after")
    def _addresses_are_ip(self) -> NginxResolver:
        for address in self.addresses:
            _check_resolver_address(address)
        if self.valid is not None and self.valid.ms % 1000:
            raise ValueError("resolver valid= takes whole seconds")
        return self


def _check_resolver_address(value: str) -> None:
    host, port = value, ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"resolver address {value!r}: expected [IPv6]:port")
            port = rest[1:]
        if ipaddress.ip_address(host).version != 6:
            raise ValueError(f"resolver address {value!r}: brackets are for IPv6 addresses")
        host_ok = True
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
        host_ok = False
    else:
        host_ok = False
    if not host_ok:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"resolver address {value!r} is not an IP address (nginx needs the DNS "
                "server's address, e.g. 10.96.0.10 or 10.96.0.10:53)"
            ) from None
        if ":" in host:
            raise ValueError(f"resolver address {value!r}: write an IPv6 address as [addr]")
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"resolver address {value!r}: port must be 1-65535")


class ClientKeepalive(StrictModel):
    """How long this hop keeps an idle connection from its callers open."""

    timeout: NginxDuration | None = None
    max_requests: int | None = Field(default=None, ge=0, le=NGINX_MAX_NUMBER)


class ProxyTimeouts(StrictModel):
    connect: NginxDuration | None = None
    read: NginxDuration | None = None
    """Time between two successive reads from the upstream (nginx), or the whole read (Kong)."""
    send: NginxDuration | None = None


class KongProxyTimeouts(ProxyTimeouts):
    """Kong Service timeouts: whole milliseconds from 1 to 2^31-2."""

    connect: KongTimeout | None = None
    read: KongTimeout | None = None
    """The whole read of the response (Kong `read_timeout`)."""
    send: KongTimeout | None = None


# `denied` is left out: it is an NGINX Plus (commercial) condition that open-source
# nginx rejects (ngx_http_proxy_module docs, #proxy_next_upstream).
NextUpstreamCondition = Literal[
    "error",
    "timeout",
    "invalid_header",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_403",
    "http_404",
    "http_429",
    "non_idempotent",
]


class NginxRetry(StrictModel):
    """nginx `proxy_next_upstream*`: when a request is passed to the next server."""

    conditions: list[NextUpstreamCondition] | None = None
    """Unset: nginx default `error timeout`. Empty list: `off` (never retry)."""
    tries: int | None = Field(default=None, ge=0, le=NGINX_MAX_NUMBER)
    """Attempts in total (0 = unlimited, the nginx default)."""
    timeout: NginxDuration | None = None


class NginxPassiveHealth(StrictModel):
    """nginx `max_fails`/`fail_timeout` on every upstream server (OSS has no active checks)."""

    max_fails: int | None = Field(default=None, ge=0, le=NGINX_MAX_NUMBER)
    fail_timeout: NginxDuration | None = None


class NginxRealIp(StrictModel):
    """ngx_http_realip_module: whose address counts as the client's."""

    header: Literal["X-Forwarded-For", "X-Real-IP", "proxy_protocol"] | HeaderName
    trusted: list[Cidr] = Field(min_length=1)
    """Proxies (CIDRs) allowed to set the header: `set_real_ip_from`."""
    recursive: bool = False


NginxAlgorithm = Literal[
    "round-robin", "least_conn", "ip_hash", "hash", "random", "random-two", "least_time"
]


class NginxBalancing(StrictModel):
    """The load-balancing method of an nginx `upstream` block."""

    algorithm: NginxAlgorithm = "round-robin"
    hash_key: str | None = Field(default=None, pattern=r"^(\$[a-z_][a-z0-9_]{0,63})+$")
    """Variable(s) to hash on with `hash`, e.g. `$request_uri` or `$remote_addr`."""
    consistent: bool = False
    """Ketama consistent hashing with `hash`."""

    @model_validator(mode="after")
    def _hash_key_matches_algorithm(self) -> NginxBalancing:
        if self.algorithm == "hash" and self.hash_key is None:
            raise ValueError("algorithm 'hash' needs hash_key, e.g. hash_key: $request_uri")
        if self.algorithm != "hash" and (self.hash_key is not None or self.consistent):
            raise ValueError("hash_key and consistent only apply to algorithm 'hash'")
        return self
