"""A worker process: hosts component instances and runs the calls sent to it.

Started by the driver as ``python -m nalarc.executor._worker_main SOCKET ID``
with the run's secret on standard input.  It connects back, authenticates,
imports the app's build directory, then serves messages (all tuples):

driver -> worker
    ``("init", build_dir)``; ``("run", call_id, instance_id, key, method, args,
    kwargs, session, request, state)``; ``("run_batch", instance_id, key,
    items)``; ``("preempt", instance_id, hook)``; ``("result", sub_id, ok,
    payload)``; ``("shutdown",)``
worker -> driver
    ``("ready", pid)``; ``("done", call_id, ok, payload, state, traceback)``;
    ``("call", sub_id, target, method, flags, args, kwargs, session, request)``
    (a component call made by the code this worker runs)

Threads, leader/follower: a pool of threads takes turns reading the socket
(blocking I/O, no event loop on the hot path); the thread that reads a call
runs it itself and sends its reply, so a call costs no hand-off between
threads.  Sync component code therefore runs in a thread, as it must (it
blocks on I/O).  Compiled async component code runs on one trio loop in a
thread of its own; the component calls it makes go back to the driver.  The
worker exits when the driver goes away (its socket closes, or it dies).
"""

from __future__ import annotations

import contextvars
import inspect
import itertools
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle

from .._api import ComponentSpec, component_spec
from .._errors import RemoteError
from .._state import StateTransaction, _instance, _session, bind_transaction
from ._transport import AuthenticationError, BlockingChannel, connect_blocking, dumps, loads

#: Threads started at once; more start whenever every thread is busy, so
#: there is always one reading the socket (a waiting call may need a reply).
POOL_SIZE = 4


def encode_error(error: BaseException) -> tuple[bytes, str]:
    """The exception, pickled if it can be, and its traceback as text."""
    text = "".join(traceback.format_exception(error))
    try:
        payload = cloudpickle.dumps(error)
        cloudpickle.loads(payload)
    except Exception:  # noqa: BLE001 - unpicklable exception: send its text
        payload = cloudpickle.dumps(RemoteError(text))
    return payload, text


class _AsyncLane:
    """One trio loop, in its own thread, for compiled (async) component code."""

    def __init__(self, worker: Worker) -> None:
        import trio

        from . import _rt

        self.trio, self.rt = trio, _rt
        self.worker = worker
        self.runtime = _rt.Runtime(_RemoteBackend(worker))
        ready = threading.Event()
        self.token: Any = None

        def loop() -> None:
            async def main() -> None:
                self.token = trio.lowlevel.current_trio_token()
                ready.set()
                await trio.sleep_forever()

            trio.run(main)

        threading.Thread(target=loop, name="nalarc-async", daemon=True).start()
        ready.wait()

    def run(self, fn: Callable[..., Any], record: Any) -> Any:
        from ._local import run_frame

        async def body() -> Any:
            return await run_frame(fn, record.args, record.kwargs, self.runtime, record.session, record.request)

        return self.trio.from_thread.run(body, trio_token=self.token)

    def deliver(self, sub_id: int, ok: bool, payload: Any) -> None:
        backend = self.runtime.backend
        assert isinstance(backend, _RemoteBackend)
        self.trio.from_thread.run_sync(backend.deliver, sub_id, ok, payload, trio_token=self.token)


