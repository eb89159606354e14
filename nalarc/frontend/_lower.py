"""Lowering: LibCST modules to IR.

For every function of every local module the lowering records, with source
spans, what the later passes and the code generator need:

* each component call (a :class:`~nalarc.ir.FutureNode`) and every other call
  (a :class:`~nalarc.ir.CallNode` saying how it is made);
* each place where Python needs a value (a :class:`~nalarc.ir.MaterializeNode`
  *candidate*: placement later drops those that can never be pending);
* assignments (:class:`~nalarc.ir.Binding`), control regions with the names a
  ``try`` body must keep sequential, and straight-line statements for hoisting.

It also reports misuse as :class:`~nalarc.CompileError` and fallbacks to
sequential semantics as warnings.  (One class, long because Python has many
statement and expression forms; each has a short method.  It is split by theme
into classes stacked on each other, one module each: ``_lower_base`` (the state
and shared helpers) <- ``_lower_resolve`` (what a call calls) <- ``_lower_calls``
<- ``_lower_expressions`` <- ``_lower_statements`` <- :class:`FunctionLowerer`
here (the entry, nested functions and ``try`` visibility).)
"""

from __future__ import annotations

import libcst as cst

from ..ir import Binding, ControlRegion, FunctionIR
from ._lower_base import DEEP
from ._lower_statements import StatementLowering
from ._scopes import param_names

_IMPLICIT_DECORATORS = frozenset({"property", "cached_property", "setter", "getter", "deleter"})
#: Decorators that hand the function itself back (or a descriptor calling it
#: as is): the function may still become ``async def``.
_TRANSPARENT_DECORATORS = frozenset({
    "builtins.staticmethod", "builtins.classmethod", "abc.abstractmethod", "typing.overload",
    "typing.final", "typing.override", "typing_extensions.overload", "typing_extensions.final",
    "typing_extensions.override", "typing.no_type_check",
    "functools.wraps",  # copies metadata onto the function and hands it back
})

# ---------------------------------------------------------------------------
# Function lowering
# ---------------------------------------------------------------------------


class FunctionLowerer(StatementLowering):
    """Lowers one function (and, recursively, the functions nested in it)."""

    # -- entry ---------------------------------------------------------

    def run(self) -> list[FunctionIR]:
        self._check_async_component()
        span = self.span(self.node)
        self.push_region("function", self.node)
        for name in param_names(self.node.params):
            self.bindings.append(Binding(name.lstrip("*"), span, "maybe"))
        self.block(self.node.body)
        self.pop_region()
        decorators = {cst.helpers.get_full_name_for_node(d.decorator) or "" for d in self.node.decorators}
        name = self.node.name.value
        implicit = (name.startswith("__") and name.endswith("__")) or bool(
            {d.rpartition(".")[2] for d in decorators} & _IMPLICIT_DECORATORS
        )
        fn = FunctionIR(
            qualname=self.qualname,
            kind=self.kind,  # type: ignore[arg-type]
            span=span,
            params=tuple(p.lstrip("*") for p in param_names(self.node.params)),
            parent=self.parent.qualname if self.parent else None,
            owner=f"{self.info.name}:{self.owner}" if self.owner else None,
            is_generator=self._is_generator(),
            written_async=self.written_async,
            implicit=implicit,
            opaque_decorators=self._opaque_decorators(),
            wrappers=self._wrappers(),
            pure=not self.impure and not self.futures and not self.has_dynamic and not self.globals and not self.nonlocals,
            has_dynamic_calls=self.has_dynamic,
            has_intrinsics=self.has_intrinsics,
            callees=tuple(sorted(self.callees)),
            futures=tuple(self.futures),
            calls=tuple(self.calls),
            materializations=tuple(self.materializations),
            regions=tuple(self._regions_with_visibility()),
            bindings=tuple(self.bindings),
            statements=tuple(self.statements),
            outer_writes=tuple(sorted(self.globals | self.nonlocals)),
            eager_generators=tuple(self.eager_generators),
        )
        return [fn, *self.nested]

    def _is_generator(self) -> bool:
        return any(isinstance(n, cst.Yield) for n in self.scope_nodes)

    def _wrappers(self) -> tuple[str, ...]:
        """Qualnames of the wrappers the app's own decorators put around the function."""
        found = (self.lowerer.see_through(self.info, dec) for dec in self.node.decorators)
        return tuple(q for q in found if q is not None)

    def _opaque_decorators(self) -> tuple[str, ...]:
        """Decorators that may do anything with the function (and so with a coroutine)."""
        out: list[str] = []
        for dec in self.node.decorators:
            if self.lowerer.see_through(self.info, dec) is not None:
                continue
            expr = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
            if self.lowerer.decorator(self.info, dec) is not None:
                continue  # nalarc's own: they only record metadata
            name = cst.helpers.get_full_name_for_node(expr) or self.info.tree.code_for_node(expr)
            if name.rpartition(".")[2] in _IMPLICIT_DECORATORS:
                continue  # a property: implicit anyway
            symbol = self.lowerer.resolve(self.info, expr)
            if symbol is not None and symbol.target in _TRANSPARENT_DECORATORS:
                continue
            out.append(name)
        return tuple(out)

    def _check_async_component(self) -> None:
        """An async generator cannot be a component: its values could not leave the process."""
        name = self.node.name.value
        public_method = self.kind == "agent_method" and not name.startswith("_")
        if self.written_async and self._is_generator() and (self.kind == "tool" or public_method):
            raise self.error(
                self.node,
                f"async generator {name} cannot be a component: a call's result must be a value "
                "(return a list, or make it a helper the workflow iterates with async for)",
            )

    # -- nested functions ------------------------------------------------

    def _nested_function(self, node: cst.FunctionDef) -> None:
        self.note_write(node.name.value)
        self.bindings.append(Binding(node.name.value, self.span(node), "plain"))
        for dec in node.decorators:
            self.expr(dec.decorator, DEEP, "store")
        qual = self.lowerer.nested_qualname(node, self.local_qual)
        child = FunctionLowerer(self.lowerer, self.info, node, qual, "nested", None, self)
        self.nested += child.run()
        self.callees.add(child.qualname)

    # -- try visibility ----------------------------------------------------

    def _inside(self, rid: str | None, ancestor: str) -> bool:
        parents = self._parents
        while rid is not None:
            if rid == ancestor:
                return True
            rid = parents.get(rid)
        return False

    def _try_visible(self) -> dict[str, tuple[str, ...]]:
        """For each try body: names assigned in it that code outside it may read.

        Inside a loop every read in the loop counts: the next iteration, or
        the handler, sees what the body assigned.
        """
        out: dict[str, tuple[str, ...]] = {}
        kinds = {r.id: r for r in self.regions}
        self._parents = {r.id: r.parent for r in self.regions}
        for region in self.regions:
            if region.kind not in ("try", "with"):
                continue  # a with body is a try body: __exit__ may swallow the error
            loop = region.parent
            while loop is not None and kinds[loop].kind not in ("for", "while"):
                loop = kinds[loop].parent
            outside = {
                name
                for name, rid in self.read_sites
                if not self._inside(rid, region.id) or (loop is not None and self._inside(rid, loop))
            }
            out[region.id] = tuple(sorted(self.writes_by_region.get(region.id, set()) & outside))
        return out

    def _regions_with_visibility(self) -> list[ControlRegion]:
        visible = self._try_visible()
        return [r.with_changes(visible=visible.get(r.id, ())) for r in self.regions]
