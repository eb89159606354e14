"""``nalarc build`` / ``nalarc run``: parse arguments, call the library, render."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from .._errors import CompileError, NalarcError
from .._version import __version__

app = typer.Typer(
    name="nalarc",
    help="Compile plain-Python agent workflows into futures and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"nalarc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """nalarc: serve plain-Python LLM agent workflows."""


def _fail(error: BaseException) -> typer.Exit:
    # Plain text, never wrapped: editors and CI parse `path:line:col: error:` lines.
    message = error.render() if isinstance(error, CompileError) else f"error: {error}"
    print(message, file=sys.stderr)
    return typer.Exit(1)


@app.command()
def build(
    app_file: Annotated[Path, typer.Argument(metavar="APP.py", help="The app to compile.")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Build directory (default .nalarc/build/<app>).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Every fallback to sequential semantics is an error.")] = False,
    ir: Annotated[bool, typer.Option("--ir", help="Also print the IR as text.")] = False,
) -> None:
    """Compile APP.py (and the local modules it imports) into a build directory."""
    from .._build import build as do_build
    from ..ir.pprint import format_program

    try:
        result = do_build(app_file, out, strict=strict)
    except (NalarcError, OSError) as exc:
        raise _fail(exc) from None
    for d in result.warnings:
        print(f"{d.path}:{d.span[0]}:{d.span[1] + 1}: warning: {d.message}", file=sys.stderr)
    if ir:
        print(format_program(result.program), end="")
    err.print(_summary(result))


def _summary(result: Any) -> Table:
    program = result.program
    functions = program.functions().values()
    table = Table(title=f"nalarc build {result.app_module} -> {result.out_dir}")
    table.add_column("what")
    table.add_column("count", justify="right")
    comps = program.components().values()
    rows = [
        ("tools", sum(1 for c in comps if c.kind == "tool")),
        ("agents", sum(1 for c in comps if c.kind == "agent")),
        ("workflows", len(result.workflows)),
        ("component call sites", sum(len(f.futures) for f in functions)),
        ("async functions", sum(1 for f in functions if f.is_async)),
        ("parallel groups", sum(len(f.parallel_groups) for f in functions)),
        ("hoisted launches", sum(len(f.hoists) for f in functions)),
        ("warnings (fallbacks)", len(result.warnings)),
        ("lines / seconds", f"{result.lines} / {result.seconds:.3f}"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _parse_input(text: str) -> dict[str, Any]:
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NalarcError(f"--input is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise NalarcError("--input must be a JSON object whose keys are the workflow's parameters")
    return value


@app.command()
def run(
    target: Annotated[Path, typer.Argument(metavar="APP.py|DIR", help="An app file or a build directory.")],
    workflow: Annotated[Optional[str], typer.Option("--workflow", "-w", help="Workflow to run.")] = None,
    input: Annotated[str, typer.Option("--input", "-i", help="JSON object of arguments, or @file.json.")] = "{}",
    session: Annotated[str, typer.Option("--session", "-s", help="Session id (managed state belongs to it).")] = "default",
    state: Annotated[Optional[Path], typer.Option("--state", help="SQLite file for managed state [.nalarc/state.db].")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="Worker processes; 0 runs calls in the driver [2].")] = None,
    instances: Annotated[Optional[list[str]], typer.Option("--instances", help="Instances of a component: NAME=COUNT (repeatable).")] = None,
) -> None:
    """Run one request of a workflow and print its JSON result on stdout.

    Settings come from [tool.nalarc] in pyproject.toml or nalarc.toml, then
    NALARC_* environment variables, then these flags.
    """
    from .._config import load_config, parse_instances
    from .._load import load_app
    from ..executor import Placement, run_workflow

    try:
        inputs = _parse_input(input)
        config = load_config(Path.cwd(), {
            "workers": workers,
            "instances": parse_instances(instances) if instances else None,
            "state": str(state) if state is not None else None,
        })
        loaded = load_app(target)
        placement = Placement(workers=config.workers, instances=config.instances)
        result = run_workflow(loaded, workflow, inputs, session=session, state_path=Path(config.state), placement=placement)
    except CompileError as exc:
        raise _fail(exc) from None
    except NalarcError as exc:
        raise _fail(exc) from None
    except Exception as exc:  # the workflow raised: show where, like Python would
        traceback.print_exception(exc, file=sys.stderr)
        raise typer.Exit(1) from None
    try:
        print(json.dumps(result, sort_keys=True))
    except TypeError as exc:
        raise _fail(NalarcError(f"the workflow's result is not JSON-serializable: {exc}")) from None


def main() -> None:
    app()
