"""Typed scalar values of the spec: durations, versions, names, hosts, paths.

Every string that can reach a rendered config file is constrained here to the grammar of
its destination, so hostile values (``;``, ``{``, quotes, newlines, ``$``…) are refused at
load time with a located error instead of being rendered.
"""

from __future__ import annotations

import ipaddress
import re
from functools import total_ordering
from typing import Annotated, Any

from pydantic import AfterValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from lbgen.model.limits import (
    DNS_SUBDOMAIN_MAX,
    GO_DURATION_MAX_MS,
    KONG_TIMEOUT_MS,
    NGINX_MAX_MSEC,
)

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# ASCII digits only (re's \d also matches e.g. Arabic-Indic digits); fullmatch, since `$`
# also matches before a trailing newline.
_DURATION_RE = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d))+")
_DURATION_PART_RE = re.compile(r"([0-9]+)(ms|s|m|h|d)")
DURATION_PATTERN = r"^(\d+(ms|s|m|h|d))+$"


@total_ordering
class Duration:
    """A non-negative time span, held in milliseconds.

    Accepted in the spec as an integer number of seconds (``75``) or an nginx-style string
    (``"75s"``, ``"10m"``, ``"1h30m"``, ``"500ms"``).
    """

    __slots__ = ("ms",)

    def __init__(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("a duration cannot be negative")
        self.ms = ms

    @classmethod
    def seconds_(cls, seconds: float) -> Duration:
        return cls(round(seconds * 1000))

    @classmethod
    def parse(cls, value: object) -> Duration:
        parsed = cls._parse(value)
        if parsed.ms > GO_DURATION_MAX_MS:
            raise ValueError(
                f"{value!r} is longer than any product accepts; use at most "
                f"{GO_DURATION_MAX_MS // 86_400_000}d (Go's time.Duration)"
            )
        return parsed

    @classmethod
    def _parse(cls, value: object) -> Duration:
        if isinstance(value, Duration):
            return value
        if isinstance(value, bool):
            # ValueError, not TypeError: pydantic turns only ValueError into a located problem.
            raise ValueError("expected a duration such as 75s, 10m or 500ms, not a boolean")  # noqa: TRY004
        if isinstance(value, int):
            return cls(value * 1000)
        if isinstance(value, float) and value.is_integer():
            return cls(int(value) * 1000)
        if isinstance(value, str):
            # Surrounding blanks are tolerated; inner ones are not: "1 30" is not 130s.
            text = value.strip(" ")
            if text.isascii() and text.isdigit():
                return cls(int(text) * 1000)
            if _DURATION_RE.fullmatch(text):
                return cls(
                    sum(int(n) * _UNIT_MS[u] for n, u in _DURATION_PART_RE.findall(text))
                )
        raise ValueError(
            f"{value!r} is not a duration: use whole seconds (75) or a unit suffix "
            "(500ms, 75s, 10m, 1h, 1h30m)"
        )

    @property
    def seconds(self) -> float:
        return self.ms / 1000

    @property
    def whole_seconds(self) -> int:
        """Seconds, rounded up, so a timeout is never shortened by rounding."""
        return -(-self.ms // 1000)

    def nginx(self) -> str:
        """Shortest exact nginx time string (``75s``, ``10m``, ``500ms``)."""
        if self.ms == 0:
            return "0s"
        for unit in ("d", "h", "m", "s", "ms"):
            size = _UNIT_MS[unit]
            if self.ms % size == 0:
                return f"{self.ms // size}{unit}"
        raise AssertionError("unreachable: 1 ms divides everything")

    def go(self) -> str:
        """Go ``time.ParseDuration`` syntax, as Kubernetes component configs want it."""
        if self.ms % 1000:
            return f"{self.ms}ms"
        return f"{self.ms // 1000}s"

    def __str__(self) -> str:
        return self.nginx()

    def __repr__(self) -> str:
        return f"Duration({self.nginx()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and self.ms == other.ms

    def __lt__(self, other: Duration) -> bool:
        return self.ms < other.ms

    def __hash__(self) -> int:
        return hash(self.ms)

    def __add__(self, other: Duration) -> Duration:
        return Duration(self.ms + other.ms)

    def __sub__(self, other: Duration) -> Duration:
        return Duration(max(0, self.ms - other.ms))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda d: d.nginx(), when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "anyOf": [
                {"type": "integer", "minimum": 0, "description": "whole seconds"},
                {"type": "string", "pattern": DURATION_PATTERN, "examples": ["75s", "10m"]},
            ]
        }


def _duration_at_most(limit_ms: int, least_ms: int, product: str) -> AfterValidator:
    def check(value: Duration) -> Duration:
        if value.ms > limit_ms:
            raise ValueError(
                f"{value.nginx()} is longer than {product} accepts; use at most "
                f"{Duration(limit_ms).nginx()} ({limit_ms} ms)"
            )
        if value.ms < least_ms:
            raise ValueError(f"{value.nginx()} is too short for {product}; use at least "
                             f"{Duration(least_ms).nginx()}")
        return value

    return AfterValidator(check)


NginxDuration = Annotated[Duration, _duration_at_most(NGINX_MAX_MSEC, 0, "nginx")]
"""A duration nginx reads (at most 2^31-1 ms, lbgen.model.limits.NGINX_MAX_MSEC)."""
KongTimeout = Annotated[Duration, _duration_at_most(KONG_TIMEOUT_MS[1], KONG_TIMEOUT_MS[0],
                                                    "a Kong Service timeout")]
"""A Kong Service timeout: 1 ms to 2^31-2 ms (lbgen.model.limits.KONG_TIMEOUT_MS)."""


@total_ordering
class Version:
    """A dotted product version such as ``1.30.0`` (nginx), ``3.10`` (Kong), ``1.33`` (k8s)."""

    __slots__ = ("parts", "text")
    _RE = re.compile(r"[0-9]{1,4}(\.[0-9]{1,4}){1,2}")

    def __init__(self, text: str) -> None:
        if not self._RE.fullmatch(text):
            raise ValueError(
                f"{text!r} is not a version: use MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 1.30.0"
            )
        self.text = text
        parts = tuple(int(p) for p in text.split("."))
        self.parts: tuple[int, int, int] = (*parts, 0, 0)[:3]  # type: ignore[assignment]

    @classmethod
    def parse(cls, value: object) -> Version:
        if isinstance(value, Version):
            return value
        if isinstance(value, str):
            return cls(value.strip())
        if isinstance(value, float | int) and not isinstance(value, bool):
            raise ValueError(  # noqa: TRY004 - pydantic locates ValueError only
                f"version {value!r} is a number in YAML; "
                f"use a quoted string: \"{value}\""
            )
        raise ValueError(f"{value!r} is not a version string")

    def at_least(self, text: str) -> bool:
        return self >= Version(text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.parts == other.parts

    def __lt__(self, other: Version) -> bool:
        return self.parts < other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda v: v.text, when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # \d is ASCII-only in JSON Schema (ECMA-262) regexes.
        return {"type": "string", "pattern": r"^\d{1,4}(\.\d{1,4}){1,2}$", "examples": ["1.30.0"]}


# --- names --------------------------------------------------------------------------------

# RFC 1035 label, as Kubernetes requires for Service names; also safe as an nginx upstream
# name, a Kong entity name, a file name and a Mermaid node id.
NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        max_length=63,
        description="lower-case RFC 1035 label: letters, digits and '-', starting with a letter",
    ),
]

