"""The Ray backend on a real local Ray cluster: same answers as plain Python, failures, a killed actor, the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from test_differential import (  # tests/ is on sys.path (rootdir conftest)
    APPS,
    normalized,
    plain_outputs,
)

import nalarc
from nalarc import BrokenWorkerError, load_app
from nalarc.executor import Placement, Service
from nalarc.executor._app import open_service
from nalarc.executor._ray import RayBackend
from nalarc.serve import ServeApp
from nalarc.executor._statestore import StateStore
from nalarc.testing import outcome_of_exception

ray = pytest.importorskip("ray")

APP = '''
import time
import nalarc

@nalarc.tool
def double(x):
    return x * 2

@nalarc.tool
def fail(x):
    raise KeyError(x)

@nalarc.tool(idempotent=True)
def safe(x):
    time.sleep(1.0)
    return x * 2

@nalarc.tool
def unsafe(x):
    time.sleep(1.0)
    return x * 3

@nalarc.agent(max_instances=2)
class Ledger:
    entries = nalarc.ManagedList()

    def record(self, step):
        self.entries.append(step)
        return [len(self.entries), sum(self.entries), nalarc.current_session()]

@nalarc.agent
class Asker:
    def ask(self, x):
        return double(x) + 1

@nalarc.workflow
def chain(x):
    return double(double(x))

@nalarc.workflow
def fan(n):
    parts = [double(i) for i in range(n)]
    total = 0
    for part in parts:
        total += part
    return total

@nalarc.workflow
def broken(x):
    return double(fail(x))

@nalarc.workflow
def turn(step):
    return Ledger().record(step)

@nalarc.workflow
def nested(x):
    return Asker().ask(x)

@nalarc.workflow
def only_safe(x):
    return safe(x)

@nalarc.workflow
def only_unsafe(x):
    return unsafe(x)
'''

#: (workflow, inputs, session), in the order the plain program runs them.
REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    *[("chain", {"x": x}, "c") for x in range(4)],
    ("fan", {"n": 6}, "f"),
    ("nested", {"x": 5}, "n"),
    *[("turn", {"step": step}, session) for step in range(4) for session in ("a", "b")],
]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """One local Ray cluster for the module; its address (the CLI test joins it)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


@pytest.fixture()
def app_path(tmp_path: Path) -> Path:
    path = tmp_path / "ray_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return path


