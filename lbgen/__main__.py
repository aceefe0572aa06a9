"""`python -m lbgen` and the `lbgen` console script."""

from __future__ import annotations

import gc
import os


def run() -> None:
    # A CLI run is short-lived and builds an acyclic object graph (spec, budget, files):
    # the cyclic garbage collector would only spend time walking it, super-linearly on
    # specs with thousands of services. Memory is freed at exit.
    gc.disable()
    # Pydantic plugins (observability hooks of applications) have nothing to observe in
    # lbgen's own spec validation, and discovering them scans every installed package's
    # entry points on each start. An explicit PYDANTIC_DISABLE_PLUGINS setting is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from lbgen.cli import main

    main()


if __name__ == "__main__":
    run()
