"""nalarc: serve plain-Python LLM agent workflows fast and under control."""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from ._api import Directives as Directives
from ._api import agent as agent
from ._api import tool as tool
from ._api import workflow as workflow
from ._events import Interrupted as Interrupted
from ._events import interrupt as interrupt
from ._events import set_interrupt_handler as set_interrupt_handler
from ._events import set_stream_handler as set_stream_handler
from ._events import stream as stream
from ._events import stream_tokens as stream_tokens
from ._errors import BrokenWorkerError as BrokenWorkerError
from ._errors import BudgetExceeded as BudgetExceeded
from ._errors import CompileError as CompileError
from ._errors import DirectiveError as DirectiveError
from ._errors import NalarcError as NalarcError
from ._errors import OutcomeUnknown as OutcomeUnknown
from ._errors import PoisonRequest as PoisonRequest
from ._errors import RateLimitExceeded as RateLimitExceeded
from ._flow import ConcurrencyLimit as ConcurrencyLimit
from ._flow import FlowConfig as FlowConfig
from ._flow import KeyedCall as KeyedCall
from ._flow import ModelLimit as ModelLimit
from ._errors import RemoteError as RemoteError
from ._intrinsics import as_completed as as_completed
from ._intrinsics import available as available
from ._intrinsics import value as value
from ._state import ManagedDict as ManagedDict
from ._state import ManagedList as ManagedList
from ._state import current_session as current_session
from ._state import session as session
from ._version import __version__ as __version__

if _typing.TYPE_CHECKING:
    from ._build import BuildResult as BuildResult
    from ._build import build as build
    from ._load import load_app as load_app

#: Imported on first use: plain ``python app.py`` needs none of the compiler.
_LAZY = {"BuildResult": "._build", "build": "._build", "load_app": "._load"}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nalarc' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "BrokenWorkerError",
    "BudgetExceeded",
    "BuildResult",
    "CompileError",
    "ConcurrencyLimit",
    "Directives",
    "DirectiveError",
    "FlowConfig",
    "Interrupted",
    "KeyedCall",
    "ManagedDict",
    "ManagedList",
    "ModelLimit",
    "NalarcError",
    "OutcomeUnknown",
    "PoisonRequest",
    "RateLimitExceeded",
    "RemoteError",
    "__version__",
    "agent",
    "as_completed",
    "available",
    "build",
    "current_session",
    "interrupt",
    "load_app",
    "session",
    "set_interrupt_handler",
    "set_stream_handler",
    "stream",
    "stream_tokens",
    "tool",
    "value",
    "workflow",
]