def plain_answers(app_path: Path) -> list[Any]:
    spec = importlib.util.spec_from_file_location("ray_app_plain", app_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answers = []
    for workflow, inputs, session in REQUESTS:
        with nalarc.session(session):
            answers.append(getattr(module, workflow)(**inputs))
    return answers


def serve(app_path: Path, body: Callable[[Service, RayBackend], Awaitable[Any]], **instances: int) -> Any:
    app = load_app(app_path, out_dir=app_path.parent / "build")

    async def main() -> Any:
        placement = Placement(workers=2, backend="ray", instances=dict(instances))
        async with open_service(app, StateStore(None), placement) as service:
            assert isinstance(service.backend, RayBackend)
            return await body(service, service.backend)

    return trio.run(main)


def test_compiled_answers_on_ray_actors_equal_plain_python(ray_cluster: str, app_path: Path) -> None:
    async def body(service: Service, backend: RayBackend) -> tuple[list[Any], Any, str]:
        assert {w.id for w in backend.workers.values()} == {"r0", "r1"}
        assert all(w.alive and w.pid > 0 and w.pid != os.getpid() for w in backend.workers.values())
        answers = [await service.run(workflow, inputs, session) for workflow, inputs, session in REQUESTS]
        server = ServeApp(service.app, service, backend.nursery)
        return answers, await server._status(), server.metrics()

    answers, (code, status), metrics = serve(app_path, body, Ledger=2)
    assert answers == plain_answers(app_path)
    assert code == 200 and status["backend"] == "ray"
    assert {w["id"] for w in status["workers"]} == {"r0", "r1"} and all(w["alive"] for w in status["workers"])
    assert {i["component"] for i in status["instances"]} >= {"double", "Ledger", "Asker"}
    assert re.search(r'^nalarc_worker_alive\{[^}]*worker="r0"[^}]*\} 1\.0$', metrics, re.MULTILINE)


@pytest.mark.parametrize("corpus_app", APPS, ids=[a.stem for a in APPS])
def test_the_differential_corpus_on_ray_actors(ray_cluster: str, corpus_app: Path, tmp_path: Path) -> None:
    """Every corpus app on 2 Ray actors with 2 instances of every agent, as on worker processes."""
    from nalarc.executor import run_requests

    expected = plain_outputs(corpus_app)
    loaded = load_app(corpus_app, out_dir=tmp_path / "build")
    requests = [(w, dict(k), s) for w, k, s in loaded.module.CALLS]
    outcomes = run_requests(loaded, requests, placement=Placement(workers=2, default_instances=2, backend="ray"))
    got = [normalized(o.value) if o.error is None else outcome_of_exception(o.error) for o in outcomes]
    for index, (want, have) in enumerate(zip(expected, got)):
        assert have == want, f"request {index} ({requests[index][0]}) differs"


def test_a_failing_tool_raises_its_own_exception_with_the_remote_traceback(ray_cluster: str, app_path: Path) -> None:
    async def body(service: Service, backend: RayBackend) -> BaseException:
        with pytest.raises(KeyError) as caught:
            await service.run("broken", {"x": 3}, "s")
        return caught.value

    error = serve(app_path, body)
    assert error.args == (3,)
    notes = "".join(getattr(error, "__notes__", []))
    assert "remote traceback" in notes and "raise KeyError(x)" in notes


def test_a_killed_actor_loses_no_request(ray_cluster: str, app_path: Path) -> None:
    """Retry-safe calls run again on the replacement actor; the others fail with the typed error."""

    async def body(service: Service, backend: RayBackend) -> tuple[dict[str, Any], int, Any, int]:
        outcomes: dict[str, Any] = {}

        async def one(key: str, workflow: str, x: int) -> None:
            try:
                outcomes[key] = await service.run(workflow, {"x": x}, key)
            except Exception as exc:  # noqa: BLE001 - checked below
                outcomes[key] = exc

        victim = backend.workers["r0"]
        killed = victim.pid
        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(one, f"safe{i}", "only_safe", i)
                nursery.start_soon(one, f"unsafe{i}", "only_unsafe", i)
            await trio.sleep(0.4)  # every call is running on the actors now
            os.kill(killed, signal.SIGKILL)
        after = await service.run("chain", {"x": 1}, "after")
        return outcomes, killed, after, backend.workers["r0"].pid

    outcomes, killed, after, new_pid = serve(app_path, body, safe=2, unsafe=2)
    assert len(outcomes) == 8  # no request lost
    assert [outcomes[f"safe{i}"] for i in range(4)] == [0, 2, 4, 6]
    broken = [o for o in outcomes.values() if isinstance(o, BrokenWorkerError)]
    assert broken, "some unsafe calls ran on the killed actor"
    for error in broken:
        assert error.component == "unsafe" and error.instance.startswith("unsafe#") and error.pid == killed
    assert all(outcomes[f"unsafe{i}"] == i * 3 for i in range(4) if not isinstance(outcomes[f"unsafe{i}"], Exception))
    assert after == 4 and new_pid not in (0, killed)  # the replacement actor serves r0's instances


ASYNC_APP = '''
import asyncio
import os
import threading
import nalarc

@nalarc.tool
async def nap(i):
    await asyncio.sleep(0.2)
    return [i, os.getpid(), threading.current_thread().name]

@nalarc.workflow
async def fan(n):
    return await asyncio.gather(*[nap(i) for i in range(n)])
'''


def test_a_leaf_async_tool_runs_on_the_asyncio_loop_of_a_ray_actor(ray_cluster: str, tmp_path: Path) -> None:
    path = tmp_path / "async_ray_app.py"
    path.write_text(textwrap.dedent(ASYNC_APP), encoding="utf-8")

    async def body(service: Service, backend: RayBackend) -> tuple[Any, float]:
        await service.run("fan", {"n": 1})
        started = trio.current_time()
        value = await service.run("fan", {"n": 3})
        return value, trio.current_time() - started

    value, seconds = serve(path, body)
    actor_pids = {pid for _, pid, _ in value}
    assert [i for i, _, _ in value] == [0, 1, 2]
    assert os.getpid() not in actor_pids and {name for _, _, name in value} == {"nalarc-asyncio"}
    assert seconds < 0.45, f"3 async tools of 0.2 s took {seconds:.2f} s on Ray"


def test_the_cli_runs_on_a_ray_cluster_it_joins(ray_cluster: str, app_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nalarc", "run", str(app_path), "--workflow", "fan", "--input", '{"n": 5}',
         "--backend", "ray", "--ray-address", ray_cluster],
        capture_output=True, text=True, timeout=180, cwd=app_path.parent,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 20


def test_an_unknown_backend_is_a_clear_error(app_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nalarc", "run", str(app_path), "--workflow", "chain", "--backend", "rai"],
        capture_output=True, text=True, timeout=60, cwd=app_path.parent,
    )
    assert result.returncode != 0
    assert "backend must be one of process, ray, got 'rai'" in result.stderr
    assert "Traceback" not in result.stderr
