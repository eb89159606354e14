"""The compatibility harness of ``benchmarks/_compat.py``, for the tests in this directory.

The benchmark sweeps everything; the tests run a sample of the same harness
in CI, so both measure exactly the same thing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "_compat.py"


def _load() -> ModuleType:
    name = "nalarc_compat_harness"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HARNESS)
    assert spec is not None and spec.loader is not None, HARNESS
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


harness = _load()
