"""Lowering: what a call calls (a component, compiled code, a builtin, unknown until run time)."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from .._cst import block_definitions
from ._lower_base import LowererBase
from ._modules import NALARC_INTRINSICS, Symbol, target_names

#: Builtins that must be called directly: they look at the caller's frame.
FRAME_BUILTINS = frozenset({"super", "locals", "globals", "vars", "dir", "eval", "exec"})


@dataclass
class _Resolution:
    kind: str  # component, agent_handle, compiled, intrinsic, dynamic, opaque, frame, local
    component: str | None = None
    method: str | None = None
    target: str | None = None
    global_receiver: bool = False
    #: App functions the call may reach (for colouring) when ``target`` is not
    #: known for sure (a redefined name, an overridden method).
    callees: tuple[str, ...] = ()


class CallResolution(LowererBase):
    """Resolves the callee of a call expression."""

    def resolve_call(self, func: cst.BaseExpression) -> _Resolution:
        if isinstance(func, cst.Name):
            scope = self.scope_of(func.value)
            if scope in ("local", "closure"):
                return _Resolution("dynamic")
            if scope == "builtin":
                if func.value in FRAME_BUILTINS:
                    return _Resolution("frame", target=f"builtins.{func.value}")
                return _Resolution("opaque", target=f"builtins.{func.value}")
            return self._resolve_symbol_call(self._resolve_global(func), func)
        if isinstance(func, cst.Attribute):
            base = func.value
            if isinstance(base, cst.Name) and base.value == self.self_name and self.owner_key:
                return self._self_method(func.attr.value)
            if self.owner_key and _is_super_call(base, self):
                # super().m(...): some base class's m, an ordinary call of the instance's code.
                name = func.attr.value
                candidates = tuple(
                    c.members[name].qualname for c in self.lowerer.classes.values()
                    if name in c.members and c.key != self.owner_key
                )
                return _Resolution("local", callees=candidates)
            if isinstance(base, cst.Name) and base.value in self.handle_vars:
                agent = self._handle_agent(base.value)
                return self._component_method(agent, func)
            if isinstance(base, cst.Call) and self._agent_class(base.func) is not None:
                return self._component_method(self._agent_class(base.func), func)
            symbol = self._resolve_global(func)
            if symbol is not None:
                return self._resolve_symbol_call(symbol, func)
            base_symbol = self._resolve_global(base) if isinstance(base, cst.Name) else None
            if base_symbol is not None and base_symbol.kind == "variable":
                return _Resolution("dynamic", global_receiver=True)
        return _Resolution("dynamic")

    def _self_method(self, name: str) -> _Resolution:
        """``self.name(...)`` in a method: an ordinary call of the instance's own code."""
        assert self.owner_key is not None
        member = self.lowerer.members(self.owner_key).get(name)
        if member is None:
            return _Resolution("dynamic")
        if member.kind == "method" and not self.lowerer.overridden(name):
            return _Resolution("local", target=member.qualname)
        # A subclass may override it: which function runs is known at run time only.
        candidates = tuple(m.members[name].qualname for m in self.lowerer.classes.values() if name in m.members)
        return _Resolution("local", callees=candidates)

    def _definitions_of(self, key: str) -> tuple[str, ...]:
        """Qualnames of every module-level definition of ``module:name``."""
        module, _, name = key.partition(":")
        info = self.lowerer.modules.get(module)
        if info is None:
            return (key,)
        found = tuple(
            f"{module}:{self.lowerer.qualnames[id(node)]}"
            for node in block_definitions(info.tree.body)
            if isinstance(node, cst.FunctionDef) and node.name.value == name
        )
        return found or (key,)

    def _handle_agent(self, var: str) -> str | None:
        for node in self.scope_nodes:
            if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
                if any(target_names(t.target) == [var] for t in node.targets):
                    return self._agent_class(node.value.func)
        return None

    def _component_method(self, agent: str | None, func: cst.Attribute) -> _Resolution:
        comp = self.lowerer.components.get(agent or "")
        model = self.lowerer.agent_model(agent or "")
        if comp is None or model is None:
            return _Resolution("dynamic")
        method = func.attr.value
        member = self.lowerer.members(model).get(method)
        if member is not None and member.kind == "method" and not _is_dunder(method):
            return _Resolution("component", component=comp.key, method=method)
        if member is None and self.lowerer.mro(model)[1] and method not in self.lowerer.class_attributes(model):
            self.warn(func.attr, f"agent {comp.key.partition(':')[2]!r} has no method {method!r}: "
                      "the call raises AttributeError when it runs")
        # Static and class methods run here; anything else is looked up at run time.
        return _Resolution("dynamic")

    def _resolve_symbol_call(self, symbol: Symbol | None, func: cst.BaseExpression) -> _Resolution:
        if symbol is None:
            return _Resolution("dynamic")
        if symbol.kind == "tool":
            return _Resolution("component", component=symbol.target)
        if symbol.kind == "agent":
            return _Resolution("agent_handle", component=symbol.target)
        if symbol.kind in ("function", "workflow") and symbol.rebound:
            # Which definition the name holds is known at run time only.
            return _Resolution("dynamic", callees=self._definitions_of(symbol.target))
        if symbol.kind in ("function", "workflow"):
            return _Resolution("compiled", target=self._definitions_of(symbol.target)[0])
        if symbol.kind == "nalarc":
            if symbol.target in NALARC_INTRINSICS:
                return _Resolution("intrinsic", target=symbol.target)
            return _Resolution("opaque", target=f"nalarc.{symbol.target}")
        if symbol.kind == "external":
            return _Resolution("opaque", target=symbol.target)
        return _Resolution("dynamic")


def _is_super_call(expr: cst.BaseExpression, fl: LowererBase) -> bool:
    return (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Name)
        and expr.func.value == "super"
        and fl.scope_of("super") == "builtin"
    )


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")
