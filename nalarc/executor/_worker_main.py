"""A worker process: hosts component instances and runs the calls sent to it.

Started by the driver as ``python -m nalarc.executor._worker_main SOCKET ID``
with the run's secret on standard input.  It listens for its sibling workers
(``peer-ID.sock`` beside SOCKET), connects back to the driver, authenticates,
imports the app's build directory, then serves messages (all tuples):

driver -> worker
    ``("init", build_dir)``; ``("run", call_id, instance_id, key, method, args,
    kwargs, session, request, state, deps, push)``; ``("run_batch",
    instance_id, key, items)``; ``("preempt", instance_id, hook)``;
    ``("result", sub_id, ok, payload)``; ``("consume", call_id, worker_id,
    key)`` / ``("unconsume", call_id, key)``: push the value of running call
    ``call_id`` to that worker, for consumer ``key`` (or not); ``("release",
    call_id, n)``: ``n`` pushed copies of that value will not be used here;
    ``("value", call_id, payload)``: a value asked for with ``need``;
    ``("probe", token)``; ``("shutdown",)``
worker -> driver
    ``("ready", pid)``; ``("done", call_id, ok, payload, state, traceback,
    pushed)`` (``pushed``: ``((worker_id, keys), ...)``, where the value went);
    ``("call", sub_id, target, method, flags, args, kwargs, session,
    request)`` (a component call made by the code this worker runs);
    ``("need", call_id)``; ``("probe", token, stats)``
worker -> worker
    ``("push", call_id, n, value)``: ``n`` consumers here will need it

Push readiness: ``deps`` names the values a call takes by reference
(:class:`~nalarc.executor._transport.DepRef` in its arguments): pushed here by
the worker that produced them (``(call_id, producer worker)``).  A call waits
for them; should the producer's connection close first (it died mid-push), or
the value not come within ``_PUSH_PATIENCE`` seconds, it asks the driver,
which has every value.  ``push`` lists where this call's value goes when it
succeeds.

Threads, leader/follower: a pool of threads takes turns reading the socket
(blocking I/O, no event loop on the hot path); the thread that reads a call
runs it itself and sends its reply, so a call costs no hand-off between
threads.  Bookkeeping messages (``consume``, ``release``, ``value``...) are
handled by the reading thread at once, so they keep their order relative to
the calls.  Sync component code therefore runs in a thread, as it must (it
blocks on I/O).  Compiled async component code runs on one trio loop in a
thread of its own; the component calls it makes go back to the driver.  User
asyncio code (a component written ``async def`` that nalarc left as written)
runs on the process's asyncio loop, in another thread of its own; the call's
thread waits for it.  The
worker exits when the driver goes away (its socket closes, or it dies).
"""

from __future__ import annotations

import contextvars
import inspect
import itertools
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle

from .._api import ComponentSpec, blocks_on_futures, component_spec, instance_member, serve_instance
from .._errors import RemoteError
from .._state import StateTransaction, _instance, _session, bind_transaction
from ..runtime.lowlevel import substitute
from ..runtime.lowlevel import dump_exception
from ._transport import (
    AuthenticationError,
    BlockingChannel,
    DepRef,
    accept_blocking,
    connect_blocking,
    dumps,
    loads,
)

#: Threads started at once; more start whenever every thread is busy, so
#: there is always one reading the socket (a waiting call may need a reply).
POOL_SIZE = 4
#: Seconds a call waits for a pushed value before it asks the driver for it.
_PUSH_PATIENCE = 5.0
#: Values smaller than this (pickled) are not pushed: the driver, which gets them anyway,
#: sends them on with the call more cheaply than a message of their own.
_PUSH_MIN = 16 * 1024
#: Messages the reading thread handles itself (quick, and ordered with the calls).
_BOOKKEEPING = frozenset({"consume", "unconsume", "release", "value", "probe"})


def encode_error(error: BaseException) -> tuple[bytes, str]:
    """The exception, pickled with its type and attributes, and its traceback as text."""
    text = "".join(traceback.format_exception(error))
    return dump_exception(error, text), text


class _AsyncLane:
    """One trio loop, in its own thread, for compiled (async) component code."""

    def __init__(self, worker: Worker) -> None:
        import trio

        from ..runtime import lowlevel as _rt

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
        from ._local import frame_entry, run_frame

        async def body() -> Any:
            return await run_frame(frame_entry(fn, self.runtime), record.args, record.kwargs, self.runtime,
                                   record.session, record.request)

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

        from ..runtime.lowlevel import STAGE_SHIFT

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


