from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Simulated GPUs (nalarc.llm) run 200x faster than real ones in tests; worker processes inherit it.
os.environ.setdefault("NALARC_LLM_TIME_SCALE", "200")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus" / "apps"


@pytest.fixture
def nalarc_cmd() -> list[str]:
    """The CLI, as a subprocess command."""
    return [sys.executable, "-m", "nalarc"]
