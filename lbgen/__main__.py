"""`python -m lbgen` and the `lbgen` console script."""

from __future__ import annotations

import gc
import os
import sys
import types
from typing import Any

PYDANTIC_PLUGIN_LOADER = "pydantic.plugin._loader"


def skip_plugin_discovery() -> None:
    """With every Pydantic plugin disabled, skip importing the module that discovers them.

    Pydantic imports `pydantic.plugin._loader` when it builds the first validator, and that
    module imports `importlib.metadata` (with email, zipfile, csv, …: about a tenth of a cold
    `lbgen render`) before it reads PYDANTIC_DISABLE_PLUGINS, only to return no plugins when
    it is `__all__`. The stand-in returns no plugins, as the loader does then, and forwards
    any other name to the real loader, imported on first use (so a Pydantic release that
    reads more from it still works). Only for `__all__`: a user's own setting (some plugins
    disabled) goes to the real loader.
    """
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") != "__all__" or PYDANTIC_PLUGIN_LOADER in sys.modules:
        return
    stand_in = types.ModuleType(PYDANTIC_PLUGIN_LOADER, skip_plugin_discovery.__doc__)
    real: list[types.ModuleType] = []

    def get_plugins() -> tuple[()]:
        return ()

    def forward(name: str) -> Any:
        if name.startswith("__"):  # the import system asks for `__path__` & co.: a plain module
            raise AttributeError(name)
        if not real:
            import importlib.machinery
            import importlib.util

            import pydantic.plugin

            spec = importlib.machinery.PathFinder.find_spec(PYDANTIC_PLUGIN_LOADER, pydantic.plugin.__path__)
            if spec is None or spec.loader is None:
                raise AttributeError(name)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            real.append(module)
        return getattr(real[0], name)

    stand_in.get_plugins = get_plugins  # type: ignore[attr-defined]
    stand_in.__getattr__ = forward  # type: ignore[method-assign]  # PEP 562
    sys.modules[PYDANTIC_PLUGIN_LOADER] = stand_in


def run() -> None:
    # A CLI run is short-lived and builds an acyclic object graph (spec, budget, files):
    # the cyclic garbage collector would only spend time walking it, super-linearly on
    # specs with thousands of services. Memory is freed at exit.
    gc.disable()
    # Pydantic plugins (observability hooks of applications) have nothing to observe in
    # lbgen's own spec validation, and discovering them scans every installed package's
    # entry points on each start. An explicit PYDANTIC_DISABLE_PLUGINS setting is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    skip_plugin_discovery()
    from lbgen.cli import main

    main()


if __name__ == "__main__":
    run()
