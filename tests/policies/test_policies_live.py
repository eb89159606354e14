"""Head-of-line migration in the global loop, on real worker processes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "executor"))
from test_controller import run_service  # noqa: E402 - shared app and harness

from nalarc.executor import Service  # noqa: E402
from nalarc.executor._process import ProcessBackend  # noqa: E402
from nalarc.policies import HeadOfLineMigration  # noqa: E402


def test_queued_calls_leave_a_busy_instance_for_an_idle_one(tmp_path: Path) -> None:
    async def body(service: Service, backend: ProcessBackend) -> list[Any]:
        # Pin the session to Slow#0, so everything queues there unless the policy acts.
        backend.node_store.decisions.routes[("s", "Slow")] = "Slow#0"
        results: list[Any] = []

        async def one(i: int) -> None:
            results.append(await service.run("work", {"x": i, "seconds": 0.3}, "s"))

        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(one, i)
        return [r[1] for r in results]

    pids = run_service(tmp_path, body, default_instances=2, agent_concurrency=1,
                       policy=HeadOfLineMigration(), interval=0.05)
    assert len(set(pids)) == 2  # some calls ran on the idle instance's worker
