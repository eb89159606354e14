"""Golden before/after tests: one data file per pass in tests/data/passes/.

Each case is an app source; the runner lowers it, runs the pipeline up to the
pass, prints the IR (``[before]``), runs the pass and prints it again
(``[out]``).  Regenerate after an intended change with
``NALARC_UPDATE_GOLDENS=1 pytest tests/passes/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from nalarc.frontend import load_modules, lower_program
from nalarc.ir.pprint import format_program
from nalarc.ir.verify import check
from nalarc.passes import PassContext, default_pipeline

DATA = Path(__file__).resolve().parent.parent / "data" / "passes"
UPDATE = os.environ.get("NALARC_UPDATE_GOLDENS") == "1"
SECTION = re.compile(r"^\[(case|before|out) ?([\w-]*)\]$", re.M)


def parse_cases(path: Path) -> list[dict[str, str]]:
    parts = SECTION.split(path.read_text(encoding="utf-8"))
    cases: list[dict[str, str]] = []
    for index in range(1, len(parts), 3):
        kind, name, body = parts[index], parts[index + 1], parts[index + 2].strip("\n") + "\n"
        if kind == "case":
            cases.append({"name": name, "source": body})
        else:
            cases[-1][kind] = body
    return cases


def render(cases: list[dict[str, str]]) -> str:
    out: list[str] = []
    for case in cases:
        out += [f"[case {case['name']}]", case["source"].rstrip("\n"), "[before]", case["before"].rstrip("\n"), "[out]", case["out"].rstrip("\n"), ""]
    return "\n".join(out)


def run_case(pass_name: str, source: str, tmp_path: Path) -> tuple[str, str]:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(source), encoding="utf-8")
    modules = load_modules(app)
    program = lower_program(modules, "app")
    ctx = PassContext(diagnostics=list(program.diagnostics))
    sources = {name: info.tree for name, info in modules.items()}
    before = ""
    for name, run in default_pipeline(sources):
        if name == pass_name:
            before = format_program(program.with_changes(diagnostics=tuple(ctx.diagnostics)))
        program = run(program, ctx)
        assert check(program) == [], f"invalid IR after {name}"
        if name == pass_name:
            after = format_program(program.with_changes(diagnostics=tuple(ctx.diagnostics)))
            return before.replace(str(tmp_path), "<tmp>"), after.replace(str(tmp_path), "<tmp>")
    raise AssertionError(f"no pass {pass_name!r} in the pipeline")


FILES = sorted(DATA.glob("*.test"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_pass_goldens(path: Path, tmp_path: Path) -> None:
    cases = parse_cases(path)
    assert cases, f"{path.name} has no cases"
    for case in cases:
        before, after = run_case(path.stem, case["source"], tmp_path)
        if UPDATE:
            case["before"], case["out"] = before, after
            continue
        assert before == case.get("before"), f"{path.name} [{case['name']}]: IR before the pass changed"
        assert after == case.get("out"), f"{path.name} [{case['name']}]: IR after the pass changed"
    if UPDATE:
        path.write_text(render(cases), encoding="utf-8")


def test_every_pass_has_goldens() -> None:
    names = {name for name, _ in default_pipeline({})}
    assert names == {p.stem for p in FILES}
