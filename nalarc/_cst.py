"""LibCST helpers shared by the frontend and the passes (both read the app's trees)."""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst


def block_definitions(body: Sequence[cst.CSTNode]) -> list[cst.FunctionDef | cst.ClassDef]:
    """Functions and classes a block defines when it runs, in source order,
    including those inside its ``if`` / ``try`` / ``with`` / loop blocks (but not
    inside other functions or classes)."""
    out: list[cst.FunctionDef | cst.ClassDef] = []
    for stmt in body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            out.append(stmt)
        elif isinstance(stmt, (cst.If, cst.Try, cst.TryStar, cst.With, cst.For, cst.While)):
            for block in _inner_blocks(stmt):
                out += block_definitions(block.body if isinstance(block, cst.IndentedBlock) else ())
    return out


def _inner_blocks(stmt: cst.BaseCompoundStatement) -> list[cst.BaseSuite]:
    blocks: list[cst.BaseSuite] = [stmt.body]
    if isinstance(stmt, (cst.Try, cst.TryStar)):
        blocks += [h.body for h in stmt.handlers]
        if stmt.finalbody is not None:
            blocks.append(stmt.finalbody.body)
    orelse = getattr(stmt, "orelse", None)
    while orelse is not None:
        blocks.append(orelse.body)
        orelse = orelse.orelse if isinstance(orelse, cst.If) else None
    return blocks
