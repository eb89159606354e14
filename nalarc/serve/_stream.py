"""Run event streams (SSE) and interrupts for ``nalarc run --serve``.

Endpoints (docs/serving.md):

``POST /v1/workflows/{name}/stream``
    Admits the request like ``POST /v1/workflows/{name}`` (same body, headers,
    ``Idempotency-Key``, 429, 503) and answers ``text/event-stream`` with the run's
    events from its first one; a retry with the same ``Idempotency-Key`` streams
    the first run's events (after ``Last-Event-ID`` if given).
``GET /v1/runs/{id}/events``
    The run's events after ``Last-Event-ID`` (header, or ``?after=N``), then the
    live ones, until the run is over or paused.
``POST /v1/runs/{id}/resume`` with ``{"value": ...}``
    Continues a run paused by ``nalarc.interrupt``: 202, the run goes on in the
    background (its events continue on its stream).

Every event is journaled (``events`` table) before anyone is sent it, with an id
that grows by one per event of the run; a reader sends what the journal has
after its last id, then waits for more.  So a client that reconnects with the
last id it saw gets every later event exactly once.  The stream ends after the
``result`` or ``error`` event, or the ``interrupt`` event of a paused run.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope

from .. import _events
from .._errors import NalarcError
from ..runtime.lowlevel import MISSING, STARTED, call_key, digest_arguments
from ._journal import Journal

if TYPE_CHECKING:
    from ._http import RunRecord, ServeApp

#: Seconds between SSE comments on an idle stream (keeps proxies from closing it).
HEARTBEAT = 15.0
#: The component key interrupt calls are journaled under (not a component: no collision).
INTERRUPT_COMPONENT = "nalarc:interrupt"
_Headers = list[tuple[bytes, bytes]]


def sse_frame(event_id: int, event: str, data_json: str) -> bytes:
    """One SSE event.  ``data_json`` is compact JSON: it holds no newline, so one ``data:`` line."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, event.encode(), data_json.encode())


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def parse_event_id(text: str, what: str) -> int:
    """A ``Last-Event-ID`` (or ``after``): a non-negative integer, else a clear error."""
    from ._http import HttpError

    text = text.strip()
    if not text.isdigit() or len(text) > 18:
        raise HttpError(400, f"{what} must be the id of an event (a non-negative integer), got {text[:40]!r}")
    return int(text)


def _on_trio_thread() -> bool:
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