class _Values:
    """Values sibling workers pushed here, kept until the calls that need them take them.

    ``_count[call_id]``: copies announced by pushes, minus those taken or
    released.  It may go below zero (a release, or a call served by the
    driver, before the push arrives): a push that then finds nothing left to
    serve is dropped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._values: dict[int, Any] = {}
        self._count: dict[int, int] = {}
        self._fallback: dict[int, Any] = {}
        self._waiters: dict[int, int] = {}
        self._gone: set[str] = set()

    def put(self, call_id: int, count: int, value: Any) -> None:
        with self._cond:
            left = self._count.get(call_id, 0) + count
            self._settle(call_id, left)
            if left > 0:
                self._values[call_id] = value
                self._cond.notify_all()

    def release(self, call_id: int, count: int) -> None:
        with self._cond:
            self._settle(call_id, self._count.get(call_id, 0) - count)

    def _settle(self, call_id: int, left: int) -> None:
        if left:
            self._count[call_id] = left
        else:
            self._count.pop(call_id, None)
        if left <= 0:
            self._values.pop(call_id, None)

    def from_driver(self, call_id: int, value: Any) -> None:
        """The driver's answer to ``need``: for the calls waiting now."""
        with self._cond:
            if self._waiters.get(call_id):
                self._fallback[call_id] = value
                self._cond.notify_all()

    def peer(self, worker_id: str, connected: bool) -> None:
        with self._cond:
            if connected:
                self._gone.discard(worker_id)
            else:
                self._gone.add(worker_id)
                self._cond.notify_all()

    def take(self, call_id: int, source: str, ask: Callable[[int], None]) -> Any:
        """The value for one call here: pushed, or asked from the driver if the push cannot come."""
        with self._cond:
            self._waiters[call_id] = self._waiters.get(call_id, 0) + 1
            try:
                value = self._wait(call_id, source, ask)
                self._settle(call_id, self._count.get(call_id, 0) - 1)
                return value
            finally:
                self._waiters[call_id] -= 1
                if not self._waiters[call_id]:
                    del self._waiters[call_id]
                    self._fallback.pop(call_id, None)

    def _wait(self, call_id: int, source: str, ask: Callable[[int], None]) -> Any:
        deadline, asked = time.monotonic() + _PUSH_PATIENCE, False
        while True:
            if call_id in self._values:
                return self._values[call_id]
            if call_id in self._fallback:
                return self._fallback[call_id]
            if not asked and (source in self._gone or time.monotonic() > deadline):
                ask(call_id)
                asked = True
            self._cond.wait(timeout=0.5)

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {"values": len(self._values), "waiting": sum(self._waiters.values())}


class _PeerLink:
    """Pushes to one sibling worker, sent in order by a thread of their own."""

    def __init__(self, channel: BlockingChannel, worker_id: str) -> None:
        self.channel, self.alive = channel, True
        self._queue: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        threading.Thread(target=self._send_loop, name=f"nalarc-push-{worker_id}", daemon=True).start()

    def send(self, payload: bytes) -> None:
        self._queue.put(payload)

    def _send_loop(self) -> None:
        while True:
            payload = self._queue.get()
            try:
                self.channel.send_bytes(payload)
            except OSError:  # it died: calls there are lost with it; the driver re-runs or fails them
                self.alive = False
                self.channel.close()
                return


