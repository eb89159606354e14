"""``nalarc run --serve``: a small hand-written ASGI app on hypercorn (trio).

Endpoints (JSON in, JSON out):

``POST /v1/workflows/{name}``
    The body is a JSON object: exactly the workflow's keyword arguments, nothing
    else (a ``"session"`` key is an argument called ``session``).  The session id
    comes from the ``X-Nalarc-Session`` header (default ``"default"``).  Answers
    ``200 {"result": ...}``.  With ``?async=1`` it answers ``202 {"run_id": ...}``
    at once and the run goes on in the background.
``GET /v1/runs/{id}``
    ``{"run_id", "workflow", "session", "status": "pending" | "done" | "failed"}``
    plus ``"result"`` when done, or ``"error"`` / ``"message"`` / ``"traceback"``
    when failed.
``GET /healthz``, ``GET /metrics`` (Prometheus text), ``GET /v1/status``.

Errors are ``{"error": "..."}``: 400 bad JSON or header, 404 unknown workflow,
run or path, 405 wrong method, 413 body over the limit, 415 not JSON, 422
arguments that do not bind, 429 (with ``Retry-After``) when ``max_queue``
requests are already admitted.  A workflow that raises gives 500 with
``{"error": type name, "message": ..., "traceback": ...}``.

Admission: every admitted request (synchronous, or an async run not finished
yet) counts until its workflow returns; its component calls wait in the
instances' queues meanwhile.  Past ``max_queue`` admitted requests, new ones
are refused rather than queued without bound.
"""

from __future__ import annotations

import json
import time
import traceback
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import hypercorn.trio
import trio
from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGIReceiveEvent, ASGISendCallable, HTTPScope, Scope

from .._errors import NalarcError
from ..executor import LoadedApp, Service, bind_inputs

#: Largest request body accepted (bytes).
MAX_BODY = 1024 * 1024
#: Header carrying the session id of a request.
SESSION_HEADER = b"x-nalarc-session"
#: Finished async runs kept for ``GET /v1/runs/{id}`` (oldest dropped first).
MAX_FINISHED_RUNS = 10_000

_JSON = b"application/json"
_PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"


class HttpError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None,
                 body: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or []
        self.body = body if body is not None else {"error": message}


@dataclass
class RunRecord:
    """One asynchronous run, as ``GET /v1/runs/{id}`` reports it."""

    run_id: str
    workflow: str
    session: str
    status: str = "pending"
    result: Any = None
    error: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run_id": self.run_id, "workflow": self.workflow,
                               "session": self.session, "status": self.status}
        if self.status == "done":
            out["result"] = self.result
        elif self.error is not None:
            out.update(self.error)
        return out


