"""The wire's framing and message encoding: frames of every size, plain messages through the C pickler."""

from __future__ import annotations

import pickle
import socket
import threading
from typing import Any

import pytest
import trio

from nalarc._errors import NalarcError
from nalarc.wire import (
    LARGE_FRAME,
    MAX_FRAME,
    BatchItem,
    BlockingChannel,
    DepRef,
    FramedStream,
    Result,
    Run,
    RunBatch,
    Value,
    dumps,
    loads,
)
from nalarc.wire._framing import _TAGS, _FrameBuffer, _is_plain


def test_frames_of_every_size_cross_a_blocking_channel() -> None:
    left, right = socket.socketpair()
    sender, receiver = BlockingChannel(left), BlockingChannel(right)
    payloads = [b"", b"x", b"y" * 100, b"z" * 70_000, bytes(range(256)) * (LARGE_FRAME // 64), b"end"]
    def send_all() -> None:
        for payload in payloads:
            sender.send_bytes(payload)

    thread = threading.Thread(target=send_all)
    thread.start()
    assert [bytes(receiver.receive_bytes()) for _ in payloads] == payloads
    thread.join()


def _reader(data: bytes, chunk: int) -> Any:
    """A ``recv_into`` that hands out ``data`` at most ``chunk`` bytes at a time."""
    position = 0

    def recv_into(buffer: memoryview) -> int:
        nonlocal position
        count = min(chunk, len(buffer), len(data) - position)
        buffer[:count] = data[position:position + count]
        position += count
        return count

    return recv_into


@pytest.mark.parametrize("chunk", [1, 3, 4096, 300_000])
def test_frames_split_anywhere_are_reassembled_in_order(chunk: int) -> None:
    payloads = [b"a", b"", b"b" * 5000, bytes(range(256)) * (LARGE_FRAME // 128), b"c"]
    wire = b"".join(len(p).to_bytes(4, "big") + p for p in payloads)
    buffer, received = _FrameBuffer(), []
    recv_into = _reader(wire, chunk)
    while len(received) < len(payloads):
        received += [bytes(frame) for frame in buffer.frames()]
        if len(received) < len(payloads):
            assert buffer.receive(recv_into) > 0
    assert received == payloads
    assert buffer.receive(recv_into) == 0  # the peer has nothing more: closed


def test_a_frame_over_the_limit_is_refused_before_it_is_read() -> None:
    buffer = _FrameBuffer()
    buffer.receive(_reader((MAX_FRAME + 1).to_bytes(4, "big") + b"...", 100))
    with pytest.raises(NalarcError, match="over the"):
        buffer.frames()


def test_plain_messages_use_the_c_pickler_and_the_rest_cloudpickle() -> None:
    plain = Run(1, "noop#0", "m:noop", None, (1, "a", [2.0, {"k": b"v"}]), {}, "s", "r", None, (), ())
    assert _is_plain(plain) and dumps(plain) == pickle.dumps((_TAGS[Run], *plain), protocol=5)
    assert _is_plain(Run(1, "i", "m:k", "f", (DepRef(3),), {}, "s", "r", None, ((3, "w1"),), ()))
    batch = RunBatch("a#0", "m:a", [BatchItem(i, "f", (i,), {}, "s", "r") for i in range(3)])
    assert _is_plain(batch) and loads(dumps(batch)) == batch  # messages nested in messages are plain too
    local = lambda x: x + 1  # noqa: E731 - a function the peer could not import by name
    message = Result(1, True, local)
    assert not _is_plain(message)
    assert loads(dumps(message)).payload(1) == 2
    many = Value(1, list(range(1000)))
    assert not _is_plain(many)  # too much to look at: cloudpickle, still correct
    assert loads(dumps(many)) == many


def test_driver_and_worker_sides_exchange_frames_in_order() -> None:
    """send_soon never blocks: what the socket cannot take at once is queued and goes out in order."""
    left, right = socket.socketpair()
    big = b"b" * (8 * 1024 * 1024)  # far more than the socket buffer
    messages = [Value(i, "small") for i in range(50)] + [Value(50, big)] + [Value(i, "after") for i in range(50)]
    echoed: list[tuple[Any, ...]] = []

    def echo() -> None:
        channel = BlockingChannel(right)
        for _ in messages:
            channel.send(channel.receive())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            stream = FramedStream(trio.SocketStream(trio.socket.from_stdlib_socket(left)), nursery)
            for message in messages:
                stream.send_soon(dumps(message))
            while len(echoed) < len(messages):
                echoed.extend(await stream.receive_batch())
            assert stream.bytes_out >= len(big) and stream.bytes_in >= len(big)

    thread = threading.Thread(target=echo)
    thread.start()
    trio.run(main)
    thread.join()
    assert echoed == messages


