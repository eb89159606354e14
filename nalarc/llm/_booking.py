"""An LLM call's passage through the process's flow-control gate (``nalarc._flow``).

Before the call: estimate its tokens (the prompt, counted the way the
simulated server counts it, plus ``max_tokens``, else the run's
``completion_estimate``, per conversation), book them with the gate (which may
refuse: :class:`~nalarc.BudgetExceeded`, :class:`~nalarc.RateLimitExceeded`)
and wait as long as it says.  After it: settle with the real usage, so the
limiter refunds what the estimate overbooked (or charges what it missed) and
the session's budget counts what was really used.  Without a gate, or for a
model it does not cover, :func:`book` returns None after one global read.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._flow import Gate, gate
from .._state import current_session
from ._engine import count_tokens
from ._server import prompt_of


@dataclass
class Booking:
    gate: Gate
    model: str
    session: str
    tokens: int
    settled: bool = False

    def settle(self, used: int | None) -> None:
        """The call is over having used ``used`` tokens (None: unknown, the booking stands); once."""
        if not self.settled:
            self.settled = True
            self.gate.settle(self.model, self.session, self.tokens, self.tokens if used is None else used)


def _estimate(found: Gate, conversations: Sequence[Sequence[Mapping[str, Any]]], max_tokens: int | None) -> int:
    completion = max_tokens if max_tokens is not None else found.completion_estimate
    return sum(count_tokens(prompt_of(messages)) + completion for messages in conversations)


def book(model: str, conversations: Sequence[Sequence[Mapping[str, Any]]], max_tokens: int | None) -> Booking | None:
    """Book a call with the gate and wait for its turn (blocking); None when no gate covers ``model``."""
    found = gate()
    if found is None or not found.covers(model):
        return None
    booking = Booking(found, model, current_session(), _estimate(found, conversations, max_tokens))
    wait = found.reserve(model, booking.tokens, booking.session)
    if wait > 0:
        time.sleep(wait)
    return booking


async def abook(model: str, conversations: Sequence[Sequence[Mapping[str, Any]]],
                max_tokens: int | None) -> Booking | None:
    """:func:`book` for async code (trio or asyncio): the wait does not block the loop."""
    found = gate()
    if found is None or not found.covers(model):
        return None
    booking = Booking(found, model, current_session(), _estimate(found, conversations, max_tokens))
    if found.remote:  # a round trip to the driver: in a thread, off the loop
        wait = await _in_thread(found.reserve, model, booking.tokens, booking.session)
    else:
        wait = found.reserve(model, booking.tokens, booking.session)
    if wait > 0:
        await _sleep(wait)
    return booking


def settle(booking: Booking | None, used: int | None) -> None:
    if booking is not None:
        booking.settle(used)


async def _in_thread(fn: Any, *args: Any) -> float:
    import sniffio

    if sniffio.current_async_library() == "trio":
        import trio

        return float(await trio.to_thread.run_sync(fn, *args))
    import asyncio

    return float(await asyncio.to_thread(fn, *args))


async def _sleep(seconds: float) -> None:
    import sniffio

    if sniffio.current_async_library() == "trio":
        import trio

        await trio.sleep(seconds)
    else:
        import asyncio

        await asyncio.sleep(seconds)