# Used with fullmatch: `$` alone would accept a trailing newline.
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*"
)


def _check_host(value: str) -> str:
    if "%" in value:
        # ipaddress accepts any text after '%' as an IPv6 zone id (even ';' or '}').
        raise ValueError(f"{value!r}: IPv6 zone identifiers (%…) are not supported")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if _HOSTNAME_RE.fullmatch(value):
        return value.lower()
    raise ValueError(
        f"{value!r} is neither an IP address nor a DNS host name "
        "(letters, digits, '-' and '.' only)"
    )


Host = Annotated[
    str,
    Field(max_length=253, description="IPv4/IPv6 address or DNS host name"),
    AfterValidator(_check_host),
]


def _check_hostname(value: str) -> str:
    if _HOSTNAME_RE.fullmatch(value) and not is_ip_address(value):
        return value.lower()
    raise ValueError(f"{value!r} is not a DNS host name (letters, digits, '-' and '.')")


def is_ip_address(value: str) -> bool:
    """An IP literal (a `Host` holds IPv6 without brackets), not a name resolved through DNS."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


HostName = Annotated[str, Field(max_length=253), AfterValidator(_check_hostname)]

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _check_dns_subdomain(value: str) -> str:
    labels = value.split(".")
    bad = next((label for label in labels if not _DNS_LABEL.fullmatch(label)), None)
    if bad is not None:
        shown = "an empty label" if bad == "" else f"the label {bad!r}"
        raise ValueError(
            f"{value!r} has {shown}; use lower-case DNS labels of 1 to 63 letters, digits "
            "and '-' (not starting or ending with '-'), separated by single dots"
        )
    return value


DnsSubdomain = Annotated[str, Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX),
                         AfterValidator(_check_dns_subdomain)]
"""A lower-case DNS name such as cluster.local (RFC 1123 labels, at most 253 characters)."""


def _check_cidr(value: str) -> str:
    if "%" in value:
        raise ValueError(f"{value!r}: IPv6 zone identifiers (%…) are not supported")
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR such as 10.0.0.0/8") from None


Cidr = Annotated[str, Field(max_length=43), AfterValidator(_check_cidr)]

Port = Annotated[int, Field(ge=1, le=65535)]


_RESOLVER_WITH_PORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<v4>[0-9.]+)):(?P<port>[0-9]{1,5})$")


def _check_dns_resolver(value: str) -> str:
    # kong.conf.default dns_resolver: "each entry in `ip[:port]` format"; port 53 if omitted.
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    match = _RESOLVER_WITH_PORT.fullmatch(value)
    try:
        if match is None or not 1 <= int(match.group("port")) <= 65535:
            raise ValueError
        if match.group("v6") is not None and ":" not in match.group("v6"):
            raise ValueError
        ipaddress.ip_address(match.group("v6") or match.group("v4"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a nameserver address: use ip or ip:port (IPv6 as [ip]:port)"
        ) from None
    return value


DnsResolver = Annotated[str, Field(max_length=47), AfterValidator(_check_dns_resolver)]

# URL path prefix: unreserved characters only, so it is inert in nginx `location`, Kong
# `paths` and Kubernetes probe paths alike.
HTTP_PATH_PATTERN = r"^/[A-Za-z0-9._~/-]{0,255}$"


def _check_http_path(value: str) -> str:
    # Proxies normalise `.`/`..` segments away before routing, so a prefix containing
    # them never matches (and `..` reads like an attempt to escape).
    if any(part in (".", "..") for part in value.split("/")):
        raise ValueError(f"{value!r} must not contain '.' or '..' segments")
    return value


HttpPath = Annotated[
    str, Field(pattern=HTTP_PATH_PATTERN, max_length=256), AfterValidator(_check_http_path)
]

# RFC 9110 token restricted to letters, digits and '-', which covers real header names.
HEADER_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9-]{0,63}$"
HeaderName = Annotated[str, Field(pattern=HEADER_NAME_PATTERN)]

# An nginx variable reference, e.g. $remote_addr or $http_x_user; no other syntax.
NGINX_VARIABLE_PATTERN = r"^\$[a-z_][a-z0-9_]{0,63}$"
NginxVariable = Annotated[str, Field(pattern=NGINX_VARIABLE_PATTERN)]
NGINX_VARIABLES_PATTERN = r"^(\$[a-z_][a-z0-9_]{0,63})+$"
"""One or more concatenated variables (nginx `hash` keys), as in common.NginxBalancing."""

def _check_file_path(value: str) -> str:
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} must not contain '..' segments")
    return value


# Absolute file path for certificates; no spaces, quotes, ';' or '..' segments.
FILE_PATH_PATTERN = r"^/[A-Za-z0-9._/-]{1,255}$"
FilePath = Annotated[
    str,
    Field(pattern=FILE_PATH_PATTERN, max_length=256),
    AfterValidator(_check_file_path),
]

# Kubernetes label key (optional DNS prefix) and value.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LabelKey = Annotated[str, Field(pattern=LABEL_KEY_PATTERN)]
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]

# [0-9], not \d: pydantic's (Rust) regex \d also matches Arabic-Indic and other digits.
RULE_CODE_PATTERN = r"^LB[0-9]{3}$"
RuleCode = Annotated[str, Field(pattern=RULE_CODE_PATTERN)]
