"""A worker process: hosts component instances and runs the calls sent to it.

Started by the driver as ``python -m nalarc.executor._worker_main SOCKET ID``
with the run's secret on standard input.  It connects back, authenticates,
imports the app's build directory, then serves messages (all tuples):

driver -> worker
    ``("init", build_dir)``; ``("run", call_id, instance_id, key, method, args,
    kwargs, session, request, state)``; ``("result", sub_id, ok, payload)``;
    ``("shutdown",)``
worker -> driver
    ``("ready", pid)``; ``("done", call_id, ok, payload, state, traceback)``;
    ``("call", sub_id, target, method, flags, args, kwargs, session, request)``
    (a component call made by the code this worker runs)

Sync component code runs in threads (it blocks on I/O); compiled async code
runs natively, its own component calls going back to the driver.  The worker
exits when the driver goes away (its socket closes, or its process dies).
"""

from __future__ import annotations

import ctypes
import inspect
import itertools
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import cloudpickle
import trio

from .._api import ComponentSpec, component_spec
from .._errors import RemoteError
from .._state import StateTransaction
from . import _rt
from ._app import load_build
from ._local import run_component_code
from ._transport import ConnectionClosed, FramedStream, connect_driver


def encode_error(error: BaseException) -> tuple[bytes, str]:
    """The exception, pickled if it can be, and its traceback as text."""
    text = "".join(traceback.format_exception(error))
    try:
        payload = cloudpickle.dumps(error)
        cloudpickle.loads(payload)
    except Exception:  # noqa: BLE001 - unpicklable exception: send its text
        payload = cloudpickle.dumps(RemoteError(text))
    return payload, text


class _RemoteBackend:
    """Component calls made by code in this worker: the driver schedules them."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._ids = itertools.count(1)
        self.waiting: dict[int, tuple[trio.Event, list[Any]]] = {}

    async def execute(self, call: _rt.CallRecord) -> Any:
        sub_id = next(self._ids)
        done, box = trio.Event(), list[Any]()
        self.waiting[sub_id] = (done, box)
        await self.worker.conn.send(
            ("call", sub_id, call.target, call.method, call.stage << _rt.STAGE_SHIFT, call.args, call.kwargs,
             call.session, call.request)
        )
        await done.wait()
        ok, payload = box
        if ok:
            return payload
        raise cloudpickle.loads(payload)

    def deliver(self, sub_id: int, ok: bool, payload: Any) -> None:
        done, box = self.waiting.pop(sub_id)
        box += [ok, payload]
        done.set()

    def run_inline(self, spec: ComponentSpec, target: Any, method: str | None,
                   args: tuple[Any, ...], kwargs: dict[str, Any], session: str) -> Any:
        raise RemoteError("a dunder or property that calls a component cannot run inside a worker")


class Worker:
    def __init__(self, conn: FramedStream) -> None:
        self.conn = conn
        self.instances: dict[str, Any] = {}
        self.objects: dict[str, Any] = {}
        self.backend = _RemoteBackend(self)
        self.runtime = _rt.Runtime(self.backend)

    def _resolve(self, key: str) -> Any:
        found = self.objects.get(key)
        if found is None:
            module_name, _, qualname = key.partition(":")
            found = sys.modules[module_name] if module_name in sys.modules else __import__(module_name)
            for part in qualname.split("."):
                found = getattr(found, part)
            self.objects[key] = found
        return found

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            try:
                while True:
                    message = await self.conn.receive()
                    kind = message[0]
                    if kind == "run":
                        nursery.start_soon(self._run, *message[1:])
                    elif kind == "run_batch":
                        nursery.start_soon(self._run_batch, *message[1:])
                    elif kind == "preempt":
                        nursery.start_soon(self._preempt, message[1], message[2])
                    elif kind == "result":
                        self.backend.deliver(message[1], message[2], message[3])
                    elif kind == "init":
                        load_build(Path(message[1]))
                        await self.conn.send(("ready", _pid()))
                    elif kind == "shutdown":
                        break
            except ConnectionClosed:
                pass
            nursery.cancel_scope.cancel()

    def _instance(self, instance_id: str, target: Any) -> Any:
        instance = self.instances.get(instance_id)
        if instance is None:
            instance = self.instances[instance_id] = target()
        return instance

    async def _preempt(self, instance_id: str, hook: str) -> None:
        """Ask a running call to stop early (the driver re-queues it)."""
        instance = self.instances.get(instance_id)
        if instance is not None:
            await trio.to_thread.run_sync(getattr(instance, hook))

    async def _run_batch(self, instance_id: str, key: str, items: list[tuple[Any, ...]]) -> None:
        """Calls merged into one: ``<method>_batch(calls)`` if the agent has one."""
        target = self._resolve(key)
        instance = self._instance(instance_id, target)
        method = items[0][1]
        batched = getattr(instance, f"{method}_batch", None)
        if batched is None:
            async with trio.open_nursery() as nursery:
                for call_id, method, args, kwargs, session, request in items:
                    nursery.start_soon(self._run, call_id, instance_id, key, method, args, kwargs, session, request, None)
            return
        signature = inspect.signature(getattr(instance, method))
        calls = [dict(signature.bind(*args, **kwargs).arguments) for _, _, args, kwargs, _, _ in items]
        try:
            results = await trio.to_thread.run_sync(batched, calls)
            if len(results) != len(items):
                raise RemoteError(f"{method}_batch returned {len(results)} results for {len(items)} calls")
            replies = [("done", call_id, True, result, None, "") for (call_id, *_), result in zip(items, results)]
        except Exception as error:  # noqa: BLE001 - every call of the batch fails with it
            pickled, text = encode_error(error)
            replies = [("done", call_id, False, pickled, None, text) for call_id, *_ in items]
        for reply in replies:
            await self.conn.send(reply)

    async def _run(
        self, call_id: int, instance_id: str, key: str, method: str | None,
        args: tuple[Any, ...], kwargs: dict[str, Any], session: str, request: str, state: Any,
    ) -> None:
        target = self._resolve(key)
        spec = component_spec(target)
        assert spec is not None
        if spec.kind == "agent":
            fn = getattr(self._instance(instance_id, target), method or "")
        else:
            fn = target
        txn = StateTransaction(session, key, state) if state is not None else None
        record = _rt.CallRecord(spec, target, method, args, kwargs, session, request, None)
        try:
            result = await run_component_code(fn, record, self.runtime, txn)
            result = await _rt.md(result)
            after = await _rt.md(txn.values) if txn is not None and txn.touched else None
            message: tuple[Any, ...] = ("done", call_id, True, result, after, "")
            payload = cloudpickle.dumps(message)
        except Exception as error:  # noqa: BLE001 - delivered to the workflow
            pickled, text = encode_error(error)
            payload = cloudpickle.dumps(("done", call_id, False, pickled, None, text))
        await self.conn.send_bytes(payload)


def _pid() -> int:
    import os

    return os.getpid()


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the driver dies, so no worker is ever orphaned."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


async def _main(socket_path: str, worker_id: str, secret: bytes) -> None:
    stream = await trio.open_unix_socket(socket_path)
    conn = await connect_driver(stream, secret, worker_id)
    await Worker(conn).serve()


def main() -> None:
    socket_path, worker_id = sys.argv[1], sys.argv[2]
    secret = bytes.fromhex(sys.stdin.readline().strip())
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when we stop
    trio.run(_main, socket_path, worker_id, secret)


if __name__ == "__main__":
    main()
