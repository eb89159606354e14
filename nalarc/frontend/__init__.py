"""The frontend: parse the app and its local modules, discover components, lower to IR."""

from __future__ import annotations

from ._discover import lower_program as lower_program
from ._modules import ModuleInfo as ModuleInfo
from ._modules import load_modules as load_modules
from ._packages import Package as Package
from ._packages import find_package as find_package
from ._packages import is_package as is_package
from ._packages import load_package as load_package
from ._source import write_source as write_source

__all__ = ["ModuleInfo", "Package", "find_package", "is_package", "load_modules", "load_package", "lower_program", "write_source"]
