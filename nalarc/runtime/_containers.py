"""Replacing placeholders inside call arguments (shared by the runtime, the driver and the worker).

It depends on nothing else in the runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def substitute(x: Any, kind: type[T], value: Callable[[T], Any]) -> Any:
    """``x`` with every ``kind`` instance ``p`` in it replaced by ``value(p)``.

    Looks inside tuples, lists and dicts (exactly those types, as arguments
    carry them); containers are copied, never changed.
    """
    t = type(x)
    if t is kind:
        return value(x)
    if t is tuple:
        return tuple(substitute(v, kind, value) for v in x)
    if t is list:
        return [substitute(v, kind, value) for v in x]
    if t is dict:
        return {k: substitute(v, kind, value) for k, v in x.items()}
    return x
