"""Exceptions raised from inside expressions.

Exercises: a tool raising mid-way through a list comprehension (caught
outside: the partially built list is discarded), inside a ``sorted`` key
(sorting aborts), inside ``sum()`` over a generator, inside a dict
comprehension value, inside an f-string, inside a lambda passed to ``map``;
an agent method raising; variables assigned before the failing expression
are read in the except clause; ``except Exception`` catching custom and
builtin errors; the exception variable is unbound after the except block.
"""

import time

import nalarc as n


class Unsupported(Exception):
    pass


@n.tool
def square(x):
    time.sleep(0.002 + 0.003 * ((9 - x) % 9))
    if x == 4:
        raise Unsupported(f"no square for {x}")
    if x < 0:
        raise ValueError(f"negative {x}")
    return x * x


@n.agent
class Checker:
    def check(self, x):
        time.sleep(0.02 - 0.002 * min(x, 9) if x >= 0 else 0.002)
        return square(x) % 3


@n.workflow
def expressions(xs):
    results = {}
    partial = "unset"
    try:
        partial = [square(x) for x in xs]
    except (Unsupported, ValueError) as e:
        results["comp"] = f"{e} (partial={partial})"
    try:
        results["sorted"] = sorted(xs, key=lambda x: -square(x))
    except (ValueError, Unsupported) as e:
        results["sorted"] = str(e)
    total = 0
    try:
        total = sum(square(x) for x in xs)
    except Exception as e:  # noqa: BLE001
        results["sum"] = [type(e).__name__, total]
    try:
        results["dict"] = {str(x): square(x) for x in xs if x > 0}
    except Exception as e:  # noqa: BLE001
        results["dict"] = type(e).__name__
    try:
        results["fstr"] = f"last={square(xs[-1])}"
    except (ValueError, Unsupported) as e:
        results["fstr"] = repr(e)
    try:
        results["map"] = list(map(lambda v: square(v) + 1, xs))
    except Exception as err:  # noqa: BLE001
        results["map"] = str(err)
    try:
        results["agent"] = [Checker().check(x) for x in xs]
    except Unsupported as e:  # a ValueError from check() escapes the request
        results["agent"] = "agent: " + str(e)
    results["e_unbound"] = "e" not in locals()
    return results


CALLS = [
    ("expressions", {"xs": [1, 2, 3]}, "s1"),
    ("expressions", {"xs": [1, 4, 2]}, "s1"),
    ("expressions", {"xs": [3, -1, 4]}, "s2"),
    ("expressions", {"xs": [5, 0]}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
