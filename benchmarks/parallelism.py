"""Request latency under nalarc against the critical path and plain Python.

Run: ``python benchmarks/parallelism.py [--unit 0.1] [--repeat 3] [--out report.json]``

Each scenario is an app whose tools sleep (``unit`` seconds per unit of
work).  For each: plain Python (``python app.py`` semantics, sequential: the
sum of all sleeps), nalarc (the compiled app on the in-process runtime, best
of ``--repeat`` requests after one warm-up), and the critical path (the
longest chain of dependent sleeps).  ``overhead`` is nalarc minus the
critical path: what the runtime adds on top of unavoidable waiting.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _common import report
from nalarc import load_app
from nalarc.executor import InProcessRunner

TOOLS = '''
import time
import nalarc

UNIT = {unit}

@nalarc.tool
def work(name, units=1):
    time.sleep(UNIT * units)
    return len(name) + units

@nalarc.agent
class Analyst:
    def analyze(self, parts):
        time.sleep(UNIT)
        return sum(parts)
'''

# name -> (workflow source, critical path in units, total units)
SCENARIOS: dict[str, tuple[str, int, int]] = {
    "fan-out x8": ('''
@nalarc.workflow
def main():
    return sum(work(f"q{i}") for i in range(8))
''', 1, 8),
    "fan-out x8 -> agent": ('''
@nalarc.workflow
def main():
    parts = [work(f"q{i}") for i in range(8)]
    return Analyst().analyze(parts)
''', 2, 9),
    "two chains of 3": ('''
@nalarc.workflow
def main():
    a = work("a")
    b = work("b", 2)
    a2 = work(str(a))
    b2 = work(str(b))
    return [work(str(a2)), b2]
''', 3, 7),
    "branch on result": ('''
@nalarc.workflow
def main():
    first = work("seed")
    side = [work(f"s{i}") for i in range(4)]
    if first > 2:
        more = [work(f"m{i}", 2) for i in range(3)]
    else:
        more = []
    return [first, side, more]
''', 3, 11),
    "loop with retries": ('''
@nalarc.workflow
def main():
    out = []
    for i in range(4):
        tries = 0
        r = work(f"x{i}")
        while r < 3 and tries < 2:
            r = work(f"x{i}{tries}")
            tries += 1
        out.append(r)
    return out
''', 4, 4),
}


def load_plain(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--unit", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, (workflow, critical_units, total_units)) in enumerate(SCENARIOS.items()):
            module = f"scenario_{index}"
            path = Path(tmp) / f"{module}.py"
            path.write_text(textwrap.dedent(TOOLS.format(unit=args.unit)) + textwrap.dedent(workflow), encoding="utf-8")
            plain = load_plain(path, module + "_plain")
            plain_s = timed(plain.main)
            runner = InProcessRunner(load_app(path, out_dir=Path(tmp) / f"build_{index}"))
            runner.run("main", {})
            nalarc_s = min(timed(lambda: runner.run("main", {})) for _ in range(args.repeat))
            critical = critical_units * args.unit
            rows.append({
                "scenario": name,
                "plain s": plain_s,
                "nalarc s": nalarc_s,
                "critical path s": critical,
                "overhead ms": (nalarc_s - critical) * 1000,
                "nalarc / critical": nalarc_s / critical,
                "speedup vs plain": plain_s / nalarc_s,
            })
    report(
        f"request latency vs critical path (unit = {args.unit} s)",
        rows,
        ["scenario", "plain s", "nalarc s", "critical path s", "overhead ms", "nalarc / critical", "speedup vs plain"],
        args.out,
    )


if __name__ == "__main__":
    main()
