"""The driver's KV-cache residency table (unit), fed as Done messages feed it."""

from __future__ import annotations

from nalarc.executor._residency import Residency
from nalarc.policies import CachedPrefix


def test_reports_sum_over_models_and_an_eviction_removes_the_session() -> None:
    table = Residency()
    table.update("Analyst#0", [("s1", "analyst", 2000, 0.08), ("s1", "news", 100, 0.004)])
    assert table.view()["Analyst#0"]["s1"] == CachedPrefix(2100, 0.084)
    table.update("Analyst#0", [("s1", "analyst", 2500, 0.09)])  # the conversation grew
    assert table.view()["Analyst#0"]["s1"] == CachedPrefix(2600, 0.094)
    table.update("Analyst#0", [("s1", "analyst", 0, 0.0), ("s1", "news", 0, 0.0)])
    assert table.view()["Analyst#0"] == {}


def test_a_retired_instance_takes_its_cache_with_it() -> None:
    table = Residency()
    table.update("Analyst#0", [("s1", "analyst", 2000, 0.08)])
    table.update("Analyst#1", [("s2", "analyst", 2000, 0.08)])
    table.forget("Analyst#0")
    assert set(table.view()) == {"Analyst#1"}
    table.update("Analyst#0", [("s1", "analyst", 10, 0.001)])  # a new instance under the same id starts empty
    assert table.view()["Analyst#0"]["s1"].tokens == 10
