"""Idempotency keys, resume from the journal, draining: the real server over loopback, in this process.

Every tool appends to an effect log, so a test counts how often a workflow really ran.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from nalarc import load_app
from nalarc.executor import LoadedApp, Placement, open_service
from nalarc.executor._statestore import StateStore
from nalarc.serve import serve
from nalarc.serve._journal import Journal

APP = '''
import os
import time
import nalarc

@nalarc.tool
def effect(tag, log, gate=None):
    with open(log, "a") as f:
        f.write(tag + "\\n")
    while gate is not None and not os.path.exists(gate):
        time.sleep(0.005)
    return tag.upper()

@nalarc.workflow
def job(tag, log, gate=None):
    return {"tag": effect(tag, log, gate)}

@nalarc.workflow
def fails(tag, log):
    effect(tag, log)
    raise ValueError(f"no {tag}")
'''

Scenario = Callable[[httpx.AsyncClient, Any], Awaitable[None]]


@pytest.fixture
def app(tmp_path: Path) -> LoadedApp:
    path = tmp_path / "durable_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return load_app(path, out_dir=tmp_path / "build")


def serving(app: LoadedApp, journal: Journal, scenario: Scenario, *, workers: int = 0, drain_timeout: float = 30.0,
            max_queue: int = 64) -> None:
    """Serve with ``journal``; ``scenario(client, stop)`` may call ``stop.set()`` to begin the drain."""

    async def main() -> None:
        store = StateStore(None)
        stop = trio.Event()
        try:
            async with open_service(app, store, Placement(workers=workers)) as service, trio.open_nursery() as nursery:
                urls = await nursery.start(partial(serve, app, service, "127.0.0.1", 0, max_queue=max_queue,
                                                   journal=journal, drain_timeout=drain_timeout,
                                                   shutdown_trigger=stop.wait))
                async with httpx.AsyncClient(base_url=urls[0], timeout=30) as client:
                    await scenario(client, stop)
                stop.set()
        finally:
            store.close()

    trio.run(main)


def effects(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


async def post(client: httpx.AsyncClient, name: str, body: dict[str, Any], key: str | None = None,
               query: str = "", session: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["idempotency-key"] = key
    if session is not None:
        headers["x-nalarc-session"] = session
    return await client.post(f"/v1/workflows/{name}{query}", content=json.dumps(body), headers=headers)


async def until_done(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    with trio.fail_after(20):
        while (body := (await client.get(f"/v1/runs/{run_id}")).json())["status"] == "pending":
            await trio.sleep(0.02)
    result: dict[str, Any] = body
    return result


@pytest.mark.parametrize("workers", [pytest.param(0, id="in-process"), pytest.param(2, id="workers=2")])
def test_idempotency_key_returns_the_first_answer_and_runs_once(app: LoadedApp, tmp_path: Path, workers: int) -> None:
    log, gate = tmp_path / "effects.log", tmp_path / "gate"
    journal = Journal(tmp_path / "j.db")

    async def scenario(client: httpx.AsyncClient, stop: trio.Event) -> None:
        first = await post(client, "job", {"tag": "a", "log": str(log)}, key="k-a")
        assert first.status_code == 200 and first.json() == {"result": {"tag": "A"}}
        assert "idempotent-replayed" not in first.headers
        again = await post(client, "job", {"log": str(log), "tag": "a"}, key="k-a")  # same body, keys reordered
        assert again.status_code == 200 and again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["x-nalarc-run-id"] == first.headers["x-nalarc-run-id"]
        # the same key with another body, workflow or session is another request: refused
        for changed in [post(client, "job", {"tag": "b", "log": str(log)}, key="k-a"),
                        post(client, "fails", {"tag": "a", "log": str(log)}, key="k-a"),
                        post(client, "job", {"tag": "a", "log": str(log)}, key="k-a", session="bob")]:
            response = await changed
            assert response.status_code == 422 and "Idempotency-Key" in response.json()["error"]
        # a failure is replayed too, as the same 500
        failed = await post(client, "fails", {"tag": "f", "log": str(log)}, key="k-f")
        replay = await post(client, "fails", {"tag": "f", "log": str(log)}, key="k-f")
        assert failed.status_code == replay.status_code == 500 and failed.json() == replay.json()
        assert failed.json()["message"] == "no f"
        # while the first is still running: async retries get its run id, a sync retry waits for it
        held = await post(client, "job", {"tag": "h", "log": str(log), "gate": str(gate)}, key="k-h", query="?async=1")
        run_id = held.json()["run_id"]
        for _ in range(2):
            retry = await post(client, "job", {"tag": "h", "log": str(log), "gate": str(gate)}, key="k-h",
                               query="?async=1")
            assert retry.status_code == 202 and retry.json() == {"run_id": run_id, "status": "pending"}
        waiter: list[httpx.Response] = []

        async def sync_retry() -> None:
            waiter.append(await post(client, "job", {"tag": "h", "log": str(log), "gate": str(gate)}, key="k-h"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sync_retry)
            await trio.sleep(0.3)
            assert waiter == []  # still waiting for the first run
            gate.touch()
        assert waiter[0].status_code == 200 and waiter[0].json() == {"result": {"tag": "H"}}
        assert (await until_done(client, run_id))["result"] == {"tag": "H"}
        metrics = (await client.get("/metrics")).text
        assert "nalarc_requests_replayed_total 5.0\n" in metrics

    serving(app, journal, scenario, workers=workers)
    assert sorted(effects(log)) == ["a", "f", "h"]  # each keyed request ran exactly once
    journal.close()


def test_keys_and_runs_survive_a_restart(app: LoadedApp, tmp_path: Path) -> None:
    log, path = tmp_path / "effects.log", tmp_path / "j.db"
    seen: dict[str, Any] = {}

    async def first(client: httpx.AsyncClient, stop: trio.Event) -> None:
        response = await post(client, "job", {"tag": "x", "log": str(log)}, key="k-x")
        seen["sync"] = response.headers["x-nalarc-run-id"]
        seen["async"] = (await post(client, "job", {"tag": "y", "log": str(log)}, query="?async=1")).json()["run_id"]
        await until_done(client, seen["async"])

    async def second(client: httpx.AsyncClient, stop: trio.Event) -> None:
        replay = await post(client, "job", {"tag": "x", "log": str(log)}, key="k-x")
        assert replay.json() == {"result": {"tag": "X"}} and replay.headers["idempotent-replayed"] == "true"
        for run_id, tag in [(seen["sync"], "X"), (seen["async"], "Y")]:
            assert (await client.get(f"/v1/runs/{run_id}")).json()["result"] == {"tag": tag}

    for scenario in (first, second):
        journal = Journal(path)
        serving(app, journal, scenario)
        journal.close()
    assert effects(log) == ["x", "y"]


def test_unfinished_requests_resume_at_start_under_their_run_ids(app: LoadedApp, tmp_path: Path) -> None:
    log, path = tmp_path / "effects.log", tmp_path / "j.db"
    journal = Journal(path)  # as a killed server left it: accepted, no outcome
    journal.accept("run-1", "job", {"tag": "r1", "log": str(log)}, "default", "k-r1")
    journal.accept("run-2", "job", {"tag": "r2", "log": str(log)}, "alice", None)
    journal.accept("run-3", "gone", {}, "default", None)  # the app no longer has it
    journal.accept("run-4", "job", {"wrong": 1}, "default", None)  # no longer binds
    journal.close()

    async def scenario(client: httpx.AsyncClient, stop: trio.Event) -> None:
        assert (await until_done(client, "run-1"))["result"] == {"tag": "R1"}
        second = await until_done(client, "run-2")
        assert second["result"] == {"tag": "R2"} and second["session"] == "alice"
        gone = await until_done(client, "run-3")
        assert gone["status"] == "failed" and "not in the app any more" in gone["message"]
        assert (await until_done(client, "run-4"))["status"] == "failed"
        replay = await post(client, "job", {"tag": "r1", "log": str(log)}, key="k-r1")
        assert replay.json() == {"result": {"tag": "R1"}} and replay.headers["x-nalarc-run-id"] == "run-1"
        status = (await client.get("/v1/status")).json()
        assert status["journal"]["resumed_at_start"] == 4 and status["journal"]["requests"] == {"done": 2, "failed": 2}

    journal = Journal(path)
    serving(app, journal, scenario)
    assert [journal.get(r).attempts for r in ("run-1", "run-2")] == [2, 2]  # type: ignore[union-attr]
    journal.close()
    assert sorted(effects(log)) == ["r1", "r2"]


def test_resumed_requests_count_against_admission(app: LoadedApp, tmp_path: Path) -> None:
    log, gate, path = tmp_path / "effects.log", tmp_path / "gate", tmp_path / "j.db"
    journal = Journal(path)
    for i in range(2):
        journal.accept(f"held-{i}", "job", {"tag": f"h{i}", "log": str(log), "gate": str(gate)}, "default",
                       f"k-held{i}")

    async def scenario(client: httpx.AsyncClient, stop: trio.Event) -> None:
        assert (await client.get("/v1/status")).json()["admitted"] == 2
        refused = await post(client, "job", {"tag": "new", "log": str(log)})
        assert refused.status_code == 429
        # a retry of a resumed request is no new work: answered at the limit too
        retry = await post(client, "job", {"tag": "h0", "log": str(log), "gate": str(gate)}, key="k-held0",
                           query="?async=1")
        assert retry.status_code == 202 and retry.json()["run_id"] == "held-0"
        gate.touch()
        for i in range(2):
            assert (await until_done(client, f"held-{i}"))["result"] == {"tag": f"H{i}"}
        assert (await post(client, "job", {"tag": "new", "log": str(log)})).status_code == 200

    serving(app, journal, scenario, max_queue=2)
    journal.close()


def test_drain_finishes_in_flight_refuses_new_and_leaves_the_rest_journaled(app: LoadedApp, tmp_path: Path) -> None:
    log, gate, never, path = tmp_path / "effects.log", tmp_path / "gate", tmp_path / "never", tmp_path / "j.db"
    journal = Journal(path)
    seen: dict[str, Any] = {}
    drain_timeout = 2.0

    async def scenario(client: httpx.AsyncClient, stop: trio.Event) -> None:
        quick = [await post(client, "job", {"tag": f"q{i}", "log": str(log), "gate": str(gate)}, query="?async=1")
                 for i in range(3)]
        seen["quick"] = [r.json()["run_id"] for r in quick]
        stuck = await post(client, "job", {"tag": "stuck", "log": str(log), "gate": str(never)}, query="?async=1")
        seen["stuck"] = stuck.json()["run_id"]
        stop.set()
        with trio.fail_after(5):
            while (health := await client.get("/healthz")).status_code == 200:
                await trio.sleep(0.01)
        assert health.status_code == 503 and health.json() == {"status": "draining", "admitted": 4}
        refused = await post(client, "job", {"tag": "late", "log": str(log)})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        gate.touch()  # the quick ones finish within the drain, and are still answered; "stuck" cannot
        for run_id in seen["quick"]:
            assert (await until_done(client, run_id))["status"] == "done"
        assert (await client.get(f"/v1/runs/{seen['stuck']}")).json()["status"] == "pending"
        seen["checked"] = True

    async def main() -> None:
        store = StateStore(None)
        stop, served = trio.Event(), trio.Event()

        async def server(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
            await serve(app, service, "127.0.0.1", 0, journal=journal, drain_timeout=drain_timeout,
                        shutdown_trigger=stop.wait, task_status=task_status)
            served.set()

        async def client_side(url: str) -> None:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                await scenario(client, stop)

        try:
            async with open_service(app, store, Placement(workers=2)) as service, trio.open_nursery() as nursery:
                urls = await nursery.start(server)
                nursery.start_soon(client_side, urls[0])
                await stop.wait()
                began = trio.current_time()
                with trio.fail_after(drain_timeout + 10):
                    await served.wait()
                seen["drained_in"] = trio.current_time() - began
        finally:
            store.close()

    trio.run(main)
    never.touch()
    assert seen["checked"] is True
    assert drain_timeout <= seen["drained_in"] < drain_timeout + 5  # waited the deadline for "stuck", no longer
    assert [journal.get(r).status for r in seen["quick"]] == ["done"] * 3  # type: ignore[union-attr]
    assert [e.run_id for e in journal.unfinished()] == [seen["stuck"]]
    journal.close()
    assert "late" not in effects(log) and "stuck" in effects(log)


def test_retention_limits_apply_to_the_journal_and_to_memory(app: LoadedApp, tmp_path: Path) -> None:
    log, path = tmp_path / "effects.log", tmp_path / "j.db"
    run_ids: list[str] = []

    async def first(client: httpx.AsyncClient, stop: trio.Event) -> None:
        for i in range(5):
            response = await post(client, "job", {"tag": f"t{i}", "log": str(log)}, key=f"k{i}")
            run_ids.append(response.headers["x-nalarc-run-id"])
        # memory keeps 2; older runs are still answered from the journal until its next prune
        status = (await client.get("/v1/status")).json()["journal"]
        assert status["runs_in_memory"] == 2 and status["requests"] == {"done": 5}
        assert (await client.get(f"/v1/runs/{run_ids[0]}")).json()["result"] == {"tag": "T0"}

    async def second(client: httpx.AsyncClient, stop: trio.Event) -> None:
        # pruned at start: only the newest two are left, and the older keys are free again
        assert [(await client.get(f"/v1/runs/{r}")).status_code for r in run_ids] == [404, 404, 404, 200, 200]
        again = await post(client, "job", {"tag": "t0", "log": str(log)}, key="k0")
        assert "idempotent-replayed" not in again.headers and again.json() == {"result": {"tag": "T0"}}
        kept = await post(client, "job", {"tag": "t4", "log": str(log)}, key="k4")
        assert kept.headers["idempotent-replayed"] == "true"

    journal = Journal(path, max_runs=2)
    serving(app, journal, first)
    journal.close()
    journal = Journal(path, max_runs=2)
    serving(app, journal, second)
    journal.close()
    assert effects(log) == ["t0", "t1", "t2", "t3", "t4", "t0"]
