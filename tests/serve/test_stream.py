"""Event streams (SSE) and interrupts over real loopback HTTP.

* SSE framing and the event journal (units);
* 100 random disconnects of a live stream, each resumed with ``Last-Event-ID``: the
  concatenation equals an uninterrupted stream of the same workflow (no loss, no
  duplicate); the tokens come from a tool on a real worker process;
* an interrupt survives a server restart (real ``nalarc run --serve`` processes):
  the non-idempotent tool before it fires once, a second interrupt in the same run
  works, the run's stream shows every event once.
"""

from __future__ import annotations

import json
import random
import signal
import textwrap
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from test_crash_resume import Server, effect_lines, free_port

from nalarc import load_app
from nalarc.executor import LoadedApp, Placement, open_service
from nalarc.executor._statestore import StateStore
from nalarc.serve import serve
from nalarc.serve._journal import Journal
from nalarc.serve._stream import sse_frame

# -- units ------------------------------------------------------------------------


def test_an_sse_frame_has_id_event_and_one_data_line() -> None:
    data = json.dumps({"text": "a\nb"}, separators=(",", ":"))
    assert sse_frame(7, "token", data) == b'id: 7\nevent: token\ndata: {"text":"a\\nb"}\n\n'


def test_the_event_journal_returns_events_after_an_id_in_order_and_prunes_them_with_their_run(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.accept("r1", "wf", {}, "default", None)
    journal.add_events("r1", [(1, "token", '{"text":"a"}')])
    journal.add_events("r1", [(2, "token", '{"text":"b"}'), (3, "custom", "{}")])
    assert journal.last_event("r1") == 3 and journal.last_event("other") == 0
    assert journal.events_after("r1", 1) == [(2, "token", '{"text":"b"}'), (3, "custom", "{}")]
    assert journal.events_after("r1", 3) == []
    journal.close()
    reopened = Journal(tmp_path / "j.db")  # durable
    assert [e[0] for e in reopened.events_after("r1", 0)] == [1, 2, 3]
    reopened.finish("r1", "done", 1, now=0.0)
    assert reopened.events_after("r1", 0)  # kept after the outcome: a client may still reconnect
    reopened.prune(now=reopened.retention + 1)
    assert reopened.events_after("r1", 0) == []
    reopened.close()


def test_a_paused_run_is_not_resumed_at_start_until_its_resume_is_journaled(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.accept("r1", "wf", {}, "default", None)
    journal.pause("r1", "k1", {"ask": "ok?"})
    assert journal.unfinished() == [] and journal.interrupted() == {"r1": ("k1", {"ask": "ok?"})}
    journal.resume("r1", "k1", "yes")
    assert journal.interrupted() == {} and [e.run_id for e in journal.unfinished()] == ["r1"]
    assert journal.lookup("r1", "k1") == "yes"
    journal.close()


# -- SSE over loopback ----------------------------------------------------------------

APP = '''
import time
import nalarc

@nalarc.tool(idempotent=True)
def speak(word, count):
    for i in range(count):
        nalarc.stream({"text": f"{word}{i} "}, event="token")
        time.sleep(0.002)
    return count

@nalarc.workflow
def talk(word, count):
    nalarc.stream({"step": "start"}, event="step")
    n = speak(word, count)
    nalarc.stream({"step": "end", "n": n}, event="step")
    return {"said": n}
'''


def parse_sse(lines: list[str]) -> list[tuple[int, str, Any]]:
    events, current = [], {}
    for line in lines:
        if not line:
            if current:
                events.append((int(current["id"]), current["event"], json.loads(current["data"])))
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
    return events


async def read_events(response: httpx.Response, limit: int | None = None) -> list[tuple[int, str, Any]]:
    """Up to ``limit`` events of an SSE response (then the caller closes it)."""
    events, lines = [], []
    async for line in response.aiter_lines():
        lines.append(line)
        if not line:
            events.extend(parse_sse(lines))
            lines = []
            if limit is not None and len(events) >= limit:
                break
    return events


@pytest.fixture
def talk_app(tmp_path: Path) -> LoadedApp:
    path = tmp_path / "talk_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return load_app(path, out_dir=tmp_path / "build")


def test_100_random_disconnects_lose_and_duplicate_no_event(talk_app: LoadedApp, tmp_path: Path) -> None:
    rng = random.Random(15)
    body = {"word": "w", "count": 300}
    found: dict[str, Any] = {}

    async def main() -> None:
        store, journal = StateStore(None), Journal(tmp_path / "requests.db")
        try:
            async with open_service(talk_app, store, Placement(workers=2)) as service, \
                    trio.open_nursery() as nursery:
                urls = await nursery.start(partial(serve, talk_app, service, "127.0.0.1", 0, journal=journal))
                async with httpx.AsyncClient(base_url=urls[0], timeout=30) as client:
                    async with client.stream("POST", "/v1/workflows/talk/stream", json=body) as response:
                        assert response.headers["content-type"].startswith("text/event-stream")
                        found["full"] = await read_events(response)
                    pieces, disconnects, run_id = [], 0, None
                    async with client.stream("POST", "/v1/workflows/talk/stream", json=body) as response:
                        run_id = response.headers["x-nalarc-run-id"]
                        pieces += await read_events(response, rng.randint(1, 6))
                    while not pieces or pieces[-1][1] != "result":
                        disconnects += 1
                        limit = rng.randint(0, 6) if disconnects <= 100 else None
                        headers = {"last-event-id": str(pieces[-1][0])}
                        async with client.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as response:
                            assert response.status_code == 200
                            pieces += await read_events(response, limit) if limit != 0 else []
                    found["pieces"], found["disconnects"] = pieces, disconnects
                nursery.cancel_scope.cancel()
        finally:
            store.close()
            journal.close()

    trio.run(main)
    full, pieces = found["full"], found["pieces"]
    assert found["disconnects"] >= 100
    assert [e[0] for e in full] == list(range(1, len(full) + 1))
    assert [e[0] for e in pieces] == list(range(1, len(pieces) + 1))  # no id lost, none twice
    assert [e[1:] for e in pieces] == [e[1:] for e in full]  # the same events as one uninterrupted stream
    assert len(full) == 303 and full[-1] == (303, "result", {"result": {"said": 300}})
    tokens = [e[2]["text"] for e in full if e[1] == "token"]
    assert tokens == [f"w{i} " for i in range(300)]  # in the order the tool on the worker emitted them


# -- interrupt across a restart -----------------------------------------------------

HITL_APP = '''
import nalarc

def note(log, line):
    with open(log, "a") as f:
        f.write(line + "\\n")

@nalarc.tool
def charge(tag, log):
    note(log, f"charge {tag}")
    return 10

@nalarc.tool(idempotent=True)
def ship(tag, decision, log):
    note(log, f"ship {tag} {decision}")
    return f"shipped {tag}"

@nalarc.workflow
def order(tag, log):
    amount = charge(tag, log)
    nalarc.stream({"charged": amount})
    decision = nalarc.interrupt({"approve": tag, "amount": amount})
    nalarc.stream({"decision": decision})
    confirmed = nalarc.interrupt({"confirm": tag})
    return {"amount": amount, "decision": decision, "confirmed": confirmed, "shipped": ship(tag, decision, log)}
'''


def wait_status(base: str, run_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = httpx.get(f"{base}/v1/runs/{run_id}").json()
        if run["status"] == status:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.02)


def test_an_interrupt_survives_a_restart_and_the_tool_before_it_fires_once(tmp_path: Path) -> None:
    app_file = tmp_path / "hitl_app.py"
    app_file.write_text(textwrap.dedent(HITL_APP), encoding="utf-8")
    state, log = tmp_path / "state.db", tmp_path / "effects.log"
    server = Server(app_file, state, free_port())
    try:
        answer = httpx.post(f"{server.base}/v1/workflows/order", json={"tag": "t1", "log": str(log)}, timeout=30)
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run_id"]
        assert answer.json()["interrupt"] == {"approve": "t1", "amount": 10}
        assert wait_status(server.base, run_id, "interrupted")["interrupt"] == {"approve": "t1", "amount": 10}
    finally:
        server.stop(signal.SIGKILL)
    server = Server(app_file, state, free_port())
    try:
        run = wait_status(server.base, run_id, "interrupted")
        assert run["interrupt"] == {"approve": "t1", "amount": 10}
        assert httpx.post(f"{server.base}/v1/runs/{run_id}/resume", json={"wrong": 1}).status_code == 422
        resumed = httpx.post(f"{server.base}/v1/runs/{run_id}/resume", json={"value": "yes"})
        assert resumed.status_code == 202, resumed.text
        assert wait_status(server.base, run_id, "interrupted")["interrupt"] == {"confirm": "t1"}
        assert httpx.post(f"{server.base}/v1/runs/{run_id}/resume", json={"value": True}).status_code == 202
        done = wait_status(server.base, run_id, "done")
        assert httpx.post(f"{server.base}/v1/runs/{run_id}/resume", json={"value": 1}).status_code == 409
        with httpx.stream("GET", f"{server.base}/v1/runs/{run_id}/events", timeout=10) as response:
            events = parse_sse(list(response.iter_lines()))
    finally:
        server.stop(signal.SIGTERM)
    assert done["result"] == {"amount": 10, "decision": "yes", "confirmed": True, "shipped": "shipped t1"}
    assert effect_lines(log) == ["charge t1", "ship t1 yes"]  # the non-idempotent charge: once, across the restart
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    assert [(e[1], e[2]) for e in events] == [
        ("custom", {"charged": 10}),
        ("interrupt", {"payload": {"approve": "t1", "amount": 10}}),
        ("resumed", {"value": "yes"}),
        ("custom", {"decision": "yes"}),
        ("interrupt", {"payload": {"confirm": "t1"}}),
        ("resumed", {"value": True}),
        ("result", {"result": done["result"]}),
    ]


# -- the endpoints' contract ------------------------------------------------------------

GATED_APP = '''
import os
import time
import nalarc

@nalarc.tool(idempotent=True)
def wait(gate):
    while not os.path.exists(gate):
        time.sleep(0.005)
    return "open"

@nalarc.workflow
def gated(gate):
    nalarc.stream({"waiting": True})
    return wait(gate)

@nalarc.workflow
def ask(question):
    return {"answer": nalarc.interrupt({"question": question})}

@nalarc.tool
def asks_itself(question):
    return nalarc.interrupt({"question": question})

@nalarc.workflow
def ask_in_tool(question):
    return asks_itself(question)
'''


def serve_scenario(app: LoadedApp, journal: Journal, scenario: Any, max_queue: int = 64, workers: int = 0) -> None:
    async def main() -> None:
        store, stop = StateStore(None), trio.Event()
        try:
            async with open_service(app, store, Placement(workers=workers)) as service, \
                    trio.open_nursery() as nursery:
                urls = await nursery.start(partial(serve, app, service, "127.0.0.1", 0, journal=journal,
                                                   max_queue=max_queue, shutdown_trigger=stop.wait))
                async with httpx.AsyncClient(base_url=urls[0], timeout=30) as client:
                    await scenario(client, stop)
                stop.set()
        finally:
            store.close()

    trio.run(main)


@pytest.fixture
def gated_app(tmp_path: Path) -> LoadedApp:
    path = tmp_path / "gated_app.py"
    path.write_text(textwrap.dedent(GATED_APP), encoding="utf-8")
    return load_app(path, out_dir=tmp_path / "build")


def test_stream_requests_keep_idempotency_admission_and_draining(gated_app: LoadedApp, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    body = {"gate": str(gate)}

    async def scenario(client: httpx.AsyncClient, stop: trio.Event) -> None:
        key = {"idempotency-key": "k1", "x-nalarc-session": "s1"}
        async with client.stream("POST", "/v1/workflows/gated/stream", json=body, headers=key) as first:
            assert await read_events(first, 1) == [(1, "custom", {"waiting": True})]
        full = await client.post("/v1/workflows/gated/stream", json=body)  # max_queue=1, and the first still runs
        assert full.status_code == 429 and "retry-after" in full.headers
        gate.touch()
        async with client.stream("POST", "/v1/workflows/gated/stream", json=body, headers=key) as again:
            run_id = again.headers["x-nalarc-run-id"]
            assert await read_events(again) == [(1, "custom", {"waiting": True}), (2, "result", {"result": "open"})]
        other = await client.post("/v1/workflows/gated/stream", json={"gate": "elsewhere"}, headers=key)
        assert other.status_code == 422
        after = await client.get(f"/v1/runs/{run_id}/events", headers={"last-event-id": "1"})
        assert parse_sse(after.text.splitlines()) == [(2, "result", {"result": "open"})]
        assert (await client.get(f"/v1/runs/{run_id}/events?after=2")).text == ""  # nothing after the result
        assert (await client.get(f"/v1/runs/{run_id}/events", headers={"last-event-id": "x"})).status_code == 400
        assert (await client.get("/v1/runs/nope/events")).status_code == 404
        assert (await client.post(f"/v1/runs/{run_id}/events")).status_code == 405
        assert (await client.post("/v1/workflows/nope/stream", json={})).status_code == 404
        gate2 = tmp_path / "gate2"
        held = await client.post("/v1/workflows/gated?async=1", json={"gate": str(gate2)})
        assert held.status_code == 202  # in flight: the server drains rather than stops
        stop.set()
        while (await client.get("/healthz")).status_code != 503:
            await trio.sleep(0.01)
        assert (await client.post("/v1/workflows/gated/stream", json=body)).status_code == 503
        gate2.touch()

    serve_scenario(gated_app, Journal(tmp_path / "requests.db"), scenario, max_queue=1)


def test_an_interrupted_request_answers_202_and_resumes_in_process(gated_app: LoadedApp, tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient, stop: trio.Event) -> None:
        paused = await client.post("/v1/workflows/ask", json={"question": "ship?"})
        assert paused.status_code == 202
        run_id = paused.json()["run_id"]
        assert paused.json() == {"run_id": run_id, "status": "interrupted", "interrupt": {"question": "ship?"}}
        assert paused.headers["location"] == f"/v1/runs/{run_id}"
        async with client.stream("GET", f"/v1/runs/{run_id}/events") as events:
            assert await read_events(events) == [(1, "interrupt", {"payload": {"question": "ship?"}})]
        resumed = await client.post(f"/v1/runs/{run_id}/resume", json={"value": "yes"})
        assert resumed.status_code == 202 and resumed.headers["location"] == f"/v1/runs/{run_id}"
        async with client.stream("GET", f"/v1/runs/{run_id}/events", headers={"last-event-id": "1"}) as events:
            assert await read_events(events) == [(2, "resumed", {"value": "yes"}),
                                                 (3, "result", {"result": {"answer": "yes"}})]
        assert (await client.get(f"/v1/runs/{run_id}")).json()["result"] == {"answer": "yes"}

    serve_scenario(gated_app, Journal(tmp_path / "requests.db"), scenario)


def test_an_interrupt_without_a_journal_file_fails_the_run_with_a_clear_error(gated_app: LoadedApp) -> None:
    async def scenario(client: httpx.AsyncClient, stop: trio.Event) -> None:
        failed = await client.post("/v1/workflows/ask", json={"question": "ship?"})
        assert failed.status_code == 500 and "needs the request journal on disk" in failed.json()["message"]

    serve_scenario(gated_app, Journal(None), scenario)


def test_an_interrupt_in_a_component_on_a_worker_is_a_clear_error(gated_app: LoadedApp, tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient, stop: trio.Event) -> None:
        failed = await client.post("/v1/workflows/ask_in_tool", json={"question": "ship?"})
        assert failed.status_code == 500 and "call it in the workflow" in failed.json()["message"]

    serve_scenario(gated_app, Journal(tmp_path / "requests.db"), scenario, workers=1)


def test_a_run_resumed_at_start_continues_its_stream_after_a_resumed_event(gated_app: LoadedApp,
                                                                            tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    journal = Journal(tmp_path / "requests.db")  # as a killed server left it: accepted, one event sent
    journal.accept("r1", "gated", {"gate": str(gate)}, "default", None)
    journal.add_events("r1", [(1, "custom", '{"waiting":true}')])

    async def scenario(client: httpx.AsyncClient, stop: trio.Event) -> None:
        async with client.stream("GET", "/v1/runs/r1/events", headers={"last-event-id": "1"}) as events:
            assert await read_events(events) == [(2, "resumed", {"restart": True}), (3, "custom", {"waiting": True}),
                                                 (4, "result", {"result": "open"})]

    serve_scenario(gated_app, journal, scenario)
