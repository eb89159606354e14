"""The mutual handshake: only a peer that knows the run's secret, and speaks our protocol version, gets in."""

from __future__ import annotations

import socket
import threading

import pytest
import trio

from nalarc.wire import AuthenticationError, BlockingChannel, accept_blocking, accept_worker, connect_blocking
from nalarc.wire._handshake import _VERSION
from nalarc.wire._messages import PROTOCOL_VERSION

SECRET = b"s" * 32


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
    channel.send_bytes(_VERSION.pack(PROTOCOL_VERSION) + b"n" * 32)
    channel.receive_bytes()
    channel.receive_bytes()
    channel.send_bytes(b"guess" * 6 + b"!!")
