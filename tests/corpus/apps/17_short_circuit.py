"""Short-circuit evaluation guarding tools that would raise.

Exercises: ``a(x) and risky(x)`` / ``a(x) or risky(x)`` where ``risky`` raises
exactly when plain Python never calls it, conditional expressions guarding a
raising call, ``if`` guards, chained comparisons whose later operand would
raise, ``and``/``or`` returning non-bool tool results, ``not`` on results.
A compiler that speculatively launches the guarded call must not let its
exception (or result) leak.
"""

import time

import nalarc


class Forbidden(Exception):
    pass


@nalarc.tool
def allowed(x):
    time.sleep(0.02 - 0.002 * min(abs(x), 9))
    return x % 3 != 0


@nalarc.tool
def risky(x):
    # Fast, so it would finish (and fail) before allowed() returns.
    time.sleep(0.002)
    if x % 3 == 0:
        raise Forbidden(f"risky({x})")
    return x * 10


@nalarc.tool
def maybe_empty(x):
    time.sleep(0.003 + 0.002 * (x % 4))
    return "" if x % 2 else f"v{x}"


@nalarc.workflow
def guarded(xs):
    out = []
    for x in xs:
        a = allowed(x) and risky(x)
        b = (not allowed(x)) or risky(x)
        c = risky(x) if allowed(x) else "skipped"
        d = maybe_empty(x) or "fallback"
        e = maybe_empty(x) and risky(x + 1) if x % 3 != 2 else None
        f = 0 < x < 10 and (allowed(x) and risky(x) > 20)
        out.append({"x": x, "a": a, "b": b, "c": c, "d": d, "e": e, "f": f})
    return out


@nalarc.workflow
def unguarded(x):
    # Here risky runs even when not allowed: the exception escapes.
    ok = allowed(x)
    val = risky(x)
    return {"ok": ok, "val": val}


CALLS = [
    ("guarded", {"xs": [0, 1, 2, 3, 4, 5, 6]}, "s1"),
    ("unguarded", {"x": 4}, "s1"),
    ("unguarded", {"x": 9}, "s2"),
    ("guarded", {"xs": [12, 7]}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
