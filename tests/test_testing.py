"""nalarc.testing: plain runs of corpus apps, including ``async def`` workflows."""

from __future__ import annotations

import asyncio

import pytest

from nalarc import current_session
from nalarc.testing import call_plainly, run_plain_calls


def twice(x: int) -> int:
    return 2 * x


async def twice_later(x: int) -> list[object]:
    await asyncio.sleep(0)
    return [2 * x, current_session()]


async def fails(x: int) -> int:
    await asyncio.sleep(0)
    raise KeyError(x)


def test_a_plain_workflow_is_called_directly() -> None:
    assert call_plainly(twice, {"x": 4}) == 8


def test_an_async_workflow_runs_to_completion_under_asyncio() -> None:
    assert call_plainly(twice_later, {"x": 4}) == [8, "default"]


def test_run_plain_calls_reports_results_and_errors_of_async_workflows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    namespace = {"twice_later": twice_later, "fails": fails}
    calls = [("twice_later", {"x": 3}, "s1"), ("fails", {"x": 5}, "s2")]
    assert run_plain_calls(calls, namespace) == [[6, "s1"], {"error": "KeyError", "message": "5"}]
    assert capsys.readouterr().out.splitlines() == ['[6, "s1"]', '{"error": "KeyError", "message": "5"}']
