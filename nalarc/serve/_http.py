"""``nalarc run --serve``: a small hand-written ASGI app on hypercorn (trio).

Endpoints (JSON in, JSON out):

``POST /v1/workflows/{name}``
    The body is a JSON object: exactly the workflow's keyword arguments, nothing
    else (a ``"session"`` key is an argument called ``session``).  The session id
    comes from the ``X-Nalarc-Session`` header (default ``"default"``).  Answers
    ``200 {"result": ...}`` (and the run id in ``X-Nalarc-Run-Id``).  With
    ``?async=1`` it answers ``202 {"run_id": ...}`` at once and the run goes on
    in the background.  An ``Idempotency-Key`` header makes a retry safe: the
    same key with the same workflow, session and body gets the first request's
    answer (waiting for it if it is still running) and runs nothing; the same
    key with another request is a 422.
``GET /v1/runs/{id}``
    ``{"run_id", "workflow", "session", "status": "pending" | "done" | "failed" | "interrupted"}``
    plus ``"result"`` when done, ``"error"`` / ``"message"`` / ``"traceback"``
    when failed, ``"interrupt"`` (the payload) when paused by ``nalarc.interrupt``.
``POST /v1/workflows/{name}/stream``, ``GET /v1/runs/{id}/events``, ``POST /v1/runs/{id}/resume``
    Event streams (SSE) and resuming paused runs: ``_stream``.
``GET /healthz``, ``GET /metrics`` (Prometheus text), ``GET /v1/status``.

Errors are ``{"error": "..."}``: 400 bad JSON or header, 404 unknown workflow,
run or path, 405 wrong method, 413 body over the limit, 415 not JSON, 422
arguments that do not bind, 429 (with ``Retry-After``) when ``max_queue``
requests are already admitted, 503 (with ``Retry-After``) while draining.  A
workflow that raises gives 500 with ``{"error": type name, "message": ...,
"traceback": ...}``.

Durability (docs/durability.md): every accepted request is in the
:class:`~nalarc.serve._journal.Journal` before it is acknowledged, and its outcome
before the final answer; a server started on a journal resumes the requests left
unfinished.  On the shutdown trigger the server drains: it stops admitting, lets
the admitted requests finish for up to ``drain_timeout`` seconds, then stops;
what did not finish stays journaled for the next start.

Admission: every admitted request (synchronous, or an async run not finished
yet) counts until its workflow returns; its component calls wait in the
instances' queues meanwhile.  Past ``max_queue`` admitted requests, new ones
are refused rather than queued without bound.
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
import time
import traceback
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import hypercorn.trio
import trio
from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGIReceiveEvent, ASGISendCallable, HTTPScope, Scope

from .. import _events
from .._errors import NalarcError, PoisonRequest
from ..executor import LoadedApp, Service, bind_inputs
from ._journal import Entry, Journal, canonical_json
from ._metrics import ServeMetrics
from ._stream import EventStreams, interrupt_in, load_paused, resume_run, stream_endpoint

#: Largest request body accepted (bytes).
MAX_BODY = 1024 * 1024
#: Header carrying the session id of a request.
SESSION_HEADER = b"x-nalarc-session"
#: Header making a POST safe to retry.
IDEMPOTENCY_HEADER = b"idempotency-key"
#: Longest idempotency key (Stripe's limit).
MAX_KEY_LENGTH = 255
#: Seconds the server keeps answering after the shutdown trigger, for admitted requests.
DRAIN_TIMEOUT = 30.0
#: Seconds between prunes of finished runs (journal and memory).
PRUNE_INTERVAL = 60.0

_JSON = b"application/json"
_PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"
_Headers = list[tuple[bytes, bytes]]


class HttpError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: _Headers | None = None,
                 body: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or []
        self.body = body if body is not None else {"error": message}


@dataclass
class RunRecord:
    """One request, as ``GET /v1/runs/{id}`` reports it."""

    run_id: str
    workflow: str
    session: str
    status: str = "pending"
    result: Any = None
    error: dict[str, str] | None = None
    #: Canonical JSON of the inputs: what an idempotent retry must match.
    inputs_json: str = ""
    idempotency_key: str | None = None
    finished_at: float | None = None
    #: Paused by ``nalarc.interrupt``: its payload and call key.
    interrupt: Any = None
    interrupt_key: str | None = None
    finished: trio.Event = field(default_factory=trio.Event, repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run_id": self.run_id, "workflow": self.workflow,
                               "session": self.session, "status": self.status}
        if self.status == "done":
            out["result"] = self.result
        elif self.status == "interrupted":
            out["interrupt"] = self.interrupt
        elif self.error is not None:
            out.update(self.error)
        return out

    def pause(self, key: str, payload: Any) -> None:
        self.status, self.interrupt_key, self.interrupt = "interrupted", key, payload
        self.finished.set()

    def reopen(self) -> None:
        """Resumed after an interrupt: pending again, with a new ``finished``."""
        self.status, self.interrupt_key, self.interrupt = "pending", None, None
        self.finished = trio.Event()

    def settle(self, ok: bool, value: Any, now: float) -> None:
        self.status, self.finished_at = ("done" if ok else "failed"), now
        if ok:
            self.result = value
        else:
            self.error = value
        self.finished.set()

    @classmethod
    def from_entry(cls, entry: Entry) -> RunRecord:
        record = cls(entry.run_id, entry.workflow, entry.session, inputs_json=canonical_json(entry.inputs),
                     idempotency_key=entry.idempotency_key)
        if entry.status != "accepted":
            record.settle(entry.status == "done", entry.outcome, entry.finished_at or entry.accepted_at)
        return record


def error_body(exc: BaseException) -> dict[str, str]:
    """How a workflow's exception is reported: type name, message, traceback."""
    return {"error": type(exc).__name__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc))}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf, which JSON cannot carry back
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


