"""Flow control, the parts every process shares: what users configure, the token bucket, the gate.

* :class:`FlowConfig` is what a run is given (``[tool.nalarc.flow]``, or
  ``Placement(flow=...)``): rate limits per model (:class:`ModelLimit`),
  concurrency keys (:class:`ConcurrencyLimit`), a token budget per session.
* :class:`TokenBucket` is the arithmetic of a rate limit.  The driver's limiter
  (``nalarc.executor._flow``) and the simulated server's quotas
  (``nalarc.llm._quota``) use the same one, so what the limiter admits the
  server admits too.
* The *gate* (:func:`gate`) is what this process's LLM calls pass through
  before they go out: None (no flow control, the call costs one global read),
  the driver's limiter itself in the driver, or a client of it over the wire
  in a worker (``nalarc.worker._flow``).

Imports nothing of nalarc but its errors: the LLM client, the worker and the
driver all import it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

from ._errors import BudgetExceeded, NalarcError, RateLimitExceeded

#: The model name a :class:`ModelLimit` applies to when it names no model in particular.
ANY_MODEL = "*"


@dataclasses.dataclass(frozen=True, slots=True)
class ModelLimit:
    """Requests and tokens (prompt + completion) a model may take per window.

    Attributes:
        rpm: requests per window (None: unlimited).
        tpm: tokens per window (None: unlimited).
        window: the seconds the limits count over: 60 makes them per minute (the default;
            tests shorten it).
        burst: how many seconds' worth of the limits may be spent at once (None: the whole
            window).  Providers often enforce a per-minute limit over shorter periods
            (OpenAI: "60,000 requests/minute may be enforced as 1,000 requests/second"):
            set ``burst`` to the same period to stay under theirs.
    """

    rpm: int | None = None
    tpm: int | None = None
    window: float = 60.0
    burst: float | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise NalarcError(f"{name} must be a positive integer, was {value!r}")
        if not self.window > 0:
            raise NalarcError(f"window must be > 0 seconds, was {self.window!r}")
        if self.burst is not None and not 0 < self.burst <= self.window:
            raise NalarcError(f"burst must be in (0, window], was {self.burst!r}")

    def buckets(self, in_transit: float = 0.0) -> tuple[TokenBucket | None, TokenBucket | None]:
        """New (requests, tokens) buckets for this limit (None where unlimited).

        ``in_transit``: seconds a request may take from its booking to the endpoint (see
        :class:`TokenBucket`); the endpoint's own buckets take 0.
        """
        burst = self.burst if self.burst is not None else self.window
        return (TokenBucket(self.rpm, self.window, burst, in_transit) if self.rpm else None,
                TokenBucket(self.tpm, self.window, burst, in_transit) if self.tpm else None)


class TokenBucket:
    """``per_window`` units per ``window`` seconds, at most ``burst`` seconds' worth at once.

    Not locked: its owner serializes calls.  A cost larger than the capacity is
    admitted when the bucket is full and leaves it in debt (so a limit smaller
    than one call's cost still lets calls through, one at a time).

    ``in_transit``: a limiter in front of an endpoint books a request before the
    endpoint sees it; while the endpoint's bucket is full, the refill of that
    delay is lost to its cap but not to the limiter's.  The limiter's bucket
    therefore holds ``in_transit`` seconds of refill less (at most half of it),
    so that a request it admits is admitted by the endpoint whenever the delay
    stays under ``in_transit``.  The sustained rate is unchanged.
    """

    __slots__ = ("capacity", "rate", "level", "stamp")

    def __init__(self, per_window: int, window: float, burst: float, in_transit: float = 0.0) -> None:
        self.rate = per_window / window
        full = per_window * burst / window
        self.capacity = max(full - self.rate * in_transit, full / 2)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def _needed(self, cost: float) -> float:
        """The level at which ``cost`` is admitted."""
        return min(cost, self.capacity)

    def reserve(self, cost: float, now: float) -> float:
        """Book ``cost`` now; the seconds to wait before using it (0: at once).

        Bookings queue: each one waits for those booked before it (FIFO), and a
        booking is charged when it is made, not when its wait ends (so a waiter
        is never overtaken).
        """
        self._refill(now)
        self.level -= cost
        short = self._needed(cost) - cost - self.level
        return short / self.rate if short > 0 else 0.0

    def take(self, cost: float, now: float) -> float:
        """Charge ``cost`` if the bucket admits it now (0.0), else charge nothing and return the seconds until it would."""
        self._refill(now)
        short = self._needed(cost) - self.level
        if short > 0:
            return short / self.rate
        self.level -= cost
        return 0.0

    def refund(self, amount: float, now: float) -> None:
        """Give back ``amount`` (negative: charge it), when a call used fewer (more) than it booked."""
        self._refill(now)
        self.level = min(self.capacity, self.level + amount)


@dataclasses.dataclass(frozen=True, slots=True)
class KeyedCall:
    """What a concurrency key function sees of a call."""

    session: str
    #: the component's name (``Writer``, ``search``)
    component: str
    method: str | None
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]


#: ``"session"``, ``"global"``, ``"arg:NAME"`` or a function of the call.
KeySpec = str | Callable[[KeyedCall], Hashable]


@dataclasses.dataclass(frozen=True, slots=True)
class ConcurrencyLimit:
    """At most ``limit`` calls with the same key run at once, among ``components``.

    Attributes:
        limit: calls per key at once.
        key: ``"session"`` (the call's session), ``"global"`` (one key: the components' calls
            together), ``"arg:NAME"`` (the call's argument ``NAME``), or a function of a
            :class:`KeyedCall` returning a hashable key.
        components: component names it applies to (None: every component).
    """

    limit: int
    key: KeySpec = "session"
    components: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise NalarcError(f"a concurrency limit must be a positive integer, was {self.limit!r}")
        if isinstance(self.key, str) and self.key not in ("session", "global") and not (
                self.key.startswith("arg:") and self.key[4:].isidentifier()):
            raise NalarcError(f"a concurrency key is 'session', 'global', 'arg:NAME' or a function, was {self.key!r}")
        if not isinstance(self.key, str) and not callable(self.key):
            raise NalarcError(f"a concurrency key is 'session', 'global', 'arg:NAME' or a function, was {self.key!r}")

    def applies_to(self, component: str) -> bool:
        return self.components is None or component in self.components


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """The flow control of a run (docs/flow-control.md).

    Attributes:
        models: model name (or ``"*"``: any model not named) -> its :class:`ModelLimit`.
        session_token_budget: LLM tokens (prompt + completion, as the endpoint reports them)
            a session may use; its next call after that raises :class:`~nalarc.BudgetExceeded`.
        concurrency: the :class:`ConcurrencyLimit` s calls are dispatched under.
        completion_estimate: completion tokens a call without ``max_tokens`` is assumed to
            use until its real usage is known.
        in_transit: seconds a call may take from its booking to reaching the endpoint; the
            limiter keeps that much refill in reserve in bursts (:class:`TokenBucket`).
    """

    models: Mapping[str, ModelLimit] = dataclasses.field(default_factory=dict)
    session_token_budget: int | None = None
    concurrency: tuple[ConcurrencyLimit, ...] = ()
    completion_estimate: int = 256
    in_transit: float = 0.1

    def __post_init__(self) -> None:
        budget = self.session_token_budget
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
            raise NalarcError(f"session_token_budget must be a positive integer, was {budget!r}")
        if self.in_transit < 0:
            raise NalarcError(f"in_transit must be >= 0 seconds, was {self.in_transit!r}")
        if self.completion_estimate < 0:
            raise NalarcError(f"completion_estimate must be >= 0, was {self.completion_estimate!r}")

    @property
    def gates_llm(self) -> bool:
        """Do LLM calls pass through the limiter at all?"""
        return bool(self.models) or self.session_token_budget is not None

    def limit_for(self, model: str) -> ModelLimit | None:
        return self.models.get(model) or self.models.get(ANY_MODEL)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> FlowConfig:
        """A config file's ``[flow]`` table (``models.NAME = {rpm, tpm, window, burst}``,
        ``session_token_budget``, ``completion_estimate``, ``[[flow.concurrency]]``)."""
        known = {"models", "session_token_budget", "concurrency", "completion_estimate", "in_transit"}
        unknown = set(table) - known
        if unknown:
            raise NalarcError(f"[flow]: unknown settings {sorted(unknown)}; known: {sorted(known)}")
        try:
            models = {str(name): ModelLimit(**dict(limit)) for name, limit in dict(table.get("models", {})).items()}
            concurrency = tuple(
                ConcurrencyLimit(int(item["limit"]), str(item.get("key", "session")),
                                 tuple(item["components"]) if item.get("components") is not None else None)
                for item in table.get("concurrency", ()))
            return cls(models, table.get("session_token_budget"), concurrency,
                       int(table.get("completion_estimate", cls.completion_estimate)),
                       float(table.get("in_transit", cls.in_transit)))
        except (TypeError, KeyError, ValueError) as error:
            raise NalarcError(f"[flow]: {error}") from None


def parse_limits(text: str, where: str) -> dict[str, ModelLimit]:
    """``"gpt:rpm=60,tpm=1000,window=2;*:tpm=500"`` -> limits by model (``where`` names the source in errors)."""
    limits: dict[str, ModelLimit] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        model, sep, settings = part.partition(":")
        if not sep or not model:
            raise NalarcError(f"{where}: expected MODEL:key=value,..., got {part!r}")
        fields: dict[str, float | int] = {}
        for item in filter(None, (s.strip() for s in settings.split(","))):
            key, eq, value = item.partition("=")
            if not eq or key not in ("rpm", "tpm", "window", "burst"):
                raise NalarcError(f"{where}: {item!r} is not rpm=, tpm=, window= or burst=")
            try:
                fields[key] = int(value) if key in ("rpm", "tpm") else float(value)
            except ValueError:
                raise NalarcError(f"{where}: {item!r} is not a number") from None
        limits[model] = ModelLimit(**fields)  # type: ignore[arg-type]
    return limits


def refusal_of(error: BudgetExceeded | RateLimitExceeded) -> tuple[Any, ...]:
    """A refused booking as it travels on the wire (plain data: :func:`refusal_error` rebuilds it)."""
    if isinstance(error, BudgetExceeded):
        return ("budget", error.session, error.used, error.budget)
    return ("too_large", error.model, error.tokens, error.limit)


def refusal_error(refusal: tuple[Any, ...]) -> NalarcError:
    """The exception a refusal (as it travels on the wire) stands for."""
    kind, *fields = refusal
    if kind == "budget":
        return BudgetExceeded(*fields)
    if kind == "too_large":
        return RateLimitExceeded(*fields)
    return NalarcError(f"flow control refused an LLM call: {refusal!r}")


# -- the gate -----------------------------------------------------------------


class Gate(Protocol):
    """What LLM calls pass through when flow control is on."""

    #: ``reserve`` makes a round trip to another process (async callers run it in a thread)
    remote: bool
    #: completion tokens assumed for a call without ``max_tokens``
    completion_estimate: int

    def covers(self, model: str) -> bool:
        """Must calls to ``model`` pass through?"""

    def reserve(self, model: str, tokens: int, session: str) -> float:
        """Book one request of about ``tokens`` tokens: the seconds to wait before sending it.

        Raises :class:`~nalarc.BudgetExceeded` or :class:`~nalarc.RateLimitExceeded`.
        """

    def settle(self, model: str, session: str, booked: int, used: int) -> None:
        """The call is over: it used ``used`` tokens of the ``booked`` ones."""


_GATE: Gate | None = None
_GATE_LOCK = threading.Lock()


def gate() -> Gate | None:
    """This process's gate (None: LLM calls pass freely)."""
    return _GATE


def install_gate(new: Gate | None) -> Gate | None:
    """Make ``new`` the process's gate; returns the one it replaces."""
    global _GATE
    with _GATE_LOCK:
        old, _GATE = _GATE, new
    return old
