"""Find the app's local modules and build each one's table of global names.

A module is *local* when it resolves to a file under the app's directory; it
is compiled with the app.  Everything else is *external*: imported as is at
run time.  An external module that is not installed here is only a warning
(with ``--strict``, an error), and only when it is imported unconditionally at
module level: ``try: import orjson except ImportError``, ``if sys.platform ==
"win32": import winreg`` and imports inside functions are how real code
handles optional modules, and the compiler never needs an external module's
contents (calls into it are resolved at run time).

Decorators are recognized however nalarc was imported (``import nalarc as n``,
``from nalarc import agent as a``): names are resolved through the import
table, never by spelling.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from .._errors import CompileError
from ..ir import Diagnostic
from ._source import SourceFile, parse_or_copy, read_source, span_of

SymbolKind = Literal[
    "tool", "agent", "workflow", "function", "class", "module", "external", "nalarc", "variable", "import"
]

#: nalarc names the compiler understands (decorators, state, intrinsics).
NALARC_DECORATORS = frozenset({"tool", "agent", "workflow"})
NALARC_INTRINSICS = frozenset({"available", "value", "as_completed", "current_session"})
NALARC_STATE = frozenset({"ManagedList", "ManagedDict"})


@dataclass(frozen=True, slots=True)
class Symbol:
    """What a module-level name stands for."""

    kind: SymbolKind
    #: tool/agent/workflow/function/class: ``module:qualname``; module: dotted
    #: module name; external: dotted name; nalarc: the attribute ("" = module).
    target: str
    #: The name is bound more than once at module level (redefined, bound in
    #: both branches of an ``if``, a ``def`` beside an import...): which object
    #: it holds is only known at run time.
    rebound: bool = False


@dataclass
class ModuleInfo:
    source: SourceFile
    wrapper: MetadataWrapper
    #: Global names of the module.
    symbols: dict[str, Symbol] = field(default_factory=dict)
    #: Fallbacks found while loading (unresolvable imports).
    warnings: list[Diagnostic] = field(default_factory=list)
    #: LibCST could not parse it (valid Python without nalarc): written back as it is.
    verbatim: bool = False
    #: ``from local import x`` as written (``import`` symbols), so the names
    #: can be resolved again once discovery knows which are components.
    imported: dict[str, Symbol] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def tree(self) -> cst.Module:
        return self.wrapper.module


def _module_file(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _absolute(module: ModuleInfo, node: cst.ImportFrom) -> str:
    """The absolute dotted name of an ``ImportFrom``'s module."""
    name = cst.helpers.get_full_name_for_node(node.module) if node.module else ""
    level = len(node.relative)
    if level == 0:
        return name or ""
    package = module.name.split(".")
    if not module.source.path.name == "__init__.py":
        package = package[:-1]
    package = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*package, name] if name else package)


def _guards_imports(node: cst.Try) -> bool:
    """Does this ``try`` catch a failed import (so the import may be missing)?"""
    caught = {cst.helpers.get_full_name_for_node(h.type) or "" for h in node.handlers if h.type}
    bare = any(h.type is None for h in node.handlers)
    return bare or bool({"ImportError", "ModuleNotFoundError", "Exception"} & caught)


class _ImportCollector(cst.CSTVisitor):
    """Every import in a module, and whether it is *guarded*: it may not run, or
    its failure is handled (a ``try/except ImportError``, an ``if`` branch, a
    function or class body, a ``with``, a loop)."""

    _CONDITIONAL = (cst.If, cst.FunctionDef, cst.ClassDef, cst.With, cst.For, cst.While, cst.Match)

    def __init__(self) -> None:
        self.imports: list[tuple[cst.Import | cst.ImportFrom, bool]] = []
        self._guarded = 0

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, self._CONDITIONAL) or (isinstance(node, cst.Try) and _guards_imports(node)):
            self._guarded += 1
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if isinstance(original_node, self._CONDITIONAL) or (
            isinstance(original_node, cst.Try) and _guards_imports(original_node)
        ):
            self._guarded -= 1
        super().on_leave(original_node)

    def visit_Import(self, node: cst.Import) -> None:
        self.imports.append((node, self._guarded > 0))

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self.imports.append((node, self._guarded > 0))


def _external_exists(dotted: str) -> bool:
    top = dotted.partition(".")[0]
    if not top:
        return False
    if top == "__main__":
        return True  # always importable when the program runs
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