class EventStreams:
    """Every run's event log: appends (journaled, then readers woken) and SSE readers."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        #: run id -> the id its next event gets (runs with events this process appended)
        self._next: dict[str, int] = {}
        self._waiters: dict[str, trio.Event] = {}
        #: Events emitted by threads, not journaled yet (in emission order), and a flush is scheduled.
        self._pending: list[tuple[str, str, str]] = []
        self._pending_lock = threading.Lock()
        self._flush_scheduled = False

    def append(self, run_id: str, event: str, data_json: str) -> int:
        """Journal one event of ``run_id`` and wake its readers; its id.  On the trio thread."""
        self.flush()  # what threads emitted before comes first
        return self._write(run_id, [(event, data_json)])

    def append_from_thread(self, token: trio.lowlevel.TrioToken, run_id: str, event: str, data_json: str) -> None:
        """An event emitted in a thread (a sync workflow or in-process tool): queued without
        waiting, journaled by the loop in batches, in the order emitted.

        Why not ``trio.from_thread``: a round trip to the loop per token costs ~150 us.
        """
        with self._pending_lock:
            self._pending.append((run_id, event, data_json))
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        token.run_sync_soon(self.flush)

    def flush(self) -> None:
        """Journal the events threads queued (one transaction per run), then wake the readers."""
        with self._pending_lock:
            pending, self._pending, self._flush_scheduled = self._pending, [], False
        by_run: dict[str, list[tuple[str, str]]] = {}
        for run_id, event, data_json in pending:
            by_run.setdefault(run_id, []).append((event, data_json))
        for run_id, events in by_run.items():
            try:
                self._write(run_id, events)
            except sqlite3.Error as exc:  # nobody to raise to: the emitting thread has moved on
                print(f"nalarc: cannot journal {len(events)} event(s) of run {run_id}: {exc}", file=sys.stderr)

    def _write(self, run_id: str, events: list[tuple[str, str]]) -> int:
        first = self._next.get(run_id) or self.journal.last_event(run_id) + 1
        self.journal.add_events(run_id, [(first + i, event, data) for i, (event, data) in enumerate(events)])
        self._next[run_id] = first + len(events)
        waiter = self._waiters.pop(run_id, None)
        if waiter is not None:
            waiter.set()
        return first + len(events) - 1

    def outcome(self, record: RunRecord) -> None:
        """The run's terminal event: ``result``, ``error`` or ``interrupt``."""
        data: Any
        if record.status == "done":
            event, data = "result", {"result": record.result}
        elif record.status == "interrupted":
            event, data = "interrupt", {"payload": record.interrupt}
        else:
            event, data = "error", record.error
        try:
            self.append(record.run_id, event, dumps(data))
        except sqlite3.Error as exc:  # the outcome itself is journaled; only the stream misses its last event
            print(f"nalarc: cannot journal the {event} event of run {record.run_id}: {exc}", file=sys.stderr)
        if record.status != "interrupted":
            self._next.pop(record.run_id, None)

    def channel(self, run_id: str, journaled: bool, mute_until: str | None) -> ServedChannel:
        return ServedChannel(self, run_id, journaled, mute_until)

    async def serve(self, run_id: str, after: int, status: Callable[[], str], receive: ASGIReceiveCallable,
                    send: ASGISendCallable) -> None:
        """Answer ``text/event-stream``: the events after ``after``, then live ones, until the run is
        over or paused and everything is sent, or the client goes away."""
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
            (b"x-nalarc-run-id", run_id.encode())]})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
            last = after
            while True:
                waiter = self._waiters.setdefault(run_id, trio.Event())
                batch = self.journal.events_after(run_id, last)
                if batch:
                    await send({"type": "http.response.body", "more_body": True,
                                "body": b"".join(sse_frame(*event) for event in batch)})
                    last = batch[-1][0]
                    continue
                # Outcomes and their events are written in one step: nothing new and not
                # pending means nothing more is coming (until a resume, which a new request reads).
                if status() != "pending":
                    self._waiters.pop(run_id, None)  # only readers about to stop wait on a run that is not pending
                    break
                with trio.move_on_after(HEARTBEAT) as idle:
                    await waiter.wait()
                if idle.cancelled_caught:
                    await send({"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            nursery.cancel_scope.cancel()


async def _cancel_on_disconnect(receive: ASGIReceiveCallable, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


class ServedChannel:
    """A served run's :class:`nalarc._events.RunChannel`: events journaled, interrupts keyed and replayed.

    ``mute_until``: the run is resumed from the interrupt with this call key; until the
    workflow gets there again, what it emits was emitted (and journaled) before, so it
    is not emitted twice.
    """

    def __init__(self, streams: EventStreams, run_id: str, journaled: bool, mute_until: str | None) -> None:
        self.streams, self.run_id, self.journaled, self.mute_until = streams, run_id, journaled, mute_until
        self._occurrences: dict[bytes, int] = {}
        self._token = trio.lowlevel.current_trio_token()

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run on the trio thread (workflow code may run in a thread; SQLite is the loop's)."""
        if _on_trio_thread():
            return fn(*args)
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def emit(self, event: str, data: Any) -> None:
        if self.mute_until is not None:
            return
        if _on_trio_thread():
            self.streams.append(self.run_id, event, dumps(data))
        else:
            self.streams.append_from_thread(self._token, self.run_id, event, dumps(data))

    def interrupt(self, payload: Any) -> Any:
        if not self.journaled:
            raise NalarcError("nalarc.interrupt() needs the request journal on disk (serve with --state PATH "
                              "or --journal PATH, not in memory): the run must survive until it is resumed")
        digest = digest_arguments((payload,), {})
        occurrence = self._occurrences.get(digest, 0)
        self._occurrences[digest] = occurrence + 1
        key = call_key(INTERRUPT_COMPONENT, None, digest, occurrence)
        found = self._on_loop(self.streams.journal.lookup, self.run_id, key)
        if found is MISSING or found is STARTED:
            raise _events.Interrupted(key, payload)
        if key == self.mute_until:
            self.mute_until = None  # past the point it was paused at: what follows is new
        return found


def interrupt_in(error: BaseException) -> _events.Interrupted | None:
    """The :class:`~nalarc._events.Interrupted` a run raised, also inside exception groups."""
    if isinstance(error, _events.Interrupted):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = interrupt_in(inner)
            if found is not None:
                return found
    return None


# -- endpoints -------------------------------------------------------------------


async def stream_endpoint(app: ServeApp, scope: HTTPScope, receive: ASGIReceiveCallable,
                          send: ASGISendCallable) -> bool:
    """Serve the SSE endpoints; False if ``scope`` is not one of them.  Errors before the stream
    starts are :class:`~nalarc.serve._http.HttpError` (answered as JSON)."""
    from ._http import HttpError

    parts = scope["path"].strip("/").split("/")
    headers = dict(scope["headers"])
    raw_id = headers.get(b"last-event-id")
    after = parse_event_id(raw_id.decode("latin-1"), "Last-Event-ID") if raw_id is not None else 0
    if len(parts) == 4 and parts[:2] == ["v1", "workflows"] and parts[3] == "stream":
        _method(scope, "POST")
        record, _ = await app.admit(scope, receive, parts[2])
    elif len(parts) == 4 and parts[:2] == ["v1", "runs"] and parts[3] == "events":
        _method(scope, "GET")
        query = parse_qs(scope["query_string"].decode("latin-1")).get("after")
        if query:
            after = parse_event_id(query[-1], "after")
        found = app.runs.get(parts[2])
        if found is None and app.journal.get(parts[2]) is None:
            raise HttpError(404, f"no run {parts[2]!r}")
        record = found if found is not None else _record_of(app, parts[2])
    else:
        return False
    app.responses[200] += 1
    await app.streams.serve(record.run_id, after, lambda: _status(app, record), receive, send)
    return True


def _record_of(app: ServeApp, run_id: str) -> RunRecord:
    from ._http import RunRecord

    entry = app.journal.get(run_id)
    assert entry is not None
    return RunRecord.from_entry(entry)


def _status(app: ServeApp, record: RunRecord) -> str:
    live = app.runs.get(record.run_id)
    return (live if live is not None else record).status


def _method(scope: HTTPScope, allowed: str) -> None:
    from ._http import HttpError

    if scope["method"] != allowed:
        raise HttpError(405, f"use {allowed}", [(b"allow", allowed.encode())])


def load_paused(app: ServeApp) -> None:
    """At start: the runs the journal has paused, in memory as ``interrupted`` (they wait for a resume)."""
    from ._http import RunRecord

    for run_id, (key, payload) in app.journal.interrupted().items():
        entry = app.journal.get(run_id)
        if entry is not None:
            app.runs[run_id] = record = RunRecord.from_entry(entry)
            record.pause(key, payload)


async def resume_run(app: ServeApp, scope: HTTPScope, receive: ASGIReceiveCallable,
                     run_id: str) -> tuple[int, Any, _Headers]:
    """``POST /v1/runs/{id}/resume``: journal the value under the interrupt's call key and re-run."""
    from ._http import HttpError

    record = app.runs.get(run_id)
    if record is None:
        raise HttpError(404, f"no run {run_id!r}")
    body = await app._read_json(dict(scope["headers"]), receive)
    if not isinstance(body, dict) or set(body) != {"value"}:
        raise HttpError(422, 'the body must be {"value": ...}: the value nalarc.interrupt() returns')
    if record.status != "interrupted" or record.interrupt_key is None:  # checked after the body: no await after
        raise HttpError(409, f"run {run_id!r} is {record.status}, not interrupted")
    retry = [(b"retry-after", str(app.retry_after).encode())]
    if app.draining:
        raise HttpError(503, "the server is shutting down; resume the run after its restart", retry)
    if app.admitted >= app.max_queue:
        raise HttpError(429, f"{app.admitted} requests in flight (limit {app.max_queue}); retry later", retry)
    entry = app.journal.get(run_id)
    assert entry is not None
    key = record.interrupt_key
    try:
        app.journal.resume(run_id, key, body["value"])
        app.streams.append(run_id, "resumed", dumps({"value": body["value"]}))
    except sqlite3.Error as exc:
        raise HttpError(503, f"cannot journal the resume: {exc}", retry) from None
    record.reopen()
    app.admitted += 1
    app.nursery.start_soon(app._execute, record, entry.inputs, True, key)
    return 202, {"run_id": run_id, "status": record.status}, []
