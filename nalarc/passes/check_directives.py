"""Directive checks: reject agents whose directives contradict each other.

Reads: :class:`~nalarc.ir.ComponentIR` directives and managed attributes.
Writes: error diagnostics only; the program is returned unchanged.

Example::

    @agent(batchable=True)              error: agent 'Coder' is batchable and has
    class Coder:                        managed state (notes); a batch mixes
        notes = ManagedList()           sessions, so its writes could not be
                                        attributed (drop one of them)

Runs first: nothing else is worth doing for a program that cannot run.
"""

from __future__ import annotations

from ..ir import ComponentIR, ModuleIR, Program
from ._context import PassContext


def run(program: Program, ctx: PassContext) -> Program:
    for module in program.modules:
        for comp in module.components:
            _check(module, comp, ctx)
    return program


def _check(module: ModuleIR, comp: ComponentIR, ctx: PassContext) -> None:
    name = comp.key.partition(":")[2]
    if comp.kind != "agent":
        return
    if comp.managed and comp.directive("batchable"):
        ctx.error(
            module.path,
            comp.span,
            f"agent {name!r} is batchable and has managed state ({', '.join(comp.managed)}); "
            "a batch mixes sessions, so its writes could not be attributed (drop one of them)",
        )
    low, high = comp.directive("min_instances", 1), comp.directive("max_instances", 1)
    if isinstance(low, int) and isinstance(high, int) and high < max(1, low):
        ctx.error(module.path, comp.span, f"agent {name!r}: max_instances ({high}) < min_instances ({low})")
    preempt = comp.directive("preemptable")
    methods = dict(comp.methods)
    if isinstance(preempt, str) and preempt not in methods:
        ctx.error(module.path, comp.span, f"agent {name!r}: preemptable names {preempt!r}, which is not one of its methods")
