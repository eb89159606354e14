"""Load an app for running: build ``.py`` files first, then import the build."""

from __future__ import annotations

from pathlib import Path

from ._build import build
from .executor import LoadedApp, load_build


def load_app(target: Path, *, out_dir: Path | None = None, strict: bool = False) -> LoadedApp:
    """Import a compiled app from a build directory, or build ``target.py`` first.

    Raises:
        CompileError: the app does not compile.
        NalarcError: ``target`` is neither an app file nor a build directory.
    """
    target = Path(target)
    if target.suffix == ".py":
        return load_build(build(target, out_dir, strict=strict).out_dir)
    return load_build(target)
