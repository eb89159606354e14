"""Length-prefixed frames over trio streams, with mutual HMAC authentication.

Nothing is unpickled before the peer has proved it knows the run's secret:
the handshake exchanges raw bytes only.

Handshake (``S`` = per-run secret, ``n`` = 32 random bytes from the driver;
the worker's half, with blocking sockets, is in ``_worker_main``)::

    driver -> worker   n
    worker -> driver   worker_id, HMAC(S, n | "worker" | worker_id)
    driver -> worker   HMAC(S, n | "driver" | worker_id)

Frames: a 4-byte big-endian length, then the payload (at most ``MAX_FRAME``).
After the handshake every payload is a cloudpickled message tuple.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import Any

import cloudpickle
import trio

from .._errors import NalarcError

MAX_FRAME = 256 * 1024 * 1024
HEADER = struct.Struct(">I")


def framed(payload: bytes) -> bytes:
    """``payload`` with its length header (both sides of the connection use this)."""
    if len(payload) > MAX_FRAME:
        raise NalarcError(f"frame of {len(payload)} bytes exceeds the {MAX_FRAME}-byte limit")
    return HEADER.pack(len(payload)) + payload


class AuthenticationError(NalarcError):
    """A peer failed the handshake: it does not know the run's secret."""


class ConnectionClosed(NalarcError):
    """The peer closed the connection."""


async def _read_exactly(stream: trio.abc.ReceiveStream, count: int, buffer: bytearray) -> bytes:
    while len(buffer) < count:
        chunk = await stream.receive_some(max(65536, count - len(buffer)))
        if not chunk:
            raise ConnectionClosed("connection closed by the peer")
        buffer += chunk
    data = bytes(buffer[:count])
    del buffer[:count]
    return data


class FramedStream:
    """One authenticated connection: send and receive whole frames."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = bytearray()
        # A semaphore, not a lock: a frame started synchronously may be
        # finished by another task (see send_soon).
        self._sending = trio.Semaphore(1)
        socket = getattr(stream, "socket", None)
        self._fd = socket.fileno() if socket is not None else -1

    async def send_bytes(self, payload: bytes) -> None:
        frame = framed(payload)
        async with self._sending:
            await self.stream.send_all(frame)

    def send_soon(self, payload: bytes, nursery: trio.Nursery) -> None:
        """Send now, without a task switch, when the socket takes the frame at once.

        Otherwise (another frame is being sent, or the socket buffer is full)
        the rest goes out from a task, in order.  The hot path of every call.
        """
        frame = framed(payload)
        try:
            self._sending.acquire_nowait()
        except trio.WouldBlock:
            nursery.start_soon(self._send_later, frame, False)
            return
        written = 0
        if self._fd >= 0:
            try:
                written = os.write(self._fd, frame)
            except (BlockingIOError, InterruptedError):
                written = 0
            except OSError:
                self._sending.release()
                return  # the peer is gone: its supervisor handles the call
        if written == len(frame):
            self._sending.release()
        else:
            nursery.start_soon(self._send_later, frame[written:], True)

    async def _send_later(self, data: bytes, holding: bool) -> None:
        try:
            if not holding:
                await self._sending.acquire()
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._sending.release()

    async def receive_bytes(self) -> bytes:
        (size,) = HEADER.unpack(await _read_exactly(self.stream, HEADER.size, self._buffer))
        if size > MAX_FRAME:
            raise NalarcError(f"peer announced a {size}-byte frame, over the {MAX_FRAME}-byte limit")
        return await _read_exactly(self.stream, size, self._buffer)

    async def send(self, message: tuple[Any, ...]) -> None:
        await self.send_bytes(cloudpickle.dumps(message, protocol=5))

    async def receive(self) -> tuple[Any, ...]:
        message = cloudpickle.loads(await self.receive_bytes())
        assert isinstance(message, tuple)
        return message

    async def aclose(self) -> None:
        await self.stream.aclose()


def mac(secret: bytes, nonce: bytes, role: bytes, peer: bytes) -> bytes:
    return hmac.new(secret, nonce + b"|" + role + b"|" + peer, hashlib.sha256).digest()


async def accept_worker(stream: trio.abc.Stream, secret: bytes) -> tuple[FramedStream, str]:
    """Driver side: authenticate a connecting worker; return it and its id."""
    framed = FramedStream(stream)
    nonce = os.urandom(32)
    await framed.send_bytes(nonce)
    with trio.fail_after(10):
        worker_id = await framed.receive_bytes()
        proof = await framed.receive_bytes()
    if len(worker_id) > 128 or not hmac.compare_digest(proof, mac(secret, nonce, b"worker", worker_id)):
        await stream.aclose()
        raise AuthenticationError("a process connected without the run's secret; dropped")
    await framed.send_bytes(mac(secret, nonce, b"driver", worker_id))
    return framed, worker_id.decode("ascii", "replace")
