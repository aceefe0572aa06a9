"""Hostile values in every string field: refused at load time, or rendered inert.

The string fields are found by walking the model (so a field added tomorrow is covered, and
`test_every_string_field_of_the_model_is_injected` fails until a base spec below sets it).
Each hostile value is put into one field at a time of a base spec that sets every optional
section. Then either

* loading fails with an `InputError` whose problem names that field (or the section that
  contains it), or
* every rendered file keeps the shape of the clean render of the same spec: nginx files
  parsed with crossplane have exactly the same directives (names, nesting, argument
  counts); YAML files load with PyYAML (a YAML 1.1 reader, like most Kubernetes tooling)
  into the same structure with the same scalar types; kong.conf has the same settings;
  Markdown keeps its lines and table columns.
"""

from __future__ import annotations

import copy
import json
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import crossplane
import pytest
import yaml
from pydantic import BaseModel
from strategies import yaml_line

import lbgen
from lbgen.errors import InputError
from lbgen.io.loader import LoadedSpec, format_path, load_spec_data, load_spec_text
from lbgen.model.spec import Spec
from lbgen.model.types import Duration, Version

Path_ = tuple[str | int, ...]

HOSTILE: list[str] = [
    ";", "a;b", "x; deny all;", "{", "}", "x { return 200; }", "}\nserver {",
    '"', "'", 'a"b', "a'b", "#", "a #comment", "$", "$host", "${HOME}", "$(id)", "`id`",
    "\n", "a\nb", "a\n  injected: true", "\r", "a\r\nb", "\x00", "a\x00b", "\t", "a\tb",
    " ", "a b", " leading", "trailing ", "", "x" * 300, "a" * 5000,
    "a\uff1bb",  # fullwidth semicolon
    "\uff4frders",  # fullwidth o
    "\u043erders",  # Cyrillic o
    "orders\u200b",  # zero-width space
    "\u202eevil",  # right-to-left override
    "a\u0085b", "a\u2028b",  # NEL and LINE SEPARATOR: line breaks to YAML 1.1 readers
    "../../etc/passwd", "/etc/../../passwd", "/a/./b", "..\\..\\x", "\\", "a\\nb",
    "on", "off", "yes", "no", "null", "~", "true", "0x1F", "1e3", "012", "1:30",
    "- item", "key: value", "*alias", "&anchor", "!!python/object", "%00", "<script>", "|",
    "[x]", "a,b", "--- ", "include /etc/passwd;", "'; DROP TABLE x; --", "10.0.0.1;",
    "10.0.0.1 backup", "example.com:80", "0.0.0.0/0 ; allow", "$remote_addr;", "X-Foo: bar",
]

# --- base specs: together they set every string field of the model ---------------------

_SUPPRESS = [{"rule": "LB101", "reason": "accepted for the test"}]


def _services() -> list[dict[str, Any]]:
    return [
        {
            "name": "orders",
            "namespace": "shop",
            "protocol": "http",
            "replicas": 4,
            "deployment": "orders-app",
            "container": "app",
            "route": {"paths": ["/orders"], "hosts": ["shop.example.com"]},
            "app": {"preset": "nodejs", "version": "26.0", "idle_timeout": "65s"},
            "kubernetes": {
                "port": 80,
                "target_port": 8080,
                "session_affinity": "ClientIP",
                "session_affinity_timeout": 600,
                "internal_traffic_policy": "Cluster",
                "traffic_distribution": "PreferClose",
                "labels": {"team": "shop", "example.com/tier": "backend"},
                "selector": {"app": "orders", "track": "stable"},
            },
            "kong": {
                "algorithm": "consistent-hashing",
                "hash_on": "header",
                "hash_on_header": "X-User-Id",
                "hash_fallback": "header",
                "hash_fallback_header": "X-Session-Id",
                "timeouts": {"connect": "5s", "read": "60s", "send": "60s"},
                "healthchecks": {
                    "active": {"type": "http", "http_path": "/healthz"},
                    "passive": {"type": "http"},
                },
            },
            "readiness": {"path": "/ready"},
            "autoscaling": {"min_replicas": 2, "max_replicas": 6},
            "disruption_budget": {"max_unavailable": "25%"},
            "termination_grace_period": "30s",
            "pre_stop_delay": "5s",
            "streaming": ["websocket", "sse"],
            "stream_idle": "20s",
            "suppress": _SUPPRESS,
        },
        {
            "name": "cart",
            "namespace": "shop",
            "replicas": 2,
            "app": {"preset": "uvicorn"},
            "kong": {
                "algorithm": "consistent-hashing",
                "hash_on": "cookie",
                "hash_on_cookie": "cart-session",
            },
            "disruption_budget": {"min_available": "50%"},
        },
    ]


