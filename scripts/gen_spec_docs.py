#!/usr/bin/env python3
"""Write docs/spec.md (field reference) from the model; `--check` exits 1 when it is stale."""

from __future__ import annotations

import sys
from pathlib import Path

from lbgen.model.docs import spec_reference_markdown

TARGET = Path(__file__).resolve().parent.parent / "docs" / "spec.md"


def main() -> int:
    text = spec_reference_markdown()
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is stale: run python3 scripts/gen_spec_docs.py", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