class ServeApp:
    """The ASGI application: routing, validation, admission, journaling, metrics.

    Every run (synchronous or ``?async=1``) is started in ``nursery``, which must
    outlive the HTTP server; a synchronous request waits for its run's outcome.
    Without a ``journal`` the requests are journaled in memory (idempotency keys
    work, nothing survives the process).
    """

    def __init__(self, app: LoadedApp, service: Service, nursery: trio.Nursery, *,
                 max_queue: int = 1024, max_body: int = MAX_BODY, retry_after: int = 1,
                 journal: Journal | None = None) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.app, self.service, self.nursery = app, service, nursery
        self.max_queue, self.max_body, self.retry_after = max_queue, max_body, retry_after
        self.journal = journal if journal is not None else Journal(None)
        self.streams = EventStreams(self.journal)
        #: Admitted requests whose workflow has not returned yet.
        self.admitted = 0
        #: Set by :meth:`start_draining`: new requests get 503.
        self.draining = False
        self.requests: Counter[tuple[str, str]] = Counter()
        self.responses: Counter[int] = Counter()
        self.resumed = 0
        #: Unfinished requests failed at start instead of resumed (:meth:`resume_unfinished`).
        self.poisoned = 0
        self.replayed = 0
        self.runs: dict[str, RunRecord] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self.started = time.time()
        self.telemetry = ServeMetrics(self)

    # -- lifecycle -----------------------------------------------------------------

    def resume_unfinished(self) -> int:
        """Re-run every journaled request without an outcome, under its run id; how many.

        A request that already had ``journal.max_attempts`` runs end in a crash is not run
        again: it fails with :class:`~nalarc.PoisonRequest` (else it would crash every start).
        """
        resumed = 0
        for entry in self.journal.unfinished():
            if entry.attempts >= self.journal.max_attempts:
                self.poisoned += 1
                error = PoisonRequest(f"run {entry.run_id} was started {entry.attempts} time(s) and each run ended "
                                      f"in a crash of the server; it is not resumed again")
                body = error_body(error)
                self.journal.finish(entry.run_id, "failed", body)
                record = RunRecord.from_entry(entry)
                record.settle(False, body, time.time())
                self.streams.outcome(record)  # a client following its events gets the error
                continue
            self.journal.count_resume(entry.run_id)
            record = RunRecord.from_entry(entry)
            self.runs[record.run_id] = record
            self.admitted += 1
            self.resumed += 1
            self.streams.append(record.run_id, "resumed", '{"restart":true}')
            self.nursery.start_soon(self._execute, record, entry.inputs, True)
            resumed += 1
        load_paused(self)
        return resumed

    def start_draining(self) -> None:
        self.draining = True

    async def wait_idle(self) -> None:
        """Return once no admitted request is running."""
        while self.admitted:
            await trio.sleep(0.02)

    def prune(self) -> int:
        """Forget finished runs past the journal's retention or count, on disk and in memory."""
        pruned = self.journal.prune()
        self._trim_memory()
        return pruned

    def _trim_memory(self) -> None:
        cutoff = time.time() - self.journal.retention
        while self._finished:
            oldest = self.runs.get(next(iter(self._finished)))
            too_old = oldest is None or (oldest.finished_at or 0.0) < cutoff
            if not too_old and len(self._finished) <= self.journal.max_runs:
                break
            run_id, _ = self._finished.popitem(last=False)
            self.runs.pop(run_id, None)

    async def prune_periodically(self, interval: float = PRUNE_INTERVAL) -> None:
        while True:
            await trio.sleep(interval)
            self.prune()

    # -- ASGI ----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return  # websockets: hypercorn closes the connection
        request_headers = dict(scope["headers"])
        body_read = b"transfer-encoding" not in request_headers and request_headers.get(b"content-length", b"0") == b"0"

        async def tracked_receive() -> ASGIReceiveEvent:
            nonlocal body_read
            event = await receive()
            body_read = body_read or (event["type"] == "http.request" and not event["more_body"])
            return event

        try:
            if await stream_endpoint(self, scope, tracked_receive, send):
                return
            status, body, content_type, headers = await self._handle(scope, tracked_receive)
        except HttpError as exc:
            status, body, content_type, headers = exc.status, _dumps(exc.body), _JSON, exc.headers
        if not body_read:  # answered before reading the body: the connection cannot be reused
            headers = [*headers, (b"connection", b"close")]
        self.responses[status] += 1
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _handle(self, scope: HTTPScope, receive: ASGIReceiveCallable) -> tuple[int, bytes, bytes, _Headers]:
        """Route one request; returns (status, body, content type, extra headers)."""
        method, path = scope["method"], scope["path"]
        parts = path.strip("/").split("/")
        routes: list[tuple[bool, str, Callable[[], Awaitable[tuple[int, Any, _Headers]]]]] = [
            (path == "/healthz", "GET", lambda: _no_headers(self._healthz())),
            (path == "/v1/status", "GET", lambda: _no_headers(self._status())),
            (len(parts) == 3 and parts[:2] == ["v1", "runs"], "GET", lambda: _no_headers(self._get_run(parts[2]))),
            (len(parts) == 3 and parts[:2] == ["v1", "workflows"], "POST",
             lambda: self._post_workflow(scope, receive, parts[2])),
            (len(parts) == 4 and parts[:2] == ["v1", "runs"] and parts[3] == "resume", "POST",
             lambda: resume_run(self, scope, receive, parts[2])),
        ]
        if path == "/metrics":
            if method != "GET":
                raise HttpError(405, "use GET", [(b"allow", b"GET")])
            return 200, self.metrics().encode(), _PROMETHEUS, []
        for matches, allowed, handler in routes:
            if matches:
                if method != allowed:
                    raise HttpError(405, f"use {allowed}", [(b"allow", allowed.encode())])
                status, value, headers = await handler()
                if status == 202:
                    headers = [(b"location", f"/v1/runs/{value['run_id']}".encode()), *headers]
                return status, _dumps(value), _JSON, headers
        raise HttpError(404, f"no endpoint {path}")

    # -- endpoints ---------------------------------------------------------------

    async def _healthz(self) -> tuple[int, Any]:
        if self.draining:  # load balancers take 503 as "send no more here"
            return 503, {"status": "draining", "admitted": self.admitted}
        return 200, {"status": "ok"}

    async def _get_run(self, run_id: str) -> tuple[int, Any]:
        record = self.runs.get(run_id)
        if record is None:
            entry = self.journal.get(run_id)
            if entry is None:
                raise HttpError(404, f"no run {run_id!r} (finished runs are kept up to {self.journal.max_runs}, "
                                     f"for {self.journal.retention:g} s)")
            record = RunRecord.from_entry(entry)
        return 200, record.to_json()

    async def _post_workflow(self, scope: HTTPScope, receive: ASGIReceiveCallable,
                             name: str) -> tuple[int, Any, _Headers]:
        run_async = self._async_flag(scope["query_string"])
        record, headers = await self.admit(scope, receive, name)
        if run_async:
            return 202, {"run_id": record.run_id, "status": record.status}, headers
        return await self._answer(record, headers)

    async def admit(self, scope: HTTPScope, receive: ASGIReceiveCallable, name: str) -> tuple[RunRecord, _Headers]:
        """Admit a workflow request and start it; or, for a retry with its Idempotency-Key, the first
        request (and the ``Idempotent-Replayed`` header)."""
        headers = dict(scope["headers"])
        if self.draining:
            raise HttpError(503, "the server is shutting down; retry on another instance or later",
                            [(b"retry-after", str(self.retry_after).encode())])
        if name not in self.app.workflows:
            raise HttpError(404, f"no workflow {name!r}; the app has: {', '.join(sorted(self.app.workflows)) or 'none'}")
        session = self._text_header(headers, SESSION_HEADER, "X-Nalarc-Session", 256) or "default"
        key = self._text_header(headers, IDEMPOTENCY_HEADER, "Idempotency-Key", MAX_KEY_LENGTH)
        inputs = await self._read_json(headers, receive)
        try:
            if not isinstance(inputs, dict):
                raise TypeError("the body must be a JSON object of the workflow's keyword arguments")
            bind_inputs(name, self.app.workflows[name], inputs)
        except (TypeError, NalarcError) as exc:
            self.requests[name, "invalid"] += 1
            raise HttpError(422, str(exc)) from None
        try:
            inputs_json = canonical_json(inputs)
        except RecursionError:  # parsed just under the limit, but a few frames deeper it does not fit
            raise HttpError(400, "the body is nested too deeply") from None
        if key is not None and (first := self._first_with_key(key)) is not None:
            return first, self._replay(first, name, session, inputs_json)
        if self.admitted >= self.max_queue:
            self.requests[name, "rejected"] += 1
            raise HttpError(429, f"{self.admitted} requests in flight (limit {self.max_queue}); retry later",
                            [(b"retry-after", str(self.retry_after).encode())])
        record = RunRecord(uuid.uuid4().hex, name, session, inputs_json=inputs_json, idempotency_key=key)
        try:  # durable before anyone is told it was accepted
            self.journal.accept(record.run_id, name, inputs, session, key)
        except sqlite3.Error as exc:
            raise HttpError(503, f"cannot journal the request: {exc}",
                            [(b"retry-after", str(self.retry_after).encode())]) from None
        self.runs[record.run_id] = record
        self.admitted += 1
        self.nursery.start_soon(self._execute, record, inputs)
        return record, []

    def _first_with_key(self, key: str) -> RunRecord | None:
        """The request that first used ``key``: live in memory, else from the journal."""
        entry = self.journal.by_key(key)
        if entry is None:
            return None
        return self.runs.get(entry.run_id) or RunRecord.from_entry(entry)

    def _replay(self, first: RunRecord, name: str, session: str, inputs_json: str) -> _Headers:
        """A retry gets the first request's answer; another request under the key is a 422."""
        if (first.workflow, first.session, first.inputs_json) != (name, session, inputs_json):
            self.requests[name, "invalid"] += 1
            raise HttpError(422, "this Idempotency-Key was used by another request (workflow, session or body "
                                 "differ); use a new key for a new request")
        self.replayed += 1
        return [(b"idempotent-replayed", b"true")]

    async def _answer(self, record: RunRecord, headers: _Headers) -> tuple[int, Any, _Headers]:
        """The synchronous answer: wait for the run's (journaled) outcome."""
        await record.finished.wait()
        headers = [(b"x-nalarc-run-id", record.run_id.encode()), *headers]
        if record.status == "interrupted":
            return 202, {"run_id": record.run_id, "status": record.status, "interrupt": record.interrupt}, headers
        if record.status != "done":
            assert record.error is not None
            raise HttpError(500, record.error["error"], headers, body=record.error)
        return 200, {"result": record.result}, headers

    async def _execute(self, record: RunRecord, inputs: dict[str, Any], resumed: bool = False,
                       mute_until: str | None = None) -> None:
        """Run an admitted request and journal its outcome (or its pause).  Cancelled (shutdown): stays ``accepted``.

        Its calls are journaled under its run id (call-level replay): a resumed
        request replays the calls that completed before.  ``mute_until``: resumed from
        the interrupt with this call key (its events up to there were sent already).
        """
        try:
            if record.workflow in self.app.workflows:
                status, value = await self._run(record.workflow, inputs, record.session, record.run_id, resumed,
                                                mute_until)
            else:  # resumed after the app changed
                status, value = "failed", error_body(NalarcError(f"workflow {record.workflow!r} is not in the app any more"))
            try:
                if status == "interrupted":
                    self.journal.pause(record.run_id, *value)
                else:
                    self.journal.finish(record.run_id, "done" if status == "done" else "failed", value)
            except sqlite3.Error as exc:  # the row stays accepted: the next start runs it again
                print(f"nalarc: cannot journal the outcome of run {record.run_id}: {exc}", file=sys.stderr)
        except trio.Cancelled:
            if self.draining:  # stopped by a graceful shutdown, not crashed: not a poison attempt
                self.journal.uncount_attempt(record.run_id)
            raise
        finally:
            self.admitted -= 1
        if status == "interrupted":
            record.pause(*value)
        else:
            record.settle(status == "done", value, time.time())
            self._finished[record.run_id] = None
        self.streams.outcome(record)
        if len(self._finished) > self.journal.max_runs:
            self._trim_memory()  # the journal itself is pruned periodically: a prune per request costs O(max_runs)

    async def _run(self, name: str, inputs: dict[str, Any], session: str, run_id: str,
                   resumed: bool, mute_until: str | None) -> tuple[str, Any]:
        """Run the workflow; ("done", JSON-able result), ("failed", error body) or
        ("interrupted", (call key, payload))."""
        # An in-memory journal dies with the process: journaling calls there buys nothing.
        journal = self.journal if self.journal.path is not None else None
        started = time.perf_counter()
        status, value = await self._outcome(name, inputs, session, run_id, journal, resumed, mute_until)
        outcome = {"done": "ok", "failed": "error"}.get(status, status)
        self.requests[name, outcome] += 1
        self.telemetry.observe_request(name, outcome, time.perf_counter() - started)
        return status, value

    async def _outcome(self, name: str, inputs: dict[str, Any], session: str, run_id: str,
                       journal: Journal | None, resumed: bool, mute_until: str | None) -> tuple[str, Any]:
        try:
            with _events.bind(run_id, self.streams.channel(run_id, journal is not None, mute_until)):
                result = await self.service.run(name, inputs, session, request_id=run_id, journal=journal,
                                                resumed=resumed)
        except Exception as exc:  # noqa: BLE001 - reported to the client
            paused = interrupt_in(exc)
            if paused is not None:
                return "interrupted", (paused.key, paused.payload)
            return "failed", error_body(exc)
        try:
            _dumps(result)
        except (TypeError, ValueError, RecursionError) as exc:
            return "failed", error_body(TypeError(f"the workflow's result is not JSON-serializable: {exc}"))
        return "done", result

    async def _status(self) -> tuple[int, Any]:
        status = self.service.status()
        out: dict[str, Any] = {
            "backend": status["backend"],
            "workflows": sorted(self.app.workflows),
            "admitted": self.admitted,
            "max_queue": self.max_queue,
            "draining": self.draining,
            "uptime_seconds": round(time.time() - self.started, 3),
            "journal": {"path": str(self.journal.path) if self.journal.path else None,
                        "requests": self.journal.counts(), "resumed_at_start": self.resumed,
                        "poisoned_at_start": self.poisoned, "max_attempts": self.journal.max_attempts,
                        "runs_in_memory": len(self.runs), "calls": dict(self.service.calls)},
            "workers": status["workers"],
            "instances": status["instances"],
        }
        return 200, out

    def metrics(self) -> str:
        """The Prometheus text exposition of the server and its instances (``_metrics``)."""
        return self.telemetry.exposition().decode()

    # -- request parsing ----------------------------------------------------------

    def _async_flag(self, query_string: bytes) -> bool:
        values = parse_qs(query_string.decode("latin-1"), keep_blank_values=True).get("async", ["0"])
        value = values[-1].lower()
        if value in ("1", "true", "yes"):
            return True
        if value in ("0", "false", "no", ""):
            return False
        raise HttpError(400, f"async must be 1 or 0, got {value!r}")

    def _text_header(self, headers: dict[bytes, bytes], header: bytes, title: str, limit: int) -> str | None:
        """A header that must be 1-``limit`` printable UTF-8 characters, or None when absent."""
        raw = headers.get(header)
        if raw is None:
            return None
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, f"{title} must be UTF-8") from None
        if not value or len(value) > limit or not value.isprintable():
            raise HttpError(400, f"{title} must be 1-{limit} printable characters")
        return value

    async def _read_json(self, headers: dict[bytes, bytes], receive: ASGIReceiveCallable) -> Any:
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type != _JSON:
            raise HttpError(415, "send the arguments as Content-Type: application/json")
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise HttpError(413, f"the body is over {self.max_body} bytes")
        chunks, size = [], 0
        while True:
            event = await receive()
            if event["type"] != "http.request":
                raise HttpError(400, "the client went away")
            chunks.append(event["body"])
            size += len(event["body"])
            if size > self.max_body:
                raise HttpError(413, f"the body is over {self.max_body} bytes")
            if not event["more_body"]:
                break
        try:
            value = json.loads(b"".join(chunks), parse_constant=_reject_constant, parse_float=_finite_float)
        except (ValueError, UnicodeDecodeError) as exc:  # also ints past Python's 4,300-digit limit
            raise HttpError(400, f"the body is not valid JSON: {exc}") from None
        except RecursionError:  # json's decoder recurses per nesting level ('[' * 100_000)
            raise HttpError(400, "the body is nested too deeply") from None
        return value


