"""Launch hoisting: start component calls as early as possible.

Reads: :class:`~nalarc.ir.StatementInfo` of each straight-line block, the
futures' flags.
Writes: :attr:`FunctionIR.hoists`.

A launch statement ``x = tool(a, b)`` (arguments are names or constants, the
call writes no state) moves up its block past statements that neither
write ``a``/``b`` nor read or write ``x``, and that are no *barrier*: nothing
that may settle (an effect, a ``try``, a ``with``) or leave the block
(``return``, ``break``, ``raise``), nor an assignment that a ``try`` body keeps
sequential.  Statements that only wait for values are
exactly what it moves past, so the call overlaps the wait.

Example::

    a = search(q)                    a = search(q)
    n = len(a) + 1          ==>      b = search(q2)      # hoisted
    b = search(q2)                   n = len(a) + 1
"""

from __future__ import annotations

from ..ir import EFFECT, FunctionIR, Hoist, Program, StatementInfo
from ._context import PassContext


def run(program: Program, ctx: PassContext) -> Program:
    return program.replace_functions({q: _hoist(fn) for q, fn in program.functions().items()})


def _hoist(fn: FunctionIR) -> FunctionIR:
    if not fn.is_async:
        return fn
    effects = {f.id for f in fn.futures if f.flags & EFFECT}
    # Names a try/with body assigns sequentially (code outside it reads them):
    # such an assignment settles, so nothing may move above it, and it is no launch.
    visible = {name for region in fn.regions for name in region.visible}
    blocks: dict[str, list[StatementInfo]] = {}
    for stmt in fn.statements:
        blocks.setdefault(stmt.block, []).append(stmt)
    hoists: list[Hoist] = []
    for stmts in blocks.values():
        stmts.sort(key=lambda s: s.span)
        for index, stmt in enumerate(stmts):
            if stmt.launch is None or stmt.launch in effects or set(stmt.writes) & visible:
                continue
            target = _earliest(stmts, index, visible)
            if target < index:
                hoists.append(Hoist(stmt.span, stmts[target].span, stmt.launch))
    return fn.with_changes(hoists=tuple(hoists))


def _earliest(stmts: list[StatementInfo], index: int, visible: set[str]) -> int:
    launch = stmts[index]
    needs, binds = set(launch.reads), set(launch.writes)
    target = index
    for j in range(index - 1, -1, -1):
        other = stmts[j]
        settles = bool(set(other.writes) & visible)
        if other.barrier or settles or set(other.writes) & (needs | binds) or set(other.reads) & binds:
            break
        if other.launch is not None:
            break  # keep launches in program order (their sequence numbers)
        target = j
    return target
