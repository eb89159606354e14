"""Length-prefixed frames over Unix sockets, and the encoding of messages.

Both sides use it: the driver's trio side (:class:`FramedStream`) and the
blocking side used by worker threads (:class:`BlockingChannel`).  Nothing is
unpickled before the peer has proved it knows the run's secret: the
handshake (``_handshake``) exchanges raw frames.

Frames: a 4-byte big-endian length, then the payload (at most ``MAX_FRAME``).
After the handshake every payload is a pickled message (``_messages``): plain
data (atoms in lists, tuples, dicts, messages) goes through the C pickler,
anything else through cloudpickle (functions and classes by value where
needed).  Both decode with ``pickle.loads``.

Hot path: the driver sends a call from the calling task with one ``write``
when the socket takes it (:meth:`FramedStream.send_soon`), and its read loop
takes every frame that has arrived with one ``read`` per wake-up
(:meth:`FramedStream.receive_batch`), so a reply costs one trio wait.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import cloudpickle
import trio

from .._errors import NalarcError
from ._messages import MESSAGE_TYPES, TAGGED, DepRef

MAX_FRAME = 256 * 1024 * 1024
HEADER = struct.Struct(">I")
#: Read size when no frame is half-received (one read usually takes every reply there is).
READ_SIZE = 256 * 1024
#: A frame at least this large is read straight into a buffer of its own size.
LARGE_FRAME = 1024 * 1024
#: How many values :func:`dumps` looks at before it leaves the message to cloudpickle.
_PLAIN_BUDGET = 256


_ATOMS = frozenset({int, float, str, bool, type(None), bytes, complex, DepRef})
#: message type -> its tag on the wire
_TAGS: dict[type, int] = {kind: tag for tag, kind in enumerate(TAGGED)}
_new_tuple = tuple.__new__


def dumps(message: tuple[Any, ...], user: tuple[Any, ...] | None = None) -> bytes:
    """The payload of one message (a ``nalarc.wire._messages`` type).

    A message travels as the plain tuple ``(tag, *fields)``: a class reference
    would cost the receiver an import lookup per message (``find_class``: 2 us
    of a round trip's 50).  Plain data goes through ``pickle`` (about 5x
    faster than cloudpickle for a small message: cloudpickle builds a pickler
    per call).  The C pickler would pickle a function or class from
    ``__main__`` by a reference the peer cannot resolve; cloudpickle pickles
    those by value, so anything that is not plain data goes through it.
    ``user``: the parts of ``message`` that came from user code, when the
    caller knows the rest is plain (only those are looked at).
    """
    tagged = (_TAGS[type(message)], *message)
    if _is_plain(message if user is None else user):
        return pickle.dumps(tagged, protocol=5)
    payload: bytes = cloudpickle.dumps(tagged, protocol=5)
    return payload


def _is_plain(values: tuple[Any, ...]) -> bool:
    """Only atoms in lists, tuples and dicts, and not too many to look at."""
    for value in values:  # the common case first: atoms, a tuple of atoms, an empty dict
        t = type(value)
        if t not in _ATOMS and not (t is tuple and all(map(_ATOMS.__contains__, map(type, value)))) \
                and not (t is dict and not value):
            break
    else:
        return True
    stack: list[Any] = list(values)
    budget = _PLAIN_BUDGET
    while stack:
        budget -= 1
        if budget < 0:
            return False  # looking further costs more than cloudpickle's own overhead
        x = stack.pop()
        t = type(x)
        if t in _ATOMS:
            continue
        if t is tuple or t is list or t in MESSAGE_TYPES:
            stack.extend(x)
        elif t is dict:
            stack.extend(x.keys())
            stack.extend(x.values())
        else:
            return False
    return True


def loads(payload: bytes | bytearray) -> Any:
    """A message from an authenticated peer (the type :func:`dumps` was given)."""
    tagged = pickle.loads(payload)
    return _new_tuple(TAGGED[tagged[0]], tagged[1:])


class ConnectionClosed(NalarcError):
    """The peer closed the connection."""


class _FrameBuffer:
    """Bytes received but not yet parsed into frames (both sides use it).

    Small frames accumulate in one bytearray; a large frame gets a buffer of
    its exact size, filled by ``recv_into`` (no copy per chunk, no copy at the
    end).
    """

    def __init__(self) -> None:
        self.data = bytearray()
        self.large: bytearray | None = None
        self.filled = 0
        # One receive buffer for the connection's life: reading into a fresh
        # READ_SIZE bytes object costs an mmap, a page fault and an munmap per
        # read (glibc serves it with mmap, and shrinking it never frees).
        self._scratch = memoryview(bytearray(READ_SIZE))

    def receive(self, recv_into: Callable[[memoryview], int]) -> int:
        """One read from the peer (``recv_into(buffer)`` returns a count); 0 when it closed."""
        if self.large is not None:
            count = recv_into(memoryview(self.large)[self.filled:])
            self.filled += count
        else:
            count = recv_into(self._scratch)
            self.data += self._scratch[:count]
        return count

    def frames(self, limit: int | None = None) -> list[bytearray | bytes]:
        """Every complete frame (at most ``limit``), removed from the buffer."""
        out: list[bytearray | bytes] = []
        if self.large is not None:
            if self.filled < len(self.large):
                return out
            out.append(self.large)
            self.large = None
        data, pos, end = self.data, 0, len(self.data)
        while end - pos >= HEADER.size and (limit is None or len(out) < limit):
            (size,) = HEADER.unpack_from(data, pos)
            if size > MAX_FRAME:
                raise NalarcError(f"peer announced a {size}-byte frame, over the {MAX_FRAME}-byte limit")
            start = pos + HEADER.size
            if end - start >= size:
                out.append(bytes(data[start:start + size]))
                pos = start + size
            elif size >= LARGE_FRAME:
                self.large = bytearray(size)
                self.filled = end - start
                self.large[:self.filled] = data[start:end]
                pos = end
                break
            else:
                break
        if pos:
            del data[:pos]
        return out


class FramedStream:
    """One authenticated connection, driver side (trio): send and receive whole frames.

    Sending never waits for another task: a frame goes out with one
    ``writev`` from the calling task when nothing is queued and the socket
    takes it; otherwise it joins ``_backlog``, which one task drains in order.
    """

    def __init__(self, stream: trio.SocketStream, nursery: trio.Nursery) -> None:
        self.stream = stream
        #: Where the drain task runs: a nursery that lives as long as the connection.
        self._nursery = nursery
        self._frames = _FrameBuffer()
        self._ready: list[bytearray | bytes] = []
        self._fd = stream.socket.fileno()
        #: Frames (or their unsent tails) waiting for the socket, in order.
        self._backlog: list[bytes | memoryview] = []
        self._drained = trio.Event()
        self._drained.set()
        self.broken = False
        #: Bytes received and sent (frames with their headers): what went through the driver.
        self.bytes_in = self.bytes_out = 0

    # -- sending -----------------------------------------------------------

    def send_soon(self, payload: bytes) -> None:
        """Send now, without a task switch, when the socket takes the frame at once.

        Otherwise the frame (or what is left of it) is queued and a task sends
        it, in order.  The hot path of every call.  A broken connection drops
        the frame: the worker's supervisor fails or re-runs its calls.
        """
        if len(payload) > MAX_FRAME:
            raise NalarcError(f"frame of {len(payload)} bytes exceeds the {MAX_FRAME}-byte limit")
        header = HEADER.pack(len(payload))
        self.bytes_out += len(header) + len(payload)
        if self._backlog or self.broken:
            self._queue(header + payload)
            return
        try:
            # Two buffers, one syscall: a large payload is not copied to prepend its header.
            written = os.writev(self._fd, (header, payload))
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:
            self.broken = True
            return
        if written < len(header):
            self._queue((header + payload)[written:])
        elif written < len(header) + len(payload):
            self._queue(memoryview(payload)[written - len(header):])

    def _queue(self, data: bytes | memoryview) -> None:
        if self.broken:
            return
        self._backlog.append(data)
        if len(self._backlog) == 1:
            self._drained = trio.Event()
            self._nursery.start_soon(self._drain)

    async def _drain(self) -> None:
        try:
            while self._backlog:
                await self.stream.send_all(self._backlog[0])
                self._backlog.pop(0)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.broken = True
            self._backlog.clear()
        finally:
            self._drained.set()

    async def send_bytes(self, payload: bytes) -> None:
        """Send a frame and wait until the socket has taken it (and everything before it)."""
        self.send_soon(payload)
        if self.broken:
            raise trio.BrokenResourceError("the connection is broken")
        await self._drained.wait()

    async def send(self, message: tuple[Any, ...]) -> None:
        await self.send_bytes(dumps(message))

    # -- receiving ---------------------------------------------------------

    async def _fill(self) -> None:
        """Wait until the socket is readable, then take what is there (one read)."""
        await trio.lowlevel.wait_readable(self._fd)
        try:
            count = self._frames.receive(self._readv)
        except BlockingIOError:
            return
        except OSError as error:  # reset by a dying peer
            raise ConnectionClosed(f"connection lost: {error}") from error
        if count == 0:
            raise ConnectionClosed("connection closed by the peer")
        self.bytes_in += count

    def _readv(self, buffer: memoryview) -> int:
        return os.readv(self._fd, [buffer])

    async def receive_bytes(self) -> bytes | bytearray:
        """The next frame's payload."""
        while not self._ready:
            self._ready = self._frames.frames()
            if not self._ready:
                await self._fill()
        return self._ready.pop(0)

    async def receive_batch(self) -> list[Any]:
        """Every message that has arrived (at least one), in order: one wait for many replies."""
        while not self._ready:
            self._ready = self._frames.frames()
            if not self._ready:
                await self._fill()
        ready, self._ready = self._ready, []
        return [loads(payload) for payload in ready]

    async def aclose(self) -> None:
        await self.stream.aclose()


