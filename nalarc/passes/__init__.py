"""Passes over the IR: each module has one entry point, ``run(program, ctx)``."""

from __future__ import annotations

from ._context import PassContext as PassContext
from .pipeline import default_pipeline as default_pipeline
from .pipeline import run_pipeline as run_pipeline

__all__ = ["PassContext", "default_pipeline", "run_pipeline"]
