"""The executor: runs compiled apps (in-process here; worker processes next)."""

from __future__ import annotations

from ._app import InProcessRunner as InProcessRunner
from ._app import LoadedApp as LoadedApp
from ._app import Outcome as Outcome
from ._app import Service as Service
from ._app import bind_inputs as bind_inputs
from ._app import open_service as open_service
from ._app import load_build as load_build
from ._app import run_requests as run_requests
from ._process import Placement as Placement
from ._app import run_workflow as run_workflow

__all__ = ["InProcessRunner", "LoadedApp", "Outcome", "Placement", "Service", "bind_inputs", "open_service", "load_build", "run_requests", "run_workflow"]
