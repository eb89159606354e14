"""The typed messages: one definition for both sides, cheap to encode, and each one actually used.

Also the protocol version: a driver and a worker that speak different
versions stop at the handshake with a clear :class:`~nalarc.wire.ProtocolMismatch`
on both sides (over real sockets, and with a real worker process).
"""

from __future__ import annotations

import inspect
import os
import pickle
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

import nalarc
from nalarc import wire
from nalarc.wire import _messages
from nalarc.wire._handshake import _VERSION, mac

SECRET = b"s" * 32
PACKAGE = Path(nalarc.__file__).resolve().parent

EXAMPLES: list[Any] = [
    wire.Init("/tmp/build"),
    wire.Run(7, "Planner#0", "app:Planner", "plan", (1, "a"), {"k": 2}, "s", "r", {"n": 1},
             ((3, "w1"),), (("w2", 5),)),
    wire.RunBatch("Planner#0", "app:Planner", [wire.BatchItem(8, "plan", (1,), {}, "s", "r")]),
    wire.Preempt("Planner#0", "on_preempt"),
    wire.Result(4, True, [1, 2]),
    wire.Consume(7, "w2", 5),
    wire.Release(7, 1),
    wire.Value(3, "v"),
    wire.Probe(1),
    wire.Shutdown(),
    wire.Ready(1234),
    wire.Done(7, True, 42, None, "", (("w2", (5,)),)),
    wire.Done(8, True, 42, None, "", (), (("s1", "analyst", 2000, 0.08),)),
    wire.Call(1, "app:double", None, 1 << 8, (2,), {}, "s", "r"),
    wire.Need(3),
    wire.ProbeReply(1, {"values": 0, "waiting": 0}),
    wire.Push(7, 2, b"x" * 100),
    wire.BatchItem(9, "plan", (2,), {}, "s", "r"),
    wire.Event("r", "token", {"text": "hi"}),
    wire.QuotaConfig(True, ("gpt", "*"), True, 256),
    wire.QuotaAsk(3, "gpt", 120, "s"),
    wire.QuotaGrant(3, 0.25, ("budget", "s", 1200, 1000)),
    wire.QuotaSettle("gpt", "s", 120, 97),
]


def test_every_message_type_has_an_example() -> None:
    assert {type(m) for m in EXAMPLES} == _messages.MESSAGE_TYPES


def test_the_wire_order_is_the_protocol_s() -> None:
    """Tags are positions in TAGGED: reordering it changes the protocol (then bump PROTOCOL_VERSION)."""
    assert [t.__name__ for t in _messages.TAGGED[:3]] == ["Init", "Run", "BatchItem"]
    assert len(set(_messages.TAGGED)) == len(_messages.TAGGED)


def test_the_encoder_knows_every_message_type() -> None:
    """A message class missing from MESSAGE_TYPES would silently take the slow cloudpickle path when nested."""
    defined = {obj for _, obj in inspect.getmembers(_messages, inspect.isclass)
               if issubclass(obj, tuple) and obj.__module__ == _messages.__name__}
    assert defined == _messages.MESSAGE_TYPES


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_messages_cross_the_wire_with_their_type_and_fields(message: Any) -> None:
    payload = wire.dumps(message)
    # a plain tuple (tag, *fields) through the C pickler: no class reference for the peer to look up
    assert payload == pickle.dumps((_messages.TAGGED.index(type(message)), *message), protocol=5)
    back = wire.loads(payload)
    assert type(back) is type(message) and back == message
    assert back._asdict() == message._asdict()


def test_a_reference_crosses_the_wire_in_a_call_s_arguments() -> None:
    run = wire.Run(7, "Planner#0", "app:Planner", "plan", (wire.DepRef(3),), {}, "s", "r", None, ((3, "w1"),), ())
    payload = wire.dumps(run)
    assert pickle.loads(payload)[0] == _messages.TAGGED.index(wire.Run)  # the C pickler: plain data
    (ref,) = wire.loads(payload).args
    assert type(ref) is wire.DepRef and ref.call_id == 3


def test_fields_are_read_by_name() -> None:
    run = EXAMPLES[1]
    assert (run.call_id, run.key, run.deps, run.push) == (7, "app:Planner", ((3, "w1"),), (("w2", 5),))
    assert wire.Done._fields == ("call_id", "ok", "payload", "state", "traceback", "pushed", "cache")


