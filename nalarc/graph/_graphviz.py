"""SVG and PNG through the Graphviz ``dot`` program, when it is installed."""

from __future__ import annotations

import shutil
import subprocess

from ._model import Graph
from ._render import render_dot

INSTALL_HINT = (
    "the Graphviz `dot` program is needed for svg and png output and was not found on PATH; "
    "install it (Debian/Ubuntu: `apt-get install graphviz`, macOS: `brew install graphviz`), "
    "or use --format html (needs no Graphviz), dot or mermaid"
)


class GraphvizNotFound(RuntimeError):
    """``dot`` is not installed."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


class GraphvizFailed(RuntimeError):
    """``dot`` ran but failed."""


def find_dot() -> str | None:
    return shutil.which("dot")


def render_image(graph: Graph, fmt: str, *, dpi: int = 110, timeout: float = 60.0) -> bytes:
    """``svg`` or ``png`` bytes of the graph, drawn by Graphviz.

    Raises:
        GraphvizNotFound: ``dot`` is not installed.
        GraphvizFailed: ``dot`` exited with an error.
    """
    if fmt not in ("svg", "png"):
        raise ValueError(f"unsupported image format {fmt!r}")
    dot = find_dot()
    if dot is None:
        raise GraphvizNotFound()
    args = [dot, f"-T{fmt}"] + ([f"-Gdpi={dpi}"] if fmt == "png" else [])
    proc = subprocess.run(args, input=render_dot(graph).encode("utf-8"), capture_output=True, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        raise GraphvizFailed(f"dot failed ({proc.returncode}): {proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout
