"""`python -m lbgen` and the `lbgen` console script."""

from __future__ import annotations

import gc


def run() -> None:
    # A CLI run is short-lived and builds an acyclic object graph (spec, budget, files):
    # the cyclic garbage collector would only spend time walking it, super-linearly on
    # specs with thousands of services. Memory is freed at exit.
    gc.disable()
    from lbgen.cli import main

    main()


if __name__ == "__main__":
    run()
