"""Dynamic dispatch: calls the compiler could not resolve statically, and stores.

``dyn`` calls whatever a name turns out to hold at run time the right way (a
component call, an agent handle, an intrinsic, asyncio's functions on trio,
compiled code, or code nalarc did not compile, given deep values); ``setitem``
and ``setattr_`` are assignments that may have effects.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import trio

from .._api import ATTRIBUTE_WRITE, ComponentSpec, component_spec, is_served
from ..ir import AWAIT, EFFECT
from ._async import agen_step, call_asyncio_bound
from ._asyncio_functions import ASYNCIO_BLOCKING, ASYNCIO_FUNCTIONS
from ._compiled import CALL, COROUTINE, await_flag, compiled_kind, is_asyncio_bound, is_foreign_coroutine_function
from ._futures import Pending, current_frame
from ._iteration import INTRINSICS, Raised, Stopped, plain_call
from ._launch import AgentHandle, ComponentMethod, call
from ._materialize import m, md, settle
from ._regions import RegionCallable, RegionIter, bm, bmd, is_region
from ._threads import from_thread_async, start_anywhere


_PURE_BUILTINS: Final = frozenset(
    getattr(builtins, n)
    for n in (
        "abs all any ascii bin bool bytes callable chr complex dict divmod enumerate filter "
        "float format frozenset getattr hasattr hash hex id int isinstance issubclass iter len "
        "list map max min next oct ord pow range repr reversed round set slice sorted str sum "
        "tuple type zip"
    ).split()
)
_PURE_MODULES: Final = frozenset(
    "math cmath json re copy itertools functools operator statistics string textwrap "
    "collections dataclasses heapq bisect decimal fractions hashlib base64 difflib enum "
    "typing unicodedata datetime".split()
)
#: Builtins that never look inside their arguments' elements.
_SHALLOW_BUILTINS: Final = frozenset(
    getattr(builtins, n)
    for n in "len isinstance issubclass type id callable list tuple iter enumerate zip reversed".split()
)
_IMMUTABLE: Final = (str, bytes, int, float, complex, tuple, frozenset, bool, range)
#: Container methods that store a value without looking at it.
_STORES: Final = {(list, "append"), (list, "insert"), (dict, "setdefault")}
_MUTATORS: Final = frozenset(
    "append extend insert pop remove clear sort reverse update setdefault add discard popitem "
    "__setitem__ __delitem__ __iadd__".split()
)


def mark_pure(fn: Any) -> Any:
    """The compiler proved ``fn`` has no effect but its result."""
    try:
        fn.__nalarc_pure__ = True
    except (AttributeError, TypeError):
        pass
    return fn


def _is_pure(fn: Any) -> bool:
    try:
        if fn in _PURE_BUILTINS:
            return True
    except TypeError:
        pass
    if getattr(fn, "__nalarc_pure__", False):
        return True
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        if isinstance(owner, _IMMUTABLE):
            return True
        if isinstance(owner, (list, dict, set)) and getattr(fn, "__name__", "") not in _MUTATORS:
            return True
    module = getattr(fn, "__module__", None) or ""
    return module.partition(".")[0] in _PURE_MODULES


def _is_mutation(fn: Any) -> bool:
    owner = getattr(fn, "__self__", None)
    return isinstance(owner, (list, dict, set)) and getattr(fn, "__name__", "") in _MUTATORS


def _is_compiled_async(fn: Any) -> bool:
    """Compiled code (marked by the code generator; user ``async def`` is not)."""
    return compiled_kind(fn) is not None


def _agent_spec(fn: Any) -> ComponentSpec | None:
    if isinstance(fn, type):
        spec = component_spec(fn)
        return spec if spec is not None and spec.kind == "agent" else None
    return None


async def dyn(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``fn`` the right way for whatever it turns out to be at run time."""
    fn = await m(fn)
    if isinstance(fn, ComponentMethod):
        return call(fn.handle, fn.name, _flags_of(fn), args, kwargs)
    spec = component_spec(fn)
    if spec is not None and spec.kind == "tool":
        return call(fn, None, await_flag(fn, None), args, kwargs)
    agent_spec = _agent_spec(fn)
    if agent_spec is not None:
        await md(args)
        return AgentHandle(fn, agent_spec)
    if _hashable(fn):
        intrinsic = INTRINSICS.get(fn)
        if intrinsic is not None:
            return await intrinsic(*args, **kwargs)
        on_trio = ASYNCIO_FUNCTIONS.get(fn)
        if on_trio is not None:
            return on_trio(*args, **kwargs)  # an awaitable, awaited where the program awaits it
        blocking = ASYNCIO_BLOCKING.get(fn)
        if blocking is not None:
            return await blocking(*args, **kwargs)  # asyncio.run(main)
    step = agen_step(fn)
    if step is not None:
        return step(*await md(args), **await md(kwargs))  # agen.asend(x): native, like anext(agen)
    unserved = _unserved_agent_method(fn)
    if unserved is not None:
        agent_handle = AgentHandle(type(fn.__self__), unserved)
        return call(agent_handle, fn.__name__, _flags_of(ComponentMethod(agent_handle, fn.__name__)), args, kwargs)
    kind = compiled_kind(fn)
    if kind == CALL:
        return await fn(*args, **kwargs)
    if kind == COROUTINE:
        return fn(*args, **kwargs)  # a coroutine, as in plain Python
    return await _opaque(fn, args, kwargs, effect=False)


