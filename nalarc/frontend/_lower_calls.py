"""Lowering: calls (component calls become futures; every other call says how it is made)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from ..ir import AWAIT, ArgRef, Binding, CallNode, FutureNode
from ._lower_base import DEEP, PASS, SHALLOW
from ._lower_resolve import CallResolution, _Resolution

if TYPE_CHECKING:
    from ._discover import _Component

#: Builtins with no effect but their result (their calls are not barriers).
PURE_BUILTINS = frozenset(
    "abs all any ascii bin bool bytes callable chr complex dict divmod enumerate filter float "
    "format frozenset getattr hasattr hash hex id int isinstance issubclass iter len list map "
    "max min next oct ord pow range repr reversed round set slice sorted str sum tuple type zip".split()
)


class CallLowering(CallResolution):
    """Lowers call expressions."""

    def call(self, node: cst.Call, ctx: str, reason: str) -> tuple[str, tuple[str, ...]]:
        res = self.resolve_call(node.func)
        span = self.span(node)
        self.callees.update(res.callees)
        if res.kind == "component":
            return self._component_call(node, res, ctx, reason)
        if res.kind == "agent_handle":
            if node.args:
                raise self.error(node, "an agent handle takes no arguments: agents are created by the runtime")
            self.calls.append(CallNode(span, "agent_handle", res.component))
            return "plain", ()
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in _CONTAINER_MUTATORS:
            self._check_global_mutation(node.func.value, f"calls .{node.func.attr.value}() on")
        if isinstance(node.func, cst.Attribute) and res.kind in ("dynamic", "opaque", "local"):
            if self._resolve_global(node.func) is None:
                self.expr(node.func.value, SHALLOW, "attribute")
            receiver = node.func.value
            if isinstance(receiver, cst.Name) and self.scope_of(receiver.value) == "local":
                # xs.append(tool(x)): the container may now hold futures.
                self.bindings.append(Binding(receiver.value, self.span(receiver), "maybe"))
        elif res.kind == "dynamic":
            self.expr(node.func, SHALLOW, "call")
        eager = _consumes_generator(node, res)
        if eager:
            self.eager_generators.append(self.span(node.args[0].value))
        for arg in node.args:
            if arg.star == "*":
                self.unpacked(arg.value, DEEP if res.kind == "frame" else PASS)
            elif arg.star:
                self.expr(arg.value, SHALLOW, "iter")
            else:
                reason_ = "eager-argument" if eager else "argument"
                self.expr(arg.value, DEEP if res.kind == "frame" else PASS, reason_)
        if res.kind == "compiled" and res.target:
            self.callees.add(res.target)
            self.calls.append(CallNode(span, "compiled", res.target))
            self.barrier()
            self.candidate(node, ctx, reason, f"call:compiled:{res.target}")
            return "maybe", ()
        if res.kind == "local":
            if res.target:
                self.callees.add(res.target)
            self.calls.append(CallNode(span, "compiled", res.target))
            self.barrier()
            self.impure = True
            self.candidate(node, ctx, reason, f"call:compiled:{res.target}" if res.target else "call:dynamic")
            return "maybe", ()
        if res.kind == "intrinsic":
            self.has_intrinsics = True
            self.calls.append(CallNode(span, "intrinsic", res.target))
            if res.target == "value" and node.args:
                return "plain", ()
            return "plain", ()
        if res.kind in ("opaque", "frame"):
            name = (res.target or "").rpartition(".")[2]
            pure = (res.target or "").startswith("builtins.") and name in PURE_BUILTINS
            if not pure:
                self.barrier()
                self.impure = True
            # super(C, self) names what it needs: a class and an instance are never pending.
            if res.kind == "frame" and name != "super":
                self.warn(node, f"{name}() looks at the caller's frame: arguments are materialized first")
            self.calls.append(CallNode(span, "opaque", res.target))
            if name in ("list", "tuple", "iter", "reversed", "zip", "enumerate", "filter", "map", "dict") and not pure is False:
                self.candidate(node, ctx, reason, "call:plain")
            return "plain", ()
        # dynamic: the callee is only known at run time
        self.has_dynamic = True
        self.barrier()
        self.impure = True
        self.calls.append(CallNode(span, "dynamic", "global" if res.global_receiver else None))
        self.candidate(node, ctx, reason, "call:dynamic")
        return "maybe", ()

    def _component_call(self, node: cst.Call, res: _Resolution, ctx: str, reason: str) -> tuple[str, tuple[str, ...]]:
        comp = self.lowerer.components[res.component or ""]
        method = res.method or comp.key.partition(":")[2]
        self._check_arguments(node, comp, method)
        if isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Call):
            self.calls.append(CallNode(self.span(node.func.value), "agent_handle", res.component))
        elif isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Name):
            self.note_read(node.func.value.value)
        args: list[ArgRef] = []
        position = 0
        for arg in node.args:
            before = set(self._stmt_reads)
            self._stmt_reads = set()
            slot: str
            if arg.star == "*":
                self.unpacked(arg.value, PASS)
                slot = str(arg.star)
            elif arg.star:
                self.expr(arg.value, SHALLOW, "iter")
                slot = str(arg.star)
            elif isinstance(arg.value, cst.GeneratorExp):
                # A generator cannot cross processes: its elements are made at the call
                # (in parallel) and the component gets an iterator over them.
                self.eager_generators.append(self.span(arg.value))
                self.expr(arg.value, PASS, "eager-argument")
                slot = f"k={arg.keyword.value}" if arg.keyword is not None else str(position)
                position += arg.keyword is None
            else:
                self.expr(arg.value, PASS, "argument")
                if arg.keyword is not None:
                    slot = f"k={arg.keyword.value}"
                else:
                    slot = str(position)
                    position += 1
            args.append(ArgRef(slot, tuple(sorted(self._stmt_reads))))
            self._stmt_reads |= before
        fid = f"f{len(self.futures)}"
        self.futures.append(
            FutureNode(
                id=fid,
                span=self.span(node),
                component=comp.key,
                method=res.method,
                args=tuple(args),
                region=self.region,
                order=len(self.futures),
                flags=AWAIT if method in comp.async_methods else 0,
            )
        )
        self.candidate(node, ctx, reason, "call:component")
        return "future", (fid,)

    def _check_arguments(self, node: cst.Call, comp: _Component, method: str) -> None:
        params = comp.methods.get(method, ())
        if method in comp.open_kwargs:
            return
        accepted = {p for p in params if not p.startswith("*")}
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value not in accepted:
                what = f"tool {method!r}" if comp.kind == "tool" else f"method {comp.key.partition(':')[2]}.{method}"
                raise self.error(
                    arg.keyword,
                    f"{what} has no parameter {arg.keyword.value!r} (parameters: {', '.join(params) or 'none'})",
                )


#: Methods that change the container they are called on.
_CONTAINER_MUTATORS = frozenset(
    "append extend insert pop remove clear sort reverse update setdefault add discard popitem".split()
)


#: Consumers that exhaust a generator argument: it may become a list (in parallel).
_EAGER_CONSUMERS = frozenset(
    f"builtins.{n}" for n in "sum min max sorted list tuple set frozenset dict".split()
)


def _consumes_generator(node: cst.Call, res: _Resolution) -> bool:
    if len(node.args) != 1 or not isinstance(node.args[0].value, cst.GeneratorExp) or node.args[0].keyword:
        return False
    is_join = isinstance(node.func, cst.Attribute) and node.func.attr.value == "join"
    return res.target in _EAGER_CONSUMERS or is_join