def _edge(**extra: Any) -> dict[str, Any]:
    return {
        "kind": "nginx_http",
        "name": "edge",
        "version": "1.30.0",
        "instances": [{"name": "edge-1", "address": "10.0.0.11"}],
        "listen": [{"port": 80}, {"port": 443, "tls": True, "http2": True}],
        "worker_processes": "auto",
        "tls": {"certificate": "/etc/ssl/edge.crt", "certificate_key": "/etc/ssl/edge.key"},
        "client_keepalive": {"timeout": "75s"},
        "upstream_keepalive": {"connections": 32, "idle_timeout": "50s", "max_lifetime": "1h"},
        "balancing": {"algorithm": "hash", "hash_key": "$remote_addr", "consistent": True},
        "timeouts": {"connect": "5s", "read": "60s", "send": "60s"},
        "retry": {"conditions": ["error", "timeout"], "tries": 2, "timeout": "10s"},
        "passive_health": {"max_fails": 3, "fail_timeout": "10s"},
        "real_ip": {"header": "X-Client-Ip", "trusted": ["10.0.0.0/8"]},
        "suppress": _SUPPRESS,
        **extra,
    }


def _l4() -> dict[str, Any]:
    return {
        "kind": "nginx_stream",
        "name": "l4",
        "version": "1.30.0",
        "instances": [{"name": "l4-1", "address": "l4-1.internal.example"}],
        "listen_port": 8000,
        "worker_processes": "auto",
        "build": "debian",
        "stream_module_path": "/usr/lib/nginx/modules/ngx_stream_module.so",
        "proxy_timeout": "10m",
        "connect_timeout": "5s",
        "balancing": {"algorithm": "hash", "hash_key": "$remote_addr"},
        "passive_health": {"fail_timeout": "10s"},
        "trusted_proxies": ["10.0.0.0/24"],
        "suppress": _SUPPRESS,
    }


def _kong(**extra: Any) -> dict[str, Any]:
    return {
        "kind": "kong",
        "name": "gateway",
        "version": "3.10",
        "instances": [{"name": "kong-1", "address": "10.0.2.11"}],
        "client_keepalive": {"timeout": "60s"},
        "upstream_keepalive": {"connections": 64, "idle_timeout": "30s"},
        "real_ip": {"header": "X-Client-Ip", "recursive": True, "trusted_ips": ["10.0.1.0/24"]},
        "backend_targets": "pod_endpoints",
        "suppress": _SUPPRESS,
        **extra,
    }


def _cluster(**extra: Any) -> dict[str, Any]:
    return {
        "kind": "kubernetes",
        "name": "cluster",
        "version": "1.33",
        "platform": "self-managed",
        "cluster_domain": "cluster.example",
        "node_kernel": "6.1",
        "kube_proxy": {
            "mode": "ipvs",
            "sync_period": "30s",
            "min_sync_period": "1s",
            "ipvs": {"scheduler": "lc", "tcp_timeout": "900s", "tcp_fin_timeout": "120s",
                     "udp_timeout": "300s"},
            "conntrack": {"tcp_established_timeout": "24h", "tcp_close_wait_timeout": "1h"},
            "cluster_cidrs": ["10.244.0.0/16"],
        },
        "suppress": _SUPPRESS,
        **extra,
    }


