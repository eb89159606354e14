"""A worker inside a Ray actor: the Ray backend (``nalarc.executor._ray``) makes this class an actor.

The class lives here, not in the driver, so an actor's process imports the
worker and not the driver (Ray pickles the class by reference).
"""

from __future__ import annotations

import socket
import tempfile
import threading
from pathlib import Path

from ..wire import BlockingChannel, Init
from ._main import POOL_SIZE, Worker


class WorkerActor:
    """Runs in a Ray actor (threaded: ``deliver`` and ``replies`` each have a thread)."""

    def __init__(self, worker_id: str, build_files: dict[str, bytes]) -> None:
        build_dir = Path(tempfile.mkdtemp(prefix="nalarc-build-"))
        for name, data in build_files.items():
            path = build_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        worker_end, our_end = socket.socketpair()
        self._link = BlockingChannel(our_end)
        worker = Worker(BlockingChannel(worker_end), worker_id)  # no peers: values come from the driver
        for _ in range(POOL_SIZE):
            worker.start_thread()
        self._link.send(Init(str(build_dir)))  # the worker answers Ready(pid)
        self._next = 0
        self._held: dict[int, list[bytes]] = {}
        self._lock = threading.Lock()

    def deliver(self, seq: int, payloads: list[bytes]) -> None:
        """Messages for the worker, written in ``seq`` order whatever order Ray runs the calls in."""
        with self._lock:
            self._held[seq] = payloads
            while self._next in self._held:
                for payload in self._held.pop(self._next):
                    self._link.send_bytes(payload)
                self._next += 1

    def replies(self) -> list[bytes]:
        """Every message the worker has sent (waits for at least one)."""
        first = self._link.receive_bytes()
        return [bytes(first), *map(bytes, self._link.received_frames())]