class ModuleLoader:
    """Loads the entry modules and, transitively, the local modules they import.

    ``root`` is the directory imports resolve against: an app's own directory,
    or, for a package built in place, the directory containing its top-level
    package.  ``entries`` are ``(dotted name, file)`` pairs under ``root``.
    """

    def __init__(self, root: Path, entries: tuple[tuple[str, Path], ...]) -> None:
        self.root = root.resolve()
        self.entries = [(name, path.resolve()) for name, path in entries]
        self.modules: dict[str, ModuleInfo] = {}

    def load(self) -> dict[str, ModuleInfo]:
        queue: deque[tuple[str, Path]] = deque(self.entries)
        while queue:
            name, path = queue.popleft()
            if name in self.modules:
                continue
            source = read_source(name, path)
            tree, why = parse_or_copy(source)
            info = ModuleInfo(source, MetadataWrapper(tree, unsafe_skip_copy=True))
            if why is not None:
                info.verbatim = True
                info.warnings.append(Diagnostic("warning", str(path), (1, 0, 1, 0), f"{why}: the module is copied "
                                                "unchanged (it imports no nalarc, so it declares no component)"))
            self.modules[name] = info
            for dotted in self._local_imports(info):
                file = _module_file(self.root, dotted)
                if file is not None and dotted not in self.modules:
                    queue.append((dotted, file))
        for info in self.modules.values():
            self._define_globals(info)
        for info in self.modules.values():
            self._resolve_imports(info)
        return self.modules

    # -- imports ---------------------------------------------------------

    def _local_imports(self, info: ModuleInfo) -> list[str]:
        collector = _ImportCollector()
        info.tree.visit(collector)
        positions = info.wrapper.resolve(PositionProvider)
        found: list[str] = []
        for node, guarded in collector.imports:
            for dotted in self._imported_modules(info, node):
                if dotted == "nalarc" or dotted.startswith("nalarc."):
                    continue
                if _module_file(self.root, dotted) is not None:
                    found.append(dotted)
                elif isinstance(node, cst.ImportFrom) and node.relative and _module_file(self.root, dotted.rpartition(".")[0] or dotted) is not None:
                    continue
                elif not guarded and not _external_exists(dotted):
                    info.warnings.append(Diagnostic(
                        "warning", str(info.source.path), span_of(positions[_module_node(node, dotted)]),
                        f"cannot resolve import {dotted!r}: no local module {dotted.replace('.', '/')}.py "
                        "next to the app and no installed package of that name (importing it will fail "
                        "at run time unless it is installed there)",
                    ))
        return found

    def _imported_modules(self, info: ModuleInfo, node: cst.Import | cst.ImportFrom) -> list[str]:
        if isinstance(node, cst.Import):
            return [cst.helpers.get_full_name_for_node(a.name) or "" for a in node.names]
        base = _absolute(info, node)
        out = [base]
        if not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                sub = f"{base}.{cst.helpers.get_full_name_for_node(alias.name)}" if base else ""
                if sub and _module_file(self.root, sub) is not None:
                    out.append(sub)
        return [m for m in out if m]

    # -- global names ----------------------------------------------------

    def _define_globals(self, info: ModuleInfo) -> None:
        table = info.symbols
        for stmt in info.tree.body:
            for node in _top_level_nodes(stmt):
                self._define_node(info, node)
        bindings = _binding_counts(info.tree)
        for name, symbol in table.items():
            if bindings.get(name, 0) > 1:
                table[name] = dataclasses.replace(symbol, rebound=True)

    def _define_node(self, info: ModuleInfo, node: cst.CSTNode) -> None:
        table = info.symbols
        if isinstance(node, cst.Import):
            for alias in node.names:
                dotted = cst.helpers.get_full_name_for_node(alias.name) or ""
                bound = _bound_name(alias) or dotted.partition(".")[0]
                target = dotted if alias.asname else dotted.partition(".")[0]
                table[bound] = self._module_symbol(target)
        elif isinstance(node, cst.ImportFrom):
            self._define_from(info, node)
        elif isinstance(node, cst.FunctionDef):
            table[node.name.value] = Symbol("function", f"{info.name}:{node.name.value}")
        elif isinstance(node, cst.ClassDef):
            table[node.name.value] = Symbol("class", f"{info.name}:{node.name.value}")
        elif isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
            for name in _assigned_names(node):
                table.setdefault(name, Symbol("variable", f"{info.name}:{name}"))

    def _module_symbol(self, dotted: str) -> Symbol:
        if dotted == "nalarc":
            return Symbol("nalarc", "")
        if _module_file(self.root, dotted) is not None:
            return Symbol("module", dotted)
        return Symbol("external", dotted)

    def _define_from(self, info: ModuleInfo, node: cst.ImportFrom) -> None:
        base = _absolute(info, node)
        if isinstance(node.names, cst.ImportStar):
            return
        for alias in node.names:
            attr = cst.helpers.get_full_name_for_node(alias.name) or ""
            bound = _bound_name(alias) or attr
            if base == "nalarc" or base.startswith("nalarc."):
                info.symbols[bound] = Symbol("nalarc", attr)
            elif _module_file(self.root, f"{base}.{attr}" if base else attr) is not None:
                info.symbols[bound] = Symbol("module", f"{base}.{attr}" if base else attr)
            elif _module_file(self.root, base) is not None:
                info.symbols[bound] = info.imported[bound] = Symbol("import", f"{base}:{attr}")
            else:
                info.symbols[bound] = Symbol("external", f"{base}.{attr}")

    def _resolve_imports(self, info: ModuleInfo) -> None:
        resolve_imports(self.modules, info)


