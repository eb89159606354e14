"""Which exception wins, and failures of results nobody uses.

Exercises: two failing calls where the later one fails first in wall-clock
time (plain Python reports the earlier one), a failing call whose result is
discarded inside try/except (must still be caught), a discarded failing call
outside try (the request must fail), a failing call inside a loop that stops
the loop, exception type and message from an app-defined exception class
with several args, ``except (A, B)`` tuples, ``import nalarc as n``.
"""

import time

import nalarc as n


class ToolError(Exception):
    def __init__(self, code, detail):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self):
        return f"[{self.code}] {self.detail}"


@n.tool
def slow_fail(x):
    time.sleep(0.03)
    raise ToolError(x, "slow failure")


@n.tool
def fast_fail(x):
    time.sleep(0.002)
    raise KeyError(f"fast-{x}")


@n.tool
def ok(x):
    time.sleep(0.002 + 0.003 * (x % 5))
    return x + 100


@n.workflow
def first_wins(x):
    a = slow_fail(x)
    b = fast_fail(x)
    return {"a": a, "b": b}


@n.workflow
def discarded_caught(x):
    marks = [ok(x)]
    try:
        marks.append(ok(x + 1))
        fast_fail(x)
        marks.append(ok(x + 2))
    except KeyError as e:
        marks.append(f"caught {e}")
    try:
        slow_fail(x)
    except (ValueError, ToolError) as e:
        marks.append(f"caught2 {e.code} {e}")
    return marks


@n.workflow
def discarded_escapes(x):
    v = ok(x)
    fast_fail(v)
    return {"v": v}


@n.workflow
def loop_stops(xs):
    done = []
    try:
        for x in xs:
            done.append(ok(x))
            if x == 3:
                slow_fail(x)
            ok(x * 2)
    except ToolError as e:
        return {"done": done, "err": str(e), "code": e.code}
    return {"done": done}


CALLS = [
    ("first_wins", {"x": 1}, "s1"),
    ("discarded_caught", {"x": 4}, "s1"),
    ("discarded_escapes", {"x": 2}, "s2"),
    ("loop_stops", {"xs": [1, 2, 3, 4, 5]}, "s2"),
    ("loop_stops", {"xs": [5, 6]}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
