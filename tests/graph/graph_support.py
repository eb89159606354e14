"""Shared by the ``nalarc graph`` tests: examples, hostile names, run traces, headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nalarc import load_app
from nalarc.executor import Placement, run_requests
from nalarc.executor._trace import Tracer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXAMPLE_NAMES = sorted(p.stem for p in EXAMPLES.glob("*.py"))
CHROMIUM = Path("/usr/bin/chromium")

#: One request per example (the inputs its docstring shows).
EXAMPLE_INPUTS: dict[str, tuple[str, dict[str, Any]]] = {
    "code_review": ("review_change", {"files": ["app/api.py", "app/db.py", "README.md"]}),
    "financial_analyst": ("advise", {"question": "Should I rebalance toward NVDA and XOM?", "tickers": ["NVDA", "XOM"]}),
    "router": ("route", {"query": "Write a python function that merges two sorted lists."}),
    "software_engineering": ("solve", {"task": "add retries to the parser #1"}),
    "research_assistant": ("research", {"question": "Should I heat my house with a heat pump or solar panels?"}),
    "support_router": ("handle_ticket", {"text": "Customer 4411: my router and printer drop the connection."}),
    "w1_diamond": ("w1", {"question": "heat pumps"}),
}

#: A name that tries to break out of every format.
EVIL = (
    'ev"il\'<script>alert(1)</script></script><img src=x onerror=alert(2)>'
    "[bold red]x[/]{y}|z(w)#35;&amp;`\\N\\\n├── injected\r\t\x1b[31m]]>--> end"
)


def run_trace(app_path: Path, build_dir: Path, requests: list[tuple[str, dict[str, Any], str]]) -> dict[str, Any]:
    app = load_app(app_path, out_dir=build_dir)
    tracer = Tracer()
    outcomes = run_requests(app, requests, placement=Placement(workers=0, tracer=tracer))
    for outcome in outcomes:
        outcome.unwrap()
    return tracer.document()


def dump_dom(html_file: Path, tmp_path: Path) -> str:
    """The DOM of ``html_file`` after its scripts ran, from headless Chromium."""
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium is not installed (/usr/bin/chromium; Debian: apt-get install -y chromium)")
    profile = tmp_path / "chromium-profile"
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={profile}", "--window-size=1400,1000", "--virtual-time-budget=2000",
         "--dump-dom", html_file.resolve().as_uri()],
        capture_output=True, text=True, timeout=60, check=False,
    )
    shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
