"""Code generation: rewrite each local module as the IR says.

The generator is a LibCST transformer over the *original* tree.  It finds the
syntax each IR node stands for by source span and rewrites it:

==========================  ===============================================
IR                          generated Python
==========================  ===============================================
FutureNode                  ``_nalarc_rt.call(tool, None, flags, (a,), {})``
MaterializeNode (shallow)   ``(await _nalarc_rt.m(x))``
MaterializeNode (deep)      ``(await _nalarc_rt.md(x))``
CallNode compiled (async)   ``(await helper(x))``
CallNode dynamic / opaque   ``(await _nalarc_rt.dyn(f, (x,), {}))``
FunctionIR.is_async         ``async def`` + ``@_nalarc_rt.compiled`` (``compiled_async``
                            if written async); ``for`` -> ``async for``
``await x`` (written async)  ``await _nalarc_rt.aw(x)``; ``async for`` / ``async with``
                            through ``aiter_async`` / ``acm_enter`` / ``acm_exit``
ControlRegion try / with    settle on entry, settle and reconcile at body end
Hoist                       launch statement moved up in its block
==========================  ===============================================

Inside synchronous code that may block (lambdas, generator expressions,
regions) the same rewrites use the blocking forms ``bm``, ``bmd``, ``bcall``
and ``bdyn``, which only ever run in worker threads.

The transformer is split by theme, one module each: ``_emit_base`` (its state and
where it is), the mixins ``_emit_expressions`` and ``_emit_statements``, and
``_emit_helpers`` (the runtime's names as syntax, statement templates);
:class:`Emitter` here adds functions and the module itself.
"""

from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper

from ..ir import ModuleIR, Program
from ._emit_base import _Scope
from ._emit_expressions import ExpressionEmitter
from ._emit_helpers import RT, _IMPORT, _compiled_async_def, _is_docstring_or_future, _stmt, rt
from ._emit_statements import StatementEmitter


class Emitter(StatementEmitter, ExpressionEmitter):
    """Rewrites one module; see the module docstring for the mapping."""

    # -- functions -------------------------------------------------------------

    def visit_FunctionDef_body(self, node: cst.FunctionDef) -> None:
        # Decorators, defaults and annotations run in the enclosing scope: the
        # function's own scope starts at its body.
        fn = self.functions.get(self.pos(node))
        if fn is None:
            self.scopes.append(_Scope(None, "plain"))
        elif fn.is_async:
            self.scopes.append(_Scope(fn, "async"))
        elif fn.is_region:
            self.scopes.append(_Scope(fn, "sync"))
        else:
            self.scopes.append(_Scope(fn, "plain"))
        self._saved_sync.append(self.sync_depth)
        self.sync_depth = 0

    def leave_FunctionDef_body(self, node: cst.FunctionDef) -> None:
        self.scopes.pop()
        self.sync_depth = self._saved_sync.pop()

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        fn = self.functions.get(self.pos(original))
        if fn is None:
            return updated
        if fn.is_async:
            return _compiled_async_def(fn, updated)
        if fn.is_region:
            wrapper = "region_gen" if fn.is_generator else "region"
            return updated.with_changes(decorators=[*updated.decorators, cst.Decorator(rt(wrapper))])
        return updated

    # -- module ----------------------------------------------------------------

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.program.components() and not any(f.is_async or f.is_region for f in self.module.functions):
            # Nothing can ever be a future and nothing was compiled: the module
            # stays exactly as written (and does not even import the runtime).
            return updated
        body: list[cst.BaseStatement] = list(updated.body)
        index = 0
        while index < len(body) and _is_docstring_or_future(body[index]):
            index += 1
        extra: list[cst.BaseStatement] = [_stmt(_IMPORT)]
        body[index:index] = extra
        body += self._agent_annotations()
        body += self._pure_marks()
        return updated.with_changes(body=body)

    def _agent_annotations(self) -> list[cst.BaseStatement]:
        out: list[cst.BaseStatement] = []
        for comp in self.module.components:
            name = comp.key.partition(":")[2]
            if comp.kind == "agent" and comp.managed:
                writes = ", ".join(repr(w) for w in comp.writes)
                out.append(_stmt(f"{name}.__nalarc_writes__ = frozenset({{{writes}}})"))
            # Synchronous code that blocks on futures needs a frame where it runs.
            blocking = sorted(
                method for method, qualname in comp.implementations
                if (fn := self.all_functions.get(qualname)) is not None and fn.is_region
            )
            if comp.kind == "tool" and blocking:
                out.append(_stmt(f"{RT}.region({name})"))
            elif blocking:
                methods = ", ".join(repr(m) for m in blocking)
                out.append(_stmt(f"{name}.__nalarc_regions__ = frozenset({{{methods}}})"))
        return out

    def _pure_marks(self) -> list[cst.BaseStatement]:
        # One mark per module-level name, and only if every definition it may
        # hold (``f``, ``f#2``...) is pure.
        verdict: dict[str, bool] = {}
        for fn in self.module.functions:
            local = fn.qualname.partition(":")[2]
            name = local.partition("#")[0]
            if "." in name:
                continue
            pure = fn.pure and not fn.is_async and fn.kind == "helper"
            verdict[name] = verdict.get(name, True) and pure
        return [_stmt(f"{RT}.mark_pure({name})") for name, pure in verdict.items() if pure]


def emit_module(wrapper: MetadataWrapper, module: ModuleIR, program: Program, source: str) -> str:
    """The generated source of one module: ``source`` itself when nothing in it is rewritten
    (LibCST's round trip is not always exact: ``except X :`` loses its space, LibCST #1457)."""
    emitted = wrapper.visit(Emitter(module, program))
    if emitted.deep_equals(wrapper.module):
        return source
    return emitted.code