def error_body(exc: BaseException) -> dict[str, str]:
    """How a workflow's exception is reported: type name, message, traceback."""
    return {"error": type(exc).__name__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc))}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class ServeApp:
    """The ASGI application: routing, validation, admission, metrics.

    Background (``?async=1``) runs are started in ``nursery``, which must
    outlive the HTTP server.
    """

    def __init__(self, app: LoadedApp, service: Service, nursery: trio.Nursery, *,
                 max_queue: int = 1024, max_body: int = MAX_BODY, retry_after: int = 1) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.app, self.service, self.nursery = app, service, nursery
        self.max_queue, self.max_body, self.retry_after = max_queue, max_body, retry_after
        #: Admitted requests whose workflow has not returned yet.
        self.admitted = 0
        self.requests: Counter[tuple[str, str]] = Counter()
        self.responses: Counter[int] = Counter()
        self.runs: dict[str, RunRecord] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self.started = time.time()

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
            status, body, content_type, headers = await self._handle(scope, tracked_receive)
        except HttpError as exc:
            status, body, content_type, headers = exc.status, _dumps(exc.body), _JSON, exc.headers
        if not body_read:  # answered before reading the body: the connection cannot be reused
            headers = [*headers, (b"connection", b"close")]
        self.responses[status] += 1
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _handle(self, scope: HTTPScope, receive: ASGIReceiveCallable) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        """Route one request; returns (status, body, content type, extra headers)."""
        method, path = scope["method"], scope["path"]
        parts = path.strip("/").split("/")
        routes: list[tuple[bool, str, Callable[[], Awaitable[tuple[int, Any]]]]] = [
            (path == "/healthz", "GET", self._healthz),
            (path == "/v1/status", "GET", self._status),
            (len(parts) == 3 and parts[:2] == ["v1", "runs"], "GET", lambda: self._get_run(parts[2])),
            (len(parts) == 3 and parts[:2] == ["v1", "workflows"], "POST",
             lambda: self._post_workflow(scope, receive, parts[2])),
        ]
        if path == "/metrics":
            if method != "GET":
                raise HttpError(405, "use GET", [(b"allow", b"GET")])
            return 200, self.metrics().encode(), _PROMETHEUS, []
        for matches, allowed, handler in routes:
            if matches:
                if method != allowed:
                    raise HttpError(405, f"use {allowed}", [(b"allow", allowed.encode())])
                status, value = await handler()
                headers = [(b"location", f"/v1/runs/{value['run_id']}".encode())] if status == 202 else []
                return status, _dumps(value), _JSON, headers
        raise HttpError(404, f"no endpoint {path}")

    # -- endpoints ---------------------------------------------------------------

    async def _healthz(self) -> tuple[int, Any]:
        return 200, {"status": "ok"}

    async def _get_run(self, run_id: str) -> tuple[int, Any]:
        record = self.runs.get(run_id)
        if record is None:
            raise HttpError(404, f"no run {run_id!r} (finished runs are kept up to {MAX_FINISHED_RUNS})")
        return 200, record.to_json()

    async def _post_workflow(self, scope: HTTPScope, receive: ASGIReceiveCallable, name: str) -> tuple[int, Any]:
        headers = dict(scope["headers"])
        if name not in self.app.workflows:
            raise HttpError(404, f"no workflow {name!r}; the app has: {', '.join(sorted(self.app.workflows)) or 'none'}")
        run_async = self._async_flag(scope["query_string"])
        session = self._session(headers)
        inputs = await self._read_json(headers, receive)
        try:
            if not isinstance(inputs, dict):
                raise TypeError("the body must be a JSON object of the workflow's keyword arguments")
            bind_inputs(name, self.app.workflows[name], inputs)
        except (TypeError, NalarcError) as exc:
            self.requests[name, "invalid"] += 1
            raise HttpError(422, str(exc)) from None
        if self.admitted >= self.max_queue:
            self.requests[name, "rejected"] += 1
            raise HttpError(429, f"{self.admitted} requests in flight (limit {self.max_queue}); retry later",
                            [(b"retry-after", str(self.retry_after).encode())])
        if run_async:
            record = RunRecord(uuid.uuid4().hex, name, session)
            self.runs[record.run_id] = record
            self.admitted += 1
            self.nursery.start_soon(self._background, record, inputs)
            return 202, {"run_id": record.run_id, "status": record.status}
        self.admitted += 1
        try:
            ok, value = await self._run(name, inputs, session)
        finally:
            self.admitted -= 1
        if not ok:
            raise HttpError(500, value["error"], body=value)
        return 200, {"result": value}

    async def _background(self, record: RunRecord, inputs: dict[str, Any]) -> None:
        try:
            ok, value = await self._run(record.workflow, inputs, record.session)
        finally:
            self.admitted -= 1
        record.status = "done" if ok else "failed"
        if ok:
            record.result = value
        else:
            record.error = value
        self._finished[record.run_id] = None
        while len(self._finished) > MAX_FINISHED_RUNS:
            old, _ = self._finished.popitem(last=False)
            self.runs.pop(old, None)

    async def _run(self, name: str, inputs: dict[str, Any], session: str) -> tuple[bool, Any]:
        """Run the workflow; (True, JSON-able result) or (False, error body)."""
        try:
            result = await self.service.run(name, inputs, session)
        except Exception as exc:  # noqa: BLE001 - reported to the client
            self.requests[name, "error"] += 1
            return False, error_body(exc)
        try:
            _dumps(result)
        except (TypeError, ValueError) as exc:
            self.requests[name, "error"] += 1
            return False, error_body(TypeError(f"the workflow's result is not JSON-serializable: {exc}"))
        self.requests[name, "ok"] += 1
        return True, result

    async def _status(self) -> tuple[int, Any]:
        status = self.service.status()
        out: dict[str, Any] = {
            "backend": status["backend"],
            "workflows": sorted(self.app.workflows),
            "admitted": self.admitted,
            "max_queue": self.max_queue,
            "uptime_seconds": round(time.time() - self.started, 3),
            "workers": status["workers"],
            "instances": status["instances"],
        }
        return 200, out

    def metrics(self) -> str:
        """The Prometheus text exposition of the server and its instances."""
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
            for labels, value in samples:
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                number = str(int(value)) if float(value).is_integer() else repr(float(value))
                lines.append(f"{name}{{{text}}} {number}" if text else f"{name} {number}")

        family("nalarc_requests_total", "counter", "Workflow requests by outcome (ok, error, invalid, rejected).",
               [({"workflow": w, "outcome": o}, n) for (w, o), n in sorted(self.requests.items())])
        family("nalarc_http_responses_total", "counter", "HTTP responses by status code.",
               [({"code": str(c)}, n) for c, n in sorted(self.responses.items())])
        family("nalarc_requests_in_flight", "gauge", "Admitted requests whose workflow has not returned.",
               [({}, self.admitted)])
        family("nalarc_requests_limit", "gauge", "Admitted requests allowed before 429.", [({}, self.max_queue)])
        status = self.service.status()
        if status["workers"]:
            family("nalarc_worker_alive", "gauge", "1 if the worker (process or Ray actor) is alive.",
                   [({"worker": w["id"], "pid": str(w["pid"])}, float(w["alive"])) for w in status["workers"]])
            for name, kind, help_text, key in [
                ("nalarc_instance_queue_length", "gauge", "Calls waiting in the instance's queue.", "queue_length"),
                ("nalarc_instance_running", "gauge", "Calls the instance is running.", "running"),
                ("nalarc_instance_completed_total", "counter", "Calls the instance finished.", "completed"),
                ("nalarc_instance_busy_seconds_total", "counter", "Seconds spent running calls.", "busy_seconds"),
            ]:
                family(name, kind, help_text, [
                    ({"instance": c["id"], "component": c["component"], "worker": c["worker"]}, float(c[key]))
                    for c in status["instances"]])
        return "\n".join(lines) + "\n"

    # -- request parsing ----------------------------------------------------------

    def _async_flag(self, query_string: bytes) -> bool:
        values = parse_qs(query_string.decode("latin-1"), keep_blank_values=True).get("async", ["0"])
        value = values[-1].lower()
        if value in ("1", "true", "yes"):
            return True
        if value in ("0", "false", "no", ""):
            return False
        raise HttpError(400, f"async must be 1 or 0, got {value!r}")

    def _session(self, headers: dict[bytes, bytes]) -> str:
        raw = headers.get(SESSION_HEADER)
        if raw is None:
            return "default"
        try:
            session = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "X-Nalarc-Session must be UTF-8") from None
        if not session or len(session) > 256 or not session.isprintable():
            raise HttpError(400, "X-Nalarc-Session must be 1-256 printable characters")
        return session

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
            value = json.loads(b"".join(chunks), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the body is not valid JSON: {exc}") from None
        return value


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def serve(
    app: LoadedApp,
    service: Service,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_queue: int = 1024,
    max_body: int = MAX_BODY,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``service`` over HTTP until cancelled or ``shutdown_trigger`` returns.

    ``task_status.started`` gets the bound URLs (``["http://127.0.0.1:PORT"]``),
    so ``port=0`` picks a free port.  Unfinished async runs are cancelled when
    the server stops.
    """
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.backlog = 4096
    config.accesslog = None
    config.loglevel = "WARNING"  # errors in the app still reach stderr; the caller announces the URL
    async with trio.open_nursery() as nursery:
        asgi = ServeApp(app, service, nursery, max_queue=max_queue, max_body=max_body)
        await hypercorn.trio.serve(asgi, config, shutdown_trigger=shutdown_trigger,
                                   task_status=task_status, mode="asgi")
        nursery.cancel_scope.cancel()
