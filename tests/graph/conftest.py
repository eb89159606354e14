"""Fixtures for the ``nalarc graph`` tests: the examples' IR and run traces, hostile IR and traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from graph_support import EVIL, EXAMPLE_INPUTS, EXAMPLE_NAMES, EXAMPLES, run_trace

from nalarc._build import build
from nalarc.ir import (
    ArgRef,
    ComponentIR,
    ControlRegion,
    DependencyEdge,
    FunctionIR,
    FutureNode,
    MaterializeNode,
    ModuleIR,
    Program,
)


@pytest.fixture(scope="session")
def example_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build directories of every example (ir.json inside)."""
    out = {}
    for name in EXAMPLE_NAMES:
        target = tmp_path_factory.mktemp(f"build-{name}")
        build(EXAMPLES / f"{name}.py", target)
        out[name] = target
    return out


@pytest.fixture(scope="session")
def example_programs(example_builds: dict[str, Path]) -> dict[str, Program]:
    from nalarc.ir._json import loads

    return {name: loads((path / "ir.json").read_text(encoding="utf-8")) for name, path in example_builds.items()}


@pytest.fixture(scope="session")
def example_traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """A run trace of one request of every example (calls run in this process)."""
    out = {}
    for name in EXAMPLE_NAMES:
        workflow, inputs = EXAMPLE_INPUTS[name]
        build_dir = tmp_path_factory.mktemp(f"run-{name}")
        out[name] = json.loads(json.dumps(run_trace(EXAMPLES / f"{name}.py", build_dir, [(workflow, inputs, "s")])))
    return out


def _span(line: int) -> tuple[int, int, int, int]:
    return (line, 4, line, 40)


@pytest.fixture
def evil_program() -> Program:
    """A workflow, an agent, a call in a loop, an edge and a wait: every name hostile."""
    key = f"evil:{EVIL}"
    regions = (
        ControlRegion("r0", "function", (1, 0, 20, 0), None),
        ControlRegion("r1", "for", (3, 4, 6, 0), "r0"),
        ControlRegion("r2", "if", (7, 4, 9, 0), "r0"),
    )
    futures = (
        FutureNode("f0", _span(2), key, EVIL, (ArgRef("0", (EVIL,)),), "r0", 0, binds=EVIL, stage=1, critical=True,
                   state="write"),
        FutureNode("f1", _span(4), key, EVIL, (ArgRef(f"k={EVIL}", (EVIL,), ("f0",)),), "r1", 1, stage=1),
    )
    function = FunctionIR(
        qualname=f"evil:{EVIL}", kind="workflow", span=(1, 0, 20, 0), params=(EVIL,), futures=futures,
        materializations=(MaterializeNode("m0", _span(8), "test", True, (EVIL,), "r2"),),
        edges=(DependencyEdge("f0", "f1", EVIL), DependencyEdge("f0", "m0", EVIL)), regions=regions,
        parallel_groups=(("f0", "f1"),), critical_path=2,
    )
    component = ComponentIR(
        key=key, kind="agent", span=(30, 0, 40, 0), directives=(("stateful", True), (EVIL, EVIL)),
        methods=((EVIL, ("self", EVIL)),), managed=(EVIL,), writes=(EVIL,),
    )
    module = ModuleIR(name="evil", path="evil.py", functions=(function,), components=(component,), workflows=(EVIL,))
    return Program(app=EVIL, modules=(module,))


@pytest.fixture
def evil_trace() -> dict[str, Any]:
    """Two calls (one depends on the other) with hostile names everywhere."""
    def call(future: str, ts: float, deps: list[str]) -> dict[str, Any]:
        return {"name": EVIL, "cat": "call", "ph": "X", "ts": ts, "dur": 1000.0, "pid": 1, "tid": 1, "args": {
            "future": future, "instance": EVIL, "session": EVIL, "request": EVIL, "stage": 1, "queue_ms": 0.0,
            "depends_on": deps, "ok": True}}

    return {"traceEvents": [
        {"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": EVIL}},
        {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": EVIL}},
        call(EVIL, 0.0, []),
        call(EVIL + "2", 2000.0, [EVIL]),
    ]}
