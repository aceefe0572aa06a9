"""nginx http and stream configs → `HopImport`s, through crossplane (includes followed).

What is read (everything else is reported as `Skipped` with its location):

- http: `upstream` blocks (servers with `max_fails`/`fail_timeout`, `keepalive`,
  `keepalive_timeout`/`_requests`/`_time`, the balancing method, `resolver`), the `server`
  blocks' `listen` (`ssl`, `http2`, `proxy_protocol`), `ssl_certificate(_key)`,
  `keepalive_timeout`/`keepalive_requests`, and in every location that proxies
  (`proxy_pass`, `grpc_pass`) the effective `proxy_*_timeout`, `proxy_next_upstream*`,
  forwarded headers and `real_ip` settings (inherited http → server → location, as nginx
  does: ngx_http_core_module docs, "Context"; array directives such as `proxy_set_header`
  and `set_real_ip_from` are inherited only when the inner level has none).
- stream: `upstream` blocks, `server` with `listen` (`proxy_protocol`), `proxy_pass`,
  `proxy_timeout`, `proxy_connect_timeout`, `proxy_protocol`, `proxy_next_upstream(_tries)`,
  `set_real_ip_from`, `resolver`; `load_module …ngx_stream_module.so` (Debian's build).

The spec has one value per tier; where the locations or upstreams of one file disagree the
first is used and the others are reported as ambiguous.
"""

from __future__ import annotations

import functools
import glob
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crossplane
from msgspec import Struct, field

from lbgen import defaults
from lbgen.errors import InputError, Problem, SourceLocation
from lbgen.importer.nginx_lexer import crossplane_lexer
from lbgen.importer.sources import (
    Fragment,
    HopImport,
    Named,
    Origin,
    Skipped,
    SkipReason,
    Sourced,
    SourceText,
    put,
)
from lbgen.model.types import Duration

ShowPath = Callable[[str], str]

# nginx time units (ngx_parse_time: ms s m h d w M y); a bare number is seconds.
_NGINX_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
                   "w": 7 * 86_400_000, "M": 30 * 86_400_000, "y": 365 * 86_400_000}
_TIME_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|M|y)?")
_TARGET_HINT = re.compile(r"lbgen-target: nginx (?P<version>[0-9.]+) \(tier (?P<tier>[A-Za-z0-9_-]+)")
_DEBIAN_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
_FORWARDED = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip"}
# What lbgen renders on every proxying location itself: present with this value, the line is
# accounted for and not reported.
_STANDARD_HEADERS = {("host", "$host"), ("connection", "")}


def nginx_duration(text: str) -> Duration | None:
    """An nginx time (`75s`, `1m`, `1h 30m`, `75`), or None when nginx would refuse it."""
    ms = _nginx_ms(text)
    return None if ms is None else Duration(ms)


@functools.lru_cache(maxsize=4096)
def _nginx_ms(text: str) -> int | None:
    # cached: a pure function of the text, asked again for every server of an upstream
    compact = text.replace(" ", "")
    if not compact:
        return None
    pos, total = 0, 0
    while pos < len(compact):
        match = _TIME_PART.match(compact, pos)
        if match is None or match.end() == pos:
            return None
        unit = match.group(2) or "s"
        total += int(match.group(1)) * _NGINX_UNITS_MS[unit]
        pos = match.end()
    return total


@functools.lru_cache(maxsize=4096)
def _spec_time(text: str) -> str | None:
    """An nginx time as the spec writes it, or None (cached like _nginx_ms)."""
    ms = _nginx_ms(text)
    return None if ms is None else duration_text(Duration(ms))


def duration_text(value: Duration) -> str:
    """A duration as the spec writes it (`75s`, `10m`)."""
    return value.nginx()


class _D(Struct):
    """One crossplane directive with the path of its file."""

    name: str
    args: list[str]
    file: str
    line: int
    block: list[_D] | None
    comment: str = ""
    start: int = 0
    """0-based offset of the directive's name on its line (crossplane gives lines only)."""


def _wrap(items: list[dict[str, Any]], file: str, lines: list[str], cursor: dict[int, int]) -> list[_D]:
    """crossplane's directives in file order; `cursor` (line → offset after the previous
    directive on that line) tells apart several directives on one line. `lines`: the file's."""
    out = []
    count = len(lines)
    for item in items:
        name = item["directive"]
        line = item.get("line") or 1
        start = 0
        if name != "#" and 0 < line <= count:
            found = lines[line - 1].find(name, cursor.get(line, 0))
            if found >= 0:
                start = found
                cursor[line] = found + len(name)
        block = item.get("block")
        out.append(_D(
            name, list(item["args"]), file, line,
            _wrap(block, file, lines, cursor) if block is not None else None,
            item.get("comment", ""), start,
        ))
    return out


