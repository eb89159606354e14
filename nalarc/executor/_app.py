"""Load a build directory (or build an app file first) and run its workflows."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import trio

from .._api import is_workflow
from .._errors import NalarcError, WorkflowNotFound
from ._local import InProcessBackend, run_request
from ._statestore import StateStore


@dataclass
class LoadedApp:
    """An imported compiled app."""

    build_dir: Path
    module: ModuleType
    workflows: dict[str, Any] = field(default_factory=dict)

    def workflow(self, name: str | None) -> tuple[str, Any]:
        if name is None:
            if len(self.workflows) == 1:
                return next(iter(self.workflows.items()))
            raise WorkflowNotFound(
                f"the app has {len(self.workflows)} workflows ({', '.join(sorted(self.workflows)) or 'none'}); "
                "choose one with --workflow"
            )
        if name not in self.workflows:
            raise WorkflowNotFound(f"no workflow {name!r}; the app has: {', '.join(sorted(self.workflows)) or 'none'}")
        return name, self.workflows[name]


def load_build(build_dir: Path) -> LoadedApp:
    """Import a compiled app from its build directory."""
    build_dir = Path(build_dir)
    manifest_path = build_dir / "manifest.json"
    if not manifest_path.is_file():
        raise NalarcError(f"{build_dir} is not a build directory (no manifest.json); build it with `nalarc build`")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for name in manifest["modules"]:
        sys.modules.pop(name, None)
    path = str(build_dir.resolve())
    if path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)
    try:
        module = importlib.import_module(manifest["app"])
    finally:
        sys.path.remove(path)
    workflows = {n: getattr(module, n) for n in manifest["workflows"] if hasattr(module, n)}
    workflows.update({n: v for n, v in vars(module).items() if is_workflow(v) and n not in workflows})
    return LoadedApp(build_dir, module, workflows)


def bind_inputs(name: str, fn: Any, inputs: dict[str, Any]) -> None:
    """Check ``inputs`` against the workflow's parameters, with a clear error."""
    try:
        inspect.signature(fn).bind(**inputs)
    except TypeError as exc:
        raise NalarcError(f"workflow {name!r}: {exc}") from None


def run_workflow(
    app: LoadedApp,
    name: str | None,
    inputs: dict[str, Any],
    *,
    session: str = "default",
    state_path: Path | None = None,
) -> Any:
    """Run one request in-process and return its JSON-able result."""
    wf_name, fn = app.workflow(name)
    bind_inputs(wf_name, fn, inputs)
    store = StateStore(state_path)
    backend = InProcessBackend(store)
    try:
        return trio.run(run_request, fn, inputs, backend.new_runtime(), session)
    finally:
        store.close()


class InProcessRunner:
    """Several requests against one in-process runtime (state shared between them)."""

    def __init__(self, app: LoadedApp, state_path: Path | None = None) -> None:
        self.app = app
        self.store = StateStore(state_path)
        self.backend = InProcessBackend(self.store)

    def run(self, name: str | None, inputs: dict[str, Any], session: str = "default") -> Any:
        wf_name, fn = self.app.workflow(name)
        bind_inputs(wf_name, fn, inputs)
        return trio.run(run_request, fn, inputs, self.backend.new_runtime(), session)

    def close(self) -> None:
        self.store.close()