def _unserved_agent_method(fn: Any) -> ComponentSpec | None:
    """The agent, if ``fn`` is a method of an agent instance uncompiled code made
    (a module global ``bot = Bot()``): calling it is a component call.

    Not for the instances the runtime serves (an agent method calling its own
    ``self.m()`` or ``super().m()`` runs its own code), nor for a base class's
    function reached through ``super()``.
    """
    if not inspect.ismethod(fn):
        return None
    owner = fn.__self__
    spec = _agent_spec(type(owner))
    if spec is None or is_served(owner):
        return None
    if getattr(type(owner), fn.__name__, None) is not getattr(fn, "__func__", None):
        return None  # super().m: not the method the instance's class has under that name
    return spec


async def dyn_next(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``dyn`` for calls that may raise ``StopIteration`` (``next``, ``.send``): unwrap with :func:`v`."""
    try:
        return await dyn(fn, args, kwargs)
    except Stopped as stopped:
        return Raised(stopped.error)


async def dyn_effect(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A call whose receiver is shared beyond this request (a module global)."""
    await settle()
    fn = await m(fn)
    if isinstance(fn, ComponentMethod) or component_spec(fn) is not None or _is_compiled_async(fn):
        return await dyn(fn, args, kwargs)
    return await _opaque(fn, args, kwargs, effect=True)


def _flags_of(method: ComponentMethod) -> int:
    spec = method.handle.spec
    writes = getattr(method.handle.agent_class, "__nalarc_writes__", None)
    flags = await_flag(method.handle.agent_class, method.name)
    if spec.directives.stateful or (spec.managed and (writes is None or method.name in writes)):
        return flags | EFFECT
    return flags


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


async def local(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call synchronous app code (``self.helper(x)``): never a component call."""
    kind = compiled_kind(fn)
    if kind == CALL:
        return await fn(*args, **kwargs)
    if kind == COROUTINE:
        return fn(*args, **kwargs)
    return await _opaque(fn, args, kwargs, effect=False)


async def _opaque(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], effect: bool) -> Any:
    """Hand values to code nalarc did not compile: deep-materialize them first."""
    frame = current_frame()
    store_only = (type(getattr(fn, "__self__", None)), getattr(fn, "__name__", "")) in _STORES
    if store_only and frame.try_depth == 0 and not effect:
        if getattr(fn, "__name__", "") in ("insert", "setdefault") and args:
            args = (await md(args[0]), *args[1:])  # an index / a key is looked at; the value is not
        return plain_call(fn, args, kwargs)
    if _hashable(fn) and fn in _SHALLOW_BUILTINS and not kwargs and not any(map(is_region, args)):
        values = [await m(a) for a in args]
        if fn is type and len(values) == 1 and type(values[0]) is AgentHandle:
            return values[0].agent_class  # what type() of the agent object would say
        return plain_call(fn, values, {})
    owner = getattr(fn, "__self__", None)
    if type(owner) in (list, dict, tuple):
        # A container's own methods read its elements (values(), index(), count()...).
        await md(owner)
    args = await md(args)
    kwargs = await md(kwargs)
    if not effect and is_foreign_coroutine_function(fn):
        return fn(*args, **kwargs)  # only makes the coroutine: it runs where it is awaited (aw)
    if effect or not _is_pure(fn) and (frame.try_depth > 0 or not _is_mutation(fn)):
        await settle()
    if is_asyncio_bound(fn):
        return await call_asyncio_bound(fn, args, kwargs)  # asyncio objects are not thread-safe
    args, kwargs, needs_thread = _adapt_callbacks(args, kwargs)
    # Uncompiled code reading a handle's attribute blocks for it: not on the event loop.
    needs_thread = needs_thread or _has_handle(args) or _has_handle(kwargs.values())
    if needs_thread or is_region(fn) or _wants_thread(fn):
        result = await trio.to_thread.run_sync(
            lambda: plain_call(fn, args, kwargs), limiter=frame.runtime.thread_limiter
        )
    else:
        result = plain_call(fn, args, kwargs)
    if needs_thread and isinstance(result, Iterator):
        return RegionIter(result)
    if needs_thread and callable(result) and not isinstance(result, type):
        return RegionCallable(result)  # e.g. functools.partial(tool, ...)
    return result


def _has_handle(values: Iterable[Any]) -> bool:
    """A handle among ``values``, or directly inside one of them (a list, a dict, a view)."""
    for x in values:
        if type(x) is AgentHandle:
            return True
        t = type(x)
        if t is dict:
            x = x.values()
        elif t not in _SHALLOW_CONTAINERS:
            continue
        if any(type(y) is AgentHandle for y in x):
            return True
    return False


_SHALLOW_CONTAINERS: Final = frozenset({list, tuple, set, frozenset, type({}.values()), type({}.keys())})


def _wants_thread(fn: Any) -> bool:
    """Impure app or library code may block on I/O: keep it off the event loop."""
    if _is_pure(fn) or isinstance(fn, type):
        return False
    module = getattr(fn, "__module__", None)
    return module not in (None, "builtins")


def _adapt_callbacks(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], bool]:
    """Swap callables that reach components for blocking versions (threads only)."""
    needs_thread = False

    def adapt(x: Any) -> Any:
        nonlocal needs_thread
        if is_region(x):
            needs_thread = True
            return x
        blocking = _blocking_version(x)
        if blocking is not None:
            needs_thread = True
            return blocking
        return x

    new_args = tuple(adapt(a) for a in args)
    new_kwargs = {k: adapt(v) for k, v in kwargs.items()}
    return new_args, new_kwargs, needs_thread


def _blocking_version(x: Any) -> Callable[..., Any] | None:
    if isinstance(x, ComponentMethod) or compiled_kind(x) == CALL or (
        callable(x) and (_spec := component_spec(x)) is not None and _spec.kind == "tool"
    ):
        def blocking(*a: Any, **k: Any) -> Any:
            return bmd(bdyn(x, a, k))

        # Name, docstring, __wrapped__ (so inspect.signature sees the original), not __dict__
        # (a copied component spec would make the wrapper look like the tool itself).
        return functools.update_wrapper(blocking, x, updated=())
    return None  # compiled from async def: calling it only makes a coroutine, anywhere


def bdyn(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Blocking ``dyn``: for regions."""
    fn = bm(fn)
    if compiled_kind(fn) == COROUTINE:
        return fn(*args, **kwargs)  # only makes a coroutine: nothing to wait for, on any thread
    lazy = _lazy_component_call(fn, args, kwargs)
    if lazy is not None:
        return start_anywhere(lazy)
    if isinstance(fn, ComponentMethod) or (
        (spec := component_spec(fn)) is not None and spec.kind == "tool"
    ) or _is_compiled_async(fn) or _agent_spec(fn) is not None or (
        _hashable(fn) and fn in INTRINSICS
    ):
        return from_thread_async(lambda: dyn(fn, args, kwargs))
    return fn(*bmd(args), **bmd(kwargs))


def _lazy_component_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Pending] | None:
    """How to start ``fn(*args, **kwargs)`` if it calls a component written ``async def``."""
    if isinstance(fn, ComponentMethod):
        flags = _flags_of(fn)
        if flags & AWAIT:
            return lambda: call(fn.handle, fn.name, flags, args, kwargs)
    elif callable(fn) and (spec := component_spec(fn)) is not None and spec.kind == "tool":
        flags = await_flag(fn, None)
        if flags & AWAIT:
            return lambda: call(fn, None, flags, args, kwargs)
    return None


# --------------------------------------------------------------------------
# Stores that may keep futures (containers this request built) or not
# --------------------------------------------------------------------------


async def setitem_effect(obj: Any, key: Any, val: Any) -> None:
    """``obj[key] = val`` on a container the request does not own (a global)."""
    obj, key, val = await m(obj), await md(key), await md(val)
    await settle()
    obj[key] = val


async def setitem(obj: Any, key: Any, val: Any) -> None:
    """``obj[key] = val``: lists and dicts may hold futures, other objects may not."""
    frame = current_frame()
    obj, key = await m(obj), await md(key)
    if type(obj) in (list, dict) and frame.try_depth == 0:
        obj[key] = val
        return
    val = await md(val)
    if frame.try_depth > 0:
        await settle()
    obj[key] = val


async def setattr_(obj: Any, name: str, val: Any) -> None:
    """``obj.name = val``: an effect on an object the request may not own.

    On an agent handle it is a write on the instance serving the session
    (:data:`~nalarc._api.ATTRIBUTE_WRITE`), done before the program goes on, as
    the assignment is in Python (a later read of the attribute sees it).
    """
    obj, val = await m(obj), await md(val)
    await settle()
    if type(obj) is AgentHandle:
        await m(call(obj, ATTRIBUTE_WRITE, EFFECT, (name, val), {}))
        return
    setattr(obj, name, val)