def resolve_imports(modules: dict[str, ModuleInfo], info: ModuleInfo) -> None:
    """Set each ``from local import x`` name to what ``x`` is in its module (following chains)."""
    for name, written in info.imported.items():
        symbol, seen = written, set[str]()
        while symbol.kind == "import" and symbol.target not in seen:
            seen.add(symbol.target)
            module, _, attr = symbol.target.partition(":")
            other = modules.get(module)
            if other is None:
                symbol = Symbol("external", f"{module}.{attr}")
            else:
                symbol = other.imported.get(attr) or other.symbols.get(attr) or Symbol("external", f"{module}.{attr}")
        rebound = info.symbols[name].rebound or symbol.rebound
        info.symbols[name] = dataclasses.replace(symbol, rebound=rebound)


def _module_node(node: cst.Import | cst.ImportFrom, dotted: str) -> cst.CSTNode:
    """The part of an import statement that names ``dotted`` (for the caret)."""
    if isinstance(node, cst.ImportFrom):
        return node.module if node.module is not None else node
    for alias in node.names:
        if cst.helpers.get_full_name_for_node(alias.name) == dotted:
            return alias.name
    return node


def _bound_name(alias: cst.ImportAlias) -> str | None:
    if alias.asname is None:
        return None
    target = alias.asname.name
    return target.value if isinstance(target, cst.Name) else None


def _top_level_nodes(stmt: cst.CSTNode) -> list[cst.CSTNode]:
    """Statements that run at import time, looking into if/try blocks."""
    if isinstance(stmt, cst.SimpleStatementLine):
        return list(stmt.body)
    if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
        return [stmt]
    if isinstance(stmt, (cst.If, cst.Try)):
        out: list[cst.CSTNode] = []
        blocks: list[cst.BaseSuite] = [stmt.body]
        if isinstance(stmt, cst.Try):
            blocks += [h.body for h in stmt.handlers]
        elif stmt.orelse is not None and isinstance(stmt.orelse, cst.Else):
            blocks.append(stmt.orelse.body)
        for block in blocks:
            if isinstance(block, cst.IndentedBlock):
                for inner in block.body:
                    out += _top_level_nodes(inner)
        return out
    return []


class _ModuleBindings(cst.CSTVisitor):
    """How often each global name is bound: at module level, or by ``global`` in a function."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._depth = 0  # inside a function or class body

    def _bind(self, names: list[str]) -> None:
        if not self._depth:
            self.counts.update(names)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._bind([node.name.value])
        self._depth += 1

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._depth -= 1

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._bind([node.name.value])
        self._depth += 1

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._depth -= 1

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._depth += 1

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self._depth -= 1

    def visit_Global(self, node: cst.Global) -> None:
        # A function that declares the name global may rebind it at any time.
        self.counts.update({n.name.value: 2 for n in node.names})

    def visit_ImportAlias(self, node: cst.ImportAlias) -> bool:
        dotted = cst.helpers.get_full_name_for_node(node.name) or ""
        self._bind([_bound_name(node) or dotted.partition(".")[0]])
        return False  # its AsName is not another binding

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._bind(target_names(node.target))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(target_names(node.target))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind(target_names(node.target))

    def visit_For(self, node: cst.For) -> None:
        self._bind(target_names(node.target))

    def visit_AsName(self, node: cst.AsName) -> None:  # with ... as x, except E as x
        if isinstance(node.name, cst.Name):
            self._bind([node.name.value])

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind(target_names(node.target))


def _binding_counts(tree: cst.Module) -> Counter[str]:
    visitor = _ModuleBindings()
    tree.visit(visitor)
    return visitor.counts


def _assigned_names(node: cst.Assign | cst.AnnAssign | cst.AugAssign) -> list[str]:
    targets: list[cst.BaseExpression] = (
        [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
    )
    names: list[str] = []
    for target in targets:
        names += target_names(target)
    return names


def target_names(target: cst.BaseExpression) -> list[str]:
    """Names bound by an assignment target (``a``, ``a, (b, *c)``)."""
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        out: list[str] = []
        for element in target.elements:
            out += target_names(element.value)
        return out
    if isinstance(target, cst.StarredElement):
        return target_names(target.value)
    return []


def load_modules(app_path: Path) -> dict[str, ModuleInfo]:
    """Parse the app and its local modules; raise :class:`CompileError` on bad input."""
    if not app_path.is_file():
        raise CompileError(str(app_path), 1, 0, "no such file")
    return ModuleLoader(app_path.resolve().parent, ((app_path.stem, app_path),)).load()
