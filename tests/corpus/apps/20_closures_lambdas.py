"""Lambdas and closures capturing tool results.

Exercises: closures over tool results (captured before later rebinding),
late-binding lambdas in a loop vs default-argument capture, ``nonlocal``
counters updated by a nested function that calls a tool, ``map``/``filter``
with lambdas calling tools, ``functools.reduce`` and ``functools.partial``
over tools, a closure factory returning a function that calls a tool.
"""

import functools
import time

import nalarc


@nalarc.tool
def rate(x):
    time.sleep(0.002 + 0.003 * ((9 - x) % 9))
    return x * x % 11


@nalarc.tool
def merge(a, b, sep="+"):
    time.sleep(0.02 if len(str(a)) < 3 else 0.003)
    return f"{a}{sep}{b}"


def make_scaler(base):
    factor = rate(base)

    def scale(y):
        return rate(y) * factor

    return scale


@nalarc.workflow
def closures(xs):
    base = rate(xs[0])
    add_base = lambda v: v + base  # noqa: E731
    base = rate(xs[-1])  # rebinding: add_base sees the new value (late binding)
    late = [lambda: rate(x) for x in xs]
    early = [lambda x=x: rate(x) for x in xs]
    calls = 0

    def counted(v):
        nonlocal calls
        calls += 1
        return rate(v) + calls

    counted_vals = [counted(x) for x in xs]
    scaler = make_scaler(xs[0])
    return {
        "add_base": add_base(1),
        "late": [f() for f in late],
        "early": [f() for f in early],
        "counted": counted_vals,
        "calls": calls,
        "scaled": list(map(scaler, xs)),
        "filtered": list(filter(lambda v: rate(v) > 3, xs)),
        "reduced": functools.reduce(merge, [rate(x) for x in xs]),
        "partial": list(map(functools.partial(merge, sep="|"), xs, reversed(xs))),
    }


CALLS = [
    ("closures", {"xs": [1, 2, 3, 4]}, "s1"),
    ("closures", {"xs": [7]}, "s2"),
    ("closures", {"xs": [5, 9, 10]}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