class _Context:
    """Shared by the http and stream readers: locations, skips, the target hint."""

    def __init__(self, text: SourceText, shown: ShowPath) -> None:
        self.text = text
        self._shown = shown
        # per file, per run: a path is made relative to the working directory once (not a
        # process-wide cache: the working directory may change between runs)
        self._shown_names: dict[str, str] = {}
        self.skipped: list[Skipped] = []
        self.files: list[str] = []
        """Every file parsed (includes too), as shown, in the order read."""

    def shown(self, file: str) -> str:
        name = self._shown_names.get(file)
        if name is None:
            name = self._shown_names[file] = self._shown(file)
        return name

    def origin(self, d: _D, arg: int | None = None) -> Origin:
        if arg is None or arg >= len(d.args):
            return Origin(self.shown(d.file), d.line, d.start + 1)
        line = self.text.line(d.file, d.line)
        # the argument after the directive's name (and after the arguments before it)
        pos = d.start + len(d.name)
        for earlier in d.args[:arg]:
            found = line.find(earlier, pos)
            pos = found + len(earlier) if found >= 0 else pos
        found = line.find(d.args[arg], pos)
        return Origin(self.shown(d.file), d.line, (found if found >= 0 else d.start) + 1)

    def skip(self, d: _D, reason: SkipReason, detail: str) -> None:
        self.skipped.append(Skipped(self.origin(d), _describe(d), reason, detail))

    def sourced(self, d: _D, value: object, arg: int | None = 0) -> Sourced[object]:
        return Sourced(value, self.origin(d, arg))

    def duration(self, d: _D, arg: int = 0) -> Sourced[object] | None:
        value = nginx_duration(" ".join(d.args[arg:]) if arg == 0 else d.args[arg])
        if value is None:
            self.skip(d, "unsupported", f"{' '.join(d.args)!r} is not an nginx time")
            return None
        return self.sourced(d, duration_text(value), arg)

    def number(self, d: _D, arg: int = 0) -> Sourced[object] | None:
        raw = d.args[arg] if arg < len(d.args) else ""
        if not raw.isdigit():
            self.skip(d, "unsupported", f"{raw!r} is not a number")
            return None
        return self.sourced(d, int(raw), arg)


MAX_INCLUDE_DEPTH = 16
"""nginx has no limit of its own; a deeper chain is a loop or a mistake (reported, not read)."""


def parse_files(path: str, ctx: _Context) -> list[_D]:
    """The directives of `path` with its includes inlined (relative to the file's directory,
    nginx's prefix for a configuration file given with -c). Unreadable or unparsable input is
    an InputError; an included file that is not here is reported and left out."""
    _check_regular(path, ctx.shown(path))
    return _parse_one(path, ctx, Path(path).parent, (path,))


def _check_regular(path: str, name: str) -> None:
    try:
        mode = Path(path).stat().st_mode
    except OSError as exc:
        raise InputError([Problem(SourceLocation(name, 1, 1), f"cannot read the nginx config: {exc.strerror}")]) from None
    if not stat.S_ISREG(mode):
        raise InputError([Problem(SourceLocation(name, 1, 1), "the nginx config is not a regular file",
                                  "pass the path of the nginx.conf (or an included file)")])


def _parse_one(path: str, ctx: _Context, prefix: Path, stack: tuple[str, ...]) -> list[_D]:
    # single=True: crossplane does not follow includes (its combined output attributes the
    # directives after an include to the included file); they are inlined here instead.
    # check_args=True: without it crossplane takes a `}` for the `;` a directive lacks and
    # nests the following blocks inside it (crossplane's tests/configs/missing-semicolon);
    # nginx refuses such a file, and the arguments check is the one that sees the terminator.
    shown = ctx.shown(path)
    if shown not in ctx.files:
        ctx.files.append(shown)
    # crossplane's parser on the faster tokenizer that yields crossplane's own tokens (nginx_lexer)
    with crossplane_lexer():
        payload = crossplane.parse(path, comments=True, single=True, check_ctx=False, check_args=True,
                                   catch_errors=True, onerror=lambda exc: type(exc).__name__)
    problems = []
    for error in payload.get("errors", []):
        message = re.sub(r" in \S+:\d+$", "", str(error.get("error") or "")) or "not readable as text (UTF-8?)"
        line = int(error.get("line") or 1)
        if error.get("callback") == "StopIteration":
            # crossplane ran out of tokens inside a directive: the file ends before its `;`
            message = 'unexpected end of file, expecting ";" or "}"'
            line = max(1, _line_count(str(error.get("file") or path)))
        problems.append(Problem(SourceLocation(ctx.shown(str(error.get("file") or path)), line, 1),
                                f"cannot parse the nginx config: {message}",
                                "fix the file so that `nginx -t` accepts it"))
    if problems:
        raise InputError(problems)
    configs = payload.get("config", [])
    return _inline(_wrap(configs[0].get("parsed", []) if configs else [], path, ctx.text.lines(path), {}),
                   ctx, prefix, stack)


def _line_count(path: str) -> int:
    try:
        with Path(path).open("rb") as file:
            return sum(1 for _ in file)
    except OSError:
        return 1


def _inline(directives: list[_D], ctx: _Context, prefix: Path, stack: tuple[str, ...]) -> list[_D]:
    out: list[_D] = []
    for d in directives:
        if d.name == "include" and d.args:
            out.extend(_included(d, ctx, prefix, stack))
            continue
        if d.block is not None:
            d.block = _inline(d.block, ctx, prefix, stack)
        out.append(d)
    return out


