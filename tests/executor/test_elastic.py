"""Elastic capacity on real worker processes: a burst grows a component up to max_instances at once,
no call is lost while instances come and go, and the autoscaler gives idle tool instances back."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import trio

from nalarc import load_app
from nalarc.executor import Placement, Service, open_service
from nalarc.executor._statestore import StateStore
from nalarc.policies import Autoscale

APP = '''
import os
import time
import nalarc

@nalarc.tool(max_instances=4)
def slow(i):
    start = time.monotonic()
    time.sleep(0.2)
    return [i * 2, os.getpid(), start, time.monotonic()]

@nalarc.agent(max_instances=3)
class Reader:
    def read(self, i):
        time.sleep(0.1)
        return -i

@nalarc.workflow
def burst(n):
    return [slow(i) for i in range(n)]

@nalarc.workflow
def read_all(n):
    return [Reader().read(i) for i in range(n)]
'''


def _instances(service: Service, component: str) -> list[dict[str, Any]]:
    return [i for i in service.status()["instances"] if i["component"] == component]


def _serve(tmp_path: Path, body: Any, **placement: Any) -> Any:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    app = load_app(tmp_path / "app.py", out_dir=tmp_path / "build")

    async def main() -> Any:
        async with open_service(app, StateStore(None), Placement(workers=2, tool_concurrency=4, agent_concurrency=4,
                                                                 **placement)) as service:
            return await body(service)

    return trio.run(main)


def test_a_burst_grows_a_tool_to_max_instances_and_every_call_answers(tmp_path: Path) -> None:
    async def body(service: Service) -> tuple[Any, int, int]:
        before = len(_instances(service, "slow"))
        result = await service.run("burst", {"n": 16})
        return result, before, len(_instances(service, "slow"))

    result, before, after = _serve(tmp_path, body, policy=None)
    assert before == 1 and after == 4  # 16 calls, 4 slots each: 4 instances, and never a fifth
    assert [r[0] for r in result] == [i * 2 for i in range(16)]
    starts, ends = [r[2] for r in result], [r[3] for r in result]
    assert max(starts) < min(ends)  # all 16 ran at once: none waited for a slot


def test_without_elasticity_calls_queue_on_one_instance(tmp_path: Path) -> None:
    async def body(service: Service) -> tuple[Any, int]:
        result = await service.run("burst", {"n": 8})
        return result, len(_instances(service, "slow"))

    result, count = _serve(tmp_path, body, policy=None, elastic=False)
    assert count == 1
    assert max(r[2] for r in result) > min(r[3] for r in result)  # 4 slots: two rounds


def test_agents_grow_too_but_only_to_their_max(tmp_path: Path) -> None:
    async def body(service: Service) -> tuple[Any, int]:
        result = await service.run("read_all", {"n": 20})
        return result, len(_instances(service, "Reader"))

    result, count = _serve(tmp_path, body, policy=None)
    assert result == [-i for i in range(20)] and count == 3


async def _until_instances(service: Service, component: str, count: int, deadline: float = 20.0) -> None:
    """Wait until ``component`` has ``count`` instances (polled; the deadline is generous for a loaded machine)."""
    with trio.move_on_after(deadline):
        while len(_instances(service, component)) != count:
            await trio.sleep(0.01)
        return
    raise AssertionError(f"{component} has {len(_instances(service, component))} instances, not {count}, "
                         f"{deadline} s after its burst")


DOWNSCALE_DELAY = 0.2


def test_the_autoscaler_gives_idle_tool_instances_back_and_no_call_is_lost(tmp_path: Path) -> None:
    async def body(service: Service) -> tuple[list[Any], list[int], list[list[float]]]:
        backend: Any = service.backend
        retire, retired_at = backend.retire, []

        def recording_retire(controller: Any) -> None:  # observes only: when each instance is given back
            retired_at.append(trio.current_time())
            retire(controller)

        setattr(backend, "retire", recording_retire)
        grown: list[int] = []
        retirements: list[list[float]] = []
        results: list[Any] = []
        for _ in range(3):  # burst, idle until scaled down, burst again
            results.append(await service.run("burst", {"n": 12}))
            before = len(retired_at)
            grown.append(len(_instances(service, "slow")))
            # Not a fixed sleep: giving 3 instances back takes at least look_back + 3 delays
            # (0.8 s) of controller rounds, and longer on a loaded machine.
            await _until_instances(service, "slow", 1)
            retirements.append(retired_at[before:])
        return results, grown, retirements

    results, grown, retirements = _serve(tmp_path, body, interval=0.05,
                                         policy=Autoscale(downscale_delay=DOWNSCALE_DELAY, look_back=0.2))
    for result in results:
        assert [r[0] for r in result] == [i * 2 for i in range(12)]
    # 12 calls need 3 instances of 4 slots (the autoscaler's 80% target may add the 4th, the max)
    assert all(3 <= n <= 4 for n in grown), grown
    for n, times in zip(grown, retirements):
        # one idle instance at a time, each a full delay after the one before (load only adds to the gaps;
        # 10 ms for the clock read between the round's view and the retirement)
        assert len(times) == n - 1, (grown, retirements)
        assert all(b - a >= DOWNSCALE_DELAY - 0.01 for a, b in zip(times, times[1:])), retirements
