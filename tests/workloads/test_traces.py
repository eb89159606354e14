"""nalarc.workloads: the trace helpers and the @workload marker."""

from __future__ import annotations

import random

import pytest

from nalarc.workloads import (
    Request,
    Session,
    is_workload,
    phase_share,
    poisson_times,
    workload,
)


def test_poisson_times_have_the_rate_and_are_seeded() -> None:
    times = list(poisson_times(50, 100, random.Random(1)))
    assert times == sorted(times) and 0 <= times[0] and times[-1] < 100
    assert 4500 < len(times) < 5500  # 50/s over 100 s, within about 7 standard deviations
    assert times == list(poisson_times(50, 100, random.Random(1)))
    assert times != list(poisson_times(50, 100, random.Random(2)))
    with pytest.raises(ValueError, match="rate must be a positive number"):
        list(poisson_times(0, 1, random.Random(0)))


def test_phase_share_alternates() -> None:
    assert [phase_share(t, 10, [0.95, 0.05]) for t in (0, 9.9, 10, 19.9, 20, 35)] == [0.95, 0.95, 0.05, 0.05, 0.95, 0.05]
    assert [phase_share(t, 2, [0.1, 0.2, 0.3]) for t in (3, 5, 7)] == [0.2, 0.3, 0.1]


def test_workload_marker() -> None:
    @workload
    def traffic(rate: float, duration: float, seed: int = 0) -> list[Request]:
        return [Request(0.0, {"x": 1})]

    def other() -> None:
        return None

    assert is_workload(traffic) and not is_workload(other) and traffic(1, 1) == [Request(0.0, {"x": 1})]
    session = Session("s", 1.0, [{"q": 1}, {"q": 2}], think=0.5)
    assert session.thinks == () and session.workflow is None
