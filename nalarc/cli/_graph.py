"""``nalarc graph``: draw the compiled graph of an app, or what a run did (``--trace``).

Registered on the app with ``app.command()(graph)``.
"""

from __future__ import annotations

import enum
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from .._errors import CompileError, NalarcError

if TYPE_CHECKING:
    from ..ir import Program


class GraphFormat(str, enum.Enum):
    text = "text"
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"
    png = "png"
    html = "html"


def _fail(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(1)


def _load_program(target: Path) -> tuple[Program, str]:
    """The IR of an app file (compiled into a temporary directory) or of a build directory."""
    from ..ir._json import loads

    if target.is_dir():
        ir_file = target / "ir.json"
        if not ir_file.is_file():
            raise NalarcError(f"{target} is not a build directory (no ir.json); run `nalarc build` first")
        program = loads(ir_file.read_text(encoding="utf-8"))
        return program, program.app or target.name
    if not target.is_file():
        raise NalarcError(f"{target}: no such file or directory")
    from .._build import build

    with tempfile.TemporaryDirectory(prefix="nalarc-graph-") as tmp:
        result = build(target, Path(tmp))
    return result.program, target.stem


def graph(
    target: Annotated[
        Optional[Path],
        typer.Argument(metavar="[APP.py|DIR]", help="An app file or a build directory (omit with --trace)."),
    ] = None,
    trace: Annotated[
        Optional[Path],
        typer.Option("--trace", "-t", metavar="RUN.json", help="Draw what a run did, from its trace (--trace-out)."),
    ] = None,
    format: Annotated[
        GraphFormat,
        typer.Option("--format", "-f", case_sensitive=False,
                     help="text (a tree), mermaid, dot, svg/png (need Graphviz) or html (self-contained)."),
    ] = GraphFormat.text,
    out: Annotated[
        Optional[Path],
        typer.Option("-o", "--out", help="Output file (default: stdout for text, mermaid and dot; "
                                         "<name>.graph.<ext> for svg, png and html)."),
    ] = None,
    workflow: Annotated[
        Optional[str], typer.Option("--workflow", "-w", help="Only this workflow and what it calls."),
    ] = None,
    all_waits: Annotated[
        bool, typer.Option("--all-waits", help="Show every wait (materialization), not only those a future feeds."),
    ] = False,
    infer_waits: Annotated[
        bool, typer.Option("--infer-waits/--no-infer-waits",
                           help="With --trace: link a call launched right after another ended (it awaited it)."),
    ] = True,
) -> None:
    """Draw the compiled graph of APP.py (or a build directory), or with --trace what a run did.

    The static graph shows workflows, components and call sites (a call in a
    loop is one node marked ×N), the dependencies between them, the waits
    (materializations) futures feed, and branches and loops as clusters.  The
    run graph (--trace) shows every call with its timing, the calls it
    depended on or waited for, the critical path, and, in html, a timeline
    with one lane per instance.
    """
    from ..graph import (
        GraphvizFailed,
        GraphvizNotFound,
        TraceError,
        load_trace,
        render_dot,
        render_html,
        render_image,
        render_mermaid,
        render_text,
        static_graph,
        text_tree,
        trace_graph,
    )
    if (target is None) == (trace is None):
        raise _fail("give an app file or build directory, or --trace RUN.json (not both)")
    try:
        if trace is not None:
            if workflow is not None or all_waits:
                raise NalarcError("--workflow and --all-waits apply to the compiled graph, not to --trace")
            the_graph = trace_graph(load_trace(trace.read_text(encoding="utf-8")), title=trace.name,
                                    infer_waits=infer_waits)
            name = trace.stem
        else:
            assert target is not None
            program, name = _load_program(target)
            try:
                the_graph = static_graph(program, workflow=workflow, all_waits=all_waits)
            except KeyError:
                raise NalarcError(f"no workflow named {workflow!r}") from None
        fmt = format.value
        if fmt in ("svg", "png"):
            data: bytes | str = render_image(the_graph, fmt)
        elif fmt == "html":
            data = render_html(the_graph)
        elif fmt == "dot":
            data = render_dot(the_graph)
        elif fmt == "mermaid":
            data = render_mermaid(the_graph)
        elif out is None:
            Console(highlight=False, emoji=False).print(text_tree(the_graph))
            return
        else:
            data = render_text(the_graph)
        if out is None and fmt in ("mermaid", "dot"):
            sys.stdout.write(str(data))
            return
        path = out if out is not None else Path(f"{name}.graph.{fmt}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        print(f"nalarc graph: wrote {path}", file=sys.stderr)
    except CompileError as exc:
        print(exc.render(), file=sys.stderr)
        raise typer.Exit(1) from None
    except GraphvizNotFound as exc:
        raise _fail(str(exc)) from None
    except (NalarcError, TraceError, GraphvizFailed, OSError) as exc:
        raise _fail(str(exc)) from None
