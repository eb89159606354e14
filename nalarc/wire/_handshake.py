"""Mutual HMAC authentication, and the protocol version both ends speak.

Handshake (``S`` = per-run secret, ``n`` = 32 random bytes from the side that
accepted the connection, ``v`` = :data:`~nalarc.wire._messages.PROTOCOL_VERSION`
as 4 big-endian bytes, ``peer`` = the connecting side's id)::

    acceptor  -> connector   v n
    connector -> acceptor    v peer, HMAC(S, v n | "worker" | peer)
    acceptor  -> connector   HMAC(S, v n | "driver" | peer)

Each side sends its version before it looks at the other's, so on a
mismatch both raise :class:`ProtocolMismatch` naming both versions (not a
failed proof, nor a message neither can decode).  The driver accepts workers;
a worker also accepts its sibling workers (push readiness), with the same
handshake.  Only raw frames cross before the proofs are checked.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

import trio

from .._errors import NalarcError
from ._framing import BlockingChannel, FramedStream
from ._messages import PROTOCOL_VERSION

_VERSION = struct.Struct(">I")
#: Seconds a peer has to complete the handshake.
_TIMEOUT = 10


class AuthenticationError(NalarcError):
    """A peer failed the handshake: it does not know the run's secret."""


class ProtocolMismatch(NalarcError):
    """The peer speaks another version of the wire protocol (a driver and worker of different nalarc versions)."""

    def __init__(self, ours: int, theirs: int, peer: str) -> None:
        super().__init__(
            f"wire protocol mismatch: this side speaks version {ours}, the {peer} speaks version {theirs}; "
            "run the driver and its workers with the same nalarc"
        )
        self.ours, self.theirs = ours, theirs


def mac(secret: bytes, nonce: bytes, role: bytes, peer: bytes) -> bytes:
    return hmac.new(secret, nonce + b"|" + role + b"|" + peer, hashlib.sha256).digest()


def _hello() -> bytes:
    """What the acceptor sends first: its version, then a fresh nonce (the proofs cover both)."""
    return _VERSION.pack(PROTOCOL_VERSION) + os.urandom(32)


def _version_of(frame: bytes, peer: str) -> bytes:
    """The rest of a frame that starts with the peer's version; raise if it is not ours."""
    if len(frame) < _VERSION.size:
        raise AuthenticationError(f"the {peer} sent a malformed handshake")
    (theirs,) = _VERSION.unpack_from(frame)
    if theirs != PROTOCOL_VERSION:
        raise ProtocolMismatch(PROTOCOL_VERSION, theirs, peer)
    return frame[_VERSION.size:]


def _check_proof(hello: bytes, introduction: bytes, proof: bytes, secret: bytes) -> bytes:
    """Acceptor side: the connecting peer's id, once its version and proof are checked."""
    peer = _version_of(introduction, "connecting peer")
    if len(peer) > 128 or not hmac.compare_digest(proof, mac(secret, hello, b"worker", peer)):
        raise AuthenticationError("a process connected without the run's secret; dropped")
    return peer


async def accept_worker(stream: trio.SocketStream, secret: bytes, nursery: trio.Nursery) -> tuple[FramedStream, str]:
    """Driver side: authenticate a connecting worker; return it and its id.

    ``nursery`` outlives the connection: the connection's send task runs there.
    """
    framed_stream = FramedStream(stream, nursery)
    hello = _hello()
    await framed_stream.send_bytes(hello)
    with trio.fail_after(_TIMEOUT):
        introduction = bytes(await framed_stream.receive_bytes())
        proof = bytes(await framed_stream.receive_bytes())
    try:
        worker_id = _check_proof(hello, introduction, proof, secret)
    except NalarcError:
        await stream.aclose()
        raise
    await framed_stream.send_bytes(mac(secret, hello, b"driver", worker_id))
    return framed_stream, worker_id.decode("ascii", "replace")


def accept_blocking(channel: BlockingChannel, secret: bytes) -> str:
    """Accepting side for threads (a worker accepting a sibling): the peer's id, or raise."""
    hello = _hello()
    channel.sock.settimeout(_TIMEOUT)
    try:
        channel.send_bytes(hello)
        introduction = bytes(channel.receive_bytes())
        proof = bytes(channel.receive_bytes())
        peer = _check_proof(hello, introduction, proof, secret)
        channel.send_bytes(mac(secret, hello, b"driver", peer))
    except (OSError, EOFError) as error:
        raise AuthenticationError(f"handshake failed: {error}") from error
    finally:
        channel.sock.settimeout(None)
    return peer.decode("ascii", "replace")


def connect_blocking(channel: BlockingChannel, secret: bytes, own_id: str) -> None:
    """Connecting side for threads (a worker, to the driver or to a sibling): prove, then check the proof."""
    timeout = channel.sock.gettimeout()
    channel.sock.settimeout(_TIMEOUT)  # a listener that never answers must not hang us
    try:
        hello = bytes(channel.receive_bytes())
        peer = own_id.encode("ascii")
        # Our version and proof go out before we judge theirs: on a mismatch, both sides can say so.
        channel.send_bytes(_VERSION.pack(PROTOCOL_VERSION) + peer)
        channel.send_bytes(mac(secret, hello, b"worker", peer))
        _version_of(hello, "accepting peer")
        answer = bytes(channel.receive_bytes())
    except (OSError, EOFError) as error:
        raise AuthenticationError(f"handshake failed: {error}") from error
    finally:
        channel.sock.settimeout(timeout)
    if not hmac.compare_digest(answer, mac(secret, hello, b"driver", peer)):
        raise AuthenticationError("the peer failed to prove it knows the run's secret")
