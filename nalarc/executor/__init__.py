"""The executor: the driver that runs compiled apps (in-process, on worker processes, or on Ray).

Its names are imported on first use, so importing a module of this package
(the runtime that generated code and workers import lives here until it
moves to ``nalarc.runtime``) does not load the driver.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from .._builddir import LoadedApp as LoadedApp
    from .._builddir import load_build as load_build
    from ._app import InProcessRunner as InProcessRunner
    from ._app import Outcome as Outcome
    from ._app import Service as Service
    from ._app import open_service as open_service
    from ._app import run_requests as run_requests
    from ._app import run_workflow as run_workflow
    from ._backend import Placement as Placement

_LAZY = {
    "InProcessRunner": "._app", "LoadedApp": "._app", "Outcome": "._app", "Service": "._app",
    "open_service": "._app", "load_build": "._app", "run_requests": "._app", "run_workflow": "._app",
    "Placement": "._backend",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nalarc.executor' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["InProcessRunner", "LoadedApp", "Outcome", "Placement", "Service", "open_service", "load_build", "run_requests", "run_workflow"]
