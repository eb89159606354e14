"""nalarc: serve plain-Python LLM agent workflows fast and under control."""

from __future__ import annotations

from ._api import Directives as Directives
from ._api import agent as agent
from ._api import tool as tool
from ._api import workflow as workflow
from ._build import BuildResult as BuildResult
from ._build import build as build
from ._errors import BrokenWorkerError as BrokenWorkerError
from ._errors import CompileError as CompileError
from ._errors import DirectiveError as DirectiveError
from ._errors import NalarcError as NalarcError
from ._errors import RemoteError as RemoteError
from ._intrinsics import as_completed as as_completed
from ._intrinsics import available as available
from ._intrinsics import value as value
from ._load import load_app as load_app
from ._state import ManagedDict as ManagedDict
from ._state import ManagedList as ManagedList
from ._state import current_session as current_session
from ._state import session as session
from ._version import __version__ as __version__

__all__ = [
    "BrokenWorkerError",
    "BuildResult",
    "CompileError",
    "Directives",
    "DirectiveError",
    "ManagedDict",
    "ManagedList",
    "NalarcError",
    "RemoteError",
    "__version__",
    "agent",
    "as_completed",
    "available",
    "build",
    "current_session",
    "load_app",
    "session",
    "tool",
    "value",
    "workflow",
]
