"""``nalarc build`` throughput on a large generated app, next to LibCST's parse alone.

Run: ``python benchmarks/build_throughput.py [--functions 400] [--out report.json]``

The generated app has tools, an agent, helpers and many workflows with
fan-out loops, branches on results, try/except and comprehensions, so every
pass has work to do.  Each phase is timed in the same process, best of
``--repeat`` runs: LibCST parse alone; parse + metadata (positions); the
whole build (parse, lowering, all passes, IR verification after each pass,
code generation, writing files and ir.json).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from _common import report
from nalarc._build import build

HEADER = '''import time
import nalarc


@nalarc.tool
def search(q):
    time.sleep(0.01)
    return q.upper()


@nalarc.tool(retries=1)
def score(text, weight=1):
    return len(text) * weight


@nalarc.agent
class Writer:
    notes = nalarc.ManagedList()

    def write(self, parts):
        self.notes.append(len(parts))
        return " | ".join(parts)

'''

TEMPLATE = '''
def helper_{i}(q):
    first = search(q)
    if score(first) > {i} % 7:
        return [first, search(q + "!")]
    return [first]


@nalarc.workflow
def workflow_{i}(topic, n=3):
    parts = []
    for k in range(n):
        parts.append(search(f"{{topic}}-{{k}}-{i}"))
    ranked = sorted(parts, key=lambda p: score(p))
    extra = helper_{i}(topic)
    try:
        best = max(score(p, weight=2) for p in ranked)
    except ValueError:
        best = 0
    total = sum(score(p) for p in extra)
    summary = Writer().write(ranked + extra)
    return {{"summary": summary, "best": best, "total": total, "sizes": [len(p) for p in parts]}}
'''


def generate(functions: int) -> str:
    return HEADER + "".join(TEMPLATE.format(i=i) for i in range(functions))


def best_of(repeat: int, fn: object) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--functions", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    source = generate(args.functions)
    lines = source.count("\n") + 1
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "big_app.py"
        app.write_text(source, encoding="utf-8")
        parse = best_of(args.repeat, lambda: cst.parse_module(source))
        positions = best_of(args.repeat, lambda: MetadataWrapper(cst.parse_module(source)).resolve(PositionProvider))
        full = best_of(args.repeat, lambda: build(app, Path(tmp) / "build"))
        result = build(app, Path(tmp) / "build")
    futures = sum(len(f.futures) for f in result.program.functions().values())
    rows = [
        {"phase": "libcst parse", "seconds": parse, "lines/s": round(lines / parse)},
        {"phase": "libcst parse + positions", "seconds": positions, "lines/s": round(lines / positions)},
        {"phase": "nalarc build (all)", "seconds": full, "lines/s": round(lines / full)},
    ]
    report(
        f"nalarc build throughput: {lines:,} lines, {futures:,} component call sites",
        rows,
        ["phase", "seconds", "lines/s"],
        args.out,
        {"lines": lines, "call_sites": futures, "build_over_parse": round(full / parse, 2)},
    )


if __name__ == "__main__":
    main()
