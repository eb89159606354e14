"""``GET /metrics`` through prometheus_client (nalarc.serve._metrics), parsed with its parser."""

from __future__ import annotations

import json
import textwrap
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from nalarc import load_app
from nalarc.executor import LoadedApp, Placement, open_service
from nalarc.executor._statestore import StateStore
from nalarc.serve import serve

APP = '''
import nalarc

@nalarc.tool
def square(x):
    return x * x

@nalarc.workflow
def squares(n):
    return sum([square(i) for i in range(n)])

@nalarc.workflow
def broken(x):
    raise RuntimeError(x)
'''

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> LoadedApp:
    root = tmp_path_factory.mktemp("metrics")
    (root / "metrics_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    return load_app(root / "metrics_app.py", out_dir=root / "build")


def _scrape(app: LoadedApp, workers: int, requests: list[tuple[str, dict[str, Any]]]) -> str:
    async def main() -> str:
        store = StateStore(None)
        try:
            async with open_service(app, store, Placement(workers=workers) if workers else None) as service, \
                    trio.open_nursery() as nursery:
                urls = await nursery.start(partial(serve, app, service, "127.0.0.1", 0))
                async with httpx.AsyncClient(base_url=urls[0], timeout=60) as client:
                    for name, body in requests:
                        await client.post(f"/v1/workflows/{name}", content=json.dumps(body), headers=JSON)
                    text = (await client.get("/metrics")).text
                nursery.cancel_scope.cancel()
                return text
        finally:
            store.close()

    return trio.run(main)


def _histograms(text: str, name: str) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
    """labels (without ``le``) -> {"buckets": [(le, cumulative count)], "count": n, "sum": s}."""
    out: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    [family] = [f for f in text_string_to_metric_families(text) if f.name == name]
    assert family.type == "histogram"
    for s in family.samples:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        entry = out.setdefault(labels, {"buckets": []})
        if s.name.endswith("_bucket"):
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            entry["count"] = s.value
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
    for entry in out.values():
        bounds = [le for le, _ in entry["buckets"]]
        counts = [n for _, n in entry["buckets"]]
        assert bounds == sorted(bounds) and bounds[-1] == float("inf")
        assert counts == sorted(counts), "buckets are cumulative"
        assert counts[-1] == entry["count"]
    return out


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "workers=2"])
def test_histograms_count_every_request_and_call(app: LoadedApp, workers: int) -> None:
    requests = [("squares", {"n": 4})] * 5 + [("broken", {"x": "no"})] * 2
    text = _scrape(app, workers, requests)
    by_request = _histograms(text, "nalarc_request_duration_seconds")
    ok = by_request[(("outcome", "ok"), ("workflow", "squares"))]
    failed = by_request[(("outcome", "error"), ("workflow", "broken"))]
    assert ok["count"] == 5 and failed["count"] == 2
    assert ok["sum"] > 0
    calls = _histograms(text, "nalarc_call_duration_seconds")
    [(labels, square)] = calls.items()
    assert labels == (("component", "square"), ("kind", "tool"))
    assert square["count"] == 5 * 4
    queue = _histograms(text, "nalarc_call_queue_seconds")[(("component", "square"),)]
    assert queue["count"] == 5 * 4
    assert 0 <= queue["sum"] <= square["sum"], "a call's queue time is part of its latency"
    # the counters the hand-written exposition had are still there, with their labels
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {s.labels["outcome"]: s.value for s in families["nalarc_requests"].samples
            if s.name == "nalarc_requests_total"} == {"ok": 5, "error": 2}
    assert families["nalarc_requests_in_flight"].samples[0].value == 0


def test_each_server_has_its_own_registry(app: LoadedApp) -> None:
    first = _scrape(app, 0, [("squares", {"n": 1})])
    second = _scrape(app, 0, [("squares", {"n": 2})])
    assert _histograms(first, "nalarc_call_duration_seconds")[(("component", "square"), ("kind", "tool"))]["count"] == 1
    assert _histograms(second, "nalarc_call_duration_seconds")[(("component", "square"), ("kind", "tool"))]["count"] == 2