BASES: dict[str, dict[str, Any]] = {
    "full-path": {
        "name": "shop",
        "external_lb": {"kind": "gcp-application", "backend_idle_timeout": "600s"},
        "keepalive_margin": "2s",
        "tiers": [_edge(), _l4(),
                  _kong(location="outside", dns_resolver=["10.0.3.10", "[fd00::a]:53"]),
                  _cluster()],
        "services": _services(),
        "workload": {"rate": 100, "duration": "60s", "response_time": "50ms", "response_time_p99": "200ms",
                     "protocol": "h2", "source_addresses": 4,
                     "events": [{"service": "orders", "add": 2, "at": "30s"}]},
    },
    "kic-sticky": {
        "name": "store",
        "tiers": [
            _edge(),
            _kong(mode="kic", edition="enterprise", version="3.11",
                  kic={"version": "3.5", "drain_support": True},
                  proxy_service={"external_traffic_policy": "Local", "lb_targets": "pods"}),
            {"kind": "kubernetes", "name": "gke", "platform": "gke"},
        ],
        "services": [
            {
                "name": "cart",
                "namespace": "store",
                "replicas": 3,
                "app": {"preset": "go", "read_timeout": "30s"},
                "kong": {"algorithm": "sticky-sessions", "sticky_sessions_cookie": "cart-sticky"},
            }
        ],
    },
    # No Kong: the edge routes services itself, so paths and hosts land in nginx.
    "edge-gateway": {
        "name": "edge-only",
        "tiers": [
            _edge(
                backend_targets="pod_endpoints",
                # The names dialed are always headless Service names: zone + resolve stay.
                resolver={"addresses": ["10.96.0.10", "[fd00::10]:53"], "valid": "10s"},
            ),
            _cluster(),
        ],
        "services": _services(),
    },
}

# --- walking the model ------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """One place of a base spec where a string is accepted."""

    base: str
    path: Path_
    field: str
    """Model identity, e.g. `Instance.address`, `KubernetesServiceSettings.labels{key}`."""
    as_key: bool = False
    """The string is a mapping key (labels, selectors), not a value."""


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation (Annotated, Optional and unions flattened)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [alt for arg in typing.get_args(annotation) for alt in _unwrap(arg)]
    return [annotation]


def _accepts_string(annotation: Any) -> bool:
    for alt in _unwrap(annotation):
        if alt in (str, Duration, Version):
            return True
        if typing.get_origin(alt) is Literal and any(isinstance(a, str) for a in typing.get_args(alt)):
            return True
    return False


def model_string_fields(model: type[BaseModel] = Spec, seen: set[str] | None = None) -> set[str]:
    """Every string-accepting field of the model, as `Model.field` (+ `[]`, `{key}`, `{}`)."""
    seen = set() if seen is None else seen
    found: set[str] = set()
    if model.__name__ in seen:
        return found
    seen.add(model.__name__)
    for name, info in model.model_fields.items():
        found |= _annotation_fields(info.annotation, f"{model.__name__}.{name}", seen)
    return found


def _annotation_fields(annotation: Any, label: str, seen: set[str]) -> set[str]:
    found: set[str] = set()
    if _accepts_string(annotation):
        found.add(label)
    for alt in _unwrap(annotation):
        origin = typing.get_origin(alt)
        if origin is list:
            found |= _annotation_fields(typing.get_args(alt)[0], label + "[]", seen)
        elif origin is dict:
            key, value = typing.get_args(alt)
            if _accepts_string(key):
                found.add(label + "{key}")
            found |= _annotation_fields(value, label + "{}", seen)
        elif isinstance(alt, type) and issubclass(alt, BaseModel):
            found |= model_string_fields(alt, seen)
    return found


