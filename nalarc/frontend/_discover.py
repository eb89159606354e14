"""Discovery of components and workflows, and lowering of whole modules to IR.

:class:`Lowerer` finds ``@tool`` functions, ``@agent`` classes (methods,
parameters, managed-state attributes) and ``@workflow`` functions in every
local module, checks their directives, then lowers each function with
:class:`~nalarc.frontend._lower.FunctionLowerer` into one
:class:`~nalarc.ir.Program`.

Definitions are found wherever module-level code makes them: at top level and
inside ``if`` / ``try`` / ``with`` blocks (``if sys.platform == "win32": def
f(): ...``).  A name defined more than once (``@property`` and its setter,
``typing.overload`` stubs, a redefinition) gives each definition its own
qualname: the first keeps ``module:name``, later ones are ``module:name#2``,
``#3``...  Classes are modelled with their bases (:class:`ClassModel`), so an
agent's methods include the ones it inherits from local base classes and
mixins.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import libcst as cst
from libcst.metadata import PositionProvider

from .._errors import CompileError
from ..ir import ComponentIR, Diagnostic, FunctionIR, ModuleIR, Program
from ._lower import FunctionLowerer
from ._modules import NALARC_DECORATORS, NALARC_STATE, ModuleInfo, Symbol, resolve_imports, target_names
from .._cst import block_definitions
from ._scopes import first_required_param, param_names, required_params
from ._source import span_of
from ._wrappers import wrapper_chain

MemberKind = Literal["method", "static", "class", "property"]

#: Bases that add no attributes an agent's callers could use.
_TRANSPARENT_BASES = frozenset(
    {"builtins.object", "abc.ABC", "typing.Generic", "typing.Protocol", "typing_extensions.Protocol"}
)


@dataclass(frozen=True)
class Member:
    """A function defined in a class body."""

    name: str
    kind: MemberKind
    #: Qualname of its :class:`~nalarc.ir.FunctionIR`.
    qualname: str
    #: Parameters a caller passes (``self`` / ``cls`` dropped).
    params: tuple[str, ...]
    open_kwargs: bool
    #: Written ``async def``: calling it makes a coroutine.
    written_async: bool = False


@dataclass
class ClassModel:
    """A class of the app: its own members and its bases."""

    key: str
    info: ModuleInfo
    node: cst.ClassDef
    #: Keys of local base classes, in order; None for a base nalarc cannot see.
    bases: list[str | None] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)
    #: Names assigned in the class body (class attributes).
    attributes: set[str] = field(default_factory=set)
    #: Its own ``ManagedList()`` / ``ManagedDict()`` attributes.
    managed: list[str] = field(default_factory=list)


@dataclass
class _Component:
    key: str
    kind: str
    node: cst.FunctionDef | cst.ClassDef
    directives: dict[str, object]
    methods: dict[str, tuple[str, ...]] = field(default_factory=dict)
    open_kwargs: set[str] = field(default_factory=set)
    managed: list[str] = field(default_factory=list)
    #: Method name -> qualname of the function that implements it.
    implementations: dict[str, str] = field(default_factory=dict)
    #: Methods (or the tool itself) written ``async def``: a call makes a coroutine.
    async_methods: set[str] = field(default_factory=set)


class Lowerer:
    """Lowers all modules of one app; collects diagnostics."""

    def __init__(self, modules: dict[str, ModuleInfo], app: str) -> None:
        self.modules, self.app = modules, app
        self.diagnostics: list[Diagnostic] = [w for info in modules.values() for w in info.warnings]
        self.components: dict[str, _Component] = {}
        #: Class models by unique key (``module:Name``, ``module:Name#2``).
        self.classes: dict[str, ClassModel] = {}
        #: id(definition node) -> unique local qualname (``f``, ``f#2``, ``C.m``).
        self.qualnames: dict[int, str] = {}
        #: id(function node) -> ``tool`` / ``workflow``, from its own decorators.
        self.kinds: dict[int, str] = {}
        #: Qualname -> module- or class-level function definition.
        self.definitions: dict[str, cst.FunctionDef] = {}
        #: id(nested function node) -> unique local qualname (``f.<locals>.g``).
        self._nested: dict[int, str] = {}
        self._taken: dict[str, int] = {}
        self._mro: dict[str, tuple[list[ClassModel], bool]] = {}

    def lower(self) -> Program:
        for info in self.modules.values():
            self._discover(info)
        for info in self.modules.values():
            resolve_imports(self.modules, info)  # now that components are known
        for comp in self.components.values():
            if comp.kind == "agent":
                self._check_agent_init(comp)
                self._agent_methods(comp)
        out = [self._lower_module(info) for info in self.modules.values()]
        return Program(self.app, tuple(out), tuple(self.diagnostics))

    def unique(self, qualname: str) -> str:
        """``qualname`` the first time it is defined, ``qualname#k`` the k-th time."""
        count = self._taken[qualname] = self._taken.get(qualname, 0) + 1
        return qualname if count == 1 else f"{qualname}#{count}"

    def nested_qualname(self, node: cst.FunctionDef, parent: str) -> str:
        """The unique local qualname of a function defined in ``parent``'s body."""
        if id(node) not in self._nested:
            self._nested[id(node)] = self.unique(f"{parent}.<locals>.{node.name.value}")
        return self._nested[id(node)]

    def see_through(self, info: ModuleInfo, dec: cst.Decorator) -> str | None:
        """Qualname of the wrapper the app's decorator ``dec`` returns, if nalarc sees into it
        (see :mod:`._wrappers`)."""
        chain = wrapper_chain(dec.decorator, lambda e: self._function_definition(info, e), lambda e: self._external(info, e))
        if chain is None:
            return None
        local = self.qualnames[id(chain[0])]
        for inner in chain[1:]:
            local = self.nested_qualname(inner, local)
        return f"{info.name}:{local}"

    def _function_definition(self, info: ModuleInfo, expr: cst.BaseExpression) -> cst.FunctionDef | None:
        symbol = self.resolve(info, expr)
        if symbol is None or symbol.kind != "function" or symbol.rebound:
            return None
        return self.definitions.get(symbol.target)

    def _external(self, info: ModuleInfo, expr: cst.BaseExpression) -> str | None:
        symbol = self.resolve(info, expr)
        return symbol.target if symbol is not None and symbol.kind == "external" else None

    # -- names -------------------------------------------------------------

    def resolve(self, info: ModuleInfo, expr: cst.BaseExpression) -> Symbol | None:
        """The module-level symbol ``expr`` names (``x``, ``mod.x``, ``pkg.mod.x``)."""
        if isinstance(expr, cst.Name):
            symbol = info.symbols.get(expr.value)
            if symbol is None and expr.value in _BUILTIN_NAMES:
                return Symbol("external", f"builtins.{expr.value}")
            return symbol
        if isinstance(expr, cst.Attribute):
            base = self.resolve(info, expr.value)
            if base is None:
                return None
            if base.kind == "module":
                module = self.modules.get(base.target)
                if module is not None:
                    return module.symbols.get(expr.attr.value)
                return Symbol("external", f"{base.target}.{expr.attr.value}")
            if base.kind == "nalarc" and base.target == "":
                return Symbol("nalarc", expr.attr.value)
            if base.kind == "external":
                return Symbol("external", f"{base.target}.{expr.attr.value}")
        return None

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
        symbol = self.resolve(info, expr)
        return symbol.target if symbol is not None and symbol.kind == "nalarc" and symbol.target else None

    # -- discovery ---------------------------------------------------------

    def _discover(self, info: ModuleInfo) -> None:
        for node in block_definitions(info.tree.body):
            if isinstance(node, cst.FunctionDef):
                self._discover_function(info, node)
            else:
                self._discover_class(info, node)

    def _nalarc_decorators(
        self, info: ModuleInfo, node: cst.FunctionDef | cst.ClassDef
    ) -> Iterator[tuple[cst.Decorator, str, dict[str, object]]]:
        for dec in node.decorators:
            found = self.decorator(info, dec)
            if found is not None:
                yield dec, *found

    def _discover_function(self, info: ModuleInfo, node: cst.FunctionDef) -> None:
        name = node.name.value
        key = f"{info.name}:{name}"
        local = self.qualnames[id(node)] = self.unique(name)
        self.definitions[f"{info.name}:{local}"] = node
        for dec, kind, kwargs in self._nalarc_decorators(info, node):
            if kind == "agent":
                raise self._error(info, dec, "@nalarc.agent expects a class, not a function")
            self.kinds[id(node)] = kind
            if kind == "tool":
                self._check_directives(info, dec, "tool", kwargs)
                comp = _Component(key, "tool", node, kwargs)
                comp.methods[name] = param_names(node.params)
                comp.implementations[name] = f"{info.name}:{local}"
                if node.params.star_kwarg is not None:
                    comp.open_kwargs.add(name)
                if node.asynchronous is not None:
                    comp.async_methods.add(name)
                self.components[key] = comp
                self._bind(info, name, Symbol("tool", key))
            elif kind == "workflow":
                self._bind(info, name, Symbol("workflow", key))

    def _bind(self, info: ModuleInfo, name: str, symbol: Symbol) -> None:
        old = info.symbols.get(name)
        info.symbols[name] = Symbol(symbol.kind, symbol.target, old.rebound if old is not None else False)

    def _discover_class(self, info: ModuleInfo, node: cst.ClassDef) -> None:
        local = self.qualnames[id(node)] = self.unique(node.name.value)
        model = self._class_model(info, node, f"{info.name}:{local}")
        self.classes[model.key] = model
        for dec, kind, kwargs in self._nalarc_decorators(info, node):
            if kind != "agent":
                raise self._error(info, dec, f"@nalarc.{kind} expects a function, not a class")
            self._check_directives(info, dec, "agent", kwargs)
            key = f"{info.name}:{node.name.value}"
            self.components[key] = _Component(key, "agent", node, kwargs)
            self._bind(info, node.name.value, Symbol("agent", key))

    def _class_model(self, info: ModuleInfo, node: cst.ClassDef, key: str) -> ClassModel:
        model = ClassModel(key, info, node)
        for arg in node.bases:
            model.bases.append(self._base_key(info, arg.value))
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
        for item in block_definitions(body):
            local = self.qualnames[id(item)] = self.unique(f"{key.partition(':')[2]}.{item.name.value}")
            if isinstance(item, cst.FunctionDef):
                self.definitions[f"{info.name}:{local}"] = item
                member = self._member(info, item, f"{info.name}:{local}")
                # A setter or deleter keeps the property's meaning for the name.
                if member.name not in model.members or member.kind != "property":
                    model.members[member.name] = member
        model.managed = self._managed(info, node)
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, (cst.Assign, cst.AnnAssign)):
                        targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                        for target in targets:
                            model.attributes |= set(target_names(target))
        return model

    def _base_key(self, info: ModuleInfo, expr: cst.BaseExpression) -> str | None:
        if isinstance(expr, cst.Subscript):  # Generic[T], Protocol[T]
            expr = expr.value
        symbol = self.resolve(info, expr)
        if symbol is None:
            return None
        if symbol.kind in ("class", "agent"):
            return self._latest_class(symbol.target)
        if symbol.kind == "external" and symbol.target in _TRANSPARENT_BASES:
            return ""  # contributes nothing
        return None

    def _latest_class(self, key: str) -> str | None:
        """The definition a class name holds after its module ran (the last one)."""
        found = [k for k in self.classes if k == key or k.startswith(key + "#")]
        return found[-1] if found else None

    def _member(self, info: ModuleInfo, node: cst.FunctionDef, qualname: str) -> Member:
        kind: MemberKind = "method"
        for dec in node.decorators:
            expr = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
            symbol = self.resolve(info, expr)
            target = symbol.target if symbol is not None else ""
            if target == "builtins.staticmethod":
                kind = "static"
            elif target == "builtins.classmethod":
                kind = "class"
            elif target in ("builtins.property", "functools.cached_property") or (
                isinstance(expr, cst.Attribute) and expr.attr.value in ("setter", "getter", "deleter")
            ):
                kind = "property"
        params = param_names(node.params)
        return Member(node.name.value, kind, qualname, params if kind == "static" else params[1:],
                      node.params.star_kwarg is not None, node.asynchronous is not None)

    def _managed(self, info: ModuleInfo, node: cst.ClassDef) -> list[str]:
        managed: list[str] = []
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
        for item in body:
            if isinstance(item, cst.SimpleStatementLine):
                for small in item.body:
                    if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call):
                        if self.nalarc_name(info, small.value.func) in NALARC_STATE:
                            managed += target_names(small.targets[0].target)
        return managed

    # -- the class hierarchy -------------------------------------------------

    def mro(self, key: str) -> tuple[list[ClassModel], bool]:
        """The local classes ``key`` inherits from, in method resolution order,
        and whether that order is *complete* (no base nalarc cannot see)."""
        found = self._mro.get(key)
        if found is None:
            self._mro[key] = ([], False)  # a cycle (impossible in valid Python) stays incomplete
            found = self._mro[key] = self._linearize(key)
        return found

    def _linearize(self, key: str) -> tuple[list[ClassModel], bool]:
        model = self.classes.get(key)
        if model is None:
            return [], False
        complete = True
        sequences: list[list[ClassModel]] = []
        for base in model.bases:
            if base == "":
                continue
            if base is None:
                complete = False
                continue
            order, base_complete = self.mro(base)
            complete = complete and base_complete
            sequences.append(list(order))
        sequences.append([self.classes[b] for b in model.bases if b])
        return [model, *_c3_merge(sequences)], complete

    def members(self, key: str) -> dict[str, Member]:
        """Every member ``key`` has, own and inherited (the most derived definition wins)."""
        out: dict[str, Member] = {}
        for model in reversed(self.mro(key)[0]):
            out.update(model.members)
        return out

    def class_attributes(self, key: str) -> set[str]:
        return {name for model in self.mro(key)[0] for name in model.attributes}

    def agent_model(self, agent: str) -> str | None:
        """The class model key of an agent component (its last definition)."""
        return self._latest_class(agent)

    def overridden(self, name: str) -> bool:
        """Is a method of this name defined by more than one class of the app?"""
        return sum(1 for model in self.classes.values() if name in model.members) > 1

    # -- directives ----------------------------------------------------------

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
        for node in block_definitions(info.tree.body):
            if isinstance(node, cst.FunctionDef):
                kind = self.kinds.get(id(node), "helper")
                if kind == "workflow" and node.name.value not in workflows:
                    workflows.append(node.name.value)
                local = self.qualnames[id(node)]
                functions += FunctionLowerer(self, info, node, local, kind, None, None).run()
            else:
                functions += self._lower_class(info, node)
        components = [
            self._component_ir(info, c) for c in self.components.values() if c.key.startswith(info.name + ":")
        ]
        return ModuleIR(info.name, str(info.source.path), tuple(functions), tuple(components), tuple(workflows))

    def _lower_class(self, info: ModuleInfo, node: cst.ClassDef) -> list[FunctionIR]:
        key = f"{info.name}:{self.qualnames[id(node)]}"
        owner = key.partition(":")[2]
        in_agent = self._serves_agent(key)
        out: list[FunctionIR] = []
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
        for item in block_definitions(body):
            if isinstance(item, cst.FunctionDef):
                kind = "agent_method" if in_agent else "helper"
                out += FunctionLowerer(self, info, item, self.qualnames[id(item)], kind, owner, None).run()
        return out

    def _serves_agent(self, key: str) -> bool:
        """Is this class an agent, or a base class some agent inherits from?"""
        for comp in self.components.values():
            if comp.kind == "agent":
                model = self.agent_model(comp.key)
                if model is not None and any(m.key == key for m in self.mro(model)[0]):
                    return True
        return False

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
            implementations=tuple(sorted(comp.implementations.items())),
        )

    def _agent_methods(self, comp: _Component) -> None:
        model = self.agent_model(comp.key)
        if model is None:
            return
        for base in reversed(self.mro(model)[0]):  # as nalarc._state.managed_attributes orders them
            comp.managed += [name for name in base.managed if name not in comp.managed]
        for name, member in self.members(model).items():
            if member.kind != "method":
                continue
            comp.methods[name] = member.params
            comp.implementations[name] = member.qualname
            if member.open_kwargs:
                comp.open_kwargs.add(name)
            if member.written_async:
                comp.async_methods.add(name)

    def _check_agent_init(self, comp: _Component) -> None:
        """The runtime creates agent instances: ``__init__`` takes no required argument."""
        model = self.agent_model(comp.key)
        init = self.members(model).get("__init__") if model else None
        node = self.definitions.get(init.qualname) if init else None
        if node is not None and required_params(node.params) > 1:
            owner = self.classes[init.qualname.rpartition(".")[0]] if init else None
            raise self._error(
                owner.info if owner else self.modules[comp.key.partition(":")[0]],
                first_required_param(node.params),
                f"agent {comp.key.partition(':')[2]!r}: __init__ must take no required arguments "
                "(the runtime creates instances)",
            )


def _c3_merge(sequences: list[list[ClassModel]]) -> list[ClassModel]:
    """C3 linearization (Python's method resolution order); a conflict keeps the order seen."""
    out: list[ClassModel] = []
    sequences = [list(s) for s in sequences if s]
    while sequences:
        for seq in sequences:
            head = seq[0]
            if not any(head in s[1:] for s in sequences):
                break
        else:
            head = sequences[0][0]  # inconsistent hierarchy: Python would reject it at import
        out.append(head)
        sequences = [[c for c in s if c is not head] for s in sequences]
        sequences = [s for s in sequences if s]
    return out


_BUILTIN_NAMES = frozenset({"object", "staticmethod", "classmethod", "property"})


def lower_program(modules: dict[str, ModuleInfo], app: str) -> Program:
    """Lower every module of the app to one :class:`~nalarc.ir.Program`."""
    return Lowerer(modules, app).lower()