class _RemoteBackend:
    """Component calls made by compiled code in this worker: the driver schedules them."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._ids = itertools.count(1)
        self.waiting: dict[int, tuple[Any, list[Any]]] = {}

    async def execute(self, call: Any) -> Any:
        import trio

        from ._rt import STAGE_SHIFT

        sub_id = next(self._ids)
        done, box = trio.Event(), list[Any]()
        self.waiting[sub_id] = (done, box)
        message = ("call", sub_id, call.target, call.method, call.stage << STAGE_SHIFT, call.args, call.kwargs,
                   call.session, call.request)
        self.worker.channel.send(message)  # a short blocking send; the loop can afford it
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
                   args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str) -> Any:
        raise RemoteError("a dunder or property that calls a component cannot run inside a worker")


class Worker:
    def __init__(self, channel: BlockingChannel) -> None:
        self.channel = channel
        self.instances: dict[str, Any] = {}
        self.objects: dict[str, Any] = {}
        self._functions: dict[tuple[str, str, str | None], tuple[ComponentSpec, Any, Any, bool]] = {}
        self._lane: _AsyncLane | None = None
        self._lane_lock = threading.Lock()
        self._instance_lock = threading.Lock()
        self.stopped = threading.Event()
        self._threads_lock = threading.Lock()
        self.threads = 0
        self.busy = 0

    def start_thread(self) -> None:
        with self._threads_lock:
            self.threads += 1
            number = self.threads
        threading.Thread(target=self.follow, name=f"nalarc-{number}", daemon=True).start()

    @property
    def lane(self) -> _AsyncLane:
        with self._lane_lock:
            if self._lane is None:
                self._lane = _AsyncLane(self)
            return self._lane

    def _resolve(self, key: str) -> Any:
        found = self.objects.get(key)
        if found is None:
            module_name, _, qualname = key.partition(":")
            found = sys.modules[module_name] if module_name in sys.modules else __import__(module_name)
            for part in qualname.split("."):
                found = getattr(found, part)
            self.objects[key] = found
        return found

    def _instance(self, instance_id: str, target: Any) -> Any:
        with self._instance_lock:
            instance = self.instances.get(instance_id)
            if instance is None:
                instance = self.instances[instance_id] = target()
            return instance

    # -- leader / follower ---------------------------------------------------

    def follow(self) -> None:
        """Take turns reading the socket; run what was read; repeat."""
        while not self.stopped.is_set():
            with self.channel.read_lock:
                if self.stopped.is_set():
                    return
                try:
                    message = loads(self.channel.receive_bytes())
                except (EOFError, OSError):
                    self.stopped.set()
                    return
                with self._threads_lock:
                    self.busy += 1
                    everyone_busy = self.busy == self.threads
            if everyone_busy:
                self.start_thread()
            try:
                self.handle(message)
            finally:
                with self._threads_lock:
                    self.busy -= 1

    def handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "run":
            self._run(*message[1:])
        elif kind == "run_batch":
            self._run_batch(*message[1:])
        elif kind == "result":
            self.lane.deliver(message[1], message[2], message[3])
        elif kind == "preempt":
            instance = self.instances.get(message[1])
            if instance is not None:
                getattr(instance, message[2])()
        elif kind == "init":
            from ._app import load_build

            load_build(Path(message[1]))
            self.channel.send(("ready", os.getpid()))
        elif kind == "shutdown":
            self.stopped.set()
            self.channel.sock.shutdown(socket.SHUT_RDWR)

    # -- calls -------------------------------------------------------------

    def _call_function(self, instance_id: str, key: str, method: str | None) -> tuple[ComponentSpec, Any, Any, bool]:
        """The component, the function a call runs, and whether it is compiled async code."""
        found = self._functions.get((instance_id, key, method))
        if found is None:
            target = self._resolve(key)
            spec = component_spec(target)
            assert spec is not None
            fn = getattr(self._instance(instance_id, target), method or "") if spec.kind == "agent" else target
            found = self._functions[(instance_id, key, method)] = (spec, target, fn, inspect.iscoroutinefunction(fn))
        return found

    def _run(self, call_id: int, instance_id: str, key: str, method: str | None, args: tuple[Any, ...],
             kwargs: dict[str, Any], session_id: str, request: str, state: Any) -> None:
        try:
            spec, target, fn, is_async = self._call_function(instance_id, key, method)
            txn = StateTransaction(session_id, key, state) if state is not None else None
            result, after = contextvars.copy_context().run(
                self._in_context, spec, target, fn, is_async, method, args, kwargs, session_id, request,
                instance_id, txn)
            payload = dumps(("done", call_id, True, result, after, ""), (result, after))
        except Exception as error:  # noqa: BLE001 - delivered to the workflow
            pickled, text = encode_error(error)
            payload = dumps(("done", call_id, False, pickled, None, text))
        self.channel.send_bytes(payload)

    def _in_context(self, spec: ComponentSpec, target: Any, fn: Any, is_async: bool, method: str | None,
                    args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str, request: str,
                    instance_id: str, txn: StateTransaction | None) -> tuple[Any, Any]:
        """Run one call in a fresh context (so nothing set here needs resetting)."""
        _instance.set(instance_id)  # which engine, cache, ... serves it (nalarc.llm)
        _session.set(session_id)
        if is_async:
            from ._rt import CallRecord

            record = CallRecord(spec, target, method, args, kwargs, session_id, request, None)
            run: Callable[[], Any] = lambda: self.lane.run(fn, record)  # noqa: E731
        else:
            run = lambda: fn(*args, **kwargs)  # noqa: E731
        if txn is None:
            return run(), None
        with bind_transaction(txn):
            result = run()
        return result, (_plain(txn.values) if txn.touched else None)

    def _run_batch(self, instance_id: str, key: str, items: list[tuple[Any, ...]]) -> None:
        """Calls merged into one: ``<method>_batch(calls)`` if the agent has one."""
        spec, target, fn, _ = self._call_function(instance_id, key, items[0][1])
        method = items[0][1]
        batched = getattr(self._instance(instance_id, target), f"{method}_batch", None)
        if batched is None:
            for call_id, _, args, kwargs, session_id, request in items:
                self._run(call_id, instance_id, key, method, args, kwargs, session_id, request, None)
            return
        signature = inspect.signature(fn)
        calls = [dict(signature.bind(*args, **kwargs).arguments) for _, _, args, kwargs, _, _ in items]
        try:
            context = contextvars.copy_context()
            context.run(_instance.set, instance_id)
            results = context.run(batched, calls)
            if len(results) != len(items):
                raise RemoteError(f"{method}_batch returned {len(results)} results for {len(items)} calls")
            replies = [("done", call_id, True, result, None, "") for (call_id, *_), result in zip(items, results)]
        except Exception as error:  # noqa: BLE001 - every call of the batch fails with it
            pickled, text = encode_error(error)
            replies = [("done", call_id, False, pickled, None, text) for call_id, *_ in items]
        for reply in replies:
            self.channel.send(reply)


def _plain(value: Any) -> Any:
    """Managed state to send back: compiled code may have left finished futures in it."""
    from ._rt import _md_now

    return _md_now(value)


def main() -> None:
    socket_path, worker_id = sys.argv[1], sys.argv[2]
    secret = bytes.fromhex(sys.stdin.readline().strip())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when we stop
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    channel = BlockingChannel(sock)
    try:
        connect_blocking(channel, secret, worker_id)
    except AuthenticationError:
        raise SystemExit("the driver failed to prove it knows the run's secret") from None
    worker = Worker(channel)
    for _ in range(POOL_SIZE):
        worker.start_thread()
    worker.stopped.wait()
    os._exit(0)  # daemon threads may be blocked in user code: do not wait for them


if __name__ == "__main__":
    main()
