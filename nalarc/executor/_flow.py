"""The driver's LLM limiter: rate limits per model and token budgets per session, for the whole run.

One :class:`FlowLimiter` per run, in the driver, is the only place quota is
counted, so a limit holds however the calls spread over worker processes
(uneven load included: there is no static share per worker).  LLM calls made
in the driver (workflow code, the in-process backend) reach it directly
(:class:`LocalGate`, installed by :func:`installed`); calls made in a worker
ask it over the wire (``nalarc.worker._flow``: ``QuotaAsk`` -> ``QuotaGrant``,
then ``QuotaSettle``), answered by :func:`answer` in the backend's trio thread.

A booking never blocks the driver: the limiter says how long the call must
wait (token buckets with reservations, ``nalarc._flow.TokenBucket``) and the
caller sleeps in its own thread or task.  Bookings queue in the order they
are made, so a waiting call is not overtaken.

Reconciliation, as production limiters do it: a call books its estimate
(prompt tokens + ``max_tokens``, else ``completion_estimate``), and when it
is over the token bucket gets back what the estimate overbooked (or pays what
it missed); the session's budget counts the real usage only.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from .._errors import BudgetExceeded, RateLimitExceeded
from .._flow import FlowConfig, Gate, TokenBucket, install_gate, refusal_of
from ..wire import QuotaAsk, QuotaConfig, QuotaGrant, QuotaSettle


class FlowLimiter:
    """Every model's buckets and every session's usage; thread-safe (calls come from driver threads too)."""

    def __init__(self, config: FlowConfig) -> None:
        self.config = config
        self._buckets: dict[str, tuple[TokenBucket | None, TokenBucket | None]] = {}
        self._lock = threading.Lock()
        #: session -> LLM tokens it used (real usage, settled calls)
        self.used: dict[str, int] = {}
        #: bookings made, and those that had to wait
        self.stats = {"booked": 0, "waited": 0, "refused": 0}

    def covers(self, model: str) -> bool:
        return self.config.session_token_budget is not None or self.config.limit_for(model) is not None

    def _model(self, model: str) -> tuple[TokenBucket | None, TokenBucket | None]:
        buckets = self._buckets.get(model)
        if buckets is None:
            limit = self.config.limit_for(model)
            buckets = self._buckets[model] = (limit.buckets(self.config.in_transit) if limit is not None
                                              else (None, None))
        return buckets

    def reserve(self, model: str, tokens: int, session: str) -> float:
        """Book one request of ``tokens`` tokens; the seconds to wait before sending it.

        Raises :class:`BudgetExceeded` when the session has used its budget,
        :class:`RateLimitExceeded` when the request needs more tokens than the
        model's limit allows per window (it could never be sent).
        """
        with self._lock:
            self.stats["booked"] += 1
            budget = self.config.session_token_budget
            if budget is not None and self.used.get(session, 0) >= budget:
                self.stats["refused"] += 1
                raise BudgetExceeded(session, self.used[session], budget)
            limit = self.config.limit_for(model)
            if limit is not None and limit.tpm is not None and tokens > limit.tpm:
                self.stats["refused"] += 1
                raise RateLimitExceeded(model, tokens, limit.tpm)
            requests, token_bucket = self._model(model)
            now = time.monotonic()
            wait = requests.reserve(1, now) if requests is not None else 0.0
            if token_bucket is not None:
                wait = max(wait, token_bucket.reserve(tokens, now))
            if wait > 0:
                self.stats["waited"] += 1
            return wait

    def settle(self, model: str, session: str, booked: int, used: int) -> None:
        """A call that booked ``booked`` tokens is over, having used ``used``."""
        with self._lock:
            if self.config.session_token_budget is not None:
                self.used[session] = self.used.get(session, 0) + used
            _, token_bucket = self._model(model)
            if token_bucket is not None and used != booked:
                token_bucket.refund(booked - used, time.monotonic())

    def worker_config(self) -> QuotaConfig:
        """What a worker needs to know to send its calls here."""
        config = self.config
        return QuotaConfig(config.gates_llm, tuple(config.models), config.session_token_budget is not None,
                           config.completion_estimate)


class LocalGate:
    """The gate of LLM calls made in the driver: the limiter itself."""

    remote = False

    def __init__(self, limiter: FlowLimiter) -> None:
        self.limiter = limiter
        self.completion_estimate = limiter.config.completion_estimate
        self.covers = limiter.covers
        self.reserve = limiter.reserve
        self.settle = limiter.settle


@contextlib.contextmanager
def installed(limiter: FlowLimiter | None) -> Iterator[None]:
    """The limiter is this process's gate for the block (nothing is installed without flow control)."""
    if limiter is None or not limiter.config.gates_llm:
        yield
        return
    gate: Gate = LocalGate(limiter)
    previous = install_gate(gate)
    try:
        yield
    finally:
        install_gate(previous)


def answer(limiter: FlowLimiter, message: QuotaAsk | QuotaSettle) -> QuotaGrant | None:
    """A worker's ``QuotaAsk`` (-> the grant to send back) or ``QuotaSettle`` (-> None)."""
    if isinstance(message, QuotaSettle):
        limiter.settle(message.model, message.session, message.booked, message.used)
        return None
    refusal: tuple[Any, ...] | None = None
    wait = 0.0
    try:
        wait = limiter.reserve(message.model, message.tokens, message.session)
    except (BudgetExceeded, RateLimitExceeded) as error:
        refusal = refusal_of(error)
    return QuotaGrant(message.ticket, wait, refusal)