class BlockingChannel:
    """One authenticated connection for threads: one reader at a time, sends serialized by a lock."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._frames = _FrameBuffer()
        self._ready: list[bytearray | bytes] = []
        self.read_lock = threading.Lock()
        self._send_lock = threading.Lock()

    def receive_bytes(self) -> bytes | bytearray:
        """The next frame's payload (blocks); raises EOFError when the peer is gone."""
        while not self._ready:
            self._ready = self._frames.frames()
            if self._ready:
                break
            count = self._frames.receive(self.sock.recv_into)
            if count == 0:
                raise EOFError("the peer closed the connection")
        return self._ready.pop(0)

    def received_frames(self) -> list[bytes | bytearray]:
        """The frames already received and not yet taken (never blocks)."""
        ready, self._ready = [*self._ready, *self._frames.frames()], []
        return ready

    def receive(self) -> Any:
        return loads(self.receive_bytes())

    def send_bytes(self, payload: bytes) -> None:
        if len(payload) > MAX_FRAME:
            raise NalarcError(f"frame of {len(payload)} bytes exceeds the {MAX_FRAME}-byte limit")
        header = HEADER.pack(len(payload))
        with self._send_lock:
            if len(payload) < LARGE_FRAME:
                self.sock.sendall(header + payload)
            else:
                self.sock.sendall(header)
                self.sock.sendall(payload)

    def send(self, message: tuple[Any, ...]) -> None:
        self.send_bytes(dumps(message))

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


