"""Kong declarative config / decK state (kong.yaml) and kong.conf → one `HopImport`.

kong.yaml: `services` (host, port, protocol, retries, `*_timeout` in milliseconds, nested
`routes`), top-level `routes` that name their service, `upstreams` (algorithm, `hash_*`,
slots, healthchecks, sticky-sessions cookie, nested `targets`) and top-level `targets` that
name their upstream (developer.konghq.com/gateway/entities/). kong.conf: `proxy_listen`,
`upstream_keepalive_*`, `nginx_http_keepalive_timeout`/`_requests`, `real_ip_*`,
`trusted_ips`, `dns_resolver`, `database` (Kong's kong.conf.default). Everything else is
reported as `Skipped`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from lbgen.errors import InputError, Problem, SourceLocation
from lbgen.importer.nginx import duration_text, nginx_duration
from lbgen.importer.sources import Fragment, HopImport, Named, Origin, Skipped, Sourced, put
from lbgen.importer.yamlfiles import (
    YMap,
    key_origin,
    key_position,
    load_documents,
    mappings,
    node_origin,
    read_text,
)
from lbgen.model.types import Duration

ShowPath = Callable[[str], str]

_KONG_HINT = re.compile(r"lbgen-kong: edition=(?P<edition>oss|enterprise) version=(?P<version>[0-9.]+)")
_SERVICE_KEYS = {"name", "host", "port", "protocol", "routes", "tags", "retries", "connect_timeout",
                 "read_timeout", "write_timeout", "id", "enabled"}
_ROUTE_KEYS = {"name", "paths", "hosts", "strip_path", "protocols", "tags", "response_buffering", "service",
               "id", "preserve_host"}
_UPSTREAM_KEYS = {"name", "algorithm", "hash_on", "hash_on_header", "hash_on_cookie", "hash_on_cookie_path",
                  "hash_fallback", "hash_fallback_header", "slots", "healthchecks", "targets", "tags", "id",
                  "sticky_sessions_cookie", "sticky_sessions_cookie_path"}
_CONF_KEYS = {"proxy_listen", "upstream_keepalive_pool_size", "upstream_keepalive_idle_timeout",
              "upstream_keepalive_max_requests", "nginx_http_keepalive_timeout",
              "nginx_http_keepalive_requests", "real_ip_header", "real_ip_recursive", "trusted_ips",
              "dns_resolver", "database", "declarative_config"}


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.skipped: list[Skipped] = []

    def at(self, node: Any, key: str | int) -> Origin:
        return key_origin(node, key, self.file)

    def value(self, node: YMap, key: str, value: object | None = None) -> Sourced[object]:
        return Sourced(node[key] if value is None else value, self.at(node, key))

    def skip_keys(self, node: YMap, known: set[str], what: str) -> None:
        for key in node:
            if key not in known:
                self.skipped.append(Skipped(key_position(node, key, self.file), f"{what}.{key}", "out-of-scope",
                                            f"`{key}` of a Kong {what} is not part of lbgen's spec"))


def import_kong(kong_yaml: str | None, kong_conf: str | None, shown: ShowPath) -> HopImport:
    hop = HopImport(kind="kong", tier={})
    if kong_yaml is not None:
        hop.files.append(shown(kong_yaml))
        _declarative(kong_yaml, shown(kong_yaml), hop)
    if kong_conf is not None:
        hop.files.append(shown(kong_conf))
        _conf(kong_conf, shown(kong_conf), hop)
    return hop


def _ms(reader: _Reader, node: YMap, key: str) -> Sourced[object] | None:
    raw = node.get(key)
    if not isinstance(raw, int) or isinstance(raw, bool):
        reader.skipped.append(Skipped(reader.at(node, key), f"{key}: {raw}", "unsupported",
                                      "Kong timeouts are integers (milliseconds)"))
        return None
    return reader.value(node, key, duration_text(Duration(raw)))


def _declarative(path: str, file: str, hop: HopImport) -> None:
    text = read_text(path, file, "Kong declarative config")
    reader = _Reader(file)
    match = _KONG_HINT.search(text)
    if match:
        line = text[: match.start()].count("\n") + 1
        origin = Origin(file, line, match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1)
        put(hop.tier, "version", Sourced(match.group("version"), origin))
        put(hop.tier, "edition", Sourced(match.group("edition"), origin))
    docs = load_documents(text, file, "Kong declarative config")
    if len(docs) != 1 or not isinstance(docs[0], YMap):
        raise InputError([Problem(SourceLocation(file, 1, 1),
                                  "a Kong declarative config is one YAML mapping (_format_version, services, …)",
                                  "pass kong.yaml or a decK state file")])
    root: YMap = docs[0]
    upstreams: dict[str, tuple[YMap, list[Sourced[str]]]] = {}
    for key in root:
        if key not in ("_format_version", "_transform", "services", "routes", "upstreams", "targets", "_info"):
            reader.skipped.append(Skipped(key_position(root, key, file), key, "out-of-scope",
                                          f"Kong {key} are not part of lbgen's spec"))
    for _, up in mappings(root.get("upstreams")):
        name = str(up.get("name", ""))
        targets: list[Sourced[str]] = []
        for _, target in mappings(up.get("targets")):
            if "target" in target:
                targets.append(Sourced(_with_port(str(target["target"])), reader.at(target, "target")))
            _target_keys(reader, target, set())
        upstreams[name] = (up, targets)
    for _, target in mappings(root.get("targets")):
        owner = str(target.get("upstream", ""))
        if owner in upstreams and "target" in target:
            upstreams[owner][1].append(Sourced(_with_port(str(target["target"])), reader.at(target, "target")))
            _target_keys(reader, target, {"upstream"})
        else:
            reader.skipped.append(Skipped(node_origin(target, file), "target", "ambiguous",
                                          "a top-level target whose upstream is not in the file"))
    services: dict[str, YMap] = {}
    for _, service in mappings(root.get("services")):
        name = str(service.get("name", service.get("host", "")))
        services[name] = service
        fragment: Fragment = {}
        reader.skip_keys(service, _SERVICE_KEYS | {"path", "url"}, "service")
        if "url" in service:
            # decK's shorthand for protocol, host, port and path (services.lua: url)
            parts = urllib.parse.urlsplit(str(service["url"]))
            for key, part in (("protocol", parts.scheme), ("host", parts.hostname), ("port", parts.port)):
                if part and key not in service:
                    service[key] = part
                    service.values_at[key] = service.values_at["url"]
            if parts.path not in ("", "/"):
                reader.skipped.append(Skipped(reader.at(service, "url"), f"url path {parts.path}", "unsupported",
                                              "lbgen's Kong services have no upstream path"))
        if "path" in service:
            reader.skipped.append(Skipped(reader.at(service, "path"), "service.path", "unsupported",
                                          "lbgen's Kong services have no upstream path"))
        if service.get("protocol") == "grpc":
            put(fragment, "protocol", reader.value(service, "protocol", "grpc"))
        elif service.get("protocol") not in (None, "http"):
            reader.skipped.append(Skipped(reader.at(service, "protocol"), f"protocol: {service['protocol']}",
                                          "unsupported", "lbgen's Kong services speak http or grpc (cleartext)"))
        if isinstance(service.get("retries"), int):
            put(fragment, "kong.retries", reader.value(service, "retries"))
        for key, spec_key in (("connect_timeout", "connect"), ("read_timeout", "read"), ("write_timeout", "send")):
            if key in service:
                value = _ms(reader, service, key)
                if value is not None:
                    put(fragment, f"kong.timeouts.{spec_key}", value)
        for _, route in mappings(service.get("routes")):
            _route(reader, route, fragment)
        host = str(service.get("host", ""))
        port = service.get("port", 80)
        named = [Named("kong-service", name, node_origin(service, file))]
        if host in upstreams:
            up, targets = upstreams[host]
            _upstream(reader, up, fragment)
            hop.links.forwards[name] = targets
            named.append(Named("kong-upstream", host, node_origin(up, file)))
        else:
            hop.links.forwards[name] = [Sourced(f"{host}:{port}", reader.at(service, "host"))]
        named += [Named("target", t.value, t.origin) for t in hop.links.forwards[name][:1] if t.origin is not None]
        hop.named[name] = named
        put(fragment, "_entity", Sourced(name, reader.at(service, "name") if "name" in service else None))
        hop.services[name] = fragment
    for _, route in mappings(root.get("routes")):
        ref = route.get("service")
        owner_name = ref.get("name") if isinstance(ref, YMap) else ref
        if owner_name in hop.services:
            _route(reader, route, hop.services[str(owner_name)])
        else:
            reader.skipped.append(Skipped(node_origin(route, file), "route", "ambiguous",
                                          "a top-level route whose service is not in the file"))
    for name, fragment in hop.services.items():
        routing = fragment.get("route")
        if not isinstance(routing, dict) or not (routing.get("paths") or routing.get("hosts")):
            reader.skipped.append(Skipped(node_origin(services[name], file), f"service {name}", "ambiguous",
                                          "no route leads to it, so Kong never proxies to it; the spec gives "
                                          "every service a route (unset: /<service name>)"))
        elif not routing.get("paths"):
            # a route with hosts and no paths matches every path on those hosts (routes.lua)
            routing["paths"] = [Sourced("/", node_origin(services[name], file))]
    used = {str(s.get("host", "")) for s in services.values()}
    for name, (up, _) in upstreams.items():
        if name not in used:
            reader.skipped.append(Skipped(node_origin(up, file), f"upstream {name}", "out-of-scope",
                                          "no service uses this upstream"))
    hop.skipped.extend(reader.skipped)


def _target_keys(reader: _Reader, target: YMap, also: set[str]) -> None:
    for key in target:
        if key not in {"target", "tags", "weight", "id", *also}:
            reader.skipped.append(Skipped(key_position(target, key, reader.file), f"target.{key}", "out-of-scope",
                                          "only the target address is read"))
    if target.get("weight", 100) != 100:
        # Kong's default target weight is 100 (targets.lua)
        reader.skipped.append(Skipped(reader.at(target, "weight"), f"weight: {target['weight']}",
                                      "unsupported", "lbgen gives every target the default weight 100"))


def _with_port(target: str) -> str:
    # Kong's default target port is 8000 (targets.lua: target "host:port", port defaults 8000).
    if target.startswith("["):
        return target if "]:" in target else f"{target}:8000"
    return target if target.count(":") == 1 else (f"[{target}]:8000" if ":" in target else f"{target}:8000")


def _route(reader: _Reader, route: YMap, fragment: Fragment) -> None:
    reader.skip_keys(route, _ROUTE_KEYS, "route")
    paths = fragment.setdefault("route", {})
    assert isinstance(paths, dict)
    for key in ("paths", "hosts"):
        values = route.get(key)
        if isinstance(values, list):
            entries = paths.setdefault(key, [])
            assert isinstance(entries, list)
            entries.extend(Sourced(str(v), reader.at(values, i)) for i, v in enumerate(values))
    if "strip_path" in route:
        put(paths, "strip_path", reader.value(route, "strip_path"))
    else:
        # Kong's route default strip_path is true (routes.lua); lbgen's spec default is false.
        put(paths, "strip_path", Sourced(True, node_origin(route, reader.file)))
    if isinstance(route.get("response_buffering"), bool):
        put(fragment, "kong.response_buffering", reader.value(route, "response_buffering"))


def _upstream(reader: _Reader, up: YMap, fragment: Fragment) -> None:
    reader.skip_keys(up, _UPSTREAM_KEYS, "upstream")
    for key in ("algorithm", "hash_on", "hash_on_header", "hash_on_cookie", "hash_fallback",
                "hash_fallback_header", "slots", "sticky_sessions_cookie"):
        if key in up and up[key] is not None:
            put(fragment, f"kong.{key}", reader.value(up, key))
    for key in ("hash_on_cookie_path", "sticky_sessions_cookie_path"):
        if key in up and up[key] != "/":
            reader.skipped.append(Skipped(reader.at(up, key), f"{key}: {up[key]}", "unsupported",
                                          "lbgen renders the cookie path /"))
    checks = up.get("healthchecks")
    if isinstance(checks, YMap):
        put(fragment, "kong.healthchecks", _tree(reader, checks))


def _tree(reader: _Reader, node: YMap) -> Fragment:
    out: Fragment = {}
    for key, value in node.items():
        if isinstance(value, YMap):
            out[str(key)] = _tree(reader, value)
        elif value is not None:
            out[str(key)] = reader.value(node, key, list(value) if isinstance(value, list) else value)
    return out


# --- kong.conf ---------------------------------------------------------------------------


def _conf(path: str, file: str, hop: HopImport) -> None:
    text = read_text(path, file, "kong.conf")
    for number, raw in enumerate(text.splitlines(), start=1):
        # kong.conf: `#` starts a comment unless escaped as `\#` (kong/conf_loader).
        line = re.split(r"(?<!\\)#", raw, maxsplit=1)[0].replace("\\#", "#").strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        column = raw.find(key) + 1
        origin = Origin(file, number, column)
        value_origin = Origin(file, number, raw.find(value, raw.find("=")) + 1 if value else column)
        if not sep:
            hop.skipped.append(Skipped(origin, line, "unsupported", "not a `key = value` line"))
            continue
        if key not in _CONF_KEYS:
            hop.skipped.append(Skipped(origin, f"{key} = {value}", "out-of-scope",
                                       f"kong.conf {key} is not part of lbgen's spec"))
            continue
        _conf_value(hop, key, value, origin, value_origin)


def _conf_value(hop: HopImport, key: str, value: str, origin: Origin, at: Origin) -> None:
    def skip(detail: str) -> None:
        hop.skipped.append(Skipped(origin, f"{key} = {value}", "unsupported", detail))

    if key == "database":
        if value != "off":
            skip("lbgen models DB-less Kong (database = off); the entities are read from kong.yaml")
        put(hop.tier, "mode", Sourced("db-less", at))
    elif key == "declarative_config":
        pass  # where Kong reads kong.yaml; the file itself is given with --kong
    elif key == "proxy_listen":
        entries: list[Sourced[object] | Fragment] = []
        for part in value.split(","):
            words = part.split()
            if not words or words[0] == "off":
                continue
            port = words[0].rpartition(":")[2]
            if not port.isdigit():
                skip(f"listener {part.strip()!r} has no port")
                continue
            entry: Fragment = {"port": Sourced(int(port), at)}
            for flag, spec_key in (("ssl", "tls"), ("http2", "http2"), ("proxy_protocol", "proxy_protocol")):
                if flag in words[1:]:
                    entry[spec_key] = Sourced(True, at)
            hop.links.listens.append(Sourced(f"{words[0].rpartition(':')[0] or '*'}:{port}", at))
            entries.append(entry)
        put(hop.tier, "proxy_listen", entries)
    elif key in ("upstream_keepalive_pool_size", "upstream_keepalive_max_requests", "nginx_http_keepalive_requests"):
        if not value.isdigit():
            skip("expected a whole number")
            return
        spec_key = {"upstream_keepalive_pool_size": "upstream_keepalive.connections",
                    "upstream_keepalive_max_requests": "upstream_keepalive.max_requests",
                    "nginx_http_keepalive_requests": "client_keepalive.max_requests"}[key]
        put(hop.tier, spec_key, Sourced(int(value), at))
    elif key == "upstream_keepalive_idle_timeout":
        if not value.isdigit():
            skip("expected whole seconds")
            return
        put(hop.tier, "upstream_keepalive.idle_timeout", Sourced(duration_text(Duration(int(value) * 1000)), at))
    elif key == "nginx_http_keepalive_timeout":
        parsed = nginx_duration(value)
        if parsed is None:
            skip("not an nginx time")
            return
        put(hop.tier, "client_keepalive.timeout", Sourced(duration_text(parsed), at))
    elif key == "real_ip_header":
        put(hop.tier, "real_ip.header", Sourced(value, at))
    elif key == "real_ip_recursive":
        put(hop.tier, "real_ip.recursive", Sourced(value == "on", at))
    elif key in ("trusted_ips", "dns_resolver"):
        items = [v.strip() for v in value.split(",") if v.strip()]
        spec_key = "real_ip.trusted_ips" if key == "trusted_ips" else "dns_resolver"
        put(hop.tier, spec_key, Sourced(items, at))
