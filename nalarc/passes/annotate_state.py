"""State annotation: which agent methods read or write managed state.

Reads: agent components (managed attributes, ``stateful``, ``idempotent``) and
the source of their methods.
Writes: :attr:`ComponentIR.reads` / ``writes`` / ``retry_safe``; for each
future: ``state``, ``retry_safe`` and the :data:`~nalarc.ir.EFFECT` flag on
calls that write state (they must not run after an earlier call failed, and
run in program order per session).

Example::

    class Chat:                              Chat.ask: write (appends to history)
        history = ManagedList()              Chat.show: read
        def ask(self, q): self.history.append(q)
        def show(self): return list(self.history)

A method *writes* when it assigns, augments, deletes or calls a mutating
method on ``self.<managed>``; it *reads* when it mentions one otherwise.  A
``stateful`` agent's methods all write (its state is opaque).  Tools are
retry-safe when ``idempotent``; agents when their only state is managed state
(no assignment to other ``self`` attributes outside ``__init__``).
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from .._cst import block_definitions
from ..ir import EFFECT, ComponentIR, FutureNode, Program
from ._context import PassContext

_MUTATORS = frozenset(
    "append extend insert pop remove clear sort reverse update setdefault add discard popitem".split()
)


def run(program: Program, ctx: PassContext, sources: dict[str, cst.Module] | None = None) -> Program:
    components = program.components()
    annotated = {k: _annotate(c, sources or {}) for k, c in components.items()}
    program = program.replace_components(annotated)
    out = {}
    for q, fn in program.functions().items():
        out[q] = fn.with_changes(futures=tuple(_future(f, annotated) for f in fn.futures))
    return program.replace_functions(out)


def _future(fut: FutureNode, components: dict[str, ComponentIR]) -> FutureNode:
    comp = components.get(fut.component)
    if comp is None:
        return fut
    if comp.kind == "tool":
        return fut.with_changes(retry_safe=comp.retry_safe)
    stateful = bool(comp.directive("stateful"))
    if stateful or fut.method in comp.writes:
        access = "write"
    elif fut.method in comp.reads:
        access = "read"
    else:
        access = "none"
    flags = fut.flags | EFFECT if access == "write" else fut.flags
    return fut.with_changes(state=access, flags=flags, retry_safe=comp.retry_safe)


def _annotate(comp: ComponentIR, sources: dict[str, cst.Module]) -> ComponentIR:
    if comp.kind == "tool":
        return comp.with_changes(retry_safe=bool(comp.directive("idempotent")))
    bodies = {name: node for name, qualname in comp.implementations
              if (node := _definition(sources, qualname)) is not None}
    if not bodies:
        return comp
    reads, writes, calls, plain_writes = set(), set(), dict[str, set[str]](), False
    for name, node in bodies.items():
        visitor = _StateAccess(set(comp.managed), _self_name(node))
        node.body.visit(visitor)
        calls[name] = visitor.self_calls
        if visitor.writes:
            writes.add(name)
        elif visitor.reads:
            reads.add(name)
        if visitor.plain_writes and name != "__init__":
            plain_writes = True
    # A method that calls one of the instance's own methods does what that one does.
    changed = True
    while changed:
        changed = False
        for name, callees in calls.items():
            for target, found in ((writes, callees & writes), (reads, callees & (reads | writes))):
                if found and name not in target and name not in writes:
                    target.add(name)
                    changed = True
    reads -= writes
    stateful = bool(comp.directive("stateful"))
    return comp.with_changes(
        reads=tuple(sorted(reads)),
        writes=tuple(sorted(writes)),
        retry_safe=not stateful and not plain_writes,
    )


def _definition(sources: dict[str, cst.Module], qualname: str) -> cst.FunctionDef | None:
    """The method ``module:Class.name`` (``#k``: the k-th definition of that name)."""
    module, _, local = qualname.partition(":")
    tree = sources.get(module)
    if tree is None:
        return None
    body: Sequence[cst.CSTNode] = tree.body
    found: cst.CSTNode | None = None
    for part in local.split("."):
        name, _, nth = part.partition("#")
        matches = [n for n in block_definitions(body) if n.name.value == name]
        index = int(nth) - 1 if nth else 0
        if index >= len(matches):
            return None
        found = matches[index]
        body = found.body.body if isinstance(found.body, cst.IndentedBlock) else ()
    return found if isinstance(found, cst.FunctionDef) else None


def _self_name(fn: cst.FunctionDef) -> str:
    params = fn.params.params
    return params[0].name.value if params else "self"


class _StateAccess(cst.CSTVisitor):
    def __init__(self, managed: set[str], self_name: str) -> None:
        self.managed, self.self_name = managed, self_name
        self.reads = self.writes = self.plain_writes = False
        #: Names of ``self.<name>(...)`` calls.
        self.self_calls: set[str] = set()

    def _managed_attr(self, node: cst.BaseExpression) -> bool:
        return (
            isinstance(node, cst.Attribute)
            and isinstance(node.value, cst.Name)
            and node.value.value == self.self_name
            and node.attr.value in self.managed
        )

    def _is_self_attr(self, node: cst.BaseExpression) -> bool:
        return isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == self.self_name

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if self._managed_attr(node):
            self.reads = True

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in _MUTATORS and self._managed_attr(func.value):
            self.writes = True
        if self._is_self_attr(func):
            assert isinstance(func, cst.Attribute)
            self.self_calls.add(func.attr.value)

    def _store(self, target: cst.BaseExpression) -> None:
        base = target.value if isinstance(target, cst.Subscript) else target
        if self._managed_attr(base):
            self.writes = True
        elif self._is_self_attr(target):
            self.plain_writes = True

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._store(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._store(node.target)

    def visit_Del(self, node: cst.Del) -> None:
        self._store(node.target)
