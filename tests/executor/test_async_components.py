"""``async def`` components and workflows, run for real: in-process and on worker processes.

A leaf async tool (user asyncio code) must run on the asyncio loop of the
process that hosts it, in its own thread; compiled async workflows overlap the
calls they ``gather``; failures keep their type (and, from a worker, the remote
traceback); timeouts cancel the asyncio task.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from nalarc import load_app
from nalarc.executor import InProcessRunner, LoadedApp, Placement, run_requests
from nalarc.executor._app import open_service
from nalarc.executor._statestore import StateStore

APP = '''
import asyncio
import os
import threading

import nalarc

CANCELLED = []


@nalarc.tool
async def nap(i, seconds=0.2):
    await asyncio.sleep(seconds)
    return {"i": i, "pid": os.getpid(), "thread": threading.current_thread().name}


@nalarc.tool
async def explode(x):
    await asyncio.sleep(0.01)
    raise ValueError(f"exploded {x}")


@nalarc.tool(timeout=0.2)
async def stuck(x):
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        CANCELLED.append(x)
        raise
    return x


@nalarc.agent
class Diary:
    lines = nalarc.ManagedList()

    async def write(self, text):
        await asyncio.sleep(0.01)
        self.lines.append(text)
        return [len(self.lines), nalarc.current_session()]


async def two_naps(i):
    first = await nap(i, 0.1)
    second = await nap(i + 100, 0.1)
    return [first["i"], second["i"]]


@nalarc.workflow
async def one(i):
    return await nap(i, 0.01)


@nalarc.workflow
async def fan(n):
    return await asyncio.gather(*[nap(i) for i in range(n)])


@nalarc.workflow
async def fan_helpers(n):
    return await asyncio.gather(*[two_naps(i) for i in range(n)])


@nalarc.workflow
async def boom(x):
    return await explode(x)


@nalarc.workflow
async def caught(x):
    try:
        await explode(x)
    except ValueError as e:
        return f"caught {e}"


@nalarc.workflow
async def deadline(seconds):
    try:
        return await asyncio.wait_for(nap(0, seconds), timeout=0.1)
    except TimeoutError:
        return "timed out"


@nalarc.workflow
async def directive_timeout(x):
    return await stuck(x)


@nalarc.workflow
async def diary(text):
    return await Diary().write(text)
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> LoadedApp:
    root = tmp_path_factory.mktemp("async_app")
    path = root / "async_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return load_app(path, out_dir=root / "build")


def on_workers(app: LoadedApp, requests: list[tuple[str, dict[str, Any], str]]) -> list[Any]:
    outcomes = run_requests(app, [(w, dict(k), s) for w, k, s in requests], placement=Placement(workers=2))
    return [o.value if o.error is None else o.error for o in outcomes]


def test_a_leaf_async_tool_is_left_as_written(app: LoadedApp) -> None:
    source = (app.build_dir / "async_app.py").read_text(encoding="utf-8")
    assert "@nalarc.tool\nasync def nap(i, seconds=0.2):\n    await asyncio.sleep(seconds)\n" in source
    assert "@_nalarc_rt.compiled_async\nasync def two_naps(i):" in source
    assert "await _nalarc_rt.aw(" in source


def test_a_leaf_async_tool_runs_on_the_asyncio_thread_in_process(app: LoadedApp) -> None:
    result = InProcessRunner(app).run("one", {"i": 7})
    assert result == {"i": 7, "pid": os.getpid(), "thread": "nalarc-asyncio"}


def test_a_leaf_async_tool_runs_on_the_asyncio_thread_of_a_worker(app: LoadedApp) -> None:
    results = on_workers(app, [("one", {"i": i}, "s") for i in range(3)])
    assert [r["i"] for r in results] == [0, 1, 2]
    assert all(r["pid"] != os.getpid() and r["thread"] == "nalarc-asyncio" for r in results)


def _timed(run: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = run()
    return value, time.perf_counter() - started


def test_gathered_async_tools_overlap_in_process(app: LoadedApp) -> None:
    runner = InProcessRunner(app)
    runner.run("one", {"i": 0})  # warm: the asyncio loop thread starts on first use
    value, seconds = _timed(lambda: runner.run("fan", {"n": 3}))
    assert [v["i"] for v in value] == [0, 1, 2]
    assert seconds < 0.45, f"3 tools of 0.2 s took {seconds:.2f} s: they did not overlap"


def test_gathered_compiled_helpers_overlap_in_process(app: LoadedApp) -> None:
    runner = InProcessRunner(app)
    runner.run("one", {"i": 0})
    value, seconds = _timed(lambda: runner.run("fan_helpers", {"n": 3}))
    assert value == [[0, 100], [1, 101], [2, 102]]
    # each helper awaits 2 naps of 0.1 s in turn: 0.2 s if the 3 helpers overlap, 0.6 s if not
    assert seconds < 0.45, f"3 helpers took {seconds:.2f} s: they did not overlap"


def test_gathered_async_tools_overlap_on_worker_processes(app: LoadedApp) -> None:
    async def main() -> tuple[Any, float, Any]:
        async with open_service(app, StateStore(None), Placement(workers=2)) as service:
            await service.run("one", {"i": 0})
            started = trio.current_time()
            value = await service.run("fan", {"n": 3})
            seconds = trio.current_time() - started
            helpers = await service.run("fan_helpers", {"n": 2})
            return value, seconds, helpers

    value, seconds, helpers = trio.run(main)
    assert [v["i"] for v in value] == [0, 1, 2]
    assert seconds < 0.45, f"3 tools of 0.2 s took {seconds:.2f} s on workers"
    assert helpers == [[0, 100], [1, 101]]


def test_many_concurrent_requests_share_the_asyncio_loop(app: LoadedApp) -> None:
    """20 requests, each awaiting a 0.2 s leaf async tool, in-process: no thread per call."""

    async def main() -> tuple[list[Any], float]:
        async with open_service(app, StateStore(None), None) as service:
            await service.run("one", {"i": -1})
            results: list[Any] = [None] * 20
            started = trio.current_time()

            async def request(i: int) -> None:
                results[i] = await service.run("fan", {"n": 1}, f"s{i}")

            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(request, i)
            return results, trio.current_time() - started

    results, seconds = trio.run(main)
    assert all(r[0]["thread"] == "nalarc-asyncio" for r in results)
    assert seconds < 0.6, f"20 concurrent requests of 0.2 s took {seconds:.2f} s"


def test_a_failing_async_tool_raises_its_own_exception_in_process(app: LoadedApp) -> None:
    runner = InProcessRunner(app)
    with pytest.raises(ValueError, match="exploded 3") as caught:
        runner.run("boom", {"x": 3})
    frames = [frame.name for frame in caught.traceback]
    assert "explode" in frames, frames  # the tool's own frame, from the asyncio thread
    assert runner.run("caught", {"x": 4}) == "caught exploded 4"


def test_a_failing_async_tool_on_a_worker_keeps_type_and_remote_traceback(app: LoadedApp) -> None:
    error, handled = on_workers(app, [("boom", {"x": 5}, "s"), ("caught", {"x": 6}, "s")])
    assert isinstance(error, ValueError) and error.args == ("exploded 5",)
    notes = "".join(getattr(error, "__notes__", []))
    assert "remote traceback" in notes and 'raise ValueError(f"exploded {x}")' in notes
    assert handled == "caught exploded 6"


def test_wait_for_times_out_and_succeeds(app: LoadedApp) -> None:
    runner = InProcessRunner(app)
    value, seconds = _timed(lambda: runner.run("deadline", {"seconds": 2.0}))
    assert value == "timed out" and seconds < 1.0
    assert runner.run("deadline", {"seconds": 0.01})["i"] == 0


def test_a_timeout_directive_cancels_the_asyncio_task(app: LoadedApp) -> None:
    runner = InProcessRunner(app)
    with pytest.raises(TimeoutError):
        runner.run("directive_timeout", {"x": "late"})
    deadline = time.monotonic() + 2
    while "late" not in app.module.CANCELLED and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.module.CANCELLED == ["late"]


def test_an_async_agent_method_keeps_managed_state(app: LoadedApp, tmp_path: Path) -> None:
    requests = [("diary", {"text": t}, s) for t, s in (("a", "x"), ("b", "y"), ("c", "x"))]
    expected = [[1, "x"], [1, "y"], [2, "x"]]
    runner = InProcessRunner(app)
    assert [runner.run(w, k, s) for w, k, s in requests] == expected
    assert on_workers(app, requests) == expected


HTTP_APP = '''
import asyncio
import httpx
import nalarc

@nalarc.tool
async def get(url):
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
        return response.text

@nalarc.workflow
async def crawl(base, n):
    pages = await asyncio.gather(*[get(f"{base}/page{i}") for i in range(n)])
    async with httpx.AsyncClient() as client:  # an asyncio library in compiled code: bridged
        extra = await client.get(f"{base}/extra")
    return [*pages, extra.text, extra.status_code]
'''


@pytest.fixture()
def slow_server() -> Any:
    """A local HTTP server that answers every GET after 0.2 s, from its own threads."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            time.sleep(0.2)
            body = f"got {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_httpx_in_leaf_tools_and_in_a_compiled_workflow(slow_server: str, tmp_path: Path) -> None:
    pytest.importorskip("httpx")
    path = tmp_path / "http_app.py"
    path.write_text(textwrap.dedent(HTTP_APP), encoding="utf-8")
    app = load_app(path, out_dir=tmp_path / "build")
    expected = ["got /page0", "got /page1", "got /page2", "got /extra", 200]
    runner = InProcessRunner(app)
    value, seconds = _timed(lambda: runner.run("crawl", {"base": slow_server, "n": 3}))
    assert value == expected
    assert seconds < 0.8, f"3 parallel GETs then one more (0.4 s of server time) took {seconds:.2f} s"
    assert on_workers(app, [("crawl", {"base": slow_server, "n": 3}, "s")]) == [expected]