def test_every_message_is_sent_somewhere() -> None:
    """No message type that is handled but never sent (issue 12 found one): each is built outside the wire."""
    sources = "\n".join(path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")
                        if path.relative_to(PACKAGE).parts[0] != "wire")
    unsent = sorted(t.__name__ for t in _messages.MESSAGE_TYPES if f"{t.__name__}(" not in sources)
    assert unsent == []


# -- the protocol version ------------------------------------------------------------


def _connect_speaking(sock: socket.socket, version: int, outcome: list[bytes]) -> None:
    """A worker of another nalarc version (hand-rolled): it knows the secret, not our protocol."""
    channel = wire.BlockingChannel(sock)
    hello = bytes(channel.receive_bytes())
    channel.send_bytes(_VERSION.pack(version) + b"w9")
    channel.send_bytes(mac(SECRET, hello, b"worker", b"w9"))
    outcome.append(hello)
    channel.close()


def test_the_driver_rejects_a_worker_of_another_protocol_version() -> None:
    left, right = socket.socketpair()
    hello: list[bytes] = []
    thread = threading.Thread(target=_connect_speaking, args=(right, wire.PROTOCOL_VERSION + 1, hello))
    thread.start()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(left))
            with pytest.raises(wire.ProtocolMismatch, match=f"version {wire.PROTOCOL_VERSION}.*version {wire.PROTOCOL_VERSION + 1}"):
                await wire.accept_worker(stream, SECRET, nursery)

    trio.run(main)
    thread.join()
    assert _VERSION.unpack_from(hello[0])[0] == wire.PROTOCOL_VERSION  # the worker could see ours too


def test_a_worker_rejects_a_driver_of_another_protocol_version() -> None:
    left, right = socket.socketpair()
    introduction: list[bytes] = []

    def old_driver() -> None:
        channel = wire.BlockingChannel(left)
        channel.send_bytes(_VERSION.pack(wire.PROTOCOL_VERSION + 1) + os.urandom(32))
        introduction.append(bytes(channel.receive_bytes()))
        channel.receive_bytes()
        channel.close()

    thread = threading.Thread(target=old_driver)
    thread.start()
    with pytest.raises(wire.ProtocolMismatch) as caught:
        wire.connect_blocking(wire.BlockingChannel(right), SECRET, "w1")
    thread.join()
    assert (caught.value.ours, caught.value.theirs) == (wire.PROTOCOL_VERSION, wire.PROTOCOL_VERSION + 1)
    # it told the driver its own version before giving up, so the driver can say what is wrong as well
    assert introduction[0] == _VERSION.pack(wire.PROTOCOL_VERSION) + b"w1"


WORKER_OF_VERSION_99 = """
import sys
import nalarc.wire._handshake as handshake
handshake.PROTOCOL_VERSION = 99
from nalarc.worker._main import main
main(sys.argv[1:])
"""


def test_a_real_worker_process_of_another_version_stops_with_a_clear_error(tmp_path: Path) -> None:
    """``python -m nalarc.worker``'s main, speaking version 99, against the driver's accept."""
    path = str(tmp_path / "driver.sock")

    async def main() -> tuple[BaseException, str]:
        listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await listener.bind(path)
        listener.listen(1)
        process = await trio.lowlevel.open_process(
            [sys.executable, "-c", WORKER_OF_VERSION_99, path, "w0"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdin is not None and process.stderr is not None
        await process.stdin.send_all(SECRET.hex().encode() + b"\n")
        sock, _ = await listener.accept()
        async with trio.open_nursery() as nursery:
            with pytest.raises(wire.ProtocolMismatch) as caught:
                await wire.accept_worker(trio.SocketStream(sock), SECRET, nursery)
        with trio.fail_after(30):
            await process.wait()
            stderr = b""
            while chunk := await process.stderr.receive_some():
                stderr += chunk
        assert process.returncode != 0
        return caught.value, stderr.decode()

    error, stderr = trio.run(main)
    assert f"this side speaks version {wire.PROTOCOL_VERSION}, the connecting peer speaks version 99" in str(error)
    assert f"this side speaks version 99, the accepting peer speaks version {wire.PROTOCOL_VERSION}" in stderr
