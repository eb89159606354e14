"""A deterministic text form of the IR (used by golden tests and ``nalarc build --ir``)."""

from __future__ import annotations

from ._nodes import FunctionIR, Program, Span


def _at(span: Span) -> str:
    return f"{span[0]}:{span[1]}"


def format_function(fn: FunctionIR, *, all_materializations: bool = False) -> str:
    flags = [
        k
        for k, v in (
            ("async", fn.is_async), ("region", fn.is_region), ("pure", fn.pure and not fn.is_async),
            ("written-async", fn.written_async),
        )
        if v
    ]
    lines = [f"def {fn.qualname} [{fn.kind}{', ' if flags else ''}{', '.join(flags)}]"]
    if fn.maybe_pending:
        lines.append(f"  maybe-pending: {', '.join(fn.maybe_pending)}")
    for f in fn.futures:
        target = f.component.partition(":")[2] + (f".{f.method}" if f.method else "")
        args = ", ".join(a.slot + ("<-" + "|".join(a.futures) if a.futures else "") for a in f.args)
        extra = [f"stage={f.stage}"] if f.stage else []
        if f.critical:
            extra.append("critical")
        if f.state != "none":
            extra.append(f"state={f.state}")
        if f.flags:
            extra.append(f"flags={f.flags}")
        binds = f"{f.binds} = " if f.binds else ""
        lines.append(f"  {f.id} @{_at(f.span)} {binds}future {target}({args}) {' '.join(extra)}".rstrip())
    for m in fn.materializations:
        if m.needed or all_materializations:
            what = ",".join(m.names) or m.source
            mode = "deep" if m.deep else "shallow"
            dropped = "" if m.needed else " (dropped)"
            lines.append(f"  {m.id} @{_at(m.span)} materialize {mode} {what} for {m.reason}{dropped}")
    for e in fn.edges:
        lines.append(f"  edge {e.src} -> {e.dst}" + (f" via {e.via}" if e.via else ""))
    for r in fn.regions:
        if r.kind == "try" and r.visible:
            lines.append(f"  try @{_at(r.span)} sequential for: {', '.join(r.visible)}")
    for h in fn.hoists:
        lines.append(f"  hoist {h.future} @{_at(h.stmt)} before @{_at(h.before)}")
    if fn.critical_path:
        lines.append(f"  critical path: {fn.critical_path}")
    for group in fn.parallel_groups:
        lines.append(f"  parallel: {{{', '.join(group)}}}")
    return "\n".join(lines)


def format_program(program: Program) -> str:
    """Every function with at least one IR node, components first."""
    out: list[str] = []
    for module in program.modules:
        for comp in module.components:
            directives = ", ".join(f"{k}={v!r}" for k, v in comp.directives)
            state = f" reads={list(comp.reads)} writes={list(comp.writes)}" if comp.managed else ""
            out.append(f"{comp.kind} {comp.key}({directives}){state}")
        for fn in module.functions:
            out.append(format_function(fn))
    for d in program.diagnostics:
        out.append(f"{d.severity}: {d.path}:{d.span[0]}:{d.span[1] + 1}: {d.message}")
    return "\n".join(out) + "\n"
