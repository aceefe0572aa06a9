"""One effective value and where it came from: the only value+origin type of lbgen.

Every hop plan (`lbgen.plan.hops`), the keep-alive budget (`lbgen.plan.budget`), the
renderers' explanatory comments and the rules' messages read values in this shape, so an
origin is formatted in one place (`Resolved.explained`, `Resolved.shown`).
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from msgspec import Struct

Origin = Literal["set", "derived", "product default", "lbgen default", "not in this version"]
ORIGINS: tuple[Origin, ...] = ("set", "derived", "product default", "lbgen default", "not in this version")
T_co = TypeVar("T_co", covariant=True)


class Resolved(Struct, Generic[T_co], frozen=True):
    """An effective setting, how it came to be and what says so.

    `source` cites the primary source of a default (product docs, source, changelog);
    `reasoning` says how a derived value was computed, or why a default was kept.
    """

    value: T_co
    origin: Origin
    source: str = ""
    reasoning: str = ""
    product: str = ""
    """For a product default: whose (`nginx`, `Kong`), shown as `nginx default` in messages."""

    @property
    def note(self) -> str:
        """Source and reasoning in one line (empty for a value set in the spec)."""
        return "; ".join(part for part in (self.source, self.reasoning) if part)

    @property
    def label(self) -> str:
        """The origin as messages show it: `set`, `nginx default`, `derived`, …"""
        if self.origin == "product default" and self.product:
            return f"{self.product} default"
        return self.origin

    def explained(self) -> str:
        """Why the value is what it is, for a comment above the rendered setting."""
        if self.origin == "set":
            return "set in the spec"
        return f"{self.origin}: {self.note}" if self.note else self.origin

    def shown(self, none: str = "no limit") -> str:
        """The value with its origin unless set, for messages: `60s (nginx default)`."""
        text = none if self.value is None else str(self.value)
        return text if self.origin == "set" else f"{text} ({self.label})"

    def __str__(self) -> str:
        return self.shown()


def given(value: T_co | None, fallback: Resolved[T_co]) -> Resolved[T_co]:
    """`value` as set in the spec, or `fallback` when the spec leaves it unset."""
    return Resolved(value, "set") if value is not None else fallback


__all__ = ["ORIGINS", "Origin", "Resolved", "given"]
