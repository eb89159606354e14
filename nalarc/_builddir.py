"""A compiled app's build directory, imported: what the driver and every worker load.

Core (no driver, no runtime): a worker imports it to load the app it serves.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ._api import is_workflow
from ._errors import NalarcError, WorkflowNotFound


@dataclass
class LoadedApp:
    """An imported compiled app."""

    build_dir: Path
    module: ModuleType
    workflows: dict[str, Any] = field(default_factory=dict)
    #: Names of the app's compiled modules.
    modules: list[str] = field(default_factory=list)

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
    return LoadedApp(build_dir, module, workflows, list(manifest["modules"]))
