"""Building a package in place: ``nalarc build pkg/``.

The package's root is the directory containing the top-level package, so
relative imports resolve; every module of the package (subpackages included)
is compiled whether or not anything imports it; the build directory gets the
same tree, the package's other files copied as they are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nalarc._build import build, default_build_dir
from nalarc._errors import CompileError
from nalarc.frontend import find_package

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}

PACKAGE = {
    "__init__.py": '''
        """A package whose workflow lives in a submodule."""
        from .flows import research

        __all__ = ["research"]
    ''',
    "tools.py": '''
        import nalarc


        @nalarc.tool
        def search(query):
            return query.upper()
    ''',
    "helpers.py": '''
        def join(parts):
            return " + ".join(parts)
    ''',
    "flows.py": '''
        import nalarc

        from . import helpers
        from .sub.deep import shout
        from .tools import search


        @nalarc.workflow
        def research(topic):
            notes = [search(f"{topic}-{k}") for k in range(3)]
            return shout(helpers.join(notes))
    ''',
    "sub/__init__.py": "",
    "sub/deep.py": '''
        from ..helpers import join


        def shout(text):
            return join([text, "!"])
    ''',
    "constants.py": '''
        GREETING = "hello"
    ''',
    # Never imported: still a module of the package, so still compiled.
    "sub/unused.py": '''
        import pkg.constants as c

        VALUE = c.GREETING.upper()
    ''',
    "py.typed": "",
    "templates/page.txt": "not a module\n",
    # A .py file in a directory without __init__.py is data, not a module.
    "templates/snippet.py": "this is not python ::\n",
    "not-a-module.py": "neither is this ::\n",
}


def _write_package(base: Path, files: dict[str, str], name: str = "pkg") -> Path:
    for relative, text in files.items():
        path = base / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return base / name


def test_find_package_lists_every_module_with_its_dotted_name(tmp_path: Path) -> None:
    package = find_package(_write_package(tmp_path, PACKAGE))
    assert package.root == tmp_path.resolve()
    assert package.name == "pkg"
    assert [name for name, _ in package.modules] == [
        "pkg", "pkg.constants", "pkg.flows", "pkg.helpers", "pkg.tools", "pkg.sub", "pkg.sub.deep", "pkg.sub.unused",
    ]
    for name, path in package.modules:
        parts = path.relative_to(tmp_path.resolve()).with_suffix("").parts
        assert ".".join(parts[:-1] if path.name == "__init__.py" else parts) == name


def test_a_subpackage_is_built_against_the_top_level_packages_parent(tmp_path: Path) -> None:
    package = find_package(_write_package(tmp_path, PACKAGE) / "sub")
    assert package.root == tmp_path.resolve()
    assert package.name == "pkg.sub"
    # Importing pkg.sub runs pkg/__init__.py first: it is part of the build.
    assert [name for name, _ in package.modules] == ["pkg", "pkg.sub", "pkg.sub.deep", "pkg.sub.unused"]


def test_a_directory_without_init_is_not_a_package(tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "m.py").write_text("X = 1\n", encoding="utf-8")
    with pytest.raises(CompileError, match=r"not a package: no __init__\.py"):
        build(tmp_path / "loose", tmp_path / "out")
    with pytest.raises(CompileError, match="no such file"):
        build(tmp_path / "missing.py", tmp_path / "out")


def test_package_builds_in_place_and_runs_like_plain_python(tmp_path: Path) -> None:
    src = tmp_path / "src"
    pkg = _write_package(src, PACKAGE)
    out = tmp_path / "build"
    done = subprocess.run([sys.executable, "-m", "nalarc", "build", str(pkg), "-o", str(out)],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "nalarc build pkg" in done.stderr

    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted([
        "ir.json", "manifest.json", "pkg/__init__.py", "pkg/constants.py", "pkg/flows.py", "pkg/helpers.py", "pkg/tools.py",
        "pkg/sub/__init__.py", "pkg/sub/deep.py", "pkg/sub/unused.py", "pkg/py.typed",
        "pkg/templates/page.txt", "pkg/templates/snippet.py", "pkg/not-a-module.py",
    ])
    # Data is copied as is (a .py file outside any subpackage is data too).
    for same in ("templates/snippet.py", "templates/page.txt", "not-a-module.py", "py.typed"):
        assert (out / "pkg" / same).read_bytes() == (pkg / same).read_bytes(), same
    # The workflow and the helpers it calls (through relative imports) are compiled.
    for compiled_module in ("flows.py", "helpers.py", "sub/deep.py"):
        assert "_nalarc_rt" in (out / "pkg" / compiled_module).read_text(encoding="utf-8"), compiled_module
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["app"] == "pkg"
    assert manifest["workflows"] == []  # research is defined in pkg.flows, re-exported by pkg
    assert manifest["modules"] == ["pkg", "pkg.constants", "pkg.flows", "pkg.helpers", "pkg.sub", "pkg.sub.deep",
                                   "pkg.sub.unused", "pkg.tools"]

    plain = subprocess.run([sys.executable, "-c", "import json, pkg; print(json.dumps(pkg.research('tide')))"],
                           capture_output=True, text=True, env={**ENV, "PYTHONPATH": f"{src}{os.pathsep}{REPO}"},
                           timeout=60, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    # The module nothing imports was compiled and imports from the build.
    unused = subprocess.run(
        [sys.executable, "-c", "import pkg.sub.unused as u; print(u.__file__, u.VALUE)"],
        capture_output=True, text=True, env={**ENV, "PYTHONPATH": f"{out}{os.pathsep}{REPO}"}, timeout=60, cwd=tmp_path)
    assert unused.returncode == 0, unused.stderr
    assert unused.stdout.split() == [str(out / "pkg" / "sub" / "unused.py"), "HELLO"]
    compiled = subprocess.run(
        [sys.executable, "-m", "nalarc", "run", str(out), "-w", "research", "-i", '{"topic": "tide"}',
         "--workers", "0", "--state", str(tmp_path / "state.db")],
        capture_output=True, text=True, env=ENV, timeout=120, cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    assert json.loads(compiled.stdout) == json.loads(plain.stdout) == "TIDE-0 + TIDE-1 + TIDE-2 + !"


def test_a_package_without_components_comes_out_byte_identical(tmp_path: Path) -> None:
    files = {name: text for name, text in PACKAGE.items() if name not in {"tools.py", "flows.py"}}
    files["__init__.py"] = "from .sub.deep import shout\nfrom . import helpers as _helpers\n"
    pkg = _write_package(tmp_path / "src", files)
    result = build(pkg, tmp_path / "out")
    assert not result.program.components()
    assert result.app_module == "pkg"
    sources = sorted(p for p in pkg.rglob("*") if p.is_file())
    assert len(sources) == 10
    for source in sources:
        assert (tmp_path / "out" / "pkg" / source.relative_to(pkg)).read_bytes() == source.read_bytes(), source


def test_default_build_dir_is_named_after_the_package(tmp_path: Path) -> None:
    pkg = _write_package(tmp_path, PACKAGE)
    assert default_build_dir(pkg) == Path(".nalarc") / "build" / "pkg"
    assert default_build_dir(pkg / "sub") == Path(".nalarc") / "build" / "pkg.sub"
    assert default_build_dir(tmp_path / "app.py") == Path(".nalarc") / "build" / "app"


def test_a_build_directory_inside_the_package_is_not_copied_into_itself(tmp_path: Path) -> None:
    pkg = _write_package(tmp_path, {"__init__.py": "X = 1\n", "data.txt": "d\n"})
    first = build(pkg, pkg / "out")
    second = build(pkg, pkg / "out")
    assert first.out_dir == second.out_dir
    files = sorted(str(p.relative_to(pkg / "out")) for p in (pkg / "out").rglob("*") if p.is_file())
    assert files == ["ir.json", "manifest.json", "pkg/__init__.py", "pkg/data.txt"]
