"""IR to JSON and back (``ir.json`` in the build directory)."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from . import _nodes

_CLASSES = {
    cls.__name__: cls
    for cls in (
        _nodes.Program, _nodes.ModuleIR, _nodes.FunctionIR, _nodes.ComponentIR, _nodes.FutureNode,
        _nodes.ArgRef, _nodes.CallNode, _nodes.MaterializeNode, _nodes.DependencyEdge, _nodes.Binding,
        _nodes.StatementInfo, _nodes.Hoist, _nodes.ControlRegion, _nodes.Diagnostic,
    )
}


def to_data(node: Any) -> Any:
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Any] = {"_type": type(node).__name__}
        for f in dataclasses.fields(node):
            out[f.name] = to_data(getattr(node, f.name))
        return out
    if isinstance(node, tuple):
        return [to_data(x) for x in node]
    return node


def from_data(data: Any) -> Any:
    if isinstance(data, dict) and "_type" in data:
        cls = _CLASSES[data["_type"]]
        hints = typing.get_type_hints(cls)
        kwargs = {k: _restore(v, hints.get(k)) for k, v in data.items() if k != "_type"}
        return cls(**kwargs)
    if isinstance(data, list):
        return tuple(from_data(x) for x in data)
    return data


def _restore(value: Any, hint: Any) -> Any:
    restored = from_data(value)
    if isinstance(restored, tuple) and hint is not None and "tuple[tuple[str, object]" in str(hint):
        return tuple(tuple(x) if isinstance(x, tuple) else x for x in restored)
    return restored


def dumps(program: _nodes.Program) -> str:
    return json.dumps(to_data(program), separators=(",", ":"), sort_keys=True)


def loads(text: str) -> _nodes.Program:
    program = from_data(json.loads(text))
    assert isinstance(program, _nodes.Program)
    return program