def _included(d: _D, ctx: _Context, prefix: Path, stack: tuple[str, ...]) -> list[_D]:
    pattern = d.args[0] if Path(d.args[0]).is_absolute() else str(prefix / d.args[0])
    if glob.has_magic(pattern):
        matches = sorted(glob.glob(pattern))  # noqa: PTH207 (absolute patterns) nginx reads matches in name order
    else:
        matches = [pattern] if Path(pattern).exists() else []
        if not matches:
            ctx.skip(d, "ambiguous", f"{pattern} is not here: what it holds is not imported "
                     "(pass the file's directory as it is on the server)")
    out: list[_D] = []
    for match in matches:
        if match in stack or len(stack) >= MAX_INCLUDE_DEPTH:
            ctx.skip(d, "unsupported", f"{match} includes itself (or nests {MAX_INCLUDE_DEPTH} deep): not read again")
            continue
        _check_regular(match, ctx.shown(match))
        out.extend(_parse_one(match, ctx, prefix, (*stack, match)))
    return out


def _describe(d: _D) -> str:
    text = " ".join([d.name, *d.args])
    return text if len(text) <= 80 else text[:77] + "…"


def _comments(directives: list[_D]) -> Iterator[_D]:
    for d in directives:
        if d.name == "#":
            yield d
        if d.block:
            yield from _comments(d.block)


def _target_hint(ctx: _Context, directives: list[_D], tier: Fragment) -> None:
    """lbgen's own output names its tier and nginx version in a `# lbgen-target:` line."""
    for d in _comments(directives):
        match = _TARGET_HINT.search(d.comment)
        if match:
            origin = ctx.text.origin(d.file, ctx.shown(d.file), d.line, "lbgen-target")
            put(tier, "name", Sourced(match.group("tier"), origin))
            put(tier, "version", Sourced(match.group("version"), origin))
            return


def _address(server: str, default_port: int) -> str:
    """`host:port` of an upstream server or proxy_pass target."""
    if server.startswith("["):
        host, _, rest = server.partition("]")
        return f"{host}]{rest}" if rest.startswith(":") else f"{host}]:{default_port}"
    if server.count(":") == 1:
        return server
    if server.count(":") > 1:  # a bare IPv6 address
        return f"[{server}]:{default_port}"
    return f"{server}:{default_port}"


class _Upstream(Struct):
    name: str
    directive: _D
    servers: list[tuple[_D, str]] = field(default_factory=list)
    settings: dict[str, Sourced[object]] = field(default_factory=dict)
    # per server, its max_fails / fail_timeout as (spec key, value, directive, argument); made
    # Sourced only when offered to the tier (an upstream of thousands of servers that all say
    # the same needs one origin, not one per server)
    server_values: list[tuple[str, object, _D, int]] = field(default_factory=list)
    server_keys: list[set[str]] = field(default_factory=list)
    """The parameter names each server gives (max_fails, weight, …), in `servers` order."""


