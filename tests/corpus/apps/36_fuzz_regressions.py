"""Programs hypothesis found: dict views of futures, hoisting after a try, membership in appended lists.

Exercises: ``sum(d.values())`` / ``max`` / ``sorted(d.items())`` over a dict of tool
results; launches after a ``try`` statement keep their data dependencies and
their exception order; ``in`` against a list filled with ``append(tool(...))`` and
a dict filled with ``d[k] = tool(...)``; an ignored call whose failed input must
still fail the request.
"""

import nalarc


@nalarc.tool
def inc(x):
    return x + 3


@nalarc.tool
def dbl(x):
    return 2 * x + 1


@nalarc.tool
def chk(x):
    if x % 5 == 3:
        raise ValueError(f"chk rejects {x}")
    return x


@nalarc.workflow
def views(x, y):
    d = {"k0": inc(x), "k1": dbl(y)}
    return [sum(d.values()), max(d.values()), [list(kv) for kv in sorted(d.items())]]


@nalarc.workflow
def reorder(x, y):
    try:
        pass
    except ValueError:
        pass
    x = dbl(6)
    b = x
    c = inc(0)
    return [x, b, c]


@nalarc.workflow
def order_of_errors(x, y):
    try:
        pass
    except ValueError:
        pass
    a = max(chk(8), 0)
    b = chk(x - y)
    c = inc(0)
    return [a, b, c]


@nalarc.workflow
def membership(x, y):
    items = []
    items.append(inc(x))
    table = {}
    table["a"] = inc(y)
    return [3 in items, 3 not in items, 3 in table.values(), items == [3]]


@nalarc.workflow
def ignored_failure(x):
    inc(chk(x))
    return [0, 2]


CALLS = [
    ("views", {"x": 0, "y": 0}, "s1"),
    ("reorder", {"x": 0, "y": 0}, "s1"),
    ("order_of_errors", {"x": 10, "y": 17}, "s1"),
    ("order_of_errors", {"x": 1, "y": 0}, "s1"),
    ("membership", {"x": 0, "y": 0}, "s1"),
    ("ignored_failure", {"x": 3}, "s2"),
    ("ignored_failure", {"x": 4}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
