"""A worker process: the main loop that reads the driver's messages and runs the calls sent to it.

Started by the driver as ``python -m nalarc.worker SOCKET ID`` with the run's
secret on standard input.  It listens for its sibling workers
(``peer-ID.sock`` beside SOCKET), connects back to the driver, authenticates
(``nalarc.wire``: the handshake also checks both speak the same protocol
version), imports the app's build directory, then serves the messages
defined in ``nalarc.wire._messages`` (which lists who sends which).

Push readiness: a :class:`~nalarc.wire.Run`'s ``deps`` name the values it
takes by reference (:class:`~nalarc.wire.DepRef` in its arguments): pushed
here by the worker that produced them (``_values``).  Its ``push`` lists
where this call's value goes when it succeeds (and later
:class:`~nalarc.wire.Consume` messages add to it while it runs).

Threads, leader/follower: a pool of threads takes turns reading the socket
(blocking I/O, no event loop on the hot path); the thread that reads a call
runs it itself and sends its reply, so a call costs no hand-off between
threads.  Bookkeeping messages (``Consume``, ``Release``, ``Value``,
``Probe``) are handled by the reading thread at once, so they keep their
order relative to the calls.  Sync component code therefore runs in a
thread, as it must (it blocks on I/O).  Compiled async component code runs
on one trio loop in a thread of its own (``_lane``); the component calls it
makes go back to the driver.  User asyncio code (a component written
``async def`` that nalarc left as written) runs on the process's asyncio
loop, in another thread of its own; the call's thread waits for it
(``_hosting``).  The worker exits when the driver goes away (its socket
closes, or it dies).

Imports: nalarc's core, ``nalarc.wire`` and the runtime; never the driver
(``tests/worker/test_imports.py`` checks the modules a worker loads).
"""

from __future__ import annotations

import contextvars
import inspect
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from .. import _residency, _telemetry
from .._builddir import load_build
from .._errors import NalarcError, RemoteError
from .._state import StateTransaction, _instance
from ..runtime.lowlevel import run_blocking, substitute
from ..wire import (
    AuthenticationError,
    BatchItem,
    BlockingChannel,
    Consume,
    DepRef,
    Deps,
    Done,
    Init,
    Need,
    Preempt,
    Probe,
    ProbeReply,
    Push,
    Pushed,
    QuotaConfig,
    QuotaGrant,
    Ready,
    Release,
    Result,
    Run,
    RunBatch,
    Shutdown,
    Value,
    accept_blocking,
    connect_blocking,
    dumps,
    loads,
)
from . import _flow
from ._hosting import Host, encode_error
from ._values import PeerLink, Values

#: Threads started at once; more start whenever every thread is busy, so
#: there is always one reading the socket (a waiting call may need a reply).
POOL_SIZE = 4
#: Values smaller than this (pickled) are not pushed: the driver, which gets them anyway,
#: sends them on with the call more cheaply than a message of their own.
_PUSH_MIN = 16 * 1024
#: Messages the reading thread handles itself (quick, and ordered with the calls; a grant
#: wakes a call's thread waiting for it).
_BOOKKEEPING = frozenset({Consume, Release, Value, Probe, QuotaConfig, QuotaGrant})


