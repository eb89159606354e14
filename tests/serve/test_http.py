"""``nalarc run --serve``: the real hypercorn server over loopback, real workers.

Every test starts the server on 127.0.0.1 port 0 inside ``trio.run`` and talks
to it with httpx (which runs on trio through anyio).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from nalarc import load_app
from nalarc.executor import LoadedApp, Placement, Service, open_service
from nalarc.serve import serve
from nalarc.executor._statestore import StateStore

APP = '''
import os
import time
import nalarc

@nalarc.tool(idempotent=True)
def fetch(i, delay):
    time.sleep(delay)
    return i * 10

@nalarc.tool(idempotent=True)
def fetch_when(i, gate):
    """Wait until the file ``gate`` exists: holds requests in flight."""
    while not os.path.exists(gate):
        time.sleep(0.005)
    return i * 10

@nalarc.tool
def nap(seconds):
    time.sleep(seconds)
    return seconds

@nalarc.tool
def where():
    return nalarc.current_session()

@nalarc.workflow
def fan_out(n, delay=0.0):
    parts = [fetch(i, delay) for i in range(n)]
    return sum(parts)

@nalarc.workflow
def fan_out_gated(n, gate):
    parts = [fetch_when(i, gate) for i in range(n)]
    return sum(parts)

@nalarc.workflow
def slow(seconds):
    return nap(seconds)

@nalarc.workflow
def whoami(session=None):
    return {"session": where(), "argument": session}

@nalarc.workflow
def boom(x):
    raise ValueError(f"bad {x}")

@nalarc.workflow
def not_json():
    return float("nan")
'''

def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name{labels}`` in a Prometheus exposition (None: absent), parsed by prometheus_client."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


Scenario = Callable[[httpx.AsyncClient, Service], Awaitable[None]]
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def app_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "serve_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return path


@pytest.fixture
def app(app_file: Path, tmp_path: Path) -> LoadedApp:
    return load_app(app_file, out_dir=tmp_path / "build")


def serving(app: LoadedApp, placement: Placement, scenario: Scenario, *, max_queue: int = 64) -> None:
    """Start the service and the HTTP server, run ``scenario`` with a client, stop."""

    async def main() -> None:
        store = StateStore(None)
        try:
            async with open_service(app, store, placement) as service, trio.open_nursery() as nursery:
                urls = await nursery.start(partial(serve, app, service, "127.0.0.1", 0, max_queue=max_queue))
                assert urls[0].startswith("http://127.0.0.1:")
                limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
                async with httpx.AsyncClient(base_url=urls[0], timeout=60, limits=limits) as client:
                    await scenario(client, service)
                nursery.cancel_scope.cancel()
        finally:
            store.close()

    trio.run(main)


PLACEMENTS = [pytest.param(0, id="in-process"), pytest.param(2, id="workers=2")]


async def post(client: httpx.AsyncClient, name: str, body: Any, **kwargs: Any) -> httpx.Response:
    return await client.post(f"/v1/workflows/{name}", content=json.dumps(body), headers={**JSON, **kwargs.pop("headers", {})}, **kwargs)


@pytest.mark.parametrize("workers", PLACEMENTS)
def test_sync_requests_and_sessions(app: LoadedApp, workers: int) -> None:
    async def scenario(client: httpx.AsyncClient, service: Service) -> None:
        response = await post(client, "fan_out", {"n": 5})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"result": sum(i * 10 for i in range(5))}
        # The session comes from the header; a "session" key in the body is an argument.
        response = await post(client, "whoami", {"session": "arg"}, headers={"X-Nalarc-Session": "alice"})
        assert response.json() == {"result": {"session": "alice", "argument": "arg"}}
        response = await post(client, "whoami", {})
        assert response.json() == {"result": {"session": "default", "argument": None}}
        # content-type parameters are fine
        response = await client.post("/v1/workflows/fan_out", content=b'{"n": 2}',
                                     headers={"content-type": "application/json; charset=utf-8"})
        assert response.json() == {"result": 10}

    serving(app, Placement(workers=workers), scenario)


@pytest.mark.parametrize("workers", PLACEMENTS)
def test_async_runs(app: LoadedApp, workers: int) -> None:
    async def scenario(client: httpx.AsyncClient, service: Service) -> None:
        response = await client.post("/v1/workflows/slow?async=1", json={"seconds": 0.3})
        assert response.status_code == 202
        run_id = response.json()["run_id"]
        assert response.headers["location"] == f"/v1/runs/{run_id}"
        first = (await client.get(f"/v1/runs/{run_id}")).json()
        assert first == {"run_id": run_id, "workflow": "slow", "session": "default", "status": "pending"}
        failed = (await client.post("/v1/workflows/boom?async=true", json={"x": 7},
                                    headers={"X-Nalarc-Session": "s9"})).json()["run_id"]
        with trio.fail_after(20):
            while (body := (await client.get(f"/v1/runs/{run_id}")).json())["status"] == "pending":
                await trio.sleep(0.02)
        assert body == {"run_id": run_id, "workflow": "slow", "session": "default", "status": "done", "result": 0.3}
        with trio.fail_after(20):
            while (body := (await client.get(f"/v1/runs/{failed}")).json())["status"] == "pending":
                await trio.sleep(0.02)
        assert body["status"] == "failed" and body["session"] == "s9"
        assert body["error"] == "ValueError" and body["message"] == "bad 7"
        assert "ValueError: bad 7" in body["traceback"]
        missing = await client.get("/v1/runs/nope")
        assert missing.status_code == 404 and "nope" in missing.json()["error"]
        # ?async=0 is the synchronous form
        sync = await client.post("/v1/workflows/fan_out?async=0", json={"n": 1})
        assert sync.status_code == 200 and sync.json() == {"result": 0}

    serving(app, Placement(workers=workers), scenario)


@pytest.mark.parametrize("workers", PLACEMENTS)
def test_error_paths(app: LoadedApp, workers: int) -> None:
    async def scenario(client: httpx.AsyncClient, service: Service) -> None:
        async def expect(status: int, response: httpx.Response, fragment: str = "") -> dict[str, Any]:
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == "application/json"
            body: dict[str, Any] = response.json()
            assert isinstance(body["error"], str) and fragment in body["error"], body
            return body

        await expect(404, await post(client, "nope", {}), "no workflow 'nope'")
        await expect(400, await client.post("/v1/workflows/fan_out", content=b"{not json", headers=JSON), "not valid JSON")
        await expect(400, await client.post("/v1/workflows/fan_out", content=b"", headers=JSON), "not valid JSON")
        await expect(400, await client.post("/v1/workflows/fan_out", content=b'{"n": NaN}', headers=JSON), "not valid JSON")
        await expect(422, await post(client, "fan_out", [1, 2]), "JSON object")
        await expect(422, await post(client, "fan_out", {}), "missing a required argument: 'n'")
        await expect(422, await post(client, "fan_out", {"n": 1, "extra": 2}), "extra")
        await expect(415, await client.post("/v1/workflows/fan_out", content=b'{"n": 1}'), "application/json")
        await expect(415, await client.post("/v1/workflows/fan_out", content=b"n=1",
                                            headers={"content-type": "application/x-www-form-urlencoded"}))
        big = json.dumps({"n": 1, "pad": "x" * (1024 * 1024)}).encode()
        await expect(413, await client.post("/v1/workflows/fan_out", content=big, headers=JSON), "1048576")

        async def chunks() -> Any:  # no Content-Length: the limit applies while reading
            for _ in range(20):
                yield b" " * 65536
            yield b'{"n": 1}'
        await expect(413, await client.post("/v1/workflows/fan_out", content=chunks(), headers=JSON))
        await expect(400, await post(client, "fan_out", {"n": 1}, headers={"X-Nalarc-Session": ""}), "Session")
        await expect(400, await post(client, "fan_out", {"n": 1}, params={"async": "maybe"}), "async")
        await expect(404, await client.get("/v1/nothing"), "no endpoint")
        wrong = await expect(405, await client.get("/v1/workflows/fan_out"), "POST")
        assert wrong == {"error": "use POST"}
        assert (await client.post("/healthz")).headers["allow"] == "GET"
        assert (await client.post("/metrics")).status_code == 405

        failed = await expect(500, await post(client, "boom", {"x": 3}), "ValueError")
        assert failed["message"] == "bad 3"
        assert "Traceback" in failed["traceback"] and "ValueError: bad 3" in failed["traceback"]
        bad_result = await expect(500, await post(client, "not_json", {}), "TypeError")
        assert "not JSON-serializable" in bad_result["message"]
        # The server is still fine after all that.
        assert (await post(client, "fan_out", {"n": 3})).json() == {"result": 30}
        metrics = (await client.get("/metrics")).text
        assert sample(metrics, "nalarc_requests_total", workflow="fan_out", outcome="invalid") == 3
        assert sample(metrics, "nalarc_requests_total", workflow="boom", outcome="error") == 1
        assert sample(metrics, "nalarc_http_responses_total", code="413") == 2

    serving(app, Placement(workers=workers), scenario)


@pytest.mark.parametrize("workers", PLACEMENTS)
def test_health_status_and_metrics(app: LoadedApp, workers: int) -> None:
    async def scenario(client: httpx.AsyncClient, service: Service) -> None:
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        for n in (2, 3):
            assert (await post(client, "fan_out", {"n": n})).status_code == 200
        assert (await post(client, "boom", {"x": 1})).status_code == 500

        status = (await client.get("/v1/status")).json()
        assert status["workflows"] == sorted(app.workflows)
        assert status["admitted"] == 0 and status["max_queue"] == 64
        metrics = await client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = metrics.text
        assert sample(text, "nalarc_requests_total", workflow="fan_out", outcome="ok") == 2
        assert sample(text, "nalarc_requests_total", workflow="boom", outcome="error") == 1
        assert "# TYPE nalarc_requests_in_flight gauge\n" in text and sample(text, "nalarc_requests_in_flight") == 0
        for line in text.splitlines():  # every sample line is `name{labels} number`
            assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+", line), line

        if workers == 0:
            assert status["backend"] == "in-process"
            assert status["workers"] == [] and status["instances"] == []
            assert "nalarc_instance_queue_length" not in text
            return
        assert status["backend"] == "process"
        assert [w["id"] for w in status["workers"]] == ["w0", "w1"]
        for worker in status["workers"]:
            assert worker["alive"] is True
            os.kill(worker["pid"], 0)  # a real, live process
            assert worker["pid"] != os.getpid()
            assert sample(text, "nalarc_worker_alive", worker=worker["id"], pid=str(worker["pid"])) == 1
        by_id = {i["id"]: i for i in status["instances"]}
        assert {"fetch#0", "nap#0", "where#0"} <= set(by_id)
        fetch = by_id["fetch#0"]
        assert fetch["component"] == "fetch" and fetch["kind"] == "tool"
        assert fetch["completed"] == 5 and fetch["queue_length"] == 0 and fetch["running"] == 0
        fetch_labels = {"instance": "fetch#0", "component": "fetch", "worker": fetch["worker"]}
        assert sample(text, "nalarc_instance_completed_total", **fetch_labels) == 5
        assert sample(text, "nalarc_instance_queue_length", **fetch_labels) == 0

    serving(app, Placement(workers=workers), scenario)


@pytest.mark.parametrize("workers", PLACEMENTS)
def test_admission_limit_gives_429_with_retry_after(app: LoadedApp, workers: int) -> None:
    async def scenario(client: httpx.AsyncClient, service: Service) -> None:
        results: list[httpx.Response] = []

        async def occupy() -> None:
            results.append(await post(client, "slow", {"seconds": 1.0}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(occupy)
            # an async run counts against the limit too
            pending = (await client.post("/v1/workflows/slow?async=1", json={"seconds": 1.0})).json()["run_id"]
            with trio.fail_after(10):
                while (await client.get("/v1/status")).json()["admitted"] < 2:
                    await trio.sleep(0.01)
            for query in ("", "?async=1"):
                refused = await client.post(f"/v1/workflows/fan_out{query}", json={"n": 1})
                assert refused.status_code == 429
                assert refused.headers["retry-after"] == "1"
                assert "limit 2" in refused.json()["error"]
            # status and metrics are not subject to admission
            assert (await client.get("/healthz")).status_code == 200
            assert sample((await client.get("/metrics")).text, "nalarc_requests_in_flight") == 2
        assert [r.status_code for r in results] == [200]
        with trio.fail_after(10):
            while (await client.get(f"/v1/runs/{pending}")).json()["status"] == "pending":
                await trio.sleep(0.02)
        assert (await post(client, "fan_out", {"n": 1})).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert sample(metrics, "nalarc_requests_total", workflow="fan_out", outcome="rejected") == 2

    serving(app, Placement(workers=workers), scenario, max_queue=2)


async def h11_post(url: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    """One POST on a connection of its own (h11: httpx's pool is quadratic at 1,000 connections)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    payload = json.dumps(body).encode()
    connection = h11.Connection(h11.CLIENT)
    fields = [("host", f"{host}:{port}"), ("content-type", "application/json"),
              ("content-length", str(len(payload))), *headers.items()]
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(connection.send(h11.Request(method="POST", target=path, headers=fields))
                              + connection.send(h11.Data(data=payload)) + connection.send(h11.EndOfMessage()))
        status, chunks = 0, []
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, json.loads(b"".join(chunks))


def test_thousand_concurrent_fan_out_requests(app: LoadedApp, tmp_path: Path) -> None:
    """Acceptance: 1,000 fan-out requests in flight at once, all answered without error.

    Every tool call waits for a gate file, so all 1,000 requests are provably in
    flight together (their calls queue at the instances); then the gate opens.
    """
    gate = tmp_path / "gate"
    total, fan = 1000, 4
    started = time.monotonic()

    async def scenario(client: httpx.AsyncClient, service: Service) -> None:
        responses: list[tuple[int, Any]] = []
        url = str(client.base_url).rstrip("/")

        async def one(i: int) -> None:
            responses.append(await h11_post(url, "/v1/workflows/fan_out_gated", {"n": fan, "gate": str(gate)},
                                            {"x-nalarc-session": f"user{i}"}))

        async with trio.open_nursery() as nursery:
            for i in range(total):
                nursery.start_soon(one, i)
            with trio.fail_after(40):
                while service.in_flight < total:
                    await trio.sleep(0.01)
            # while they are all held: the server answers, the queues are full
            status = (await client.get("/v1/status")).json()
            assert status["admitted"] == total
            calls = [i for i in status["instances"] if i["component"] == "fetch_when"]
            # every call is queued or running (less a few in transit if a worker was just replaced)
            assert sum(i["queue_length"] + i["running"] for i in calls) >= total * fan - sum(i["limit"] for i in calls)
            assert sample((await client.get("/metrics")).text, "nalarc_requests_in_flight") == total
            held = time.monotonic()
            gate.touch()
        print(f"\n{total} in flight after {held - started:.1f} s; drained in {time.monotonic() - held:.1f} s")
        assert len(responses) == total
        assert {status for status, _ in responses} == {200}, [body for status, body in responses if status != 200][:3]
        assert {body["result"] for _, body in responses} == {sum(i * 10 for i in range(fan))}
        metrics = (await client.get("/metrics")).text
        assert sample(metrics, "nalarc_requests_total", workflow="fan_out_gated", outcome="ok") == total

    serving(app, Placement(workers=2, instances={"fetch_when": 2}), scenario, max_queue=total)
    print(f"{total} concurrent fan-out requests: {time.monotonic() - started:.1f} s in all")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cli_serve_until_sigint(app_file: Path, tmp_path: Path) -> None:
    """``nalarc run APP --serve``: serves, then stops cleanly (workers too) on Ctrl-C."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "nalarc", "run", str(app_file), "--serve", "--port", str(port),
         "--workers", "2", "--state", str(tmp_path / "state.db"), "--max-queue", "5"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.communicate()[1]) from None
                time.sleep(0.1)
        response = httpx.post(f"{base}/v1/workflows/fan_out", json={"n": 3})
        assert response.json() == {"result": 30}
        status = httpx.get(f"{base}/v1/status").json()
        assert status["max_queue"] == 5
        pids = [w["pid"] for w in status["workers"]]
        assert len(pids) == 2
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert f"http://127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr
    for pid in pids:  # the workers were stopped and reaped
        proc_status = Path(f"/proc/{pid}/status")
        assert not proc_status.exists() or "State:\tZ" in proc_status.read_text()


def test_cli_serve_port_in_use(app_file: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "nalarc", "run", str(app_file), "--serve", "--port", str(port), "--workers", "0",
             "--state", str(tmp_path / "state.db")],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
