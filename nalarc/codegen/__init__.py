"""Code generation: IR + original LibCST tree -> Python modules for the runtime."""

from __future__ import annotations

from ._emit import emit_module as emit_module

__all__ = ["emit_module"]
