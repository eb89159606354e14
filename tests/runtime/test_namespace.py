"""``nalarc.runtime`` is the one namespace generated code uses, and it stands alone.

``__all__`` must be exactly the names the code generator can emit as
``_nalarc_rt.NAME``.  They are read from the code generator's source: the
first argument of every call of a helper that builds ``_nalarc_rt.<name>``
(``rt``, ``rt_call``), resolved to the strings it can hold, and every
``{RT}.<name>`` in an f-string.  An argument the reader cannot resolve fails
the test, so a new way of building names cannot slip past it.  The helpers,
the ``RT`` constants and the name tables may be defined in one module of the
code generator and used in another (by the same name): they are collected
from the whole package.
"""

from __future__ import annotations

import ast
import itertools
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import nalarc
from nalarc import runtime
from nalarc.runtime import lowlevel

CODEGEN = Path(nalarc.__file__).resolve().parent / "codegen"


class Unresolved(Exception):
    pass


class _Module:
    """One code generator module, read for the runtime names it can emit.

    ``package``: every module of the code generator (``path`` alone if not given), where
    the helpers, ``RT`` constants and tables ``path`` uses are defined.
    """

    def __init__(self, path: Path, package: tuple[Path, ...] = ()) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text(encoding="utf-8"))
        others = [ast.parse(p.read_text(encoding="utf-8")) for p in package if p != path]
        self.package = [self.tree, *others]
        self.parents = {child: node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)}
        self.rt_vars = {
            target.id
            for tree in self.package
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value == "_nalarc_rt"
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        self.helpers = self._helpers()

    def _functions(self) -> Iterator[ast.FunctionDef]:
        return (n for tree in self.package for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))

    def _helpers(self) -> set[str]:
        """Functions whose first parameter becomes ``NAME`` in ``_nalarc_rt.NAME`` (to a fixpoint)."""
        helpers: set[str] = set()
        changed = True
        while changed:
            changed = False
            for fn in self._functions():
                if fn.name in helpers or not fn.args.args:
                    continue
                param = fn.args.args[0].arg
                if any(self._builds_attribute(n, param) or self._forwards(n, param, helpers) for n in ast.walk(fn)):
                    helpers.add(fn.name)
                    changed = True
        return helpers

    def _builds_attribute(self, node: ast.AST, param: str) -> bool:
        """``cst.Attribute(cst.Name(RT), cst.Name(param))``."""
        if not (isinstance(node, ast.Call) and _callee(node) == "Attribute" and len(node.args) == 2):
            return False
        owner, attr = node.args
        return (
            isinstance(owner, ast.Call) and _callee(owner) == "Name" and _is_name(owner.args[0], self.rt_vars)
            and isinstance(attr, ast.Call) and _callee(attr) == "Name" and _is_name(attr.args[0], {param})
        )

    def _forwards(self, node: ast.AST, param: str, helpers: set[str]) -> bool:
        return isinstance(node, ast.Call) and _callee(node) in helpers and bool(node.args) and _is_name(node.args[0], {param})

    def _enclosing_function(self, node: ast.AST) -> ast.FunctionDef | None:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, ast.FunctionDef):
                return node
        return None

    def emitted(self) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and _callee(node) in self.helpers and node.args:
                fn = self._enclosing_function(node)
                if fn is not None and fn.name in self.helpers and _is_name(node.args[0], {fn.args.args[0].arg}):
                    continue  # a helper forwarding its own parameter
                names |= self.values(node.args[0], fn)
            elif isinstance(node, ast.JoinedStr):
                names |= self._from_fstring(node)
        return names

    def _from_fstring(self, node: ast.JoinedStr) -> set[str]:
        """``f"{RT}.reconcile(...)"`` and ``f"{RT}.{exit_fn}(...)"``."""
        names: set[str] = set()
        parts = node.values
        for index, part in enumerate(parts[:-1]):
            if not (isinstance(part, ast.FormattedValue) and _is_name(part.value, self.rt_vars)):
                continue
            after = parts[index + 1]
            if not (isinstance(after, ast.Constant) and isinstance(after.value, str) and after.value.startswith(".")):
                raise Unresolved(f"{self.path.name}:{node.lineno}: {{RT}} not followed by '.NAME'")
            literal = re.match(r"\.(\w+)", after.value)
            if literal is not None:
                names.add(literal.group(1))
            elif after.value == "." and index + 2 < len(parts) and isinstance(parts[index + 2], ast.FormattedValue):
                names |= self.values(parts[index + 2].value, self._enclosing_function(node))  # type: ignore[attr-defined]
            else:
                raise Unresolved(f"{self.path.name}:{node.lineno}: cannot read the name after {{RT}}")
        return names

    def values(self, expr: ast.expr, fn: ast.FunctionDef | None) -> set[str]:
        """Every string ``expr`` can evaluate to."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.IfExp):
            return self.values(expr.body, fn) | self.values(expr.orelse, fn)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            return {a + b for a, b in itertools.product(self.values(expr.left, fn), self.values(expr.right, fn))}
        if isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Name):
            table = self._module_dict(expr.value.id)
            return {s for value in table.values for s in self.values(value, None)}  # type: ignore[arg-type]
        if isinstance(expr, ast.Name):
            found = self._assigned(expr.id, fn)
            if found:
                return found
        raise Unresolved(f"{self.path.name}:{expr.lineno}: cannot tell which runtime names {ast.unparse(expr)!r} holds")

    def _module_dict(self, name: str) -> ast.Dict:
        for node in (node for tree in self.package for node in tree.body):
            if isinstance(node, ast.Assign) and any(_is_name(t, {name}) for t in node.targets) and isinstance(node.value, ast.Dict):
                return node.value
        raise Unresolved(f"{self.path.name}: {name} is not a module-level dict")

    def _assigned(self, name: str, fn: ast.FunctionDef | None) -> set[str]:
        """The strings assigned to ``name`` in ``fn`` (``x = ...`` and ``a, x = (..., ...) if c else (..., ...)``)."""
        scope: ast.AST = fn if fn is not None else self.tree
        found: set[str] = set()
        for node in ast.walk(scope):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                if _is_name(target, {name}):
                    found |= self.values(node.value, fn)
                elif isinstance(target, ast.Tuple):
                    for position, element in enumerate(target.elts):
                        if _is_name(element, {name}):
                            found |= {s for value in _tuple_elements(node.value, position) for s in self.values(value, fn)}
        return found


def _tuple_elements(expr: ast.expr, position: int) -> list[ast.expr]:
    if isinstance(expr, ast.Tuple):
        return [expr.elts[position]]
    if isinstance(expr, ast.IfExp):
        return _tuple_elements(expr.body, position) + _tuple_elements(expr.orelse, position)
    raise Unresolved(f"line {expr.lineno}: cannot unpack {ast.unparse(expr)!r}")


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _is_name(node: ast.AST, names: set[str]) -> bool:
    return isinstance(node, ast.Name) and node.id in names


def emitted_names() -> set[str]:
    names: set[str] = set()
    package = tuple(sorted(CODEGEN.rglob("*.py")))
    for path in package:
        names |= _Module(path, package).emitted()
    return names


def test_all_is_exactly_what_codegen_emits() -> None:
    emitted = emitted_names()
    exported = set(runtime.__all__)
    assert len(runtime.__all__) == len(exported), "duplicates in __all__"
    assert not emitted - exported, f"codegen emits names nalarc.runtime does not export: {sorted(emitted - exported)}"
    assert not exported - emitted, f"nalarc.runtime exports names codegen never emits: {sorted(exported - emitted)}"


def test_every_exported_name_exists() -> None:
    for module in (runtime, lowlevel):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_the_reader_sees_the_computed_names() -> None:
    """The names codegen builds at run time (``"b" + name``, ``exit_fn``, an intrinsic's table)
    are found, so the comparison above covers more than literal arguments."""
    emitted = emitted_names()
    assert {"bm", "bmd", "bmd_lazy", "cm_exit", "acm_exit", "session_id", "dyn_effect", "setitem_effect", "region_gen"} <= emitted


def test_an_unreadable_name_fails_the_reader(tmp_path: Path) -> None:
    source = tmp_path / "_emit.py"
    source.write_text(
        'import libcst as cst\nRT = "_nalarc_rt"\n\n'
        "def rt(name):\n    return cst.Attribute(cst.Name(RT), cst.Name(name))\n\n"
        "def emit(node):\n    return rt(node.kind)\n",
        encoding="utf-8",
    )
    with pytest.raises(Unresolved, match="node.kind"):
        _Module(source).emitted()


FORBIDDEN_MODULES = ("nalarc.executor", "nalarc.policies", "ray", "rich", "typer", "libcst", "networkx")


@pytest.mark.parametrize("module", ["nalarc.runtime", "nalarc.runtime.lowlevel"])
def test_runtime_loads_no_driver_nor_compiler(module: str) -> None:
    probe = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if any(m == p or m.startswith(p + '.') for p in {FORBIDDEN_MODULES!r}))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing {module} loads {out.strip()}"
