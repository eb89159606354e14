"""Run events and pauses: ``nalarc.stream``, ``nalarc.stream_tokens``, ``nalarc.interrupt``.

Where an event goes depends on where the code runs:

* in a served run (``nalarc run --serve``), the driver binds a :class:`RunChannel`
  to the request (:data:`current` for code in the driver, :func:`bind` for events
  that workers relay by request id): the event is journaled and sent to the
  run's SSE stream (``nalarc.serve._stream``);
* in a component on a worker, the worker binds a channel that relays each event
  to the driver (``nalarc.wire.Event``), in the order the call emitted them;
* in plain Python, or ``nalarc run`` without a channel, the handler installed
  with :func:`set_stream_handler` gets it (``nalarc run --stream`` installs one
  that prints tokens live); with none installed, ``stream`` does nothing.

``interrupt`` pauses a served run (see docs/serving.md); in plain Python it calls
the handler installed with :func:`set_interrupt_handler` and returns its value,
or raises :class:`~nalarc._errors.NalarcError` when there is none.

This module is nalarc's core: the worker imports it, so it imports nothing of
the driver.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from ._errors import NalarcError

#: Event types the server emits itself; a workflow cannot emit them.
RESERVED = frozenset({"result", "error", "interrupt", "resumed"})
#: What an event type may look like (it goes on an SSE ``event:`` line).
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: ``handler(event_type, data)``
Handler = Callable[[str, Any], Any]


class RunChannel(Protocol):
    """Where one run's events and interrupts go."""

    def emit(self, event: str, data: Any) -> None:
        """Deliver one (validated) event, in order."""
        ...

    def interrupt(self, payload: Any) -> Any:
        """Pause the run with ``payload``; the value it resumes with (or raise to pause)."""
        ...


#: The channel of the run the current code belongs to.
current: contextvars.ContextVar[RunChannel | None] = contextvars.ContextVar("nalarc_run_channel", default=None)
#: Channels by request id: for events workers relay (``deliver``).
_channels: dict[str, RunChannel] = {}
_stream_handler: Handler | None = None
_interrupt_handler: Callable[[Any], Any] | None = None


class Interrupted(NalarcError):
    """Raised by ``nalarc.interrupt`` in a served run to pause it (do not catch it).

    The server journals the pause (``key``, ``payload``); the run's status becomes
    ``interrupted`` until ``POST /v1/runs/{id}/resume``.
    """

    def __init__(self, key: str, payload: Any) -> None:
        super().__init__(f"the run was interrupted: {payload!r}")
        self.key, self.payload = key, payload


def set_stream_handler(handler: Handler | None) -> Handler | None:
    """Install ``handler(event_type, data)`` for events outside a served run; returns the previous one."""
    global _stream_handler
    previous, _stream_handler = _stream_handler, handler
    return previous


def set_interrupt_handler(handler: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """Install ``handler(payload) -> value`` for ``interrupt`` outside a served run; returns the previous one."""
    global _interrupt_handler
    previous, _interrupt_handler = _interrupt_handler, handler
    return previous


def check_event(data: Any, event: str) -> None:
    """A clear error for an event the stream cannot carry."""
    if not isinstance(event, str) or not _EVENT_TYPE.fullmatch(event):
        raise NalarcError(f"an event type is 1-64 letters, digits, '_', '.' or '-'; got {event!r}")
    if event in RESERVED:
        raise NalarcError(f"the event type {event!r} is reserved for the server ({', '.join(sorted(RESERVED))})")
    check_json(data, "an event")


def check_json(data: Any, what: str) -> None:
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise NalarcError(f"{what} must be JSON-serializable: {exc}") from None


def stream(data: Any, *, event: str = "custom") -> None:
    """Emit ``data`` (JSON-able) as one event of type ``event`` into the current run's event stream.

    Outside a served run: the handler of :func:`set_stream_handler`, or nothing.
    """
    check_event(data, event)
    channel = current.get()
    if channel is not None:
        channel.emit(event, data)
    elif _stream_handler is not None:
        _stream_handler(event, data)


def stream_tokens(chunks: Iterable[str], *, event: str = "token") -> str:
    """Forward text deltas (e.g. a ``nalarc.llm.chat(..., stream=True)`` stream) as ``token`` events.

    Each delta becomes one event ``{"text": delta}``; returns the whole text.
    """
    parts = []
    for text in chunks:
        stream({"text": text}, event=event)
        parts.append(text)
    return "".join(parts)


def interrupt(payload: Any = None) -> Any:
    """Pause the run for a human (or any outside party) and return the value it is resumed with.

    In a served run the run is paused durably; resumed with ``POST /v1/runs/{id}/resume``,
    the workflow runs again from the top (completed calls replayed) and this call
    returns the resume value.  In plain Python: the handler of :func:`set_interrupt_handler`.
    """
    check_json(payload, "an interrupt payload")
    channel = current.get()
    if channel is not None:
        return channel.interrupt(payload)
    if _interrupt_handler is not None:
        return _interrupt_handler(payload)
    raise NalarcError("nalarc.interrupt() pauses a served run (nalarc run --serve); outside one, install a "
                      "handler with nalarc.set_interrupt_handler(fn), e.g. one that asks on the terminal")


@contextlib.contextmanager
def bind(request: str, channel: RunChannel) -> Iterator[None]:
    """Route the events workers relay for ``request`` to ``channel`` (and the driver's own, via :data:`current`)."""
    _channels[request] = channel
    token = current.set(channel)
    try:
        yield
    finally:
        current.reset(token)
        if _channels.get(request) is channel:
            del _channels[request]


def deliver(request: str, event: str, data: Any) -> None:
    """An event a worker relayed for ``request``: to its channel, else the installed handler."""
    channel = _channels.get(request)
    if channel is not None:
        channel.emit(event, data)
    elif _stream_handler is not None:
        _stream_handler(event, data)
