"""Discovery of components and workflows, and lowering of whole modules to IR.

:class:`Lowerer` finds ``@tool`` functions, ``@agent`` classes (methods,
parameters, managed-state attributes) and ``@workflow`` functions in every
local module, checks their directives, then lowers each function with
:class:`~nalarc.frontend._lower.FunctionLowerer` into one
:class:`~nalarc.ir.Program`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import PositionProvider

from .._errors import CompileError
from ..ir import ComponentIR, Diagnostic, FunctionIR, ModuleIR, Program
from ._lower import FunctionLowerer
from ._modules import NALARC_DECORATORS, NALARC_STATE, ModuleInfo, Symbol, target_names
from ._scopes import class_body, first_required_param, param_names, required_params
from ._source import span_of



@dataclass
class _Component:
    key: str
    kind: str
    node: cst.FunctionDef | cst.ClassDef
    directives: dict[str, object]
    methods: dict[str, tuple[str, ...]] = field(default_factory=dict)
    open_kwargs: set[str] = field(default_factory=set)
    managed: list[str] = field(default_factory=list)
    #: Methods (or the tool itself) written ``async def``: a call makes a coroutine.
    async_methods: set[str] = field(default_factory=set)


class Lowerer:
    """Lowers all modules of one app; collects diagnostics."""

    def __init__(self, modules: dict[str, ModuleInfo], app: str) -> None:
        self.modules, self.app = modules, app
        self.diagnostics: list[Diagnostic] = []
        self.components: dict[str, _Component] = {}
        self.functions: dict[str, cst.FunctionDef] = {}
        self.classes: dict[str, cst.ClassDef] = {}

    def lower(self) -> Program:
        for info in self.modules.values():
            self._discover(info)
        out = [self._lower_module(info) for info in self.modules.values()]
        return Program(self.app, tuple(out), tuple(self.diagnostics))

    # -- discovery ---------------------------------------------------------

    def decorator(self, info: ModuleInfo, dec: cst.Decorator) -> tuple[str, dict[str, object]] | None:
        """``(nalarc name, literal keyword arguments)`` if ``dec`` is a nalarc decorator."""
        expr = dec.decorator
        call_args: Sequence[cst.Arg] = ()
        if isinstance(expr, cst.Call):
            call_args, expr = expr.args, expr.func
        name = self.nalarc_name(info, expr)
        if name not in NALARC_DECORATORS:
            return None
        kwargs: dict[str, object] = {}
        for arg in call_args:
            if arg.keyword is None:
                raise self._error(info, arg, f"@nalarc.{name} takes keyword arguments only")
            try:
                kwargs[arg.keyword.value] = ast.literal_eval(info.tree.code_for_node(arg.value))
            except (ValueError, SyntaxError):
                kwargs[arg.keyword.value] = None  # not a literal: checked at run time
        return name, kwargs

    def nalarc_name(self, info: ModuleInfo, expr: cst.BaseExpression) -> str | None:
        """The nalarc attribute ``expr`` names (``n.tool`` -> ``tool``), else None."""
        if isinstance(expr, cst.Name):
            symbol = info.symbols.get(expr.value)
            return symbol.target if symbol and symbol.kind == "nalarc" and symbol.target else None
        if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name):
            symbol = info.symbols.get(expr.value.value)
            if symbol and symbol.kind == "nalarc" and symbol.target == "":
                return expr.attr.value
        return None

    def _discover(self, info: ModuleInfo) -> None:
        for stmt in info.tree.body:
            if isinstance(stmt, cst.FunctionDef):
                self._discover_function(info, stmt)
            elif isinstance(stmt, cst.ClassDef):
                self._discover_class(info, stmt)

    def _nalarc_decorators(
        self, info: ModuleInfo, node: cst.FunctionDef | cst.ClassDef
    ) -> Iterator[tuple[cst.Decorator, str, dict[str, object]]]:
        for dec in node.decorators:
            found = self.decorator(info, dec)
            if found is not None:
                yield dec, *found

    def _discover_function(self, info: ModuleInfo, node: cst.FunctionDef) -> None:
        key = f"{info.name}:{node.name.value}"
        self.functions[key] = node
        for dec, name, kwargs in self._nalarc_decorators(info, node):
            if name == "agent":
                raise self._error(info, dec, "@nalarc.agent expects a class, not a function")
            if name == "tool":
                self._check_directives(info, dec, "tool", kwargs)
                comp = _Component(key, "tool", node, kwargs)
                comp.methods[node.name.value] = param_names(node.params)
                if node.params.star_kwarg is not None:
                    comp.open_kwargs.add(node.name.value)
                if node.asynchronous is not None:
                    comp.async_methods.add(node.name.value)
                self.components[key] = comp
                info.symbols[node.name.value] = Symbol("tool", key)
            elif name == "workflow":
                info.symbols[node.name.value] = Symbol("workflow", key)

    def _discover_class(self, info: ModuleInfo, node: cst.ClassDef) -> None:
        key = f"{info.name}:{node.name.value}"
        self.classes[key] = node
        for dec, name, kwargs in self._nalarc_decorators(info, node):
            if name != "agent":
                raise self._error(info, dec, f"@nalarc.{name} expects a function, not a class")
            self._check_directives(info, dec, "agent", kwargs)
            comp = _Component(key, "agent", node, kwargs)
            for item in class_body(node):
                if isinstance(item, cst.FunctionDef):
                    comp.methods[item.name.value] = param_names(item.params)[1:]
                    if item.params.star_kwarg is not None:
                        comp.open_kwargs.add(item.name.value)
                    if item.asynchronous is not None:
                        comp.async_methods.add(item.name.value)
                    if item.name.value == "__init__" and required_params(item.params) > 1:
                        raise self._error(
                            info,
                            first_required_param(item.params),
                            f"agent {node.name.value!r}: __init__ must take no required arguments "
                            "(the runtime creates instances)",
                        )
                elif isinstance(item, cst.SimpleStatementLine):
                    for small in item.body:
                        if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call):
                            if self.nalarc_name(info, small.value.func) in NALARC_STATE:
                                comp.managed += target_names(small.targets[0].target)
            self.components[key] = comp
            info.symbols[node.name.value] = Symbol("agent", key)

    _TOOL_DIRECTIVES = frozenset({"retries", "timeout", "idempotent", "max_instances"})
    _AGENT_DIRECTIVES = frozenset(
        {"stateful", "batchable", "preemptable", "min_instances", "max_instances", "resources", "retries", "timeout"}
    )

    def _check_directives(self, info: ModuleInfo, dec: cst.Decorator, kind: str, kwargs: dict[str, object]) -> None:
        allowed = self._TOOL_DIRECTIVES if kind == "tool" else self._AGENT_DIRECTIVES
        args = dec.decorator.args if isinstance(dec.decorator, cst.Call) else ()
        for arg in args:
            name = arg.keyword.value if arg.keyword is not None else ""
            if name not in allowed:
                raise self._error(
                    info, arg.keyword or arg, f"unknown directive {name!r} for @nalarc.{kind}; expected one of {', '.join(sorted(allowed))}"
                )

    def _error(self, info: ModuleInfo, node: cst.CSTNode, message: str) -> CompileError:
        return info.source.error(span_of(info.wrapper.resolve(PositionProvider)[node]), message)

    # -- modules -----------------------------------------------------------

    def _lower_module(self, info: ModuleInfo) -> ModuleIR:
        functions: list[FunctionIR] = []
        workflows: list[str] = []
        for stmt in info.tree.body:
            if isinstance(stmt, cst.FunctionDef):
                kind = _function_kind(info, stmt, self)
                if kind == "workflow":
                    workflows.append(stmt.name.value)
                functions += FunctionLowerer(self, info, stmt, stmt.name.value, kind, None, None).run()
            elif isinstance(stmt, cst.ClassDef):
                comp = self.components.get(f"{info.name}:{stmt.name.value}")
                for item in class_body(stmt):
                    if isinstance(item, cst.FunctionDef):
                        kind = "agent_method" if comp else "helper"
                        qual = f"{stmt.name.value}.{item.name.value}"
                        functions += FunctionLowerer(self, info, item, qual, kind, stmt.name.value, None).run()
        components = [self._component_ir(info, c) for c in self.components.values() if c.key.startswith(info.name + ":")]
        return ModuleIR(info.name, str(info.source.path), tuple(functions), tuple(components), tuple(workflows))

    def _component_ir(self, info: ModuleInfo, comp: _Component) -> ComponentIR:
        span = span_of(info.wrapper.resolve(PositionProvider)[comp.node])
        return ComponentIR(
            key=comp.key,
            kind="tool" if comp.kind == "tool" else "agent",
            span=span,
            directives=tuple(sorted(comp.directives.items())),
            methods=tuple(sorted(comp.methods.items())),
            open_kwargs=tuple(sorted(comp.open_kwargs)),
            managed=tuple(comp.managed),
        )


def _function_kind(info: ModuleInfo, node: cst.FunctionDef, lowerer: Lowerer) -> str:
    symbol = info.symbols.get(node.name.value)
    if symbol is not None and symbol.kind == "workflow":
        return "workflow"
    if symbol is not None and symbol.kind == "tool":
        return "tool"
    return "helper"



def lower_program(modules: dict[str, ModuleInfo], app: str) -> Program:
    """Lower every module of the app to one :class:`~nalarc.ir.Program`."""
    return Lowerer(modules, app).lower()

