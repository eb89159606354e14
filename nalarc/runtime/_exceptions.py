"""Exceptions across processes: the original type and attributes, whatever ``__init__`` takes.

Pickle rebuilds an exception by calling its class with ``args``, which breaks
for the commonest custom exception of all::

    class RateLimited(Exception):
        def __init__(self, model, wait):
            super().__init__(f"{model} limited for {wait}s")   # args == (message,)
            self.model, self.wait = model, wait

``RateLimited(message)`` raises ``TypeError``, so the workflow would get a
generic error and an ``except RateLimited`` handler (or one for its base class)
would not run.  :func:`dump_exception` pickles exceptions of user classes by
*state* instead: the class, ``args``, ``__dict__`` and the cause/context chain,
rebuilt without calling ``__init__`` (as ``copy.copy`` does).  Built-in
exception types keep their own pickling (``OSError`` rebuilds ``errno`` from
its arguments).  Tracebacks travel as text, next to the exception.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import cloudpickle

from .._errors import RemoteError


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any],
             cause: BaseException | None, context: BaseException | None, suppress: bool) -> BaseException:
    error = cls.__new__(cls, *args)
    error.args = args
    if state:
        error.__dict__.update(state)
    error.__cause__, error.__context__, error.__suppress_context__ = cause, context, suppress
    return error


class _Pickler(cloudpickle.CloudPickler):  # type: ignore[misc]
    #: Drop instance state (``__dict__``) when it does not pickle.
    keep_state = True

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BaseException) and type(obj).__module__ != "builtins":
            state = dict(getattr(obj, "__dict__", {})) if self.keep_state else {}
            return _rebuild, (type(obj), obj.args, state, obj.__cause__, obj.__context__, obj.__suppress_context__)
        return super().reducer_override(obj)


def _dumps(error: BaseException, keep_state: bool) -> bytes:
    buffer = io.BytesIO()
    pickler = _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.keep_state = keep_state
    pickler.dump(error)
    return buffer.getvalue()


def dump_exception(error: BaseException, traceback_text: str) -> bytes:
    """``error`` pickled so the other side gets its type and attributes back.

    Falls back to dropping attributes that cannot be pickled (a lock, a
    socket), then to a :class:`~nalarc.RemoteError` with the traceback text.
    """
    for keep_state in (True, False):
        try:
            payload = _dumps(error, keep_state)
            cloudpickle.loads(payload)  # the receiver must be able to rebuild it
            return payload
        except Exception:  # noqa: BLE001 - anything pickling can raise: try the next form
            continue
    fallback: bytes = cloudpickle.dumps(RemoteError(traceback_text))
    return fallback
