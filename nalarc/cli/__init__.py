"""The ``nalarc`` command line (typer + rich); parsing and rendering only."""

from __future__ import annotations

from ._main import app as app
from ._main import main as main

__all__ = ["app", "main"]
