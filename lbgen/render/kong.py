"""Kong Gateway 3.x renderer: DB-less declarative config or Kong Ingress Controller resources.

DB-less (`mode: db-less`):
  `<tier>/kong.yaml`  `_format_version: "3.0"` with, per spec service, a Service, its Route,
                      an Upstream named like the Service's host, and one Target;
  `<tier>/kong.conf`  the kong.conf settings lbgen owns (DB-less, listeners, keep-alive,
                      real IP).
KIC (`mode: kic`):
  `<tier>/kic/<namespace>-<service>.yaml`  KongUpstreamPolicy + Ingress per service (the
                      Service annotations come from `lbgen.render._kic.service_annotations`);
  `<tier>/kong.conf`  the same owned settings minus `database`/`declarative_config`.

Entity fields: Kong/kong `kong/db/schema/entities/{services,routes,upstreams,targets}.lua`;
kong.conf keys: Kong/kong `kong.conf.default`. The output is checked against decK's schema
and the Kong value constraints by `lbgen.verify.kong`.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from lbgen import versions
from lbgen.model.naming import kic_file_path
from lbgen.model.service import KongHealthchecks, Service
from lbgen.model.spec import Spec
from lbgen.model.tiers import KongTier
from lbgen.model.types import Duration, Version
from lbgen.plan.hops import KongHop
from lbgen.plan.topology import backend_address, upstream_name
from lbgen.render._base import FileTarget, RenderContext, RenderedFile
from lbgen.render._kic import kic_documents, route_response_buffering
from lbgen.render._kong_health import healthchecks
from lbgen.render._yaml import dump_yaml, dump_yaml_documents

FORMAT_VERSION = "3.0"
"""Kong 3.x declarative format; 3.0 introduced `~`-prefixed regex paths
(kong/db/schema/others/declarative_config.lua)."""

DECLARATIVE_CONFIG_PATH = "/etc/kong/kong.yaml"
"""Where kong.conf tells Kong to read kong.yaml: beside `/etc/kong/kong.conf`, the first file
Kong's conf loader looks for. Absolute, so it does not depend on the directory Kong is
started from. Install `<tier>/kong.yaml` there (or change this line in your copy)."""

LISTEN_DEFAULT_FLAGS = "reuseport backlog=16384"
"""Kept from kong.conf.default's `proxy_listen`: one socket per worker and a deep accept
queue; lbgen only adds the flags the spec asks for."""

MARKER_PREFIX = "# lbgen-kong:"
"""Machine-readable second line of kong.yaml: the Kong edition and version it targets, so
`lbgen.verify.kong` picks the matching constraints schema from the files alone."""


# --- names ---------------------------------------------------------------------------------

def kong_entity_name(service: Service) -> str:
    """Kong Service and Route name. `.` cannot occur in a namespace or service name (RFC 1035
    labels), so the pair is unique; Kong names allow letters, digits, `.-_~`."""
    return f"{service.namespace}.{service.name}"


def tags(spec: Spec) -> list[str]:
    """Tags on every entity, so `deck gateway sync --select-tag lbgen-<spec>` manages only them."""
    return ["lbgen", f"lbgen-{spec.name}"]


def constraints_schema_name(edition: str, version: Version) -> str:
    """Which Kong value-constraints file applies: EE 3.15 (sticky-sessions, target failover)
    only for Kong Enterprise ≥ 3.11; otherwise EE 3.10, whose algorithm set is OSS 3.9's."""
    if edition == "enterprise" and versions.KONG_STICKY_SESSIONS.reached(version):
        return "kong-entity-constraints.ee-3.15.json"
    return BASE_CONSTRAINTS


BASE_CONSTRAINTS = "kong-entity-constraints.ee-3.10.json"
"""The constraints of every Kong but Enterprise ≥ 3.11 (EE 3.10's algorithm set is OSS 3.9's)."""


# --- DB-less declarative config ------------------------------------------------------------