class _Unifier:
    """One value per spec key; later different values are reported as ambiguous."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.values: dict[str, tuple[Sourced[object], str]] = {}

    def offer(self, key: str, value: Sourced[object], where: str) -> None:
        first = self.values.get(key)
        if first is None:
            self.values[key] = (value, where)
            return
        if first[0].value != value.value and value.origin is not None:
            self.ctx.skipped.append(Skipped(
                value.origin, f"{key} {value.value}", "ambiguous",
                f"{where} uses {value.value}, {first[1]} uses {first[0].value}; a spec tier has "
                f"one {key}: the import keeps {first[0].value} (from {first[0].origin})",
            ))

    def same(self, key: str, value: object) -> bool:
        """Whether `value` is the value already kept for `key` (offering it changes nothing)."""
        first = self.values.get(key)
        return first is not None and first[0].value == value

    def into(self, fragment: Fragment) -> None:
        for key, (value, _) in self.values.items():
            put(fragment, key, value)


def _read_upstream(ctx: _Context, d: _D, *, stream: bool) -> _Upstream:
    up = _Upstream(d.args[0] if d.args else "", d)
    default_port = 0 if stream else 80
    value: Sourced[object] | None
    lines_seen: set[tuple[int, str]] = set()  # one value per parameter and line, as nginx reads one server a line
    for item in d.block or []:
        name = item.name
        if name == "#":
            continue
        if name == "server" and item.args:
            if stream and ":" not in item.args[0].lstrip("[").split("]")[-1] and not item.args[0].startswith("unix:"):
                ctx.skip(item, "unsupported", "a stream upstream server needs a port")
                continue
            if item.args[0].startswith("unix:"):
                ctx.skip(item, "unsupported", "UNIX-socket servers are not part of a multi-hop path")
                continue
            up.servers.append((item, _address(item.args[0], default_port)))
            keys: set[str] = set()
            for index, param in enumerate(item.args[1:], start=1):
                pkey, sep, pval = param.partition("=")
                if sep:
                    keys.add(pkey)
                if pkey == "max_fails" and pval.isdigit():
                    if (item.line, pkey) not in lines_seen:
                        lines_seen.add((item.line, pkey))
                        up.server_values.append(("passive_health.max_fails", int(pval), item, index))
                elif pkey == "fail_timeout" and (spec_text := _spec_time(pval)) is not None:
                    if (item.line, pkey) not in lines_seen:
                        lines_seen.add((item.line, pkey))
                        up.server_values.append(("passive_health.fail_timeout", spec_text, item, index))
                elif pkey == "resolve":
                    pass  # read with `resolver` below
                else:
                    ctx.skipped.append(Skipped(ctx.origin(item, index), f"server … {param}", "unsupported",
                                               "lbgen gives every server of a tier the same parameters "
                                               "(max_fails, fail_timeout); weights, backup and down are not modelled"))
            up.server_keys.append(keys)
        elif name == "keepalive" and not stream:
            # `keepalive N local` (the default from 1.29.7): the pool size is what the spec carries
            value = ctx.number(item)
            if value is not None:
                up.settings["upstream_keepalive.connections"] = value
        elif name in ("keepalive_timeout", "keepalive_time") and not stream:
            value = ctx.duration(item)
            if value is not None:
                key = "idle_timeout" if name == "keepalive_timeout" else "max_lifetime"
                up.settings[f"upstream_keepalive.{key}"] = value
        elif name == "keepalive_requests" and not stream:
            value = ctx.number(item)
            if value is not None:
                up.settings["upstream_keepalive.max_requests"] = value
        elif name in ("least_conn", "ip_hash", "least_time"):
            up.settings["balancing.algorithm"] = Sourced(name, ctx.origin(item))
            if name == "least_time":
                ctx.skip(item, "unsupported", "least_time's parameters are not imported")
        elif name == "random":
            two = bool(item.args) and item.args[0] == "two"
            up.settings["balancing.algorithm"] = Sourced("random-two" if two else "random", ctx.origin(item))
            if len(item.args) > 1:
                ctx.skip(item, "unsupported", "random two's method parameter is not imported (lbgen renders least_conn)")
        elif name == "hash" and item.args:
            up.settings["balancing.algorithm"] = Sourced("hash", ctx.origin(item))
            up.settings["balancing.hash_key"] = ctx.sourced(item, item.args[0], 0)
            if "consistent" in item.args[1:]:
                up.settings["balancing.consistent"] = ctx.sourced(item, True, item.args.index("consistent"))
        elif name == "resolver" and item.args:
            addresses = [a for a in item.args if "=" not in a]
            up.settings["resolver.addresses"] = Sourced(addresses, ctx.origin(item, 0))
            for index, arg in enumerate(item.args):
                if arg.startswith("valid="):
                    parsed = nginx_duration(arg.removeprefix("valid="))
                    if parsed is not None:
                        up.settings["resolver.valid"] = ctx.sourced(item, duration_text(parsed), index)
                elif "=" in arg:
                    ctx.skipped.append(Skipped(ctx.origin(item, index), f"resolver … {arg}", "unsupported",
                                               "only the addresses and valid= are modelled"))
        elif name in ("zone", "resolver_timeout"):
            pass  # lbgen renders a zone wherever it renders a resolver
        else:
            ctx.skip(item, "out-of-scope", f"`{name}` in an upstream block is not part of lbgen's spec")
    return up


def _upstream_into(ctx: _Context, up: _Upstream, unify: _Unifier) -> None:
    where = f"upstream {up.name}"
    for key, value in up.settings.items():
        unify.offer(key, value, where)
    for key, raw, item, index in up.server_values:
        if not unify.same(key, raw):
            unify.offer(key, ctx.sourced(item, raw, index), where)
    # A server without max_fails/fail_timeout uses nginx's 1 and 10s: the tier value must be
    # the same for all of them, so a server that leaves it out disagrees with one that sets it.
    for param, default in (("max_fails", 1), ("fail_timeout", "10s")):
        key = f"passive_health.{param}"
        if key not in unify.values or unify.same(key, default):
            continue
        for (item, _), keys in zip(up.servers, up.server_keys, strict=True):
            if param not in keys:
                unify.offer(key, Sourced(default, ctx.origin(item)), f"{where} (nginx default)")


# --- http --------------------------------------------------------------------------------

_HTTP_INHERITED = {
    "proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout", "proxy_next_upstream",
    "proxy_next_upstream_tries", "proxy_next_upstream_timeout", "proxy_http_version",
    "grpc_connect_timeout", "grpc_read_timeout", "grpc_send_timeout", "grpc_next_upstream",
    "grpc_next_upstream_tries", "grpc_next_upstream_timeout",
    "keepalive_timeout", "keepalive_requests", "real_ip_header", "real_ip_recursive",
    "ssl_certificate", "ssl_certificate_key", "http2",
}
_HTTP_ARRAYS = {"proxy_set_header", "grpc_set_header", "set_real_ip_from"}
# Read where they are and accounted for, but carry nothing for the spec by themselves.
_HTTP_HANDLED = _HTTP_INHERITED | _HTTP_ARRAYS | {
    "upstream", "server", "location", "listen", "proxy_pass", "grpc_pass", "include", "#",
    "server_tokens", "server_name",
}


class _Scope:
    def __init__(self, parent: _Scope | None = None) -> None:
        self.single: dict[str, _D] = dict(parent.single) if parent else {}
        self.arrays: dict[str, list[_D]] = dict(parent.arrays) if parent else {}
        self._own_arrays: set[str] = set()

    def take(self, d: _D) -> None:
        if d.name in _HTTP_ARRAYS or d.name == "stream_set_real_ip_from":
            if d.name not in self._own_arrays:
                self.arrays[d.name] = []
                self._own_arrays.add(d.name)
            self.arrays[d.name] = [*self.arrays[d.name], d]
        else:
            self.single[d.name] = d


class _Use(Struct):
    """A location that proxies, with what it inherits."""

    directive: _D
    scope: _Scope
    server: _D
    target: str
    grpc: bool
    path: list[str]
    location: _D


def _http_blocks(directives: list[_D]) -> list[list[_D]]:
    blocks = [d.block for d in directives if d.name == "http" and d.block is not None]
    return blocks or [directives]


def import_nginx_http(paths: list[str], text: SourceText, shown: ShowPath) -> HopImport:
    d: _D | None
    up: _Upstream | None
    ctx = _Context(text, shown)
    hop = HopImport(kind="nginx_http", tier={})
    upstreams: dict[str, _Upstream] = {}
    uses: list[_Use] = []
    servers: list[tuple[_D, _Scope]] = []
    for path in paths:
        directives = parse_files(path, ctx)
        _target_hint(ctx, directives, hop.tier)
        _main_context(ctx, directives, hop.tier, http=True)
        for block in _http_blocks(directives):
            # An inner level inherits what the outer one sets anywhere in it, before or after
            # the inner block: the outer directives are read first.
            top = _Scope()
            for d in block:
                if d.name in _HTTP_INHERITED or d.name in _HTTP_ARRAYS:
                    top.take(d)
            for d in block:
                if d.name == "upstream":
                    up = _read_upstream(ctx, d, stream=False)
                    upstreams[up.name] = up
                elif d.name == "server" and d.block is not None:
                    scope = _Scope(top)
                    servers.append((d, scope))
                    _walk_server(ctx, d, scope, uses)
                elif d.name in ("location", "listen", "server_name", "proxy_pass", "grpc_pass"):
                    # a snippet meant to be included in a server {} (crossplane's includes-globbed)
                    ctx.skip(d, "ambiguous", f"`{d.name}` outside a server block is not read: pass the "
                             "nginx.conf that includes this file")
                elif d.name not in _HTTP_HANDLED:
                    _skip_http(ctx, d)
    unify = _Unifier(ctx)
    listens: dict[int, Fragment] = {}
    proxying = {id(use.server) for use in uses}
    for server, scope in servers:
        if id(server) not in proxying:
            # its listen, server_name and settings would otherwise go unmentioned
            ctx.skip(server, "out-of-scope", "this server proxies nothing (no location with proxy_pass or "
                     "grpc_pass): its listen and settings are not imported")
            continue
        _server_listens(ctx, server, scope, listens, hop)
        for key, spec_key in (("keepalive_timeout", "client_keepalive.timeout"),
                              ("keepalive_requests", "client_keepalive.max_requests")):
            d = scope.single.get(key)
            if d is not None and d.args:
                value = ctx.duration(d) if key == "keepalive_timeout" else ctx.number(d)
                if value is not None:
                    unify.offer(spec_key, value, f"server at {ctx.origin(server)}")
        for key in ("ssl_certificate", "ssl_certificate_key"):
            d = scope.single.get(key)
            if d is not None and d.args:
                unify.offer(f"tls.{key.removeprefix('ssl_')}",
                            ctx.sourced(d, d.args[0]), f"server at {ctx.origin(server)}")
    if listens:
        hop.tier["listen"] = [listens[port] for port in sorted(listens)]
    used: list[str] = []
    forwarded: bool | None = None
    for use in uses:
        _location_values(ctx, use, unify)
        has = _forwarded_headers(ctx, use)
        forwarded = has if forwarded is None else forwarded and has
        host, _, _ = use.target.partition("/")
        up = upstreams.get(host)
        key = host if up is not None else _address(host, 443 if use.target.startswith("https") else 80)
        if up is not None and host not in used:
            used.append(host)
            _upstream_into(ctx, up, unify)
        if key not in hop.links.forwards:
            if up is not None:
                hop.links.forwards[key] = [Sourced(addr, ctx.origin(item, 0)) for item, addr in up.servers]
                hop.named[key] = [Named("upstream", up.name, ctx.origin(up.directive))]
            else:
                hop.links.forwards[key] = [Sourced(key, ctx.origin(use.directive, 0))]
                hop.named[key] = []
        _name_server(ctx, use.server, hop.named[key])
        service = hop.services.setdefault(key, {})
        paths_list = service.setdefault("route", {})
        assert isinstance(paths_list, dict)
        existing = paths_list.setdefault("paths", [])
        assert isinstance(existing, list)
        for match in use.path:
            existing.append(Sourced(match, ctx.origin(use.location, use.location.args.index(match))))
        if use.grpc:
            put(service, "protocol", Sourced("grpc", ctx.origin(use.directive)))
    for name, up in upstreams.items():
        if name not in used:
            ctx.skip(up.directive, "out-of-scope", f"upstream {name} is not used by any proxying location")
    pooled = [upstreams[name] for name in used if "upstream_keepalive.connections" in upstreams[name].settings]
    if used and not pooled:
        # No `keepalive`: nginx before 1.29.7 keeps no pool (the linker decides once the
        # version is known; ngx_http_upstream_module #keepalive).
        hop.tier["_no_pool"] = Sourced(0, ctx.origin(upstreams[used[0]].directive))
    unify.into(hop.tier)
    if forwarded is not None:
        first = uses[0].directive
        put(hop.tier, "forwarded_headers", Sourced(forwarded, ctx.origin(first)))
    _real_ip(ctx, uses, hop.tier)
    hop.skipped = ctx.skipped
    hop.files = ctx.files
    return hop


def _name_server(ctx: _Context, server: _D, named: list[Named]) -> None:
    """The server block that proxies, named by its first `listen` (servers have no name of
    their own that `nginx -T` shows more plainly)."""
    origin = ctx.origin(server)
    if any(n.kind == "server" and n.origin == origin for n in named):
        return
    listen = next((d for d in server.block or [] if d.name == "listen" and d.args), None)
    named.append(Named("server", f"listen {' '.join(listen.args)}" if listen is not None else "server", origin))


# lbgen renders the Mozilla intermediate profile on every TLS listener: the same lines in an
# imported config are accounted for.
_LBGEN_TLS = {
    "ssl_protocols": list(defaults.MOZILLA_INTERMEDIATE_PROTOCOLS),
    "ssl_ciphers": [defaults.MOZILLA_INTERMEDIATE_CIPHERS],
}
_LBGEN_HSTS = ["Strict-Transport-Security", f"max-age={defaults.MOZILLA_HSTS_MAX_AGE}", "always"]


def _skip_http(ctx: _Context, d: _D) -> None:
    if _LBGEN_TLS.get(d.name) == d.args or (d.name == "add_header" and d.args == _LBGEN_HSTS):
        return
    if d.name == "map":
        ctx.skip(d, "out-of-scope", "map blocks are not translated (lbgen renders its own maps)")
    elif d.name in ("proxy_buffering", "proxy_buffer_size", "proxy_buffers", "client_max_body_size"):
        ctx.skip(d, "out-of-scope", "buffering and body limits are not part of lbgen's spec")
    else:
        ctx.skip(d, "out-of-scope", f"`{d.name}` is not part of lbgen's spec")


def _walk_server(ctx: _Context, server: _D, scope: _Scope, uses: list[_Use]) -> None:
    for d in server.block or []:
        if d.name in _HTTP_INHERITED or d.name in _HTTP_ARRAYS:
            scope.take(d)
    for d in server.block or []:
        if d.name == "location":
            _walk_location(ctx, d, _Scope(scope), server, uses)
        elif d.name in _HTTP_INHERITED or d.name in _HTTP_ARRAYS:
            pass
        elif d.name not in _HTTP_HANDLED:
            _skip_http(ctx, d)
        elif d.name == "server_tokens" and d.args != ["off"]:
            ctx.skip(d, "unsupported", "lbgen always renders server_tokens off")
    # proxy_pass directly in a server block is not valid nginx; locations carry it.


def _walk_location(ctx: _Context, loc: _D, scope: _Scope, server: _D, uses: list[_Use]) -> None:
    target: _D | None = None
    for d in loc.block or []:
        if d.name in _HTTP_INHERITED or d.name in _HTTP_ARRAYS:
            scope.take(d)
    for d in loc.block or []:
        if d.name in ("proxy_pass", "grpc_pass"):
            target = d
        elif d.name == "location":
            _walk_location(ctx, d, _Scope(scope), server, uses)
        elif d.name in _HTTP_INHERITED or d.name in _HTTP_ARRAYS:
            pass
        elif d.name not in _HTTP_HANDLED:
            _skip_http(ctx, d)
    if target is None or not target.args:
        return
    raw = target.args[0]
    if "$" in raw:
        ctx.skip(target, "unsupported", "a proxy_pass with variables cannot be linked to a next hop")
        return
    scheme, sep, rest = raw.partition("://")
    if not sep:
        ctx.skip(target, "unsupported", "proxy_pass without a scheme")
        return
    if rest.startswith("unix:"):
        ctx.skip(target, "unsupported", "UNIX-socket targets are not part of a multi-hop path")
        return
    if scheme == "https":
        ctx.skip(target, "unsupported", "TLS to the next hop is not modelled; the import assumes cleartext")
    match = [a for a in loc.args if a not in ("=", "^~", "~", "~*")]
    if any(a in ("~", "~*") for a in loc.args):
        ctx.skip(loc, "unsupported", "regex locations are not translated into route paths")
        match = []
    uses.append(_Use(target, scope, server, rest, target.name == "grpc_pass", match, loc))


def _server_listens(ctx: _Context, server: _D, scope: _Scope, listens: dict[int, Fragment], hop: HopImport) -> None:
    http2_on = scope.single.get("http2")
    for d in server.block or []:
        if d.name != "listen" or not d.args:
            continue
        address = d.args[0]
        host, _, port_text = address.rpartition(":") if ":" in address else ("", "", address)
        if address.startswith("unix:") or not port_text.isdigit():
            ctx.skip(d, "unsupported", "only TCP ports are modelled")
            continue
        port = int(port_text)
        hop.links.listens.append(Sourced(f"{host or '*'}:{port}", ctx.origin(d, 0)))
        if port in listens:
            continue
        entry: Fragment = {"port": ctx.sourced(d, port, 0)}
        for flag, key in (("ssl", "tls"), ("http2", "http2"), ("proxy_protocol", "proxy_protocol")):
            if flag in d.args[1:]:
                entry[key] = ctx.sourced(d, True, d.args.index(flag))
        if "http2" not in entry and http2_on is not None and http2_on.args == ["on"]:
            entry["http2"] = ctx.sourced(http2_on, True)
        for index, arg in enumerate(d.args[1:], start=1):
            if arg not in ("ssl", "http2", "proxy_protocol", "default_server", "reuseport") and not arg.startswith("backlog="):
                ctx.skipped.append(Skipped(ctx.origin(d, index), f"listen … {arg}", "unsupported",
                                           "only ssl, http2 and proxy_protocol are modelled"))
        listens[port] = entry


def _location_values(ctx: _Context, use: _Use, unify: _Unifier) -> None:
    prefix = "grpc" if use.grpc else "proxy"
    where = f"location at {ctx.origin(use.directive)}"
    for name, key in (("connect_timeout", "timeouts.connect"), ("read_timeout", "timeouts.read"),
                      ("send_timeout", "timeouts.send"), ("next_upstream_timeout", "retry.timeout")):
        d = use.scope.single.get(f"{prefix}_{name}")
        if d is not None and d.args:
            value = ctx.duration(d)
            if value is not None:
                unify.offer(key, value, where)
    d = use.scope.single.get(f"{prefix}_next_upstream_tries")
    if d is not None:
        value = ctx.number(d)
        if value is not None:
            unify.offer("retry.tries", value, where)
    d = use.scope.single.get(f"{prefix}_next_upstream")
    if d is not None:
        conditions = [] if d.args == ["off"] else list(d.args)
        known = {"error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504",
                 "http_403", "http_404", "http_429", "non_idempotent"}
        unknown = [c for c in conditions if c not in known]
        if unknown:
            ctx.skip(d, "unsupported", f"conditions {', '.join(unknown)} are not modelled (open-source nginx)")
        unify.offer("retry.conditions", Sourced([c for c in conditions if c in known], ctx.origin(d, 0)), where)
    version = use.scope.single.get("proxy_http_version")
    if not use.grpc and (version is None or version.args != ["1.1"]):
        origin = ctx.origin(version) if version is not None else ctx.origin(use.directive)
        ctx.skipped.append(Skipped(origin, "proxy_http_version " + (" ".join(version.args) if version else "(unset: 1.0)"),
                                   "unsupported",
                                   "lbgen always proxies with HTTP/1.1 (nginx's 1.0 closes every upstream "
                                   "connection, so there is no pool); the spec describes the 1.1 behaviour"))


def _forwarded_headers(ctx: _Context, use: _Use) -> bool:
    name = "grpc_set_header" if use.grpc else "proxy_set_header"
    headers = use.scope.arrays.get(name, [])
    seen = set()
    for d in headers:
        if len(d.args) < 2:
            continue
        header = d.args[0].lower()
        if header in _FORWARDED:
            seen.add(header)
        elif (header, d.args[1]) in _STANDARD_HEADERS:
            pass
        else:
            ctx.skip(d, "out-of-scope", "custom request headers are not part of lbgen's spec")
    return "x-forwarded-for" in seen


def _real_ip(ctx: _Context, uses: list[_Use], tier: Fragment) -> None:
    if not uses:
        return
    scope = uses[0].scope
    trusted = scope.arrays.get("set_real_ip_from", [])
    header = scope.single.get("real_ip_header")
    recursive = scope.single.get("real_ip_recursive")
    if not trusted:
        if header is not None:
            ctx.skip(header, "ambiguous", "real_ip_header without set_real_ip_from changes nothing")
        return
    put(tier, "real_ip.trusted", [ctx.sourced(d, d.args[0]) for d in trusted if d.args])
    put(tier, "real_ip.header", ctx.sourced(header, header.args[0]) if header is not None and header.args
        else Sourced("X-Real-IP", ctx.origin(trusted[0])))
    if recursive is not None:
        put(tier, "real_ip.recursive", ctx.sourced(recursive, recursive.args == ["on"]))


def _main_context(ctx: _Context, directives: list[_D], tier: Fragment, *, http: bool) -> None:
    # A snippet without http {} / stream {} is read as that context by the block reader,
    # which reports what it does not translate.
    snippet = not any(d.name in ("http", "stream") and d.block is not None for d in directives)
    for d in directives:
        if d.name == "worker_processes" and d.args:
            value: object = int(d.args[0]) if d.args[0].isdigit() else d.args[0]
            put(tier, "worker_processes", ctx.sourced(d, value))
        elif d.name == "load_module" and d.args and d.args[0].endswith("ngx_stream_module.so"):
            if not http:
                put(tier, "build", ctx.sourced(d, "debian"))
                if d.args[0] != _DEBIAN_STREAM_MODULE:
                    put(tier, "stream_module_path", ctx.sourced(d, d.args[0]))
        elif d.name in ("http", "stream", "#", "include", "events"):
            continue
        elif d.name in ("upstream", "server", "map", "location") or d.name.startswith(("proxy_", "keepalive")):
            continue  # a snippet without http {} / stream {}: read as that context
        elif d.name in ("set_real_ip_from", "real_ip_header", "real_ip_recursive", "resolver") or snippet:
            continue
        else:
            ctx.skip(d, "out-of-scope", f"`{d.name}` (main context) is not part of lbgen's spec")
    # the other protocol's block in a combined nginx.conf belongs to the other option
    other = "stream" if http else "http"
    for d in directives:
        if d.name == other and d.block is not None:
            ctx.skip(d, "out-of-scope", f"the {other} block is read with --nginx-{other}")


# --- stream ------------------------------------------------------------------------------

_STREAM_SINGLE = {"proxy_timeout", "proxy_connect_timeout", "proxy_protocol", "proxy_next_upstream",
                  "proxy_next_upstream_tries", "proxy_next_upstream_timeout"}


def import_nginx_stream(paths: list[str], text: SourceText, shown: ShowPath) -> HopImport:
    d: _D | None
    up: _Upstream | None
    ctx = _Context(text, shown)
    hop = HopImport(kind="nginx_stream", tier={})
    upstreams: dict[str, _Upstream] = {}
    servers: list[tuple[_D, _Scope]] = []
    for path in paths:
        directives = parse_files(path, ctx)
        _target_hint(ctx, directives, hop.tier)
        _main_context(ctx, directives, hop.tier, http=False)
        blocks = [d.block for d in directives if d.name == "stream" and d.block is not None] or [directives]
        for block in blocks:
            top = _Scope()
            for d in block:
                if d.name in _STREAM_SINGLE or d.name == "set_real_ip_from":
                    top.take(d)
            for d in block:
                if d.name == "upstream":
                    up = _read_upstream(ctx, d, stream=True)
                    upstreams[up.name] = up
                elif d.name == "server" and d.block is not None:
                    scope = _Scope(top)
                    servers.append((d, scope))
                    for item in d.block:
                        if item.name == "listen":
                            scope.arrays["listen"] = [*scope.arrays.get("listen", []), item]
                        elif item.name in _STREAM_SINGLE or item.name in ("proxy_pass", "set_real_ip_from"):
                            scope.take(item)
                        elif item.name == "resolver":
                            continue
                        elif item.name != "#":
                            ctx.skip(item, "out-of-scope", f"`{item.name}` is not part of lbgen's spec")
                elif d.name not in ("#", "include", "server", "upstream", "resolver", "set_real_ip_from",
                                    *_STREAM_SINGLE):
                    ctx.skip(d, "out-of-scope", f"`{d.name}` is not part of lbgen's spec")
    unify = _Unifier(ctx)
    used: list[str] = []
    ports: list[tuple[int, _D]] = []
    for server, scope in servers:
        target = scope.single.get("proxy_pass")
        if target is None or not target.args:
            ctx.skip(server, "out-of-scope", "a stream server without proxy_pass")
            continue
        where = f"server at {ctx.origin(server)}"
        for d in scope.arrays.get("listen", []):
            address = d.args[0] if d.args else ""
            host, _, port_text = address.rpartition(":") if ":" in address else ("", "", address)
            if "udp" in d.args[1:] or not port_text.isdigit():
                ctx.skip(d, "unsupported", "only TCP ports are modelled")
                continue
            port = int(port_text)
            hop.links.listens.append(Sourced(f"{host or '*'}:{port}", ctx.origin(d, 0)))
            if port not in [p for p, _ in ports]:
                ports.append((port, d))
            if "proxy_protocol" in d.args[1:]:
                unify.offer("accept_proxy_protocol", ctx.sourced(d, True, d.args.index("proxy_protocol")), where)
        for name, key in (("proxy_timeout", "proxy_timeout"), ("proxy_connect_timeout", "connect_timeout")):
            d = scope.single.get(name)
            if d is not None and d.args:
                value = ctx.duration(d)
                if value is not None:
                    unify.offer(key, value, where)
        d = scope.single.get("proxy_protocol")
        if d is not None:
            unify.offer("send_proxy_protocol", ctx.sourced(d, d.args == ["on"]), where)
        d = scope.single.get("proxy_next_upstream")
        if d is not None:
            unify.offer("next_upstream", ctx.sourced(d, d.args == ["on"]), where)
        d = scope.single.get("proxy_next_upstream_tries")
        if d is not None:
            value = ctx.number(d)
            if value is not None:
                unify.offer("next_upstream_tries", value, where)
        d = scope.single.get("proxy_next_upstream_timeout")
        if d is not None:
            ctx.skip(d, "unsupported", "the stream tier's proxy_next_upstream_timeout is not modelled")
        trusted = scope.arrays.get("set_real_ip_from", [])
        if trusted:
            put(hop.tier, "trusted_proxies", [ctx.sourced(t, t.args[0]) for t in trusted if t.args])
        name = target.args[0]
        up = upstreams.get(name)
        if up is not None:
            if name not in used:
                used.append(name)
                _upstream_into(ctx, up, unify)
                hop.links.forwards[name] = [Sourced(addr, ctx.origin(item, 0)) for item, addr in up.servers]
                hop.named[name] = [Named("upstream", up.name, ctx.origin(up.directive))]
            _name_server(ctx, server, hop.named[name])
        elif "$" in name:
            ctx.skip(target, "unsupported", "a proxy_pass with variables cannot be linked to a next hop")
        else:
            hop.links.forwards.setdefault(name, [Sourced(name, ctx.origin(target, 0))])
            _name_server(ctx, server, hop.named.setdefault(name, []))
    for name, up in upstreams.items():
        if name not in used:
            ctx.skip(up.directive, "out-of-scope", f"upstream {name} is not used by any server")
    if ports:
        port, d = ports[0]
        put(hop.tier, "listen_port", ctx.sourced(d, port))
        if len(ports) == 2:
            port, d = ports[1]
            put(hop.tier, "grpc_listen_port", ctx.sourced(d, port))
        for port, d in ports[2:]:
            ctx.skip(d, "unsupported", f"a stream tier has at most two listeners (listen_port, grpc_listen_port); port {port} is not imported")
    unify.into(hop.tier)
    hop.skipped = ctx.skipped
    hop.files = ctx.files
    return hop
