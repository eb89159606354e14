"""Serving a running app: the HTTP front (``nalarc run --serve``) and the load generator
(``nalarc run --load``), both over an :class:`~nalarc.executor.Service`.  The HTTP
front journals accepted requests (:class:`Journal`, docs/durability.md) and each run's
event stream, served as SSE with ``Last-Event-ID`` resume (``_stream``).

Nothing here decides where a call runs: that is the executor's.  This layer turns
requests (HTTP, a trace, a Poisson process, an app's ``@workload``) into
``Service.run`` calls and reports what happened, as data; rendering is the CLI's.
"""

from __future__ import annotations

from ._http import ServeApp as ServeApp
from ._journal import Journal as Journal
from ._http import serve as serve
from ._loadgen import Arrival as Arrival
from ._loadgen import LoadProgress as LoadProgress
from ._loadgen import has_workload as has_workload
from ._loadgen import percentile as percentile
from ._loadgen import poisson_arrivals as poisson_arrivals
from ._loadgen import read_trace as read_trace
from ._loadgen import resolve_arrivals as resolve_arrivals
from ._loadgen import run_load as run_load
from ._loadgen import summarize as summarize
from ._loadgen import workload_arrivals as workload_arrivals
from ._loadgen import write_report as write_report

__all__ = [
    "Arrival",
    "Journal",
    "LoadProgress",
    "ServeApp",
    "has_workload",
    "percentile",
    "poisson_arrivals",
    "read_trace",
    "resolve_arrivals",
    "run_load",
    "serve",
    "summarize",
    "workload_arrivals",
    "write_report",
]
