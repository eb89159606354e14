"""Hostile input against the real server over loopback (issue 14, acceptance 2).

Requests are written as raw bytes on a socket of their own, so nothing in a
client library cleans them up first.  Every case must get a clean JSON answer
with the expected status (never a 500 from the server itself, never a hang), and
after every case ``/healthz`` must still answer.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import trio

from nalarc import load_app
from nalarc.executor import LoadedApp, Placement, open_service
from nalarc.executor._statestore import StateStore
from nalarc.serve import serve

APP = '''
import nalarc

@nalarc.tool
def count(n):
    return len(range(n))

@nalarc.workflow
def fan_out(n):
    return count(n)

@nalarc.workflow
def echo(x):
    return x
'''

JSON = b"application/json"


@dataclass
class Case:
    name: str
    #: What a well-behaved server answers; several when either is fine (h11 itself or the app rejects).
    expected: tuple[int, ...]
    body: bytes = b"{}"
    path: bytes = b"/v1/workflows/fan_out"
    headers: tuple[tuple[bytes, bytes], ...] = ()
    content_type: bytes | None = JSON


def deep(opening: bytes, depth: int, closing: bytes, inner: bytes = b"1") -> bytes:
    return b'{"x":' + opening * depth + inner + closing * depth + b"}"


def cases() -> list[Case]:
    out = [
        Case("malformed json", (400,), b"{not json"),
        Case("truncated json", (400,), b'{"n": 1'),
        Case("empty body", (400,), b""),
        Case("NaN", (400,), b'{"n": NaN}'),
        Case("Infinity", (400,), b'{"n": Infinity}'),
        Case("-Infinity", (400,), b'{"n": -Infinity}'),
        Case("1e999 overflows to inf", (400,), b'{"n": 1e999}'),
        Case("10,000-digit integer", (400,), b'{"n": 1' + b"0" * 10_000 + b"}"),
        Case("100k nested arrays, unclosed", (400,), b"[" * 100_000),
        Case("100k nested arrays", (400,), b"[" * 100_000 + b"]" * 100_000),
        Case("100k nested objects", (400,), b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        Case("trailing garbage", (400,), b'{"n": 1} x'),
        Case("non-UTF-8 bytes in a string", (400,), b'{"n": "\xff\xfe"}'),
        Case("array body", (422,), b"[1, 2]"),
        Case("string body", (422,), b'"n"'),
        Case("null body", (422,), b"null"),
        Case("number body", (422,), b"3"),
        Case("missing argument", (422,), b"{}"),
        Case("unknown argument", (422,), b'{"n": 1, "extra": 2}'),
        # wrong types the workflow does not declare: the workflow itself raises, reported as its 500
        Case("string where the tool wants an int", (500,), b'{"n": "many"}'),
        Case("lone surrogate survives the round trip", (200,), b'{"x": "\\ud800"}', b"/v1/workflows/echo"),
        Case("NUL in a string", (200,), b'{"x": "a\\u0000b"}', b"/v1/workflows/echo"),
        Case("duplicate keys (last wins, as json does)", (200,), b'{"x": 1, "x": 2}', b"/v1/workflows/echo"),
        Case("no content type", (415,), content_type=None),
        Case("text/plain", (415,), b'{"n": 1}', content_type=b"text/plain"),
        Case("form", (415,), b"n=1", content_type=b"application/x-www-form-urlencoded"),
        Case("multipart", (415,), b"--x--", content_type=b"multipart/form-data; boundary=x"),
        Case("json-patch", (415,), b"[]", content_type=b"application/json-patch+json"),
        Case("upper-case content type is still JSON", (200,), b'{"n": 2}', content_type=b"APPLICATION/JSON"),
        Case("content-length not a number", (400,), headers=((b"content-length", b"abc"),)),
        Case("negative content-length", (400,), headers=((b"content-length", b"-5"),)),
        Case("oversized header block (100 KB)", (400, 431), headers=((b"x-pad", b"a" * 100_000),)),
        Case("unknown workflow with a hostile name", (404,), path=b"/v1/workflows/%00%ff..%2f"),
        Case("10 KB run id", (404, 414, 400), path=b"/v1/runs/" + b"r" * 10_000),
    ]
    for depth in (500, 900, 950, 980, 990, 995, 1000, 1010, 2000):  # around the recursion limit: 200 or a clean 400
        out.append(Case(f"nested arrays, depth {depth}", (200, 400), deep(b"[", depth, b"]"), b"/v1/workflows/echo"))
        out.append(Case(f"nested objects, depth {depth}", (200, 400), deep(b'{"a":', depth, b"}"), b"/v1/workflows/echo"))
    for header, title in ((b"x-nalarc-session", "session"), (b"idempotency-key", "idempotency key")):
        out += [
            Case(f"{title}: control character", (400,), b'{"n": 1}', headers=((header, b"a\x01b"),)),
            Case(f"{title}: tab", (400,), b'{"n": 1}', headers=((header, b"a\tb"),)),
            Case(f"{title}: DEL", (400,), b'{"n": 1}', headers=((header, b"a\x7fb"),)),
            Case(f"{title}: 10 KB", (400,), b'{"n": 1}', headers=((header, b"k" * 10_000),)),
            Case(f"{title}: non-UTF-8 bytes", (400,), b'{"n": 1}', headers=((header, b"\xff\xfe\xfd"),)),
            Case(f"{title}: C1 control (U+0085) in UTF-8", (400,), b'{"n": 1}', headers=((header, "a\x85".encode()),)),
            Case(f"{title}: empty", (400,), b'{"n": 1}', headers=((header, b""),)),
            Case(f"{title}: 256 characters (over the limit for keys)", (200,) if header == b"x-nalarc-session" else (400,),
                 b'{"n": 1}', headers=((header, b"k" * 256),)),
            Case(f"{title}: unicode letters are fine", (200,), b'{"n": 1}', headers=((header, "clé-Ω".encode()),)),
        ]
    return out


def request_bytes(case: Case) -> bytes:
    headers = [(b"host", b"test")]
    if case.content_type is not None:
        headers.append((b"content-type", case.content_type))
    if not any(name == b"content-length" for name, _ in case.headers):
        headers.append((b"content-length", str(len(case.body)).encode()))
    headers += case.headers
    head = b"POST " if not case.path.startswith(b"/v1/runs/") else b"GET "
    lines = [head + case.path + b" HTTP/1.1", *(name + b": " + value for name, value in headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + (case.body if head == b"POST " else b"")


async def exchange(port: int, payload: bytes, *, timeout: float = 10.0) -> tuple[int, dict[bytes, bytes], bytes]:
    """Send raw bytes, read one HTTP response; (status, headers, body)."""
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(payload)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                assert chunk, f"connection closed before a response: {data!r}"
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            status_line, *header_lines = head.split(b"\r\n")
            headers = dict(line.split(b": ", 1) for line in header_lines)
            headers = {k.lower(): v for k, v in headers.items()}
            length = int(headers.get(b"content-length", b"0"))
            while len(body) < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                body += chunk
            return int(status_line.split()[1]), headers, body


async def healthy(port: int) -> bool:
    status, _, body = await exchange(port, b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
    return status == 200 and json.loads(body) == {"status": "ok"}


@pytest.fixture
def app(tmp_path: Path) -> LoadedApp:
    path = tmp_path / "bad_input_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return load_app(path, out_dir=tmp_path / "build")


def with_server(app: LoadedApp, scenario: object) -> None:
    async def main() -> None:
        store = StateStore(None)
        try:
            async with open_service(app, store, Placement(workers=0)) as service, trio.open_nursery() as nursery:
                urls = await nursery.start(partial(serve, app, service, "127.0.0.1", 0))
                await scenario(int(urls[0].rsplit(":", 1)[1]))  # type: ignore[operator]
                nursery.cancel_scope.cancel()
        finally:
            store.close()

    trio.run(main)


def test_hostile_requests_get_clean_answers_and_the_server_keeps_serving(app: LoadedApp) -> None:
    all_cases = cases()
    outcomes: Counter[int] = Counter()
    failures: list[str] = []

    async def scenario(port: int) -> None:
        for case in all_cases:
            status, headers, body = await exchange(port, request_bytes(case))
            outcomes[status] += 1
            if status not in case.expected:
                failures.append(f"{case.name}: {status} {body[:200]!r}")
            elif status != 200 and headers.get(b"content-type") == JSON:
                error = json.loads(body)["error"]  # our own answers are JSON errors
                assert isinstance(error, str) and error
            if not await healthy(port):
                failures.append(f"{case.name}: /healthz failed afterwards")

    with_server(app, scenario)
    print(f"\n{len(all_cases)} hostile requests: " + ", ".join(f"{n} x {s}" for s, n in sorted(outcomes.items())))
    assert failures == []
    assert sum(outcomes.values()) == len(all_cases)


def test_100_mb_body_is_refused_before_it_is_read(app: LoadedApp) -> None:
    """Content-Length says 100 MB: 413 at once; the server does not wait for (or read) the body."""
    total = 100 * 1024 * 1024
    sent = 0

    async def scenario(port: int) -> None:
        nonlocal sent
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        head = (b"POST /v1/workflows/fan_out HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(total).encode() + b"\r\n\r\n")
        async with stream:
            await stream.send_all(head + b'{"n": "')
            answer = b""
            with trio.fail_after(10):
                while b"\r\n\r\n" not in answer:
                    answer += await stream.receive_some(65536)
            assert answer.startswith(b"HTTP/1.1 413")
            assert b"connection: close" in answer.lower()
            chunk = b"x" * (1 << 20)
            try:  # the server has closed the connection: the rest cannot go through
                with trio.fail_after(10):
                    while sent < total:
                        await stream.send_all(chunk)
                        sent += len(chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        assert await healthy(port)
        # the same with chunked transfer encoding (no length up front): cut off at the limit
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"POST /v1/workflows/fan_out HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
                                  b"transfer-encoding: chunked\r\n\r\n")
            streamed, answer = 0, b""
            with trio.fail_after(20):
                try:
                    while b"\r\n\r\n" not in answer and streamed < total:
                        await stream.send_all(b"100000\r\n" + b" " * 0x100000 + b"\r\n")
                        streamed += 0x100000
                        with trio.move_on_after(0.01):
                            answer += await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                while b"\r\n\r\n" not in answer:
                    more = await stream.receive_some(65536)
                    if not more:
                        break
                    answer += more
            assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
            assert streamed < 20 * 1024 * 1024, streamed  # refused near 1 MiB, not after reading everything
        assert await healthy(port)

    with_server(app, scenario)
    assert sent < total  # the connection was closed long before 100 MB went through
