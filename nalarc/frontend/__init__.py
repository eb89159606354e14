"""The frontend: parse the app and its local modules, discover components, lower to IR."""

from __future__ import annotations

from ._discover import lower_program as lower_program
from ._modules import ModuleInfo as ModuleInfo
from ._modules import load_modules as load_modules

__all__ = ["ModuleInfo", "load_modules", "lower_program"]
