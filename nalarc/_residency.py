"""KV-cache residency reports: what an instance's model servers hold, on its way to the driver.

The simulated engines (``nalarc.llm``) run in the worker process that hosts the
agent instance making the calls.  Each time an engine's prefix cache for a
session changes (a prefix cached after a generation, or evicted), it records
the session's resident prefix here, under the instance; the worker attaches
what its instance recorded to the call's ``Done`` message, so the report costs
a few tuples per call and no extra message.  (A streamed reply's engine
records after its last delta, so its report may ride on the instance's next
``Done``.)  The driver keeps the latest
report per (instance, session) (``nalarc.executor._residency``) and policies
read it as ``MetricsView.residency``.

A report is ``(session, model, tokens, rewarm_s)``: ``tokens`` prefix tokens are
resident (0: evicted) and ``rewarm_s`` is what serving them uncached would add
to the next call's prefill, in real seconds of the (compressed) run.
"""

from __future__ import annotations

import threading

Report = tuple[str, str, int, float]

_LOCK = threading.Lock()
#: instances hosted by this process's worker: reports for any other (plain Python, a
#: standalone server) would never be drained, so they are not kept
_LISTENING: set[str] = set()
#: instance id -> (session, model) -> (tokens, rewarm seconds); the latest report wins
_PENDING: dict[str, dict[tuple[str, str], tuple[int, float]]] = {}


def listen(instance: str) -> None:
    """This process hosts ``instance``: keep its engines' reports until :func:`drain`."""
    _LISTENING.add(instance)


def record(instance: str, session: str, model: str, tokens: int, rewarm_s: float) -> None:
    """An engine serving ``instance`` now holds ``tokens`` of ``session``'s prefix (0: none)."""
    if instance not in _LISTENING:
        return
    with _LOCK:
        _PENDING.setdefault(instance, {})[(session, model)] = (tokens, rewarm_s)


def drain(instance: str) -> tuple[Report, ...]:
    """What ``instance``'s engines recorded since the last drain (empty for most tools: no lock taken)."""
    if instance not in _PENDING:
        return ()
    with _LOCK:
        pending = _PENDING.pop(instance, {})
    return tuple((session, model, tokens, rewarm) for (session, model), (tokens, rewarm) in pending.items())
