"""Compiled functions are marked, never guessed from ``iscoroutinefunction``.

The code generator decorates every function it made ``async def`` with
:func:`compiled` (it was synchronous: its callers await it at once) or
:func:`compiled_async` (the program wrote it ``async def``: calling it makes a
coroutine).  The marks also record which code objects make *native* coroutines
(trio code), as opposed to user or library asyncio code.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any, Final, TypeVar

from ..ir import AWAIT

F = TypeVar("F", bound=Callable[..., Any])


#: Compiled from a synchronous function: its callers await it at once (calling it runs it).
CALL: Final = "call"
#: Compiled from an ``async def``: calling it makes a coroutine, awaited where the program says.
COROUTINE: Final = "coroutine"
_MARK: Final = "__nalarc_compiled__"
#: Code objects whose coroutines / async generators are trio code (compiled, or the runtime's own).
NATIVE_CODE: set[types.CodeType] = set()


def _mark(fn: F, kind: str) -> F:
    code = getattr(fn, "__code__", None)
    if code is not None:
        NATIVE_CODE.add(code)
    try:
        setattr(fn, _MARK, kind)
    except (AttributeError, TypeError):
        pass
    return fn


def compiled(fn: F) -> F:
    """Mark a function the compiler made ``async def`` (it was synchronous)."""
    return _mark(fn, CALL)


def compiled_async(fn: F) -> F:
    """Mark an ``async def`` the compiler compiled (the program wrote it async)."""
    return _mark(fn, COROUTINE)


def compiled_kind(fn: Any) -> str | None:
    """:data:`CALL`, :data:`COROUTINE`, or None for code nalarc did not compile."""
    kind = getattr(fn, _MARK, None)
    return kind if kind == CALL or kind == COROUTINE else None


def native(fn: F) -> F:
    """Mark the runtime's own coroutine functions: their coroutines are awaited on trio."""
    code = getattr(fn, "__code__", None)
    if code is not None:
        NATIVE_CODE.add(code)
    return fn


def is_native_coroutine(x: Any) -> bool:
    return type(x) is types.CoroutineType and x.cr_code in NATIVE_CODE


def is_foreign_coroutine_function(fn: Any) -> bool:
    """User or library ``async def`` (not compiled): calling it only makes a coroutine."""
    if isinstance(fn, (types.BuiltinFunctionType, type)) or compiled_kind(fn) is not None:
        return False
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


_asyncio_types: dict[type, bool] = {}


def is_asyncio_bound(fn: Any) -> bool:
    """A method of an asyncio object (queue, lock, event, loop): it must run on the loop's thread."""
    owner = getattr(fn, "__self__", None)
    if owner is None or isinstance(owner, types.ModuleType):
        return False
    cls = type(owner)
    found = _asyncio_types.get(cls)
    if found is None:
        found = _asyncio_types[cls] = any(
            (c.__module__ or "").partition(".")[0] == "asyncio" for c in cls.__mro__
        )
    return found


_await_flags: dict[tuple[Any, str | None], int] = {}


def await_flag(target: Any, method: str | None) -> int:
    """:data:`AWAIT` if the component (tool function, or agent class + method) is written async."""
    key = (target, method)
    flag = _await_flags.get(key)
    if flag is None:
        fn = getattr(target, method) if method is not None else target
        kind = compiled_kind(fn)
        written_async = kind == COROUTINE or (kind is None and inspect.iscoroutinefunction(fn))
        flag = _await_flags[key] = AWAIT if written_async else 0
    return flag
