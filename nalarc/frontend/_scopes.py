"""Scopes of a function: its parameters and the names it binds (nested scopes excluded)."""

from __future__ import annotations

import libcst as cst

from ._modules import target_names


def class_body(node: cst.ClassDef) -> list[cst.CSTNode]:
    body = node.body
    return list(body.body) if isinstance(body, cst.IndentedBlock) else []


def param_names(params: cst.Parameters) -> tuple[str, ...]:
    names = [p.name.value for p in (*params.posonly_params, *params.params)]
    if isinstance(params.star_arg, cst.Param):
        names.append("*" + params.star_arg.name.value)
    names += [p.name.value for p in params.kwonly_params]
    if params.star_kwarg is not None:
        names.append("**" + params.star_kwarg.name.value)
    return tuple(names)


def first_required_param(params: cst.Parameters) -> cst.CSTNode:
    for param in (*params.posonly_params, *params.params)[1:]:
        if param.default is None:
            return param.name
    for param in params.kwonly_params:
        if param.default is None:
            return param.name
    return params


def required_params(params: cst.Parameters) -> int:
    positional = [*params.posonly_params, *params.params]
    return sum(1 for p in positional if p.default is None) + sum(1 for p in params.kwonly_params if p.default is None)


_SCOPE_NODES = (cst.FunctionDef, cst.ClassDef, cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)


class _ScopeNodes(cst.CSTVisitor):
    """Collects the nodes of one scope; nested scopes are not entered.

    Walrus targets inside comprehensions still count: they bind in the
    enclosing function.  (A visitor, because ``node.children`` re-visits.)
    """

    def __init__(self) -> None:
        self.nodes: list[cst.CSTNode] = []
        self._comprehensions = 0

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self._comprehensions:
            if isinstance(node, cst.NamedExpr):
                self.nodes.append(node)
            if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                return False
            return True
        self.nodes.append(node)
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return False
        if isinstance(node, (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)):
            self._comprehensions += 1
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if isinstance(original_node, (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)):
            self._comprehensions -= 1


def walk_scope(node: cst.CSTNode) -> list[cst.CSTNode]:
    """Descendants of ``node`` in the same scope (nested scopes not entered)."""
    walker = _ScopeNodes()
    for child in node.children:
        child.visit(walker)
    return walker.nodes


class _AllNodes(cst.CSTVisitor):
    def __init__(self) -> None:
        self.nodes: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.nodes.append(node)
        return True


def walk_all(node: cst.CSTNode) -> list[cst.CSTNode]:
    walker = _AllNodes()
    node.visit(walker)
    return walker.nodes[1:]


def local_names(fn: cst.FunctionDef, scope_nodes: list[cst.CSTNode] | None = None) -> tuple[set[str], set[str], set[str]]:
    """(locals, global-declared, nonlocal-declared) of a function."""
    params = {n.lstrip("*") for n in param_names(fn.params)}
    assigned: set[str] = set()
    globals_: set[str] = set()
    nonlocals: set[str] = set()
    for node in scope_nodes if scope_nodes is not None else walk_scope(fn.body):
        if isinstance(node, cst.Global):
            globals_ |= {n.name.value for n in node.names}
        elif isinstance(node, cst.Nonlocal):
            nonlocals |= {n.name.value for n in node.names}
        elif isinstance(node, cst.AssignTarget):
            assigned |= set(target_names(node.target))
        elif isinstance(node, (cst.AnnAssign, cst.AugAssign)):
            assigned |= set(target_names(node.target))
        elif isinstance(node, (cst.For, cst.CompFor)):
            assigned |= set(target_names(node.target))
        elif isinstance(node, cst.AsName) and isinstance(node.name, cst.Name):
            assigned.add(node.name.value)
        elif isinstance(node, cst.ImportAlias):
            if node.asname is None:
                assigned.add((cst.helpers.get_full_name_for_node(node.name) or "").partition(".")[0])
        elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            assigned.add(node.name.value)
        elif isinstance(node, cst.NamedExpr) and isinstance(node.target, cst.Name):
            assigned.add(node.target.value)
    return (params | assigned) - globals_ - nonlocals, globals_, nonlocals

