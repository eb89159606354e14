"""``nalarc graph``: the command, registered on a fresh typer app (as the CLI registers it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from graph_support import EXAMPLES
from typer.testing import CliRunner

from nalarc.cli._graph import graph

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(graph)


@app.callback()
def _root() -> None:
    """A second command-less callback keeps `graph` a subcommand, as in the real CLI."""


runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["graph", *args], catch_exceptions=False)


def test_text_to_stdout_from_an_app_file() -> None:
    result = invoke(str(EXAMPLES / "support_router.py"))
    assert result.exit_code == 0, result.output
    assert "compiled graph of support_router" in result.stdout
    assert "run_diagnostics(device, attempt)" in result.stdout and "×N" in result.stdout
    assert "BillingAgent.handle(text, customer)" in result.stdout


def test_build_directory_and_output_file(example_builds: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "g" / "research.mmd"
    result = invoke(str(example_builds["research_assistant"]), "-f", "mermaid", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert out.read_text(encoding="utf-8").startswith("flowchart TD")
    text = tmp_path / "research.txt"
    assert invoke(str(example_builds["research_assistant"]), "-o", str(text)).exit_code == 0
    assert "\x1b[" not in text.read_text(encoding="utf-8")  # no colors in files
    assert "Writer.summarize(question, ranked)" in text.read_text(encoding="utf-8")


def test_dot_to_stdout_with_a_workflow_filter(example_builds: dict[str, Path]) -> None:
    result = invoke(str(example_builds["support_router"]), "--format", "dot", "-w", "handle_ticket")
    assert result.exit_code == 0
    assert result.stdout.startswith("digraph nalarc {")
    bad = invoke(str(example_builds["support_router"]), "-w", "nope")
    assert bad.exit_code == 1 and "no workflow named 'nope'" in bad.stderr


def test_html_and_images_default_to_a_file_named_after_the_app(
    example_builds: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(str(EXAMPLES / "code_review.py"), "-f", "html")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "code_review.graph.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "wrote code_review.graph.html" in result.stderr
    if shutil.which("dot"):
        assert invoke(str(example_builds["code_review"]), "-f", "svg").exit_code == 0
        assert "<svg" in (tmp_path / "code_review.graph.svg").read_text(encoding="utf-8")
        assert invoke(str(example_builds["code_review"]), "-f", "png", "-o", "x.png").exit_code == 0
        assert (tmp_path / "x.png").read_bytes().startswith(b"\x89PNG")


def test_images_without_graphviz_say_how_to_install_it(
    example_builds: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    result = invoke(str(example_builds["code_review"]), "-f", "png", "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1
    assert "apt-get install graphviz" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_trace(example_traces: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = tmp_path / "run.json"
    trace.write_text(json.dumps(example_traces["support_router"]), encoding="utf-8")
    result = invoke("--trace", str(trace))
    assert result.exit_code == 0, result.output
    assert "run run.json" in result.stdout and "critical path" in result.stdout
    monkeypatch.chdir(tmp_path)
    assert invoke("--trace", str(trace), "-f", "html").exit_code == 0
    assert '"timeline":{"lanes"' in (tmp_path / "run.graph.html").read_text(encoding="utf-8")
    mermaid = invoke("-t", str(trace), "-f", "mermaid")
    assert mermaid.stdout.startswith("flowchart TD") and "linkStyle" in mermaid.stdout
    recorded = invoke("-t", str(trace), "-f", "dot", "--no-infer-waits")
    assert recorded.exit_code == 0 and "arrowhead=odot" not in recorded.stdout


def test_errors(tmp_path: Path) -> None:
    neither = invoke()
    assert neither.exit_code == 1 and "not both" in neither.stderr
    both = invoke(str(EXAMPLES / "code_review.py"), "--trace", "x.json")
    assert both.exit_code == 1
    missing = invoke(str(tmp_path / "nope.py"))
    assert missing.exit_code == 1 and "no such file" in missing.stderr
    assert "not a build directory" in invoke(str(tmp_path)).stderr
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    assert "not JSON" in invoke("--trace", str(tmp_path / "bad.json")).stderr
    (tmp_path / "broken.py").write_text("import nalarc\n@nalarc.workflow\ndef f(:\n", encoding="utf-8")
    broken = invoke(str(tmp_path / "broken.py"))
    assert broken.exit_code == 1 and "broken.py:3" in broken.stderr
    assert invoke(str(EXAMPLES / "code_review.py"), "-f", "jpeg").exit_code == 2
