"""The workload generator API and the trace helpers (see :mod:`nalarc.workloads`)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: Attribute that marks a workload function.
MARK = "__nalarc_workload__"


def workload(fn: F) -> F:
    """Mark ``fn(rate, duration, seed=0)`` as the app's workload generator."""
    setattr(fn, MARK, True)
    return fn


def is_workload(obj: object) -> bool:
    return callable(obj) and getattr(obj, MARK, False) is True


@dataclass(frozen=True)
class Request:
    """One request, ``at`` seconds after the start of the load."""

    at: float
    input: dict[str, Any]
    session: str = "default"
    workflow: str | None = None


@dataclass(frozen=True)
class Session:
    """A conversation: ``inputs[0]`` at ``at``, each later one ``think`` s after the previous reply."""

    id: str
    at: float
    inputs: Sequence[dict[str, Any]]
    think: float = 0.0
    workflow: str | None = None
    #: Optional per-follow-up think times (overrides ``think``), one per input after the first.
    thinks: Sequence[float] = field(default=())


def poisson_times(rate: float, duration: float, rng: random.Random) -> Iterator[float]:
    """Arrival times of a Poisson process of ``rate`` per second, in [0, duration)."""
    if rate <= 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be a positive number, not {rate!r}")
    at = rng.expovariate(rate)
    while at < duration:
        yield at
        at += rng.expovariate(rate)


def phase_share(at: float, period: float, shares: Sequence[float]) -> float:
    """The share in force at time ``at`` when ``shares`` take turns, ``period`` seconds each.

    ``phase_share(t, 10, [0.95, 0.05])`` is 0.95 for t in [0, 10), 0.05 for
    [10, 20), 0.95 again for [20, 30), ...: a mix that shifts in phases.
    """
    return shares[int(at // period) % len(shares)]