def _whole(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _healthchecks(checks: KongHealthchecks) -> dict[str, Any]:
    return healthchecks(checks, _whole(checks.threshold))


def kong_upstream(spec: Spec, kong: KongTier, service: Service) -> dict[str, Any]:
    """The Upstream of `service` with its one Target.

    The Target is a DNS name. Kong resolves a hostname target and adds every address it
    finds as a separate target with the target's weight (developer.konghq.com/gateway/
    entities/target, "Using hostnames"). So with `pod_endpoints` the headless Service
    (one A record per ready pod) makes Kong balance across the pods itself; with
    `cluster_ip` the name resolves to the single ClusterIP and kube-proxy picks the pod
    once per connection.
    """
    settings = service.kong
    host, port = backend_address(spec, service, kong.backend_targets)
    upstream: dict[str, Any] = {
        "name": upstream_name(service),
        "algorithm": settings.algorithm,
        "tags": tags(spec),
        "targets": [{"target": f"{host}:{port}", "tags": tags(spec)}],
    }
    if settings.hash_on != "none":
        upstream["hash_on"] = settings.hash_on
        if settings.hash_on == "header":
            upstream["hash_on_header"] = settings.hash_on_header
        if settings.hash_fallback != "none":
            upstream["hash_fallback"] = settings.hash_fallback
            if settings.hash_fallback == "header":
                upstream["hash_fallback_header"] = settings.hash_fallback_header
    if "cookie" in (settings.hash_on, settings.hash_fallback):
        # Kong reads the cookie name from hash_on_cookie for the primary and the fallback.
        upstream["hash_on_cookie"] = settings.hash_on_cookie
        upstream["hash_on_cookie_path"] = "/"
    if settings.sticky_sessions_cookie is not None:
        upstream["sticky_sessions_cookie"] = settings.sticky_sessions_cookie
        upstream["sticky_sessions_cookie_path"] = "/"
    if settings.slots is not None:
        upstream["slots"] = settings.slots
    if settings.healthchecks is not None:
        upstream["healthchecks"] = _healthchecks(settings.healthchecks)
    return upstream


def kong_route(spec: Spec, service: Service) -> dict[str, Any]:
    route: dict[str, Any] = {
        "name": kong_entity_name(service),
        "paths": sorted(service.paths),
        # gRPC clients speak HTTP/2 (grpc = h2c, grpcs = h2 over TLS); Kong keeps the two
        # protocol families apart (routes.lua mutually_exclusive_subsets). WebSocket needs no
        # protocol of its own: Kong passes the Upgrade handshake on http/https routes
        # (nginx_kong.lua: proxy_set_header Upgrade $upstream_upgrade, Connection
        # $upstream_connection). The ws/wss protocols are Enterprise-only (in Kong's
        # Enterprise entity schema, absent from decK's open-source one) and not rendered.
        "protocols": ["grpc", "grpcs"] if service.protocol == "grpc" else ["http", "https"],
        # Explicit: Kong's default is true, the spec's is false.
        "strip_path": service.route.strip_path,
        "tags": tags(spec),
    }
    if service.route.hosts:
        route["hosts"] = sorted(service.route.hosts)
    buffering = route_response_buffering(service)
    if buffering is not None:
        route["response_buffering"] = buffering
    return route



def kong_service(spec: Spec, kong: KongTier, service: Service) -> dict[str, Any]:
    settings = service.kong
    _, port = backend_address(spec, service, kong.backend_targets)
    entity: dict[str, Any] = {
        "name": kong_entity_name(service),
        "host": upstream_name(service),
        "port": port,
        # grpc: Kong proxies with grpc_pass, HTTP/2 cleartext to the pods.
        "protocol": "grpc" if service.protocol == "grpc" else "http",
        "routes": [kong_route(spec, service)],
        "tags": tags(spec),
    }
    if settings.retries is not None:
        entity["retries"] = settings.retries
    # Kong Service timeouts are milliseconds (services.lua).
    timeouts = settings.timeouts
    if timeouts.connect is not None:
        entity["connect_timeout"] = timeouts.connect.ms
    if timeouts.read is not None:
        entity["read_timeout"] = timeouts.read.ms
    if timeouts.send is not None:
        entity["write_timeout"] = timeouts.send.ms
    return entity


def declarative_config(spec: Spec, kong: KongTier) -> dict[str, Any]:
    """The kong.yaml document (decK's nested form: services[].routes[], upstreams[].targets[])."""
    services = sorted(spec.services, key=kong_entity_name)
    return {
        "_format_version": FORMAT_VERSION,
        "services": [kong_service(spec, kong, s) for s in services],
        "upstreams": sorted(
            (kong_upstream(spec, kong, s) for s in services), key=lambda u: str(u["name"])
        ),
    }


def kong_yaml_header(ctx: RenderContext, kong: KongTier) -> str:
    return (
        ctx.header()
        + f"{MARKER_PREFIX} edition={kong.edition} version={kong.version}\n"
        + f"# Kong Gateway DB-less declarative config for tier {kong.name}. Every entity is "
        f"tagged lbgen-{ctx.spec.name}:\n"
        + f"# with decK, sync it with --select-tag lbgen-{ctx.spec.name}.\n"
    )


# --- kong.conf ------------------------------------------------------------------------------

class ConfSetting(Struct, frozen=True):
    """One `key = value` line of kong.conf and why it has that value."""

    key: str
    value: str
    why: str

    @property
    def env(self) -> str:
        """The environment variable that overrides the key (kong.conf.default, header)."""
        return "KONG_" + self.key.upper()


def _kong_seconds(value: Duration) -> int:
    """Kong's upstream_keepalive_idle_timeout is whole seconds and 0 means "keep forever":
    round down, so a pooled connection is never kept longer than budgeted, but never
    from a positive value down to 0."""
    if value.ms == 0:
        return 0
    return max(1, value.ms // 1000)


def _listen(port: int, tls: bool, http2: bool, proxy_protocol: bool) -> str:
    flags = []
    if http2:
        flags.append("http2")
    if tls:
        flags.append("ssl")
    if proxy_protocol:
        flags.append("proxy_protocol")
    flags.append(LISTEN_DEFAULT_FLAGS)
    return f"0.0.0.0:{port} " + " ".join(flags)


def conf_settings(ctx: RenderContext, kong: KongTier) -> list[ConfSetting]:
    """The kong.conf settings lbgen owns, in kong.conf.default's section order."""
    settings: list[ConfSetting] = []
    listeners = sorted(kong.proxy_listen, key=lambda listener: listener.port)
    settings.append(
        ConfSetting(
            "proxy_listen",
            ", ".join(_listen(li.port, li.tls, li.http2, li.proxy_protocol) for li in listeners),
            "listeners from the spec (flags ssl/http2/proxy_protocol; "
            "reuseport backlog=16384 as in kong.conf.default)",
        )
    )
    budget = ctx.budget.kong_upstream
    assert budget is not None  # resolve_budget fills it whenever the spec has a Kong tier
    pool = budget.connections.value
    settings.append(
        ConfSetting(
            "upstream_keepalive_pool_size",
            str(pool if pool is not None else 0),
            budget.connections.explained() + "; 0 disables upstream keep-alive",
        )
    )
    settings.append(
        ConfSetting(
            "upstream_keepalive_max_requests",
            str(budget.max_requests.value),  # Kong always has a limit (0 = unlimited)
            budget.max_requests.explained() + "; 0 = unlimited",
        )
    )
    kong_idle = budget.idle_timeout.value
    assert kong_idle is not None  # Kong always has an idle timer (0 = forever)
    settings.append(
        ConfSetting(
            "upstream_keepalive_idle_timeout",
            str(_kong_seconds(kong_idle)),
            budget.idle_timeout.explained() + "; whole seconds, 0 = forever",
        )
    )
    real_ip = kong.real_ip
    settings.append(
        ConfSetting(
            "real_ip_header", real_ip.header, "where Kong reads the client address (realip module)"
        )
    )
    settings.append(
        ConfSetting(
            "real_ip_recursive",
            "on" if real_ip.recursive else "off",
            "on: the client is the last header address not in trusted_ips"
            if real_ip.recursive
            else "off: the client is the last address of the header",
        )
    )
    if real_ip.trusted_ips:
        settings.append(
            ConfSetting(
                "trusted_ips",
                ",".join(real_ip.trusted_ips),
                "proxies allowed to set X-Forwarded-* and the real-IP header "
                "(also Kong's set_real_ip_from)",
            )
        )
    client = ctx.budget.kong_client_keepalive
    assert client is not None
    # Kong's templates set no keepalive_timeout, so nginx's 75s applies unless injected
    # (kong.conf.default "NGINX injected directives": nginx_http_<directive>).
    settings.append(
        ConfSetting(
            "nginx_http_keepalive_timeout",
            client.value.nginx(),
            "client-side idle timeout; " + client.explained(),
        )
    )
    if kong.client_keepalive.max_requests is not None:
        settings.append(
            ConfSetting(
                "nginx_http_keepalive_requests",
                str(kong.client_keepalive.max_requests),
                "set in the spec (Kong ≥ 3.6 injects 10000 by default)",
            )
        )
    # DNS RESOLVER section of kong.conf.default, after the NGINX section.
    if kong.dns_resolver:
        # kong.conf.default: "Comma-separated list of nameservers, each entry in ip[:port]
        # format"; unset, Kong uses the host's resolv.conf, which outside the cluster does
        # not answer *.svc.<cluster domain>.
        settings.append(
            ConfSetting(
                "dns_resolver",
                ",".join(kong.dns_resolver),
                "nameservers that answer the cluster's Service names"
                + (" from outside the cluster" if kong.location == "outside" else ""),
            )
        )
    return settings


def render_kong_conf(ctx: RenderContext, kong: KongTier) -> str:
    lines = [ctx.header().rstrip("\n")]
    flavour = "DB-less" if kong.mode == "db-less" else "run by the Kong Ingress Controller"
    lines.append(f"# kong.conf settings lbgen owns for tier {kong.name}: Kong {kong.version}")
    lines.append(f"# ({kong.edition}), {flavour}.")
    if kong.mode == "db-less":
        lines += [
            "# Merge them into your kong.conf, or set the KONG_* variable named on each line.",
            "",
            "# DB-less: entities are read from the declarative file, not a database.",
            "database = off",
            f"# {kong.name}/kong.yaml, installed beside /etc/kong/kong.conf; absolute, so it",
            "# does not depend on the directory Kong is started from.",
            f"declarative_config = {DECLARATIVE_CONFIG_PATH}",
        ]
    else:
        lines += [
            "# Under KIC they are usually set as KONG_* environment variables of the proxy",
            "# container in the Helm values; each line names its variable. KIC supplies the",
            "# entities itself, so there is no database/declarative_config here.",
        ]
    for setting in conf_settings(ctx, kong):
        lines.append("")
        lines.append(f"# {setting.why} [{setting.env}]")
        lines.append(f"{setting.key} = {setting.value}")
    return "\n".join(lines) + "\n"


# --- entry point ----------------------------------------------------------------------------

def render(ctx: RenderContext) -> list[RenderedFile]:
    hop = ctx.plan.first_of(KongHop)
    if hop is None:
        return []
    kong = hop.tier
    files = [RenderedFile(f"{kong.name}/kong.conf", render_kong_conf(ctx, kong))]
    if kong.mode == "db-less":
        files.append(
            RenderedFile(
                f"{kong.name}/kong.yaml",
                dump_yaml(declarative_config(ctx.spec, kong), kong_yaml_header(ctx, kong)),
                FileTarget("kong", kong.name, kong.version, edition=kong.edition),
            )
        )
    else:
        header = ctx.header() + f"# Kong Ingress Controller resources for tier {kong.name}\n"
        for service in ctx.spec.services:
            files.append(
                RenderedFile(
                    kic_file_path(kong, service),
                    dump_yaml_documents(kic_documents(ctx.spec, service), header),
                )
            )
    return sorted(files, key=lambda f: f.path)