class Worker:
    def __init__(self, channel: BlockingChannel, worker_id: str = "w", secret: bytes = b"",
                 peer_dir: str | None = None) -> None:
        self.channel = channel
        self.id, self.secret, self.peer_dir = worker_id, secret, peer_dir
        self.values = Values()
        self.host = Host(channel)
        #: call id -> {consumer key: worker id}: where a running call's value goes.
        self._pushes: dict[int, dict[int, str]] = {}
        self._peers: dict[str, PeerLink] = {}
        self._peers_lock = threading.Lock()
        self.stopped = threading.Event()
        self._threads_lock = threading.Lock()
        self.threads = 0
        self.busy = 0
        #: where this worker's LLM calls book their quota (None: flow control is off)
        self.gate: _flow.WireGate | None = None

    def start_thread(self) -> None:
        with self._threads_lock:
            self.threads += 1
            number = self.threads
        threading.Thread(target=self.follow, name=f"nalarc-{number}", daemon=True).start()

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
                kind = type(message)
                if kind in _BOOKKEEPING:
                    self._bookkeeping(message)
                    continue
                if kind is Run:  # registered before any later Consume for it is read
                    self._pushes[message.call_id] = {key: worker for worker, key in message.push} if message.push else {}
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

    def handle(self, message: Any) -> None:
        kind = type(message)
        if kind is Run:
            self._run(message)
        elif kind is RunBatch:
            self._run_batch(message)
        elif kind is Result:
            self.host.lane.deliver(message.sub_id, message.ok, message.payload)
        elif kind is Preempt:
            self.host.preempt(message.instance_id, message.hook)
        elif kind is Init:
            load_build(Path(message.build_dir))
            _warm_up_llm_client()
            self.channel.send(Ready(os.getpid()))
        elif kind is Shutdown:
            self.stopped.set()
            self.channel.sock.shutdown(socket.SHUT_RDWR)
        elif kind in _BOOKKEEPING:
            self._bookkeeping(message)
        else:
            raise NalarcError(f"a worker cannot handle {message!r}")

    def _bookkeeping(self, message: Consume | Release | Value | Probe | QuotaConfig | QuotaGrant) -> None:
        if type(message) is QuotaGrant:
            _flow.deliver(self.gate, message)
        elif type(message) is QuotaConfig:
            self.gate = _flow.configure(self.channel, message)
        elif type(message) is Consume:
            targets = self._pushes.get(message.call_id)
            if targets is not None:  # else it is done: the driver learns where its value went from Done
                targets[message.key] = message.worker_id
        elif type(message) is Release:
            self.values.release(message.call_id, message.copies)
        elif type(message) is Value:
            self.values.from_driver(message.call_id, message.value)
        elif type(message) is Probe:
            self.channel.send(ProbeReply(message.token, {**self.values.stats(), "pid": os.getpid()}))

    # -- calls -------------------------------------------------------------

    def _run(self, run: Run) -> None:
        call_id, instance_id = run.call_id, run.instance_id
        _residency.listen(instance_id)
        try:
            args, kwargs = self._take_deps(run.deps, run.args, run.kwargs) if run.deps else (run.args, run.kwargs)
            function = self.host.function(run.instance_id, run.key, run.method)
            txn = StateTransaction(run.session, run.key, run.state) if run.state is not None else None
            with _telemetry.remote_parent(run.trace):
                result, after = self.host.call(function, run.method, args, kwargs, run.session, run.request,
                                               run.instance_id, txn)
            targets = self._pushes.pop(call_id, None)
            pushed = self._push(call_id, result, targets) if targets else ()
            done = Done(call_id, True, result, after, "", pushed, _residency.drain(instance_id))
            payload = dumps(done, (result, after))
        except Exception as error:  # noqa: BLE001 - delivered to the workflow
            self._pushes.pop(call_id, None)
            pickled, text = encode_error(error)
            payload = dumps(Done(call_id, False, pickled, None, text, (), _residency.drain(instance_id)))
        self.channel.send_bytes(payload)

    def _run_batch(self, batch: RunBatch) -> None:
        """Calls merged into one: ``<method>_batch(calls)`` if the agent has one."""
        items, instance_id = batch.items, batch.instance_id
        _residency.listen(instance_id)
        method = items[0].method
        function = self.host.function(instance_id, batch.key, method)
        batched = getattr(self.host.instance(instance_id, function[1]), f"{method}_batch", None)
        if batched is None:
            for item in items:
                self._run(_single(batch, item))
            return
        signature = inspect.signature(function[2])
        calls = [dict(signature.bind(*item.args, **item.kwargs).arguments) for item in items]
        try:
            context = contextvars.copy_context()
            context.run(_instance.set, instance_id)
            results = context.run(batched, calls)
            if inspect.iscoroutine(results):  # an async <method>_batch: user asyncio code
                results = context.run(run_blocking, results)
            if len(results) != len(items):
                raise RemoteError(f"{method}_batch returned {len(results)} results for {len(items)} calls")
            replies = [Done(item.call_id, True, result, None, "", ()) for item, result in zip(items, results)]
        except Exception as error:  # noqa: BLE001 - every call of the batch fails with it
            pickled, text = encode_error(error)
            replies = [Done(item.call_id, False, pickled, None, text, ()) for item in items]
        replies[-1] = replies[-1]._replace(cache=_residency.drain(instance_id))
        for reply in replies:
            self.channel.send(reply)

    # -- push readiness ----------------------------------------------------

    def _take_deps(self, deps: Deps, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's arguments with every :class:`DepRef` replaced by its value (waiting for pushes)."""
        ask = lambda call_id: self.channel.send(Need(call_id))  # noqa: E731
        values = {call_id: self.values.take(call_id, source, ask) for call_id, source in deps}

        def value(ref: DepRef) -> Any:
            return values[ref.call_id]

        return substitute(args, DepRef, value), substitute(kwargs, DepRef, value)

    def _push(self, call_id: int, result: Any, targets: dict[int, str]) -> Pushed:
        """Send ``result`` to the workers whose queued calls need it (``targets``: key -> worker id);
        say where it went.

        The pushes are queued to each sibling's sender thread, so the driver's
        copy (in ``Done``) goes out at the same time.
        """
        by_worker: dict[str, list[int]] = {}
        for key, worker_id in list(targets.items()):
            by_worker.setdefault(worker_id, []).append(key)
        pushed = []
        for worker_id, keys in by_worker.items():
            payload = dumps(Push(call_id, len(keys), result), (result,))
            if len(payload) < _PUSH_MIN:
                return ()  # small: the driver sends it on with the call
            link = self._peer(worker_id)
            if link is not None:  # else the driver sends it (it is not among "pushed")
                link.send(payload)
                pushed.append((worker_id, tuple(keys)))
        return tuple(pushed)

    def _peer(self, worker_id: str) -> PeerLink | None:
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
            except (OSError, EOFError, NalarcError):
                sock.close()
                return None
            link = self._peers[worker_id] = PeerLink(channel, worker_id)
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
        except NalarcError:  # no secret, or another protocol version
            channel.close()
            return
        self.values.peer(peer, connected=True)
        try:
            while True:
                message = channel.receive()
                if type(message) is Push:
                    self.values.put(message.call_id, message.copies, message.value)
        except (EOFError, OSError):
            pass
        finally:
            self.values.peer(peer, connected=False)
            channel.close()


def _warm_up_llm_client() -> None:
    """If the app uses ``nalarc.llm``, set its client up before the worker says it is ready.

    The first chat in a fresh process otherwise pays for the client, the
    embedded simulated server and openai's lazily imported modules (150 ms
    on a quiet machine, several times that while its siblings boot too): in
    an open-loop benchmark that lands on the first requests' latency, and
    in production on the first requests after every scale-up.
    """
    client = sys.modules.get("nalarc.llm._client")
    if client is not None:
        client.warm_up()


def _single(batch: RunBatch, item: BatchItem) -> Run:
    """One call of a batch, run on its own (the agent has no ``<method>_batch``)."""
    return Run(item.call_id, batch.instance_id, batch.key, item.method, item.args, item.kwargs, item.session,
               item.request, None, (), ())


def _listen(path: Path) -> socket.socket:
    """The socket sibling workers push values to (a dead predecessor's file is replaced)."""
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    return listener


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit("usage: python -m nalarc.worker SOCKET ID  (the run's secret, hex, on standard input)")
    socket_path, worker_id = args
    secret = bytes.fromhex(sys.stdin.readline().strip())
    _telemetry.configure_from_env()  # the driver's tracer setup, if it named one (docs/telemetry.md)
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
    except NalarcError as error:  # another protocol version
        raise SystemExit(f"nalarc worker {worker_id}: {error}") from None
    worker = Worker(channel, worker_id, secret, peer_dir)
    threading.Thread(target=worker.serve_peers, args=(listener,), name="nalarc-peers", daemon=True).start()
    for _ in range(POOL_SIZE):
        worker.start_thread()
    worker.stopped.wait()
    _telemetry.flush()  # os._exit skips atexit: a batching span processor would lose its last spans
    os._exit(0)  # daemon threads may be blocked in user code: do not wait for them
