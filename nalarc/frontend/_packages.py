"""Building a package in place: which files are its modules, and what their root is.

A package's relative imports (``from . import x``, ``from ..y import z``) and
its absolute imports of itself (``import pkg.sub``) resolve only when the
directory that *contains* the top-level package is the root: so a package is
built with that directory as the root, and every module of the package (every
``.py`` file of it and of its subpackages, recursively) is an entry module of
the build, whether or not anything imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._errors import CompileError
from ._modules import ModuleInfo, ModuleLoader

INIT = "__init__.py"


@dataclass(frozen=True)
class Package:
    """A package directory, resolved for building in place."""

    #: The directory containing the top-level package (imports resolve against it).
    root: Path
    #: Dotted name of the package that was asked for (``pkg`` or ``pkg.sub``).
    name: str
    #: Every module of the package, ``(dotted name, path)``, in a stable order.
    #: When ``name`` is a subpackage, the ``__init__.py`` of each enclosing
    #: package comes first: Python runs them whenever it imports the subpackage.
    modules: tuple[tuple[str, Path], ...]


def is_package(path: Path) -> bool:
    return path.is_dir() and (path / INIT).is_file()


def find_package(package_dir: Path) -> Package:
    """Resolve ``package_dir`` (a directory with ``__init__.py``) for an in-place build.

    Raises:
        CompileError: ``package_dir`` is not a package.
    """
    package_dir = Path(package_dir).resolve()
    if not package_dir.is_dir():
        raise CompileError(str(package_dir), 1, 0, "no such directory")
    if not is_package(package_dir):
        raise CompileError(
            str(package_dir), 1, 0,
            f"not a package: no {INIT} (build a single module with `nalarc build FILE.py`)",
        )
    top = package_dir
    while is_package(top.parent) and top.parent != top:
        top = top.parent
    root = top.parent
    enclosing = [(_dotted(root, p / INIT), p / INIT) for p in reversed(package_dir.parents) if p.is_relative_to(top)]
    return Package(root, _dotted(root, package_dir / INIT), (*enclosing, *_package_modules(root, package_dir)))


def _package_modules(root: Path, package_dir: Path) -> list[tuple[str, Path]]:
    """The package's modules: its ``.py`` files, then each subpackage's, sorted.

    A directory without ``__init__.py`` is not a subpackage (test data, templates,
    resources) and a file whose name is not an identifier cannot be imported:
    neither is an entry module (a module there that the package imports is
    still compiled, as any local import is).
    """
    modules = [(_dotted(root, package_dir / INIT), package_dir / INIT)]
    children = sorted(package_dir.iterdir(), key=lambda p: p.name)
    for child in children:
        if child.is_file() and child.suffix == ".py" and child.name != INIT and child.stem.isidentifier():
            modules.append((_dotted(root, child), child))
    for child in children:
        if is_package(child) and child.name.isidentifier():
            modules += _package_modules(root, child)
    return modules


def _dotted(root: Path, module_file: Path) -> str:
    parts = module_file.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load_package(package: Package) -> dict[str, ModuleInfo]:
    """Parse every module of ``package`` (and the local modules they import), in place."""
    return ModuleLoader(package.root, package.modules).load()