def _model_for(annotation: Any, data: Any) -> type[BaseModel] | None:
    models = [a for a in _unwrap(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    if len(models) > 1 and isinstance(data, dict):  # the tier union: pick by `kind`
        for model in models:
            kind = model.model_fields.get("kind")
            if kind is not None and data.get("kind") in typing.get_args(kind.annotation):
                return model
    return models[0] if models else None


def sites(base: str, data: Any, model: type[BaseModel] = Spec, path: Path_ = ()) -> Iterator[Site]:
    """Every string site of `data` (an instance of `model`), following the model."""
    for name, info in model.model_fields.items():
        if name not in data:
            continue
        label = f"{model.__name__}.{name}"
        yield from _value_sites(base, data[name], info.annotation, (*path, name), label)


def _value_sites(base: str, value: Any, annotation: Any, path: Path_, label: str) -> Iterator[Site]:
    if isinstance(value, str) and _accepts_string(annotation):
        yield Site(base, path, label)
        return
    for alt in _unwrap(annotation):
        origin = typing.get_origin(alt)
        if origin is list and isinstance(value, list):
            for index, item in enumerate(value):
                yield from _value_sites(base, item, typing.get_args(alt)[0], (*path, index),
                                        label + "[]")
            return
        if origin is dict and isinstance(value, dict):
            key_type, value_type = typing.get_args(alt)
            for key, item in value.items():
                if _accepts_string(key_type):
                    yield Site(base, (*path, key), label + "{key}", as_key=True)
                yield from _value_sites(base, item, value_type, (*path, key), label + "{}")
            return
    model = _model_for(annotation, value)
    if model is not None and isinstance(value, dict):
        yield from sites(base, value, model, path)


def all_sites() -> list[Site]:
    """One site per (base spec, model field): repeats (a second instance) add nothing."""
    chosen: dict[tuple[str, str, str], Site] = {}
    for base, data in BASES.items():
        for site in sites(base, data):
            context = str(site.path[0]) + (str(data["tiers"][site.path[1]]["kind"])
                                           if site.path[0] == "tiers" else "")
            chosen.setdefault((base, site.field, context), site)
    return list(chosen.values())


SITES = all_sites()


def inject(data: dict[str, Any], site: Site, value: str) -> dict[str, Any]:
    spec = copy.deepcopy(data)
    node: Any = spec
    for part in site.path[:-1]:
        node = node[part]
    last = site.path[-1]
    if site.as_key:
        node[value] = node.pop(last)
    else:
        node[last] = value
    return spec


# --- the shape of rendered files --------------------------------------------------------


def nginx_shape(path: Path) -> list[tuple[int, str, int]]:
    """(depth, directive, number of arguments) of every directive, in order."""
    parsed = crossplane.parse(str(path), single=True, catch_errors=False, check_ctx=False,
                              check_args=False)
    assert parsed["status"] == "ok", parsed["errors"]
    shape: list[tuple[int, str, int]] = []

    def walk(block: list[dict[str, Any]], depth: int) -> None:
        for directive in block:
            shape.append((depth, directive["directive"], len(directive["args"])))
            walk(directive.get("block", []), depth + 1)

    walk(parsed["config"][0]["parsed"], 0)
    return shape


def yaml_shape(value: Any) -> Any:
    """Structure and scalar types, not the strings themselves."""
    if isinstance(value, dict):
        return ("map", sorted((type(k).__name__, json.dumps(yaml_shape(v))) for k, v in value.items()))
    if isinstance(value, list):  # order-insensitive: renaming may re-sort entities
        return ("seq", sorted(json.dumps(yaml_shape(v)) for v in value))
    return type(value).__name__


def kong_conf_keys(text: str) -> list[str]:
    keys = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            assert " = " in stripped, line
            keys.append(stripped.split(" = ", 1)[0])
    return keys


def markdown_shape(text: str) -> list[int]:
    """One entry per line: its number of table cells (0 for lines that are not table rows)."""
    return [line.replace("\\|", "").count("|") if line.startswith("|") else 0
            for line in text.splitlines()]


def nginx_files(spec: Spec, files: dict[str, str]) -> list[str]:
    nginx_tiers = [t.name for t in spec.tiers if t.kind in ("nginx_http", "nginx_stream")]
    return [p for p in files if p.endswith(".conf") and p.split("/")[0] in nginx_tiers]


@dataclass
class Rendered:
    spec: Spec
    files: dict[str, str]
    shapes: dict[str, Any]


def load(data: dict[str, Any]) -> LoadedSpec:
    """Validate like a YAML file would be (strict scalar types), positions aside."""
    return load_spec_data(data, strict=True)


def file_shape(spec: Spec, rel: str, text: str, tmp: Path) -> Any:
    if rel in nginx_files(spec, {rel: text}):
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return nginx_shape(target)
    if rel.endswith((".yaml", ".yml")):
        return [yaml_shape(doc) for doc in yaml.safe_load_all(text)]
    if rel.endswith("kong.conf"):
        return kong_conf_keys(text)
    if rel.endswith(".md"):
        return markdown_shape(text)
    raise AssertionError(f"no inertness check for {rel}: add one")


def render_shapes(data: dict[str, Any], tmp: Path) -> Rendered:
    loaded = load(data)
    files = lbgen.render(loaded)
    shapes = {rel: file_shape(loaded.spec, rel, text, tmp) for rel, text in files.items()}
    return Rendered(loaded.spec, files, shapes)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    return {base: render_shapes(data, tmp_path_factory.mktemp(base)) for base, data in BASES.items()}


# --- tests ------------------------------------------------------------------------------


def test_the_corpus_is_large_and_distinct() -> None:
    assert len(set(HOSTILE)) == len(HOSTILE) >= 40


def test_every_base_spec_is_valid_and_renders_every_tier(clean: dict[str, Rendered]) -> None:
    for base, rendered in clean.items():
        tiers = {path.split("/")[0] for path in rendered.files}
        assert {t.name for t in rendered.spec.tiers} <= tiers, base


def test_every_string_field_of_the_model_is_injected() -> None:
    """A new string field must be set in one of BASES, so hostile values reach it."""
    covered = {site.field for site in SITES}
    missing = model_string_fields() - covered
    assert not missing, f"set these fields in a base spec of {__name__}: {sorted(missing)}"


@pytest.mark.slow
@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v)[:40] for v in HOSTILE])
def test_hostile_value_is_refused_or_inert_in_every_field(
    value: str, clean: dict[str, Rendered], tmp_path: Path
) -> None:
    failures: list[str] = []
    for number, site in enumerate(SITES):
        data = inject(BASES[site.base], site, value)
        where = f"{site.base}:{format_path(site.path)}"
        try:
            load(data)
        except InputError as exc:
            owners = [p for p in exc.problems if _covers(p.path, site)]
            if not owners:
                failures.append(f"{where}: refused, but no problem names the field: {exc}")
            continue
        try:
            loaded = load(data)
            spec = loaded.spec
            files = lbgen.render(loaded)
        except Exception as exc:  # noqa: BLE001 - any crash on an accepted value is a finding
            failures.append(f"{where}: accepted, then rendering failed: {exc!r}")
            continue
        reference = clean[site.base]
        original = str(site.path[-1]) if site.as_key else _get(BASES[site.base], site.path)
        # A name can be part of a file name (gke/<namespace>/<service>.yaml): pair files up.
        renamed = {_rename(rel, value, original): rel for rel in files}
        for rel in sorted(set(reference.files) | set(renamed)):
            if rel not in renamed or rel not in reference.files:
                failures.append(f"{where}: {rel} appeared or disappeared")
                continue
            text = files[renamed[rel]]
            if text == reference.files[rel]:
                continue  # the value does not reach this file
            shape = file_shape(spec, renamed[rel], text, tmp_path / str(number))
            if shape != reference.shapes[rel]:
                failures.append(f"{where}: {rel} changed shape")
        failures.extend(_stray(where, value, files))
    assert not failures, "\n".join(failures)


