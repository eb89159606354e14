"""benchmarks/controlplane.py at a small size, so the benchmark cannot rot: it runs, and two-level beats one-level."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import trio

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "controlplane.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("controlplane", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loop_and_decisions_at_4096_futures_on_32_nodes(bench: ModuleType) -> None:
    row = trio.run(bench.measure_point, 2**12, 32, 3, 0.01, 300)
    assert (row["futures"], row["nodes"], row["instances"]) == (4096, 32, 64)
    assert row["keys"] > 1000 and row["changes"] > 0  # the loop ran and merged deltas
    for key in ("collect_ms", "policy_ms", "cold_collect_ms", "cold_policy_ms", "two_level_us", "one_level_us",
                "two_level_scan_us", "gc_full_ms"):
        assert row[key] > 0, key
    assert row["two_level_us"] < row["one_level_us"]
    assert row["two_level_p50_us"] < row["one_level_p50_us"]


def test_report_json_and_plot(bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "cp.json", tmp_path / "cp.png"
    monkeypatch.setattr(sys, "argv", ["controlplane.py", "--sizes", "10", "--nodes", "32", "--rounds", "2",
                                      "--samples", "50", "--memory", "-1", "--out", str(out), "--plot", str(png)])
    bench.main()
    rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert [(r["nodes"], r["futures"]) for r in rows] == [(32, 1024)]
    assert png.stat().st_size > 10_000


def test_memory_per_pending_future(bench: ModuleType) -> None:
    memory = bench.measure_memory(0, 4, requests=100)
    assert 0 < memory["controller_bytes_per_future"] < memory["bytes_per_pending_future"] < 64_000
    assert memory["bytes_per_request"] > 0


def test_the_emulation_routes_with_the_executor_s_router(bench: ModuleType) -> None:
    """The benchmark drives ``nalarc.executor._routing.Router`` itself, not methods borrowed from a backend."""
    from nalarc.executor._routing import Router

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            cluster = bench.EmulatedCluster(4, nursery)
            assert type(cluster.router) is Router and cluster.instances is cluster.router.instances
            call = bench.Workload(cluster, 8).call("s0", 1)
            bench.two_level(cluster, call)
            assert sum(c.load for c in cluster.instances.values()) == 1
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert "__getattr__" not in vars(bench.EmulatedCluster)
