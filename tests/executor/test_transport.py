"""The wire: framing, message encoding, the mutual handshake, and the worker's store of pushed values."""

from __future__ import annotations

import pickle
import socket
import threading
from typing import Any

import pytest
import trio

from nalarc._errors import NalarcError
from nalarc.runtime.lowlevel import substitute
from nalarc.executor._transport import (
    LARGE_FRAME,
    MAX_FRAME,
    AuthenticationError,
    BlockingChannel,
    DepRef,
    FramedStream,
    _FrameBuffer,
    _is_plain,
    accept_blocking,
    accept_worker,
    connect_blocking,
    dumps,
    loads,
)
from nalarc.executor._worker_main import _Values

SECRET = b"s" * 32


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
    plain: tuple[Any, ...] = ("run", 1, "noop#0", "m:noop", None, (1, "a", [2.0, {"k": b"v"}]), {}, "s", "r", None, (), ())
    assert _is_plain(plain) and dumps(plain) == pickle.dumps(plain, protocol=5)
    assert _is_plain(("run", DepRef(3)))
    local = lambda x: x + 1  # noqa: E731 - a function the peer could not import by name
    message = ("result", 1, True, local)
    assert not _is_plain(message)
    assert loads(dumps(message))[3](1) == 2
    assert not _is_plain(("x", list(range(1000))))  # too much to look at: cloudpickle, still correct
    assert loads(dumps(("x", list(range(1000))))) == ("x", list(range(1000)))


def test_driver_and_worker_sides_exchange_frames_in_order() -> None:
    """send_soon never blocks: what the socket cannot take at once is queued and goes out in order."""
    left, right = socket.socketpair()
    big = b"b" * (8 * 1024 * 1024)  # far more than the socket buffer
    messages = [("small", i) for i in range(50)] + [("big", big)] + [("after", i) for i in range(50)]
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


def _connector(sock: socket.socket, secret: bytes, outcome: list[BaseException | None]) -> None:
    try:
        connect_blocking(BlockingChannel(sock), secret, "w7")
        outcome.append(None)
    except (AuthenticationError, EOFError, OSError) as error:
        outcome.append(error)


@pytest.mark.parametrize("secret", [SECRET, b"t" * 32])
def test_the_driver_accepts_only_a_worker_that_knows_the_secret(secret: bytes) -> None:
    left, right = socket.socketpair()
    outcome: list[BaseException | None] = []
    thread = threading.Thread(target=_connector, args=(right, secret, outcome))
    thread.start()

    async def main() -> str | None:
        async with trio.open_nursery() as nursery:
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(left))
            try:
                _, worker_id = await accept_worker(stream, SECRET, nursery)
                return worker_id
            except AuthenticationError:
                return None

    accepted = trio.run(main)
    thread.join()
    if secret == SECRET:
        assert accepted == "w7" and outcome == [None]
    else:
        assert accepted is None and outcome and outcome[0] is not None


@pytest.mark.parametrize("secret", [SECRET, b"t" * 32])
def test_a_worker_accepts_only_a_sibling_that_knows_the_secret(secret: bytes) -> None:
    left, right = socket.socketpair()
    outcome: list[BaseException | None] = []
    thread = threading.Thread(target=_connector, args=(right, secret, outcome))
    thread.start()
    channel = BlockingChannel(left)
    if secret == SECRET:
        assert accept_blocking(channel, SECRET) == "w7"
    else:
        with pytest.raises(AuthenticationError):
            accept_blocking(channel, SECRET)
        channel.close()
    thread.join()
    assert (outcome == [None]) == (secret == SECRET)


def test_the_worker_side_rejects_a_driver_without_the_secret() -> None:
    """Mutual: a worker does not trust a listener that cannot prove it knows the secret either."""
    left, right = socket.socketpair()
    impostor = threading.Thread(target=_impostor, args=(BlockingChannel(left),))
    impostor.start()
    with pytest.raises(AuthenticationError):
        connect_blocking(BlockingChannel(right), SECRET, "w1")
    impostor.join()


def _impostor(channel: BlockingChannel) -> None:
    """A listener without the secret: it can only guess the proof it owes."""
    channel.send_bytes(b"n" * 32)
    channel.receive_bytes()
    channel.receive_bytes()
    channel.send_bytes(b"guess" * 6 + b"!!")


def test_pushed_values_wait_for_their_calls_and_leave_with_them() -> None:
    values = _Values()
    values.put(1, 2, "v")  # two calls here need it
    asked: list[int] = []
    assert values.take(1, "w2", asked.append) == "v"
    assert values.stats()["values"] == 1
    assert values.take(1, "w2", asked.append) == "v"
    assert values.stats()["values"] == 0 and asked == []


def test_a_release_before_the_push_arrives_drops_the_push() -> None:
    """In flight: the consumer moved away before its copy landed; the copy is dropped when it lands."""
    values = _Values()
    values.release(5, 1)
    values.put(5, 1, "late")
    assert values.stats()["values"] == 0


def test_a_call_asks_the_driver_when_its_producer_is_gone() -> None:
    values = _Values()
    values.peer("w2", connected=True)
    asked: list[int] = []
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(values.take(9, "w2", asked.append)))
    thread.start()
    values.peer("w2", connected=False)  # died mid-push
    while not asked:
        threading.Event().wait(0.01)
    values.from_driver(9, "from the driver")
    thread.join()
    assert got == ["from the driver"] and asked == [9]
    values.put(9, 1, "the push, after all")  # counted as taken already: dropped
    assert values.stats() == {"values": 0, "waiting": 0}


def test_references_are_replaced_in_nested_arguments() -> None:
    args = (DepRef(1), [DepRef(2), {"k": DepRef(1)}], "plain")
    values = {1: "a", 2: "b"}
    assert substitute(args, DepRef, lambda ref: values[ref.call_id]) == ("a", ["b", {"k": "a"}], "plain")
