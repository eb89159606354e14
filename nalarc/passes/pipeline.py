"""The pass pipeline: one readable list."""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from .._errors import NalarcInternalError
from ..ir import Program
from ..ir.verify import check
from . import (
    analyze_dependencies,
    annotate_context,
    annotate_state,
    check_directives,
    hoist_launches,
    lower_async,
    place_materializations,
)
from ._context import PassContext

Pass = Callable[[Program, PassContext], Program]


def default_pipeline(sources: dict[str, cst.Module]) -> list[tuple[str, Pass]]:
    """The passes in the order they run."""
    return [
        # reject contradictory directives before anything else
        ("check_directives", check_directives.run),
        # futures -> futures / materializations, through variables
        ("analyze_dependencies", analyze_dependencies.run),
        # which functions become async def (call-graph fixpoint)
        ("lower_async", lower_async.run),
        # drop waits on values that can never be pending
        ("place_materializations", place_materializations.run),
        # which calls read / write managed state (needs the agents' source)
        ("annotate_state", lambda p, c: annotate_state.run(p, c, sources)),
        # start independent calls before waits that precede them
        ("hoist_launches", hoist_launches.run),
        # stage depth, critical path, parallel groups
        ("annotate_context", annotate_context.run),
    ]


def run_pipeline(program: Program, ctx: PassContext, sources: dict[str, cst.Module], verify: bool = True) -> Program:
    """Run every pass; verify the IR after each one."""
    for name, run in default_pipeline(sources):
        try:
            program = run(program, ctx)
        except Exception as exc:  # a crash in a pass is a nalarc bug: say which pass
            raise NalarcInternalError(f"pass {name} crashed: {exc!r}; this is a bug in nalarc") from exc
        if verify:
            errors = check(program)
            if errors:
                raise NalarcInternalError(f"pass {name} produced invalid IR: {errors[0]}")
    return program