class Worker:
    def __init__(self, channel: BlockingChannel, worker_id: str = "w", secret: bytes = b"",
                 peer_dir: str | None = None) -> None:
        self.channel = channel
        self.id, self.secret, self.peer_dir = worker_id, secret, peer_dir
        self.values = _Values()
        #: call id -> {consumer key: worker id}: where a running call's value goes.
        self._pushes: dict[int, dict[int, str]] = {}
        self._peers: dict[str, _PeerLink] = {}
        self._peers_lock = threading.Lock()
        self.instances: dict[str, Any] = {}
        self.objects: dict[str, Any] = {}
        self._functions: dict[tuple[str, str, str | None], tuple[ComponentSpec, Any, Any, str]] = {}
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
                instance = self.instances[instance_id] = serve_instance(target)
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
                if message[0] in _BOOKKEEPING:
                    self._bookkeeping(message)
                    continue
                if message[0] == "run":  # registered before any later "consume" for it is read
                    self._pushes[message[1]] = {key: worker for worker, key in message[11]} if message[11] else {}
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

    def _bookkeeping(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "consume":
            targets = self._pushes.get(message[1])
            if targets is not None:  # else it is done: the driver learns where its value went from "done"
                targets[message[3]] = message[2]
        elif kind == "unconsume":
            self._pushes.get(message[1], {}).pop(message[2], None)
        elif kind == "release":
            self.values.release(message[1], message[2])
        elif kind == "value":
            self.values.from_driver(message[1], message[2])
        elif kind == "probe":
            self.channel.send(("probe", message[1], {**self.values.stats(), "pid": os.getpid()}))

    # -- calls -------------------------------------------------------------

    def _call_function(self, instance_id: str, key: str, method: str | None) -> tuple[ComponentSpec, Any, Any, str]:
        """The component, the function a call runs, and how it runs (see :func:`_code_kind`)."""
        found = self._functions.get((instance_id, key, method))
        if found is None:
            target = self._resolve(key)
            spec = component_spec(target)
            assert spec is not None
            fn = instance_member(self._instance(instance_id, target), method) if spec.kind == "agent" else target
            kind = "compiled" if blocks_on_futures(spec, target, method) else _code_kind(fn)
            found = self._functions[(instance_id, key, method)] = (spec, target, fn, kind)
        return found

    def _run(self, call_id: int, instance_id: str, key: str, method: str | None, args: tuple[Any, ...],
             kwargs: dict[str, Any], session_id: str, request: str, state: Any,
             deps: tuple[tuple[int, str], ...] = (), push: tuple[tuple[str, int], ...] = ()) -> None:
        try:
            if deps:
                args, kwargs = self._take_deps(deps, args, kwargs)
            spec, target, fn, kind = self._call_function(instance_id, key, method)
            txn = StateTransaction(session_id, key, state) if state is not None else None
            result, after = contextvars.copy_context().run(
                self._in_context, spec, target, fn, kind, method, args, kwargs, session_id, request,
                instance_id, txn)
            targets = self._pushes.pop(call_id, None)
            pushed = self._push(call_id, result, targets) if targets else ()
            payload = dumps(("done", call_id, True, result, after, "", pushed), (result, after))
        except Exception as error:  # noqa: BLE001 - delivered to the workflow
            self._pushes.pop(call_id, None)
            pickled, text = encode_error(error)
            payload = dumps(("done", call_id, False, pickled, None, text, ()))
        self.channel.send_bytes(payload)

    # -- push readiness ----------------------------------------------------

    def _take_deps(self, deps: tuple[tuple[int, str], ...], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's arguments with every :class:`DepRef` replaced by its value (waiting for pushes)."""
        ask = lambda call_id: self.channel.send(("need", call_id))  # noqa: E731
        values = {call_id: self.values.take(call_id, source, ask) for call_id, source in deps}

        def value(ref: DepRef) -> Any:
            return values[ref.call_id]

        return substitute(args, DepRef, value), substitute(kwargs, DepRef, value)

    def _push(self, call_id: int, result: Any, targets: dict[int, str]) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Send ``result`` to the workers whose queued calls need it (``targets``: key -> worker id);
        say where it went.

        The pushes are queued to each sibling's sender thread, so the driver's
        copy (in ``done``) goes out at the same time.
        """
        by_worker: dict[str, list[int]] = {}
        for key, worker_id in list(targets.items()):
            by_worker.setdefault(worker_id, []).append(key)
        pushed = []
        for worker_id, keys in by_worker.items():
            payload = dumps(("push", call_id, len(keys), result), (result,))
            if len(payload) < _PUSH_MIN:
                return ()  # small: the driver sends it on with the call
            link = self._peer(worker_id)
            if link is not None:  # else the driver sends it (it is not among "pushed")
                link.send(payload)
                pushed.append((worker_id, tuple(keys)))
        return tuple(pushed)

    def _peer(self, worker_id: str) -> _PeerLink | None:
        """The sending side of a connection to a sibling worker (made once), or None if it cannot be reached."""
        with self._peers_lock:
            found = self._peers.get(worker_id)
            if found is not None and found.alive:
                return found
            if self.peer_dir is None:
                return None
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(10)
                sock.connect(str(Path(self.peer_dir) / f"peer-{worker_id}.sock"))
                channel = BlockingChannel(sock)
                connect_blocking(channel, self.secret, self.id)
                sock.settimeout(None)
            except (OSError, EOFError, AuthenticationError):
                sock.close()
                return None
            link = self._peers[worker_id] = _PeerLink(channel, worker_id)
            return link

    def serve_peers(self, listener: socket.socket) -> None:
        """Accept sibling workers (each proves it knows the run's secret) and read their pushes."""
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._read_peer, args=(sock,), daemon=True).start()

    def _read_peer(self, sock: socket.socket) -> None:
        channel = BlockingChannel(sock)
        try:
            peer = accept_blocking(channel, self.secret)
        except AuthenticationError:
            channel.close()
            return
        self.values.peer(peer, connected=True)
        try:
            while True:
                message = channel.receive()
                if message[0] == "push":
                    self.values.put(message[1], message[2], message[3])
        except (EOFError, OSError):
            pass
        finally:
            self.values.peer(peer, connected=False)
            channel.close()

    def _in_context(self, spec: ComponentSpec, target: Any, fn: Any, kind: str, method: str | None,
                    args: tuple[Any, ...], kwargs: dict[str, Any], session_id: str, request: str,
                    instance_id: str, txn: StateTransaction | None) -> tuple[Any, Any]:
        """Run one call in a fresh context (so nothing set here needs resetting)."""
        _instance.set(instance_id)  # which engine, cache, ... serves it (nalarc.llm)
        _session.set(session_id)
        if kind == "compiled":
            from ..runtime.lowlevel import CallRecord

            record = CallRecord(spec, target, method, args, kwargs, session_id, request, None)
            run: Callable[[], Any] = lambda: self.lane.run(fn, record)  # noqa: E731
        elif kind == "asyncio":
            from ..runtime.lowlevel import run_blocking

            run = lambda: run_blocking(fn(*args, **kwargs))  # noqa: E731 - context goes with it
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
            if inspect.iscoroutine(results):  # an async <method>_batch: user asyncio code
                from ..runtime.lowlevel import run_blocking

                results = context.run(run_blocking, results)
            if len(results) != len(items):
                raise RemoteError(f"{method}_batch returned {len(results)} results for {len(items)} calls")
            replies = [("done", call_id, True, result, None, "", ()) for (call_id, *_), result in zip(items, results)]
        except Exception as error:  # noqa: BLE001 - every call of the batch fails with it
            pickled, text = encode_error(error)
            replies = [("done", call_id, False, pickled, None, text, ()) for call_id, *_ in items]
        for reply in replies:
            self.channel.send(reply)


def _code_kind(fn: Any) -> str:
    """``compiled`` (trio code: the async lane; also compiled sync code that blocks on
    futures, which the lane runs in a thread of its frame), ``asyncio`` (user ``async def``:
    the asyncio loop), or ``sync`` (a plain function: this thread)."""
    from ..runtime.lowlevel import compiled_kind

    if compiled_kind(fn) is not None:
        return "compiled"
    return "asyncio" if inspect.iscoroutinefunction(fn) else "sync"


def _plain(value: Any) -> Any:
    """Managed state to send back: compiled code may have left finished futures in it."""
    from ..runtime.lowlevel import md_now as _md_now

    return _md_now(value)


def _listen(path: Path) -> socket.socket:
    """The socket sibling workers push values to (a dead predecessor's file is replaced)."""
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    return listener


def main() -> None:
    socket_path, worker_id = sys.argv[1], sys.argv[2]
    secret = bytes.fromhex(sys.stdin.readline().strip())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when we stop
    peer_dir = str(Path(socket_path).parent)  # the run's private (0700) directory
    listener = _listen(Path(peer_dir) / f"peer-{worker_id}.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    channel = BlockingChannel(sock)
    try:
        connect_blocking(channel, secret, worker_id)
    except AuthenticationError:
        raise SystemExit("the driver failed to prove it knows the run's secret") from None
    worker = Worker(channel, worker_id, secret, peer_dir)
    threading.Thread(target=worker.serve_peers, args=(listener,), name="nalarc-peers", daemon=True).start()
    for _ in range(POOL_SIZE):
        worker.start_thread()
    worker.stopped.wait()
    os._exit(0)  # daemon threads may be blocked in user code: do not wait for them


if __name__ == "__main__":
    main()
