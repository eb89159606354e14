"""How much of real apps nalarc compiles without a fallback to sequential semantics.

Run: ``python benchmarks/fallback_share.py [--out report.json]``

Builds every app in ``examples/`` and in the differential corpus
(``tests/corpus/apps``) and counts, per app, the functions nalarc compiles
(they make component calls, or a workflow or a component reaches them) and
how many of them contain a fallback: a warning of ``nalarc build`` (a
generator or a decorated function that calls components and runs in a thread,
a component call Python makes implicitly, a write of a pending value to a
global, ``eval``...).  ``nalarc build --strict`` turns exactly these into
errors.  The goal of issue 11 is 95 % of functions without a fallback.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

from _common import report
from nalarc._build import build

ROOT = Path(__file__).resolve().parent.parent
SETS = {"examples": ROOT / "examples", "corpus": ROOT / "tests" / "corpus" / "apps"}


def measure(app: Path, out_dir: Path) -> tuple[int, int, Counter[str]]:
    result = build(app, out_dir)
    compiled = result.compiled_functions()
    kinds: Counter[str] = Counter(_kind(d.message) for found in compiled.values() for d in found)
    clean = sum(1 for found in compiled.values() if not found)
    return clean, len(compiled), kinds


def _kind(message: str) -> str:
    """A fallback's class, from the start of its message."""
    for key in ("generator", "decorated", "implicitly", "global", "nonlocal", "frame", "module global",
                "class defined", "cannot resolve import", "has no method"):
        if key in message:
            return key
    return message[:40]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows, totals, kinds = [], Counter[str](), Counter[str]()
    with tempfile.TemporaryDirectory() as tmp:
        for set_name, folder in SETS.items():
            for app in sorted(folder.glob("*.py")):
                clean, total, found = measure(app, Path(tmp) / set_name / app.stem)
                rows.append({"app": f"{set_name}/{app.stem}", "compiled": total, "clean": clean,
                             "share": clean / total if total else 1.0, "fallbacks": dict(found)})
                totals[f"{set_name}:clean"] += clean
                totals[f"{set_name}:compiled"] += total
                kinds.update(found)
    summary = {
        name: {"clean": totals[f"{name}:clean"], "compiled": totals[f"{name}:compiled"],
               "share": totals[f"{name}:clean"] / max(1, totals[f"{name}:compiled"])}
        for name in SETS
    }
    rows += [{"app": f"TOTAL {name}", **values, "fallbacks": ""} for name, values in summary.items()]
    report("functions compiled without fallback", rows, ["app", "compiled", "clean", "share", "fallbacks"],
           args.out, {"summary": summary, "fallback_kinds": dict(kinds)})


if __name__ == "__main__":
    main()
