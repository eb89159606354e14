"""A worker's flow-control gate: its LLM calls book with the driver's limiter over the wire.

The driver sends :class:`~nalarc.wire.QuotaConfig` before any call; if flow
control is on, :func:`configure` installs a :class:`WireGate` as the
process's gate (``nalarc._flow``).  A booking is one round trip
(:class:`~nalarc.wire.QuotaAsk` -> :class:`~nalarc.wire.QuotaGrant`, the
grant read by the worker's reading thread and handed to the waiting call's
thread); settling is one message that is not answered.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from .._flow import ANY_MODEL, install_gate, refusal_error
from ..wire import BlockingChannel, QuotaAsk, QuotaConfig, QuotaGrant, QuotaSettle


class WireGate:
    """The gate of a worker's LLM calls: the driver's limiter, one round trip away."""

    remote = True

    def __init__(self, channel: BlockingChannel, config: QuotaConfig) -> None:
        self.channel = channel
        self.completion_estimate = config.completion_estimate
        self._models = frozenset(config.models)
        self._every_model = config.budgets or ANY_MODEL in self._models
        self._tickets = itertools.count(1)
        self._waiting: dict[int, tuple[threading.Event, list[QuotaGrant]]] = {}
        self._lock = threading.Lock()

    def covers(self, model: str) -> bool:
        return self._every_model or model in self._models

    def reserve(self, model: str, tokens: int, session: str) -> float:
        ticket = next(self._tickets)
        arrived = threading.Event()
        slot: list[QuotaGrant] = []
        with self._lock:
            self._waiting[ticket] = (arrived, slot)
        self.channel.send(QuotaAsk(ticket, model, tokens, session))
        arrived.wait()
        grant = slot[0]
        if grant.refusal is not None:
            raise refusal_error(grant.refusal)
        return float(grant.wait)

    def granted(self, grant: QuotaGrant) -> None:
        """The driver's answer (called by the thread that read it)."""
        with self._lock:
            found = self._waiting.pop(grant.ticket, None)
        if found is not None:
            found[1].append(grant)
            found[0].set()

    def settle(self, model: str, session: str, booked: int, used: int) -> None:
        self.channel.send(QuotaSettle(model, session, booked, used))


def configure(channel: BlockingChannel, config: QuotaConfig) -> WireGate | None:
    """Install (or remove) this process's gate as the driver says."""
    gate = WireGate(channel, config) if config.enabled else None
    install_gate(gate)
    return gate


def deliver(gate: Any, grant: QuotaGrant) -> None:
    if isinstance(gate, WireGate):
        gate.granted(grant)
