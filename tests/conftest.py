from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus" / "apps"


@pytest.fixture
def nalarc_cmd() -> list[str]:
    """The CLI, as a subprocess command."""
    return [sys.executable, "-m", "nalarc"]
