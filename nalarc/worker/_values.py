"""Push readiness, the worker's side: values sibling workers pushed here, and the links that push them.

A call whose arguments hold :class:`~nalarc.wire.DepRef` takes those values
from :class:`Values` (pushed by the worker that produced them); should the
producer's connection close first (it died mid-push), or the value not come
within ``PUSH_PATIENCE`` seconds, it asks the driver, which has every value.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..wire import BlockingChannel

#: Seconds a call waits for a pushed value before it asks the driver for it.
PUSH_PATIENCE = 5.0


class Values:
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
        deadline, asked = time.monotonic() + PUSH_PATIENCE, False
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


class PeerLink:
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
