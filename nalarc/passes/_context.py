"""What every pass gets besides the program: diagnostics and options."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Diagnostic


@dataclass
class PassContext:
    """Options of one build and the diagnostics the passes add."""

    #: Every fallback to sequential semantics is an error.
    strict: bool = False
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def warn(self, path: str, span: tuple[int, int, int, int], message: str) -> None:
        self.diagnostics.append(Diagnostic("warning", path, span, message))

    def error(self, path: str, span: tuple[int, int, int, int], message: str) -> None:
        self.diagnostics.append(Diagnostic("error", path, span, message))
