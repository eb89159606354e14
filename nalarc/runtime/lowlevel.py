"""The runtime as the driver and the worker see it (generated code never uses these).

:class:`Runtime` is the per-process state a backend is plugged into;
:class:`Backend` and :class:`DirectBackend` are the protocol a backend
implements; :class:`CallJournal` is where a request's call results are
journaled for replay (:class:`RequestJournal` its per-request view); :class:`CallRecord` is one component call as a backend receives it,
and :func:`complete_call` settles a call a :class:`DirectBackend` took.  The
rest are the pieces a backend or a worker needs around a call: running compiled
code in a frame of its own, telling compiled functions apart, values of futures
that are ready, the process's asyncio loop, exceptions across processes.
"""

from __future__ import annotations

from ..ir import AWAIT as AWAIT
from ..ir import EFFECT as EFFECT
from ..ir import STAGE_SHIFT as STAGE_SHIFT
from ._async import run_in_frame as run_in_frame
from ._asyncio_bridge import await_in_loop as await_in_loop
from ._asyncio_bridge import get_loop as get_loop
from ._asyncio_bridge import run_blocking as run_blocking
from ._compiled import CALL as CALL
from ._compiled import COROUTINE as COROUTINE
from ._compiled import compiled_kind as compiled_kind
from ._containers import substitute as substitute
from ._exceptions import dump_exception as dump_exception
from ._futures import Backend as Backend
from ._futures import CallRecord as CallRecord
from ._futures import DirectBackend as DirectBackend
from ._futures import Frame as Frame
from ._futures import Pending as Pending
from ._futures import Runtime as Runtime
from ._futures import Skipped as Skipped
from ._futures import current_frame as current_frame
from ._launch import AgentHandle as AgentHandle
from ._launch import complete_call as complete_call
from ._materialize import md as md
from ._materialize import md_now as md_now
from ._materialize import with_values as with_values
from ._replay import MISSING as MISSING
from ._replay import STARTED as STARTED
from ._replay import CallJournal as CallJournal
from ._replay import RequestJournal as RequestJournal
from ._replay import call_key as call_key
from ._replay import digest_arguments as digest_arguments

__all__ = [
    "AWAIT",
    "AgentHandle",
    "Backend",
    "CALL",
    "COROUTINE",
    "CallJournal",
    "CallRecord",
    "DirectBackend",
    "EFFECT",
    "MISSING",
    "Frame",
    "Pending",
    "RequestJournal",
    "Runtime",
    "STAGE_SHIFT",
    "STARTED",
    "Skipped",
    "await_in_loop",
    "call_key",
    "complete_call",
    "compiled_kind",
    "current_frame",
    "digest_arguments",
    "dump_exception",
    "get_loop",
    "md",
    "md_now",
    "run_blocking",
    "run_in_frame",
    "substitute",
    "with_values",
]
