"""The IR verifier: invariants every pass must keep."""

from __future__ import annotations

from ._nodes import FunctionIR, Program


def check(program: Program) -> list[str]:
    """Every broken invariant, as one sentence each (empty: the IR is sound)."""
    errors: list[str] = []
    seen: set[str] = set()
    for module in program.modules:
        for fn in module.functions:
            if fn.qualname in seen:
                errors.append(f"function {fn.qualname!r} is defined twice")
            seen.add(fn.qualname)
            errors += _check_function(fn)
    return errors


def _check_function(fn: FunctionIR) -> list[str]:
    errors: list[str] = []
    ids = [f.id for f in fn.futures] + [m.id for m in fn.materializations]
    if len(ids) != len(set(ids)):
        errors.append(f"{fn.qualname}: node ids are not unique")
    known = set(ids)
    futures = {f.id for f in fn.futures}
    regions = {r.id for r in fn.regions}
    for edge in fn.edges:
        if edge.src not in futures:
            errors.append(f"{fn.qualname}: edge source {edge.src!r} is not a future")
        if edge.dst not in known:
            errors.append(f"{fn.qualname}: edge target {edge.dst!r} does not exist")
    placed = [(f.id, f.region) for f in fn.futures] + [(m.id, m.region) for m in fn.materializations]
    for node_id, region in placed:
        if region not in regions:
            errors.append(f"{fn.qualname}: {node_id} is in unknown region {region!r}")
    orders = [f.order for f in fn.futures]
    if orders != sorted(orders):
        errors.append(f"{fn.qualname}: futures are not in program order")
    if fn.is_async and fn.is_region:
        errors.append(f"{fn.qualname}: a function cannot be both async and a blocking region")
    if fn.is_async and (fn.implicit or fn.is_generator) and not fn.written_async:
        errors.append(f"{fn.qualname}: implicit functions and generators cannot be async")
    if fn.written_async and fn.is_region:
        errors.append(f"{fn.qualname}: a function written async cannot be a blocking region")
    for control in fn.regions:
        if control.parent is not None and control.parent not in regions:
            errors.append(f"{fn.qualname}: region {control.id} has unknown parent {control.parent!r}")
    return errors
