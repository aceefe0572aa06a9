"""The example specs: `examples/` in a checkout, `lbgen/examples/` inside the wheel.

`lbgen examples` lists them and `lbgen examples NAME` prints one, so that a user who
installed lbgen from a wheel (which has no top-level `examples/`) can start from one.
"""

from __future__ import annotations

from pathlib import Path

from lbgen.errors import LbgenError

MODELINE = "# yaml-language-server:"


def examples_dir() -> Path:
    """Packaged as `lbgen/examples` in the wheel; the top-level `examples/` in a checkout."""
    packaged = Path(__file__).resolve().parent / "examples"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "examples"


def example_names() -> list[str]:
    return sorted(p.stem for p in examples_dir().glob("*.yaml"))


def example_text(name: str) -> str:
    """The spec `name` (with or without `.yaml`), verbatim."""
    stem = name.removesuffix(".yaml")
    if stem not in example_names():
        known = ", ".join(example_names()) or "none are installed"
        raise LbgenError(f"no example named {name!r}; examples: {known}")
    return (examples_dir() / f"{stem}.yaml").read_text(encoding="utf-8")


def example_summary(name: str) -> str:
    """The first sentence of the example's leading comment (after the editor modeline)."""
    words: list[str] = []
    for line in example_text(name).splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith(MODELINE):
            words.append(line.lstrip("#").strip())
    text = " ".join(words)
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


HINT = "start from an example: `lbgen examples` lists them, `lbgen examples seed > spec.yaml` writes one"
