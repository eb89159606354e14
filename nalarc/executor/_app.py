"""Load a build directory (or build an app file first) and run its workflows."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from .._builddir import LoadedApp as LoadedApp
from .._builddir import load_build as load_build
from .._errors import NalarcError
from ..runtime.lowlevel import CallJournal, RequestJournal
from ._local import InProcessBackend, run_request
from ._backend import ControlledBackend
from ._flow import FlowLimiter, installed
from ._process import Placement, ProcessBackend, app_components
from ._ray import RayBackend
from ._statestore import StateStore


def bind_inputs(name: str, fn: Any, inputs: dict[str, Any]) -> None:
    """Check ``inputs`` against the workflow's parameters, with a clear error."""
    try:
        inspect.signature(fn).bind(**inputs)
    except TypeError as exc:
        raise NalarcError(f"workflow {name!r}: {exc}") from None


#: One request: (workflow name or None, arguments, session id).
Request = tuple["str | None", dict[str, Any], str]


@dataclass
class Outcome:
    """A request's result, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def run_requests(
    app: LoadedApp,
    requests: list[Request],
    *,
    state_path: Path | None = None,
    placement: Placement | None = None,
) -> list[Outcome]:
    """Run requests one after the other against one runtime (and one set of workers).

    ``placement=None`` (or 0 workers) runs every component call in this process.
    """
    for name, inputs, _ in requests:
        bind_inputs(*app.workflow(name), inputs)
    store = StateStore(state_path)
    try:
        return trio.run(_serve_requests, app, requests, store, placement)
    finally:
        store.close()


async def _serve_requests(
    app: LoadedApp, requests: list[Request], store: StateStore, placement: Placement | None
) -> list[Outcome]:
    async with open_backend(app, store, placement) as backend:
        outcomes = []
        for name, inputs, session in requests:
            _, fn = app.workflow(name)
            try:
                outcomes.append(Outcome(await run_request(fn, inputs, backend.new_runtime(), session, workflow=name)))
            except Exception as exc:  # noqa: BLE001 - reported per request
                outcomes.append(Outcome(error=exc))
        return outcomes


@contextlib.asynccontextmanager
async def open_backend(
    app: LoadedApp, store: StateStore, placement: Placement | None
) -> AsyncIterator[InProcessBackend | ControlledBackend[Any]]:
    """The backend for a run: workers (processes or Ray actors) if ``placement`` asks for any.

    Its LLM limiter (``placement.flow``) is this process's gate while it runs.
    """
    if placement is None or placement.workers == 0:
        limiter = FlowLimiter(placement.flow) if placement is not None and placement.flow.gates_llm else None
        with installed(limiter):
            yield InProcessBackend(store, placement.tracer if placement is not None else None)
        return
    async with trio.open_nursery() as nursery:
        backend: ControlledBackend[Any]
        if placement.backend == "ray":
            backend = RayBackend(app.build_dir, store, placement)
        elif placement.backend == "process":
            backend = ProcessBackend(app.build_dir, store, placement)
        else:
            raise NalarcError(f"no backend {placement.backend!r}: choose process or ray")
        try:
            await backend.start(nursery, app_components(app.modules))
            with installed(backend.flow):
                yield backend
        finally:
            with trio.CancelScope(shield=True):
                await backend.aclose()
            nursery.cancel_scope.cancel()


class Service:
    """A running app: many concurrent requests share one runtime and its workers.

    Use ``async with open_service(app, store, placement) as service`` and call
    :meth:`run` from as many trio tasks as you like.
    """

    def __init__(self, app: LoadedApp, backend: InProcessBackend | ControlledBackend[Any]) -> None:
        self.app, self.backend = app, backend
        self.runtime = backend.new_runtime()
        self.in_flight = 0
        self.completed = 0
        self.failed = 0
        #: Journaled requests' calls: replayed from the journal, journaled, not journalable.
        self.calls = {"replayed": 0, "journaled": 0, "unjournaled": 0}

    async def run(
        self, workflow: str | None, inputs: dict[str, Any], session: str = "default", *,
        request_id: str | None = None, journal: CallJournal | None = None, resumed: bool = False,
    ) -> Any:
        """One request; returns its result or raises its exception.

        With a ``journal`` (and then a ``request_id``, the run id it is journaled
        under), the request's completed calls are journaled, and replayed instead
        of run when the same request runs again with ``resumed`` (docs/durability.md).
        """
        name, fn = self.app.workflow(workflow)
        bind_inputs(name, fn, inputs)
        view: RequestJournal | None = None
        if journal is not None:
            if request_id is None:
                raise ValueError("a journaled request needs its request_id")
            if request_id in self.runtime.journals:
                raise NalarcError(f"request {request_id!r} is already running")
            view = self.runtime.journals[request_id] = RequestJournal(journal, request_id, resumed)
        self.in_flight += 1
        try:
            result = await run_request(fn, inputs, self.runtime, session, request_id, workflow=name)
        except Exception:
            self.failed += 1
            raise
        finally:
            self.in_flight -= 1
            if view is not None:
                del self.runtime.journals[view.request]
                self.calls["replayed"] += view.replayed
                self.calls["journaled"] += view.recorded
                self.calls["unjournaled"] += view.unjournaled
        self.completed += 1
        return result

    def status(self) -> dict[str, Any]:
        """A snapshot of the backend as plain data: its name, its workers, its instances."""
        backend = self.backend
        if not isinstance(backend, ControlledBackend):
            return {"backend": "in-process", "workers": [], "instances": []}
        return {
            "backend": backend.name,
            "workers": [{"id": w.id, "pid": w.pid, "alive": w.alive, "calls_in_flight": backend.calls_in_flight(w.id)}
                        for w in backend.workers.values()],
            "instances": [
                {"id": c.id, "component": c.spec.name, "kind": c.spec.kind, "worker": c.worker.id,
                 "queue_length": c.queue_length, "running": c.running, "completed": c.completed,
                 "limit": c.limit, "busy_seconds": round(c.busy_seconds, 6),
                 "waiting_sessions": len(c.waiting_sessions())}
                for c in backend.instances.values()
            ],
        }


@contextlib.asynccontextmanager
async def open_service(
    app: LoadedApp, store: StateStore, placement: Placement | None
) -> AsyncIterator[Service]:
    """Start the backend (and workers) for ``app``; stop them on exit."""
    async with open_backend(app, store, placement) as backend:
        yield Service(app, backend)


def run_workflow(
    app: LoadedApp,
    name: str | None,
    inputs: dict[str, Any],
    *,
    session: str = "default",
    state_path: Path | None = None,
    placement: Placement | None = None,
) -> Any:
    """Run one request and return its JSON-able result (or raise its exception)."""
    return run_requests(app, [(name, inputs, session)], state_path=state_path, placement=placement)[0].unwrap()


class InProcessRunner:
    """Several requests against one in-process runtime (state shared between them)."""

    def __init__(self, app: LoadedApp, state_path: Path | None = None) -> None:
        self.app = app
        self.store = StateStore(state_path)
        self.backend = InProcessBackend(self.store)

    def run(self, name: str | None, inputs: dict[str, Any], session: str = "default") -> Any:
        wf_name, fn = self.app.workflow(name)
        bind_inputs(wf_name, fn, inputs)
        return trio.run(run_request, fn, inputs, self.backend.new_runtime(), session)

    def close(self) -> None:
        self.store.close()