async def _no_headers(answer: Awaitable[tuple[int, Any]]) -> tuple[int, Any, _Headers]:
    status, value = await answer
    return status, value, []


async def serve(
    app: LoadedApp,
    service: Service,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_queue: int = 1024,
    max_body: int = MAX_BODY,
    journal: Journal | None = None,
    drain_timeout: float = DRAIN_TIMEOUT,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``service`` over HTTP until cancelled or ``shutdown_trigger`` returns, then drain.

    Requests left unfinished in ``journal`` (by a server that was killed or did
    not drain in time) are resumed first.  When ``shutdown_trigger`` returns the
    server drains: POSTs get 503, ``/healthz`` says ``draining``, admitted
    requests get up to ``drain_timeout`` seconds to finish; then it stops and
    the runs still going are cancelled, staying ``accepted`` in the journal.

    ``task_status.started`` gets the bound URLs (``["http://127.0.0.1:PORT"]``),
    so ``port=0`` picks a free port.  The caller owns ``journal`` (None: one in
    memory).
    """
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.backlog = 4096
    config.accesslog = None
    config.loglevel = "WARNING"  # errors in the app still reach stderr; the caller announces the URL
    own_journal = journal is None
    journal = Journal(None) if journal is None else journal
    try:
        async with trio.open_nursery() as nursery:
            asgi = ServeApp(app, service, nursery, max_queue=max_queue, max_body=max_body, journal=journal)
            asgi.prune()
            asgi.resume_unfinished()
            nursery.start_soon(asgi.prune_periodically)
            trigger = None if shutdown_trigger is None else _draining(asgi, shutdown_trigger, drain_timeout)
            await hypercorn.trio.serve(asgi, config, shutdown_trigger=trigger, task_status=task_status, mode="asgi")
            nursery.cancel_scope.cancel()
    finally:
        if own_journal:
            journal.close()


def _draining(asgi: ServeApp, shutdown_trigger: Callable[[], Awaitable[None]],
              drain_timeout: float) -> Callable[[], Awaitable[None]]:
    """hypercorn's trigger: returns once the server has drained, or at the deadline."""

    async def drained() -> None:
        await shutdown_trigger()
        asgi.start_draining()
        with trio.move_on_after(drain_timeout):
            await asgi.wait_idle()

    return drained
