"""Source files, parsing and diagnostics in ``path:line:col: error:`` form."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import libcst as cst
from libcst.metadata import CodeRange

from .._errors import CompileError
from ..ir import Span


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One module of the app: its dotted name, where it is, and its text."""

    name: str
    path: Path
    #: The file's text exactly (line endings kept), decoded as its PEP 263 coding line says.
    text: str
    encoding: str = "utf-8"

    def line(self, number: int) -> str:
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""

    def error(self, span: Span | CodeRange, message: str) -> CompileError:
        line, col = (span[0], span[1]) if isinstance(span, tuple) else (span.start.line, span.start.column)
        return CompileError(str(self.path), line, col, message, self.line(line))


def read_source(name: str, path: Path) -> SourceFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CompileError(str(path), 1, 0, f"cannot read the file: {exc.strerror}") from None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:  # an unknown coding name, or a BOM that contradicts it
        raise CompileError(str(path), 1, 0, f"bad source encoding: {exc}") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CompileError(str(path), 1, 0, f"not {encoding} text: {exc.reason}") from None
    if text.startswith("\ufeff"):  # utf-8-sig strips it; the encoding puts it back when writing
        text = text[1:]
    return SourceFile(name, path, text, encoding)


def write_source(path: Path, text: str, encoding: str) -> None:
    """Write generated source as the original was: same encoding, line endings untouched."""
    with path.open("w", encoding=encoding, newline="") as file:
        file.write(text)


def parse(source: SourceFile) -> cst.Module:
    """Parse with LibCST; a syntax error becomes a :class:`CompileError`."""
    try:
        return cst.parse_module(source.text)
    except cst.ParserSyntaxError as exc:
        raise _syntax_error(source, exc) from None


def parse_or_copy(source: SourceFile) -> tuple[cst.Module, str | None]:
    """Parse with LibCST; for valid Python LibCST cannot parse that never imports nalarc
    (so declares no component), an empty tree and why: the module is copied unchanged."""
    try:
        return cst.parse_module(source.text), None
    except cst.ParserSyntaxError as exc:
        error = _syntax_error(source, exc)
        if error.message.startswith("syntax error") or _imports_nalarc(source):
            raise error from None
        return cst.parse_module(""), error.message


def _imports_nalarc(source: SourceFile) -> bool:
    for node in ast.walk(ast.parse(source.text)):
        if isinstance(node, ast.Import) and any(a.name.partition(".")[0] == "nalarc" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").partition(".")[0] == "nalarc":
            return True
    return False


def _syntax_error(source: SourceFile, exc: cst.ParserSyntaxError) -> CompileError:
    """Where and why, as CPython says it (its positions are exact); LibCST's otherwise."""
    try:
        ast.parse(source.text, filename=str(source.path))
    except SyntaxError as py:
        line = py.lineno or 1
        col = max(0, (py.offset or 1) - 1)
        return CompileError(str(source.path), line, col, f"syntax error: {py.msg}", source.line(line))
    # Valid Python that LibCST's parser cannot take (it has limits CPython's has not).
    message = exc.message.splitlines()[0].rstrip(".")
    return CompileError(
        str(source.path), exc.raw_line, exc.raw_column,
        f"valid Python that LibCST cannot parse ({message}); please report it to LibCST and nalarc",
        source.line(exc.raw_line),
    )


def span_of(code_range: CodeRange) -> Span:
    return (code_range.start.line, code_range.start.column, code_range.end.line, code_range.end.column)
