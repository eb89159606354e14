"""Workloads: the requests an app is served under, written next to the app.

An app may define one function decorated with :func:`workload`; ``nalarc run
APP --rate R --duration S`` (without ``--input``) then replays what it
yields, open loop, and prints a latency table.  It yields :class:`Request`
(one request at a fixed time) and :class:`Session` (a conversation: the first
request at a fixed time, each later one ``think`` seconds after the previous
reply, as a user would send it).  The helpers build the usual shapes: Poisson
arrivals and mixes that shift in phases.

    @workload
    def traffic(rate, duration, seed=0):
        rng = random.Random(seed)
        for at in poisson_times(rate, duration, rng):
            yield Request(at, {"question": rng.choice(QUESTIONS)})

Plain Python ignores all of this (the decorator only marks the function).
"""

from ._traces import Request as Request
from ._traces import Session as Session
from ._traces import is_workload as is_workload
from ._traces import phase_share as phase_share
from ._traces import poisson_times as poisson_times
from ._traces import workload as workload

__all__ = ["Request", "Session", "is_workload", "phase_share", "poisson_times", "workload"]