def _get(data: Any, path: Path_) -> str:
    for part in path:
        data = data[part]
    return str(data)


def _rename(rel: str, value: str, original: str) -> str:
    """`rel` with `value` as a whole token (between '/', '-', '.') put back to `original`."""
    if not value:
        return rel
    token = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(value)}(?![A-Za-z0-9_])")
    return token.sub(original, rel)


def _covers(problem_path: str, site: Site) -> bool:
    """The problem is about the injected field, or a section or spec rule containing it."""
    site_path = format_path(site.path)
    return problem_path == "" or site_path.startswith(problem_path) or problem_path.startswith(
        format_path(site.path[:-1])
    )


def _stray(where: str, value: str, files: dict[str, str]) -> list[str]:
    """A value containing a line break must never reach a file verbatim."""
    if not any(brk in value for brk in ("\n", "\r", "\u0085", "\u2028")):
        return []
    return [f"{where}: a line break reached {rel} verbatim"
            for rel, text in files.items() if value in text]


YAML_SITES = ("Instance.address", "Service.name", "Route.paths[]",
              "KubernetesServiceSettings.labels{key}", "KubernetesServiceSettings.labels{}",
              "NginxRealIp.header", "TlsFiles.certificate")


@pytest.mark.slow
@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v)[:40] for v in HOSTILE])
def test_refusals_from_a_yaml_file_point_at_the_injected_line(value: str) -> None:
    """Through a real YAML file, a refused value is reported on the line that holds it."""
    chosen = [s for s in SITES if s.base == "full-path" and s.field in YAML_SITES]
    assert {s.field for s in chosen} == set(YAML_SITES)
    for site in chosen:
        # Non-ASCII escaped: PyYAML writes a raw NEL (U+0085) that it then reads as a break.
        text = yaml.safe_dump(inject(BASES[site.base], site, value), sort_keys=False,
                              width=1 << 20, allow_unicode=False)
        path = (*site.path[:-1], value) if site.as_key else site.path
        try:
            load_spec_text(text, "hostile.yaml")
        except InputError as exc:
            line = yaml_line(text, path, key=site.as_key)
            lines = [p.location.line for p in exc.problems if _covers(p.path, site)]
            assert line in lines, (format_path(site.path), str(exc))
            continue
        # Accepted through YAML exactly when accepted as data (inertness is checked above).
        load(inject(BASES[site.base], site, value))


def test_the_shape_checks_catch_what_they_guard_against(tmp_path: Path) -> None:
    """The harness itself: string-built files with a hostile value do change shape."""
    template = "http {{\n    server {{\n        server_name {};\n    }}\n}}\n"
    benign, injected = tmp_path / "benign.conf", tmp_path / "injected.conf"
    benign.write_text(template.format("shop.example.com"))
    injected.write_text(template.format("x; deny all"))
    assert nginx_shape(benign) != nginx_shape(injected)

    def built(value: str) -> Any:
        return yaml_shape(yaml.safe_load(f"name: {value}\nport: 80\n"))

    with pytest.raises(yaml.YAMLError):
        built("a\n  injected: true")  # a broken document fails safe_load_all outright
    assert built("orders") != built("on")  # YAML 1.1 reads a bare `on` as a boolean
    assert built("orders") != built("{x: 1}")
    assert markdown_shape("| a | b |\n") != markdown_shape("| a | b|c |\n")
    assert kong_conf_keys("a = 1\n") != kong_conf_keys("a = 1\nb = 2\n")
